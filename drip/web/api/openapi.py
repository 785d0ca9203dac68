"""The REST API's OpenAPI 3.1 document, served at `/api/v1/openapi.json` without a key:
every route of the API with a line on what it does, and the one error shape."""

from __future__ import annotations

from typing import Any

from drip.audience.readers import MAX_PAGE


def _op(
    summary: str, status: str = "200", body: bool = False, params: tuple[str, ...] = ()
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK"},
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
        "parameters": [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "string" if p in ("slug", "tag", "action") else "integer"},
            }
            for p in params
        ],
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


PAGED = [
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": MAX_PAGE}},
]
ENGAGEMENT = {"name": "engagement", "in": "query", "schema": {"enum": ["engaged", "quiet", "gone"]}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "drip",
        "version": "1",
        "description": "Readers, their courses, tags and timeline; broadcasts.",
    },
    "components": {
        "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                            "suggestion": {"type": "string"},
                        },
                    }
                },
            }
        },
    },
    "security": [{"key": []}],
    "paths": {
        "/api/v1/readers": {
            "get": {**_op("List readers, oldest first"), "parameters": [*PAGED, ENGAGEMENT]},
            "post": _op(
                "Create a reader (email, first_name, timezone, consent_source)", "201", body=True
            ),
        },
        "/api/v1/readers/{reader_id}": {
            "get": _op("A reader, their courses and tags", params=("reader_id",)),
            "patch": _op("Change first_name or timezone", body=True, params=("reader_id",)),
            "delete": _op(
                "Erase the reader and everything about them", "204", params=("reader_id",)
            ),
        },
        "/api/v1/readers/{reader_id}/replies": {
            "get": _op(
                "The replies the reader wrote, newest first, each with its lesson",
                params=("reader_id",),
            )
        },
        "/api/v1/readers/{reader_id}/enrollments": {
            "post": _op(
                'Start a course ({"sequence": slug, "confirmed"?: bool})',
                "201",
                body=True,
                params=("reader_id",),
            )
        },
        "/api/v1/readers/{reader_id}/enrollments/{slug}/{action}": {
            "post": _op("pause, resume or leave a course", params=("reader_id", "slug", "action"))
        },
        "/api/v1/readers/{reader_id}/tags": {
            "post": _op('Add tags ({"tags": [...]})', body=True, params=("reader_id",))
        },
        "/api/v1/readers/{reader_id}/tags/{tag}": {
            "delete": _op("Remove a tag", params=("reader_id", "tag"))
        },
        "/api/v1/readers/{reader_id}/events": {
            "get": {
                **_op("The reader's timeline, oldest first", params=("reader_id",)),
                "parameters": [*_op("", params=("reader_id",))["parameters"], *PAGED],
            }
        },
        "/api/v1/broadcasts": {
            "get": {
                **_op("List broadcasts with their progress, oldest first"),
                "parameters": PAGED,
            },
            "post": _op(
                "Write a draft broadcast ({subject, preheader?, body (Markdown), audience: "
                "{to?, readers?, tags?, segment?}, name?})",
                "201",
                body=True,
            ),
        },
        "/api/v1/broadcasts/{broadcast_id}": {
            "get": _op(
                "A broadcast and its progress (queued, sent, failed, skipped, bounced, clicked)",
                params=("broadcast_id",),
            ),
            "patch": _op(
                "Edit a draft (the fields of a new one; those left out are kept; 409 unless "
                "it is a draft)",
                body=True,
                params=("broadcast_id",),
            ),
        },
        "/api/v1/broadcasts/{broadcast_id}/schedule": {
            "post": _op(
                'Schedule a draft ({"at"?: ISO-8601}; absent: now)',
                body=True,
                params=("broadcast_id",),
            )
        },
        "/api/v1/broadcasts/{broadcast_id}/cancel": {
            "post": _op(
                "Cancel: readers whose turn has not come do not get it", params=("broadcast_id",)
            )
        },
        "/api/v1/openapi.json": {"get": {**_op("This document"), "security": []}},
    },
}
