"""The author's studio at /admin/sequences: a sequence's lessons in order, each lesson's
editor with a live preview, test sends, history and restore, the lead magnet's text and
the sequence's settings. Nested in the admin blueprint, so its login check applies.

Handlers only: each reads the form, calls drip.studio.editing (which checks, writes and commits),
and shows the outcome. An editor's text is never lost: a refused save, a conflict and a
test send all answer with the form as it was posted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.audience.clicks import clicks_by_link, clicks_per_lesson
from drip.audience.subscriptions import SubscriptionError
from drip.mail.transports import SendError
from drip.ops.stats import drop_off, lesson_reach
from drip.replies.listing import replies_per_lesson
from drip.store import queries
from drip.store.models import Role
from drip.store.queries import paused_sequences
from drip.studio.lesson_format import (
    LessonFields,
    front_matter_broken,
    lesson_fields,
    lesson_files,
    lesson_text,
    place,
)
from drip.studio.outcomes import Outcome, Refused, Saved, StudioError, read
from drip.studio.samples import CONFIRMATION, TooManyTests, send_test
from drip.web.admin.access import audit, requires, unrecorded
from drip.web.context import db_session, services
from drip.web.studio import history, magnet, settings
from drip.web.studio.editor import (
    Editor,
    committed,
    conflict,
    count_test_send,
    current_studio,
    flash_outcome,
    folder_of,
    lesson_path,
    no_such_button,
    operator,
    preview_json,
    record,
    show,
    text_field,
    wants_json,
    with_problems,
)

bp = Blueprint("studio", __name__, url_prefix="/sequences")
for part in (history.bp, magnet.bp, settings.bp):  # nested: /admin/sequences/<slug>/...
    bp.register_blueprint(part)


@bp.get("/<slug>")
def sequence(slug: str) -> ResponseReturnValue:
    """The lessons in order (from their files, so a broken one is listed and can be opened),
    each with who got it and who is due, and the buttons that add, move and remove."""
    svc = services()
    folder = folder_of(slug)
    library = svc.content.library()
    found = library.get(slug)
    problems = [p for p in library.problems if p.path.is_relative_to(folder)]
    session = db_session()
    now = svc.clock()
    links = clicks_by_link(session, slug)
    files = lesson_files(folder)
    # A broken sequence still has the lessons that read: only the broken one is marked.
    readable = found or library.held_forms.get(slug)
    reach = lesson_reach(session, readable, now) if readable else []
    loaded = {lesson.key: lesson for lesson in readable.lessons} if readable else {}
    return render_template(
        "admin/sequence.html",
        slug=slug,
        sequence=found or library.held_forms.get(slug),
        usable=found is not None,
        files=[(item, loaded.get(item.key), read(item.path).version) for item in files],
        problems=problems,
        paused=slug in paused_sequences(session),
        reach={r.lesson.key: r for r in reach},
        drop_off=drop_off(reach),
        clicks=clicks_per_lesson(links),
        replies=replies_per_lesson(session, slug),
        links=links,
        magnet=current_studio().magnet_path(slug),
        to=operator(),
    )


@bp.post("/<slug>/test-confirmation")
@requires(Role.editor)
def test_confirmation(slug: str) -> ResponseReturnValue:
    """The confirmation email, as a new reader gets it, to the operator (or a typed address)."""
    svc = services()
    found = svc.content.library().get(slug) or abort(404)
    to = text_field("to").strip() or operator()
    try:
        count_test_send()
        send_test(svc.renderer, svc.links, svc.transport, found, CONFIRMATION, to, svc.clock())
    except (TooManyTests, SubscriptionError, SendError) as error:
        flash(f"The test was not sent: {error}", "error")
    else:
        flash(f"Sent the confirmation email, marked [TEST], to {to}.", "ok")
    return redirect(url_for(".sequence", slug=slug))


@bp.post("/<slug>/lessons/<name>/move")
@requires(Role.editor)
def move(slug: str, name: str) -> ResponseReturnValue:
    svc = services()
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        flash("Say which way to move the lesson: up or down.", "error")
        return redirect(url_for(".sequence", slug=slug))
    step = -1 if direction == "up" else 1
    try:
        outcome = current_studio().move(slug, name, step, operator(), svc.clock())
    except StudioError as error:
        flash(str(error), "error")
    else:
        flash_outcome(outcome, f"Moved {name} {direction}.", "move lesson", f"{slug}/{name}")
    return redirect(url_for(".sequence", slug=slug, _anchor=f"lesson-{name}"))


@bp.post("/<slug>/lessons/<name>/remove")
@requires(Role.editor)
def remove(slug: str, name: str) -> ResponseReturnValue:
    svc = services()
    try:
        outcome = current_studio().remove(
            slug, name, text_field("version"), operator(), svc.clock()
        )
    except StudioError as error:
        flash(str(error), "error")
    else:
        flash_outcome(
            outcome,
            f"Removed {name}. Readers who had it keep it in their history; the others "
            "go on with the next lesson.",
            "remove lesson",
            f"{slug}/{name}",
        )
    return redirect(url_for(".sequence", slug=slug))


def _form_fields() -> LessonFields:
    return LessonFields(
        subject=text_field("subject"),
        delay=text_field("delay"),
        preheader=text_field("preheader"),
        body=text_field("body"),
    )


def _lesson_editor(
    slug: str,
    path: Path,
    fields: LessonFields,
    version: str,
    text: str,
    kind: str = "lesson",
) -> Editor:
    svc = services()
    name = path.stem.split("-", 1)[-1]
    existing = kind == "lesson"
    return Editor(
        kind=kind,
        slug=slug,
        title=fields.subject or (path.name if existing else "New lesson"),
        fields={"subject": fields.subject, "delay": fields.delay, "preheader": fields.preheader},
        body=fields.body,
        version=version,
        action=url_for(".save_lesson", slug=slug, name=name)
        if existing
        else url_for(".add_lesson", slug=slug),
        preview_url=url_for(".lesson_preview", slug=slug, name=name)
        if existing
        else url_for(".new_lesson_preview", slug=slug),
        preview=current_studio().preview(path, text, svc.renderer, svc.clock()),
        history_url=url_for("admin.studio.history.lesson", slug=slug, name=name)
        if existing
        else None,
        name=name,
        to=text_field("to") or operator(),
        raw=_raw_file(path) if existing else (),
    )


def _raw_file(path: Path) -> tuple[tuple[int, str, str], ...]:
    """The file as it is on disk, line by line with what `drip check` says of each line,
    when its front matter does not read: the form holds what could be read of it, and the
    author sees what is really there."""
    text = read(path).text
    if not front_matter_broken(text):
        return ()
    said: dict[int, str] = {}
    for problem in services().content.library().problems:
        if problem.path == path:
            said.setdefault(problem.line, problem.message)
    return tuple((n, line, said.get(n, "")) for n, line in enumerate(text.splitlines(), 1))


@bp.get("/<slug>/lessons/<name>")
def lesson(slug: str, name: str) -> ResponseReturnValue:
    """The lesson editor: subject, delay, preheader and body, with the email as the reader
    gets it beside. Its buttons (save_lesson): Preview (without JavaScript), Save, Send me
    a test. A viewer sees it without them."""
    path = lesson_path(slug, name)
    opened = read(path)
    editor = _lesson_editor(slug, path, lesson_fields(opened.text), opened.version, opened.text)
    return show(with_problems(editor, path, opened.text))


@bp.post("/<slug>/lessons/<name>")
@requires(Role.editor)
def save_lesson(slug: str, name: str) -> ResponseReturnValue:
    """The lesson form's buttons action=save and action=test (Preview posts to
    lesson_preview)."""
    path = lesson_path(slug, name)
    svc = services()
    fields = _form_fields()
    text = lesson_text(read(path).text, fields)
    version = text_field("version")
    action = request.form.get("action")
    if action == "save":
        try:
            outcome = current_studio().save(path, text, version, operator(), svc.clock())
        except StudioError as error:  # the folder cannot be written: say so, keep the text
            flash(f"Not saved: {error}", "error")
            editor = _lesson_editor(slug, path, fields, version, text)
            return show(with_problems(editor, path, text), 500)
        return _after_save(outcome, slug, path, fields, version, text)
    if action == "test":
        return _test_send(_lesson_editor(slug, path, fields, version, text), path, text)
    return no_such_button()


def _after_save(
    outcome: Outcome, slug: str, path: Path, fields: LessonFields, version: str, text: str
) -> ResponseReturnValue:
    if isinstance(outcome, Saved):
        record("save lesson", f"{slug}/{path.name}", outcome)
        flash(f"Saved {path.name}." + committed(outcome), "ok")  # warnings: on the page
        return redirect(url_for(".lesson", slug=slug, name=path.stem.split("-", 1)[-1]))
    if isinstance(outcome, Refused):
        editor = _lesson_editor(slug, path, fields, version, text)
        editor = replace(editor, placed=tuple(place(outcome.problems, path, text)))
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        return show(editor, 422)
    return conflict(_lesson_editor(slug, path, fields, version, text), outcome, path, text)


def _test_send(editor: Editor, path: Path, text: str) -> ResponseReturnValue:
    svc = services()
    to = editor.to.strip()
    try:
        count_test_send()
        sent = current_studio().send_test(path, text, to, svc.transport, svc.clock())
    except (TooManyTests, SubscriptionError, SendError) as error:
        flash(f"The test was not sent: {error}", "error")
        return show(
            with_problems(editor, path, text), 429 if isinstance(error, TooManyTests) else 422
        )
    if isinstance(sent, Refused):
        flash("The test was not sent: the lesson has problems (below).", "error")
        return show(replace(editor, placed=tuple(place(sent.problems, path, text))), 422)
    audit("send test", f"{editor.slug}/{path.name} to {sent.to}")
    db_session().commit()
    flash(
        f"Sent this lesson as it is in the form, marked [TEST], to {sent.to}. "
        "Its links lead to a test page, never to a reader.",
        "ok",
    )
    return show(with_problems(editor, path, text))


@bp.post("/<slug>/lessons/<name>/preview")
@requires(Role.editor)
@unrecorded
def lesson_preview(slug: str, name: str) -> ResponseReturnValue:
    """The unsaved form rendered as the reader gets it: JSON for admin.js to show as it is
    typed, or the editor page for the Preview button (not in the audit log either way)."""
    path = lesson_path(slug, name)
    fields = _form_fields()
    text = lesson_text(read(path).text, fields)
    if wants_json():
        return preview_json(path, text)
    editor = _lesson_editor(slug, path, fields, text_field("version"), text)
    return show(with_problems(editor, path, text))


@bp.get("/<slug>/new")
def new_lesson(slug: str) -> ResponseReturnValue:
    """A new lesson at the end: it is made (and goes to readers) once it passes the check."""
    folder_of(slug)
    taken = queries.lessons_delivered(db_session(), slug)
    fields = LessonFields("", "2 days", "", "")
    path = current_studio().new_lesson_path(slug, "new lesson", taken)
    editor = _lesson_editor(slug, path, fields, "", lesson_text("", fields), kind="new")
    return show(editor)


@bp.post("/<slug>/new")
@requires(Role.editor)
def add_lesson(slug: str) -> ResponseReturnValue:
    svc = services()
    studio = current_studio()
    folder_of(slug)
    taken = queries.lessons_delivered(db_session(), slug)
    fields = _form_fields()
    path = studio.new_lesson_path(slug, fields.subject or "new lesson", taken)
    text = lesson_text("", fields)
    action = request.form.get("action")
    if action == "save":
        try:
            outcome = studio.add_lesson(slug, fields, taken, operator(), svc.clock())
        except StudioError as error:
            flash(f"Not added: {error}", "error")
            editor = _lesson_editor(slug, path, fields, "", text, kind="new")
            return show(with_problems(editor, path, text), 500)
        if isinstance(outcome, Saved) and outcome.path is not None:
            record("add lesson", f"{slug}/{outcome.path.name}", outcome)
            flash(f"Added {outcome.path.name}." + committed(outcome), "ok")
            return redirect(url_for(".lesson", slug=slug, name=outcome.path.stem.split("-", 1)[1]))
        problems = outcome.problems if isinstance(outcome, Refused) else []
        editor = _lesson_editor(slug, path, fields, "", text, kind="new")
        flash("Not added: fix the problems below.", "error")
        return show(replace(editor, placed=tuple(place(problems, path, text))), 422)
    if action == "test":
        return _test_send(_lesson_editor(slug, path, fields, "", text, kind="new"), path, text)
    return no_such_button()


@bp.post("/<slug>/new/preview")
@requires(Role.editor)
@unrecorded
def new_lesson_preview(slug: str) -> ResponseReturnValue:
    folder_of(slug)
    fields = _form_fields()
    taken = queries.lessons_delivered(db_session(), slug)
    path = current_studio().new_lesson_path(slug, fields.subject or "new lesson", taken)
    text = lesson_text("", fields)
    if wants_json():
        return preview_json(path, text)
    editor = _lesson_editor(slug, path, fields, "", text, kind="new")
    return show(with_problems(editor, path, text))
