"""The lead magnet's text (magnet.md) in the studio: its cover fields and Markdown body, with
the page as WeasyPrint would typeset it beside. The PDF is rebuilt at /magnet/build."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.content.magnets import MagnetSource, magnet_html
from drip.store.models import Role
from drip.studio.lesson_format import (
    MAGNET_KEYS,
    front_matter,
    place,
    with_front_matter,
)
from drip.studio.outcomes import Refused, Saved, StudioError, read
from drip.studio.previews import Preview
from drip.web.admin.access import requires, unrecorded
from drip.web.context import services
from drip.web.studio.editor import (
    Editor,
    committed,
    conflict,
    current_studio,
    no_such_button,
    operator,
    preview_json,
    record,
    show,
    text_field,
    wants_json,
)

bp = Blueprint("magnet", __name__)


def _magnet_preview(slug: str, path: Path, text: str) -> Preview:
    """The magnet as WeasyPrint would typeset it (its HTML), and what the check says."""
    svc = services()
    checked = current_studio().check(
        path.parent, {path.name: text.encode("utf-8")}, svc.clock(), typeset=False
    )
    fields, body = _magnet_fields(text)
    sequence = checked.sequence
    if sequence is None:
        return Preview("", "", "", checked.problems)
    source = MagnetSource(
        title=fields["title"] or (sequence.lead_magnet.title if sequence.lead_magnet else ""),
        subtitle=fields["subtitle"],
        body=body,
        credential=fields["credential"],
        notice=fields["notice"],
    )
    html = magnet_html(sequence, source)  # the author comes with the sequence (site.yaml)
    return Preview(source.title, html, "", checked.problems)


def _magnet_fields(text: str) -> tuple[dict[str, str], str]:
    meta, body = front_matter(text)
    return {key: str(meta.get(key) or "") for key in MAGNET_KEYS}, body


def _magnet_text(path: Path) -> str:
    values = {key: text_field(key) for key in MAGNET_KEYS}
    return with_front_matter(read(path).text, values, text_field("body"))


def _magnet_editor(slug: str, path: Path, text: str, version: str) -> Editor:
    fields, body = _magnet_fields(text)
    preview = _magnet_preview(slug, path, text)
    return Editor(
        kind="magnet",
        slug=slug,
        title=f"Lead magnet: {fields['title'] or path.name}",
        fields=fields,
        body=body,
        version=version,
        action=url_for("admin.studio.magnet.save", slug=slug),
        preview_url=url_for("admin.studio.magnet.preview", slug=slug),
        preview=preview,
        placed=tuple(place(preview.problems, path, text)),
        history_url=url_for("admin.studio.history.file", slug=slug, part="magnet"),
    )


@bp.get("/<slug>/magnet")
def page(slug: str) -> ResponseReturnValue:
    """magnet.md: its cover (title, subtitle, credential, notice) and its Markdown body.
    The PDF itself is rebuilt at /magnet/build."""
    path = current_studio().magnet_path(slug) or abort(404)
    opened = read(path)
    return show(_magnet_editor(slug, path, opened.text, opened.version))


@bp.post("/<slug>/magnet")
@requires(Role.editor)
def save(slug: str) -> ResponseReturnValue:
    path = current_studio().magnet_path(slug) or abort(404)
    text = _magnet_text(path)
    version = text_field("version")
    if request.form.get("action") != "save":
        return no_such_button()
    try:
        outcome = current_studio().save(path, text, version, operator(), services().clock())
    except StudioError as error:
        flash(f"Not saved: {error}", "error")
        return show(_magnet_editor(slug, path, text, version), 500)
    if isinstance(outcome, Saved):
        record("save lead magnet", f"{slug}/{path.name}", outcome)
        flash(f"Saved {path.name}." + committed(outcome), "ok")
        return redirect(url_for("admin.studio.magnet.page", slug=slug))
    if isinstance(outcome, Refused):
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        editor = _magnet_editor(slug, path, text, version)
        return show(replace(editor, placed=tuple(place(outcome.problems, path, text))), 422)
    return conflict(_magnet_editor(slug, path, text, version), outcome, path, text)


@bp.post("/<slug>/magnet/preview")
@requires(Role.editor)
@unrecorded
def preview(slug: str) -> ResponseReturnValue:
    path = current_studio().magnet_path(slug) or abort(404)
    text = _magnet_text(path)
    if wants_json():
        return preview_json(path, text, _magnet_preview(slug, path, text))
    return show(_magnet_editor(slug, path, text, text_field("version")))
