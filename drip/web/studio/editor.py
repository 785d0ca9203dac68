"""What the studio's editor pages share: the studio for this request, the lesson and folder a
URL names, the editor page (fields, preview, problems in place), a conflict's diff, the JSON
preview admin.js asks for as the author types, and the audit entry of a saved file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flask import (
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue

from drip.mail.render import SAMPLE_READER
from drip.studio.editing import Studio
from drip.studio.lesson_format import (
    FORM_KEYS,
    Placed,
    diff,
    lesson_file,
    place,
)
from drip.studio.outcomes import Conflict, Document, Outcome, Refused, Saved, StudioError
from drip.studio.previews import Preview
from drip.studio.samples import count_test
from drip.web.admin.access import audit, may
from drip.web.context import db_session, services

SAVES = {  # the view each editor's form posts to, whose role decides if it shows its buttons
    "lesson": "admin.studio.save_lesson",
    "new": "admin.studio.add_lesson",
    "magnet": "admin.studio.magnet.save",
}


def current_studio() -> Studio:
    svc = services()
    return Studio(svc.settings, svc.links)


def folder_of(slug: str) -> Path:
    try:
        return current_studio().folder(slug)
    except StudioError:
        abort(404)


def lesson_path(slug: str, name: str) -> Path:
    found = lesson_file(folder_of(slug), name)
    return found.path if found is not None else abort(404)


def operator() -> str:
    email: str = g.operator.email
    return email


def count_test_send() -> None:
    """Count a "Send me a test" by this operator, committed before the send; raises
    TooManyTests past drip.studio.samples' limit a minute."""
    session = db_session()
    count_test(session, operator(), services().clock())
    session.commit()


def text_field(name: str) -> str:
    return request.form.get(name, "")


def record(action: str, target: str, saved: Saved) -> None:
    """The audit log's entry for a change to the course files, with the text before and
    after, committed at once (the files are already written)."""
    audit(action, target, before=saved.before, after=saved.after)
    db_session().commit()


def flash_outcome(outcome: Outcome, done: str, action: str, target: str) -> None:
    if isinstance(outcome, Saved):
        record(action, target, outcome)
        flash(done + committed(outcome), "ok")
    elif isinstance(outcome, Refused):
        flash(
            "Not done, nothing changed: "
            + "; ".join(f"{p.path.name}, line {p.line}: {p.message}" for p in outcome.errors),
            "error",
        )
    else:
        flash("Not done, nothing changed: a file changed on disk meanwhile; look again.", "error")


def committed(saved: Saved) -> str:
    if saved.git_error:
        return f" (saved, but its history could not be kept: {saved.git_error})"
    return " Its History keeps the earlier version." if saved.commit else ""


@dataclass(frozen=True)
class Editor:
    """Everything an editor page shows."""

    kind: str  # "lesson", "new", "magnet"
    slug: str
    title: str  # the page's heading
    fields: dict[str, str]
    body: str
    version: str
    action: str  # where the form posts
    preview_url: str
    preview: Preview | None = None
    placed: tuple[Placed, ...] = ()
    conflict: str | None = None  # the diff from the disk's version to the editor's
    disk_text: str | None = None
    to: str = ""
    history_url: str | None = None
    name: str = ""  # the lesson's identity
    raw: tuple[tuple[int, str, str], ...] = ()  # a broken file's lines, each with its problem


def show(editor: Editor, status: int = 200) -> ResponseReturnValue:
    svc = services()
    return (
        render_template(
            "admin/editor.html",
            editor=editor,
            by_field={
                key: [p for p in editor.placed if p.field == key] for key in (*FORM_KEYS, "body")
            },
            elsewhere=[p for p in editor.placed if not p.field],
            sample=SAMPLE_READER,
            sequence=svc.content.library().for_sign_up(editor.slug),
            can_edit=may(SAVES[editor.kind]),
        ),
        status,
    )


def with_problems(editor: Editor, path: Path, text: str) -> Editor:
    assert editor.preview is not None
    return replace(editor, placed=tuple(place(editor.preview.problems, path, text)))


def conflict(editor: Editor, outcome: Conflict, path: Path, text: str) -> ResponseReturnValue:
    """Both texts on the page: the disk's as a diff against the editor's, which stays in the
    form; saving again (now against the disk's version) replaces the disk's text."""
    disk = outcome.disk or Document(path, "", "")
    flash(
        "Not saved: the file changed on disk since you opened it (another window, or "
        "someone else). Compare below; Save again to replace it with yours.",
        "error",
    )
    editor = replace(
        editor,
        version=disk.version,
        conflict=diff(disk.text, text),
        disk_text=disk.text,
    )
    return show(with_problems(editor, path, text), 409)


def wants_json() -> bool:
    """admin.js asks for JSON as the author types; the Preview button of a page without
    JavaScript posts the same form and gets the page."""
    return request.accept_mimetypes.best == "application/json"


def no_such_button() -> ResponseReturnValue:
    flash("Choose Save, Preview or Send me a test.", "error")
    return redirect(request.path)


def preview_json(path: Path, text: str, preview: Preview | None = None) -> ResponseReturnValue:
    svc = services()
    found = preview or current_studio().preview(path, text, svc.renderer, svc.clock())
    return jsonify(
        subject=found.subject,
        html=found.html,
        text=found.text,
        problems=[
            {
                "field": item.field,
                "line": item.line,
                "where": item.where,
                "message": item.problem.message,
                "severity": item.problem.severity,
            }
            for item in place(found.problems, path, text)
        ],
    )
