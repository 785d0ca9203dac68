"""A course file's history (git, or the studio's own copies) and restoring an earlier
version: lessons, the lead magnet's text and the settings."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.store.models import Role
from drip.studio.outcomes import StudioError, read
from drip.web.admin.access import requires
from drip.web.context import services
from drip.web.studio.editor import (
    current_studio,
    flash_outcome,
    folder_of,
    lesson_path,
    operator,
    text_field,
)

bp = Blueprint("history", __name__)


@bp.get("/<slug>/lessons/<name>/history")
def lesson(slug: str, name: str) -> ResponseReturnValue:
    path = lesson_path(slug, name)
    return _history(
        slug,
        path,
        back=url_for(".lesson", slug=slug, name=name),
        restore=url_for("admin.studio.history.restore_lesson", slug=slug, name=name),
        label=name,
    )


@bp.post("/<slug>/lessons/<name>/restore")
@requires(Role.editor)
def restore_lesson(slug: str, name: str) -> ResponseReturnValue:
    path = lesson_path(slug, name)
    return _restore(path, url_for("admin.studio.history.lesson", slug=slug, name=name))


@bp.get("/<slug>/<any(magnet, settings):part>/history")
def file(slug: str, part: str) -> ResponseReturnValue:
    path = _part_path(slug, part)
    return _history(
        slug,
        path,
        back=url_for(f"admin.studio.{part}.page", slug=slug),
        restore=url_for("admin.studio.history.restore_file", slug=slug, part=part),
        label=path.name,
    )


@bp.post("/<slug>/<any(magnet, settings):part>/restore")
@requires(Role.editor)
def restore_file(slug: str, part: str) -> ResponseReturnValue:
    return _restore(
        _part_path(slug, part), url_for("admin.studio.history.file", slug=slug, part=part)
    )


def _part_path(slug: str, part: str) -> Path:
    if part == "settings":
        return folder_of(slug) / "sequence.yaml"
    return current_studio().magnet_path(slug) or abort(404)


def _history(slug: str, path: Path, back: str, restore: str, label: str) -> ResponseReturnValue:
    studio = current_studio()
    return render_template(
        "admin/history.html",
        slug=slug,
        label=label,
        path=path,
        versions=studio.history(path),
        git=studio.git,
        version=read(path).version,
        back=back,
        restore=restore,
    )


def _restore(path: Path, back: str) -> ResponseReturnValue:
    svc = services()
    try:
        outcome = current_studio().restore(
            path, text_field("commit"), text_field("version"), operator(), svc.clock()
        )
    except StudioError as error:
        flash(str(error), "error")
    else:
        commit = text_field("commit")[:10]
        target = f"{path.parent.name}/{path.name}@{commit}"
        flash_outcome(outcome, f"Restored the earlier version of {path.name}.", "restore", target)
    return redirect(back)
