"""A sequence's settings (sequence.yaml) as a form, saved through the studio's checked, atomic
save, keeping the author's comments and every key the form does not show."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.store.models import Role
from drip.studio.lesson_format import (
    Placed,
    diff,
    place,
)
from drip.studio.outcomes import Document, Refused, Saved, StudioError, read
from drip.studio.yaml_forms import SequenceSettings, sequence_settings, settings_text
from drip.web.admin.access import requires
from drip.web.context import services
from drip.web.studio.editor import (
    committed,
    current_studio,
    folder_of,
    operator,
    record,
    text_field,
)

bp = Blueprint("settings", __name__)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


SETTING_LABELS = {  # sequence.yaml's keys as the settings form names them
    "title": "Title",
    "promise": "Promise",
    "sender": "Sender",
    "timezone": "Time zone",
    "send_window": "Send window",
    "consent": "Consent sentence",
    "lead_magnet": "Lead magnet",
}


def _settings_form() -> SequenceSettings:
    return SequenceSettings(
        title=text_field("title"),
        promise=text_field("promise"),
        sender=text_field("sender"),
        timezone=text_field("timezone"),
        window_start=text_field("window_start"),
        window_end=text_field("window_end"),
        window_days=tuple(d for d in DAY_NAMES if d in request.form.getlist("window_days")),
        consent=text_field("consent"),
        magnet_title=text_field("magnet_title"),
        magnet_attach=request.form.get("magnet_attach") == "yes",
    )


@bp.get("/<slug>/settings")
def page(slug: str) -> ResponseReturnValue:
    """sequence.yaml's settings as a form (saved by save_settings)."""
    path = folder_of(slug) / "sequence.yaml"
    opened = read(path)
    return _settings_page(slug, path, sequence_settings(opened.text), opened.version, [], None)


@bp.post("/<slug>/settings")
@requires(Role.editor)
def save(slug: str) -> ResponseReturnValue:
    """Saved through the same checked, atomic save, keeping the author's comments and every
    key the form does not show."""
    path = folder_of(slug) / "sequence.yaml"
    values, version = _settings_form(), text_field("version")
    try:
        text = settings_text(read(path).text, values)
        outcome = current_studio().save(path, text, version, operator(), services().clock())
    except StudioError as error:
        flash(f"Not saved: {error}", "error")
        return _settings_page(slug, path, values, version, [], None, 422)
    if isinstance(outcome, Saved):
        record("save settings", f"{slug}/sequence.yaml", outcome)
        flash("Saved the settings." + committed(outcome), "ok")
        return redirect(url_for("admin.studio.settings.page", slug=slug))
    if isinstance(outcome, Refused):
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        said = [
            (_setting_of(text, p.line) if p.problem.path == path else "", p)
            for p in place(outcome.problems, path, text)
        ]
        return _settings_page(slug, path, values, version, said, None, 422)
    flash(
        "Not saved: these settings were changed since you opened this page (in another "
        "window, or by someone else). Compare below; Save again to replace them with yours.",
        "error",
    )
    disk = outcome.disk or Document(path, "", "")
    return _settings_page(slug, path, values, disk.version, [], diff(disk.text, text), 409)


def _setting_of(text: str, line: int) -> str:
    """The form's name for the setting at `line` of a sequence.yaml: the top-level key the
    line belongs to, or "" for one the form does not show."""
    key = ""
    for number, row in enumerate(text.splitlines(), start=1):
        if number > line:
            break
        if row[:1] not in ("", " ", "\t", "#", "-") and ":" in row:
            key = row.split(":", 1)[0].strip()
    return SETTING_LABELS.get(key, "")


def _settings_page(
    slug: str,
    path: Path,
    values: SequenceSettings,
    version: str,
    placed: list[tuple[str, Placed]],
    conflict: str | None,
    status: int = 200,
) -> ResponseReturnValue:
    """The settings form; each problem named by the setting it is about, as the form names
    it ("Send window"), where it is one of the form's."""
    return (
        render_template(
            "admin/settings.html",
            slug=slug,
            values=values,
            version=version,
            placed=placed,
            conflict=conflict,
            days=DAY_NAMES,
            has_magnet=current_studio().magnet_path(slug) is not None,
        ),
        status,
    )
