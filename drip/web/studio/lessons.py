"""The author's studio at /admin/sequences: a sequence's lessons in order, each lesson's
editor with a live preview, test sends, history and restore, the lead magnet's text and
the sequence's settings. Nested in the admin blueprint, so its login check applies.

Handlers only: each reads the form, calls drip.studio.editing (which checks, writes and commits),
and shows the outcome. An editor's text is never lost: a refused save, a conflict and a
test send all answer with the form as it was posted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.audience.subscriptions import SubscriptionError
from drip.content.magnets import MagnetSource, magnet_html
from drip.mail.clicks import clicks_by_link, clicks_per_lesson
from drip.mail.render import SAMPLE_READER
from drip.mail.transports import SendError
from drip.ops.stats import drop_off, lesson_reach
from drip.replies.listing import replies_per_lesson
from drip.store import queries
from drip.store.models import Role
from drip.store.queries import paused_sequences
from drip.studio.editing import Studio
from drip.studio.lesson_format import (
    FORM_KEYS,
    MAGNET_KEYS,
    LessonFields,
    Placed,
    diff,
    front_matter,
    front_matter_broken,
    lesson_fields,
    lesson_file,
    lesson_files,
    lesson_text,
    place,
    with_front_matter,
)
from drip.studio.outcomes import Conflict, Document, Outcome, Refused, Saved, StudioError, read
from drip.studio.previews import Preview
from drip.studio.samples import CONFIRMATION, TooManyTests, count_test, send_test
from drip.studio.yaml_forms import SequenceSettings, sequence_settings, settings_text
from drip.web.admin.access import audit, may, requires, unrecorded
from drip.web.context import db_session, services

bp = Blueprint("studio", __name__, url_prefix="/sequences")

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
SAVES = {  # the view each editor's form posts to, whose role decides if it shows its buttons
    "lesson": "admin.studio.save_lesson",
    "new": "admin.studio.add_lesson",
    "magnet": "admin.studio.save_magnet",
}


def _studio() -> Studio:
    svc = services()
    return Studio(svc.settings, svc.links)


def _folder(slug: str) -> Path:
    try:
        return _studio().folder(slug)
    except StudioError:
        abort(404)


def _lesson_path(slug: str, name: str) -> Path:
    found = lesson_file(_folder(slug), name)
    return found.path if found is not None else abort(404)


def _operator() -> str:
    email: str = g.operator.email
    return email


def _count_test() -> None:
    """Count a "Send me a test" by this operator, committed before the send; raises
    TooManyTests past drip.studio.samples' limit a minute."""
    session = db_session()
    count_test(session, _operator(), services().clock())
    session.commit()


def _text_field(name: str) -> str:
    return request.form.get(name, "")


# -- the sequence page -------------------------------------------------------------------------


@bp.get("/<slug>")
def sequence(slug: str) -> ResponseReturnValue:
    """The lessons in order (from their files, so a broken one is listed and can be opened),
    each with who got it and who is due, and the buttons that add, move and remove."""
    svc = services()
    folder = _folder(slug)
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
        magnet=_studio().magnet_path(slug),
        to=_operator(),
    )


@bp.post("/<slug>/test-confirmation")
@requires(Role.editor)
def test_confirmation(slug: str) -> ResponseReturnValue:
    """The confirmation email, as a new reader gets it, to the operator (or a typed address)."""
    svc = services()
    found = svc.content.library().get(slug) or abort(404)
    to = _text_field("to").strip() or _operator()
    try:
        _count_test()
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
        outcome = _studio().move(slug, name, step, _operator(), svc.clock())
    except StudioError as error:
        flash(str(error), "error")
    else:
        _flash_outcome(outcome, f"Moved {name} {direction}.", "move lesson", f"{slug}/{name}")
    return redirect(url_for(".sequence", slug=slug, _anchor=f"lesson-{name}"))


@bp.post("/<slug>/lessons/<name>/remove")
@requires(Role.editor)
def remove(slug: str, name: str) -> ResponseReturnValue:
    svc = services()
    try:
        outcome = _studio().remove(slug, name, _text_field("version"), _operator(), svc.clock())
    except StudioError as error:
        flash(str(error), "error")
    else:
        _flash_outcome(
            outcome,
            f"Removed {name}. Readers who had it keep it in their history; the others "
            "go on with the next lesson.",
            "remove lesson",
            f"{slug}/{name}",
        )
    return redirect(url_for(".sequence", slug=slug))


def _record(action: str, target: str, saved: Saved) -> None:
    """The audit log's entry for a change to the course files, with the text before and
    after, committed at once (the files are already written)."""
    audit(action, target, before=saved.before, after=saved.after)
    db_session().commit()


def _flash_outcome(outcome: Outcome, done: str, action: str, target: str) -> None:
    if isinstance(outcome, Saved):
        _record(action, target, outcome)
        flash(done + _committed(outcome), "ok")
    elif isinstance(outcome, Refused):
        flash(
            "Not done, nothing changed: "
            + "; ".join(f"{p.path.name}, line {p.line}: {p.message}" for p in outcome.errors),
            "error",
        )
    else:
        flash("Not done, nothing changed: a file changed on disk meanwhile; look again.", "error")


def _committed(saved: Saved) -> str:
    if saved.git_error:
        return f" (saved, but its history could not be kept: {saved.git_error})"
    return " Its History keeps the earlier version." if saved.commit else ""


# -- the editors -------------------------------------------------------------------------------


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


def _show(editor: Editor, status: int = 200) -> ResponseReturnValue:
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


def _form_fields() -> LessonFields:
    return LessonFields(
        subject=_text_field("subject"),
        delay=_text_field("delay"),
        preheader=_text_field("preheader"),
        body=_text_field("body"),
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
        preview=_studio().preview(path, text, svc.renderer, svc.clock()),
        history_url=url_for(".lesson_history", slug=slug, name=name) if existing else None,
        name=name,
        to=_text_field("to") or _operator(),
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


def _with_problems(editor: Editor, path: Path, text: str) -> Editor:
    assert editor.preview is not None
    return replace(editor, placed=tuple(place(editor.preview.problems, path, text)))


@bp.get("/<slug>/lessons/<name>")
def lesson(slug: str, name: str) -> ResponseReturnValue:
    """The lesson editor: subject, delay, preheader and body, with the email as the reader
    gets it beside. Its buttons (save_lesson): Preview (without JavaScript), Save, Send me
    a test. A viewer sees it without them."""
    path = _lesson_path(slug, name)
    opened = read(path)
    editor = _lesson_editor(slug, path, lesson_fields(opened.text), opened.version, opened.text)
    return _show(_with_problems(editor, path, opened.text))


@bp.post("/<slug>/lessons/<name>")
@requires(Role.editor)
def save_lesson(slug: str, name: str) -> ResponseReturnValue:
    """The lesson form's buttons action=save and action=test (Preview posts to
    lesson_preview)."""
    path = _lesson_path(slug, name)
    svc = services()
    fields = _form_fields()
    text = lesson_text(read(path).text, fields)
    version = _text_field("version")
    action = request.form.get("action")
    if action == "save":
        try:
            outcome = _studio().save(path, text, version, _operator(), svc.clock())
        except StudioError as error:  # the folder cannot be written: say so, keep the text
            flash(f"Not saved: {error}", "error")
            editor = _lesson_editor(slug, path, fields, version, text)
            return _show(_with_problems(editor, path, text), 500)
        return _after_save(outcome, slug, path, fields, version, text)
    if action == "test":
        return _test_send(_lesson_editor(slug, path, fields, version, text), path, text)
    return _no_such_button()


def _after_save(
    outcome: Outcome, slug: str, path: Path, fields: LessonFields, version: str, text: str
) -> ResponseReturnValue:
    if isinstance(outcome, Saved):
        _record("save lesson", f"{slug}/{path.name}", outcome)
        flash(f"Saved {path.name}." + _committed(outcome), "ok")  # warnings: on the page
        return redirect(url_for(".lesson", slug=slug, name=path.stem.split("-", 1)[-1]))
    if isinstance(outcome, Refused):
        editor = _lesson_editor(slug, path, fields, version, text)
        editor = replace(editor, placed=tuple(place(outcome.problems, path, text)))
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        return _show(editor, 422)
    return _conflict(_lesson_editor(slug, path, fields, version, text), outcome, path, text)


def _conflict(editor: Editor, outcome: Conflict, path: Path, text: str) -> ResponseReturnValue:
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
    return _show(_with_problems(editor, path, text), 409)


def _test_send(editor: Editor, path: Path, text: str) -> ResponseReturnValue:
    svc = services()
    to = editor.to.strip()
    try:
        _count_test()
        sent = _studio().send_test(path, text, to, svc.transport, svc.clock())
    except (TooManyTests, SubscriptionError, SendError) as error:
        flash(f"The test was not sent: {error}", "error")
        return _show(
            _with_problems(editor, path, text), 429 if isinstance(error, TooManyTests) else 422
        )
    if isinstance(sent, Refused):
        flash("The test was not sent: the lesson has problems (below).", "error")
        return _show(replace(editor, placed=tuple(place(sent.problems, path, text))), 422)
    audit("send test", f"{editor.slug}/{path.name} to {sent.to}")
    db_session().commit()
    flash(
        f"Sent this lesson as it is in the form, marked [TEST], to {sent.to}. "
        "Its links lead to a test page, never to a reader.",
        "ok",
    )
    return _show(_with_problems(editor, path, text))


def _wants_json() -> bool:
    """admin.js asks for JSON as the author types; the Preview button of a page without
    JavaScript posts the same form and gets the page."""
    return request.accept_mimetypes.best == "application/json"


def _no_such_button() -> ResponseReturnValue:
    flash("Choose Save, Preview or Send me a test.", "error")
    return redirect(request.path)


def _preview_json(path: Path, text: str, preview: Preview | None = None) -> ResponseReturnValue:
    svc = services()
    found = preview or _studio().preview(path, text, svc.renderer, svc.clock())
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


@bp.post("/<slug>/lessons/<name>/preview")
@requires(Role.editor)
@unrecorded
def lesson_preview(slug: str, name: str) -> ResponseReturnValue:
    """The unsaved form rendered as the reader gets it: JSON for admin.js to show as it is
    typed, or the editor page for the Preview button (not in the audit log either way)."""
    path = _lesson_path(slug, name)
    fields = _form_fields()
    text = lesson_text(read(path).text, fields)
    if _wants_json():
        return _preview_json(path, text)
    editor = _lesson_editor(slug, path, fields, _text_field("version"), text)
    return _show(_with_problems(editor, path, text))


@bp.get("/<slug>/new")
def new_lesson(slug: str) -> ResponseReturnValue:
    """A new lesson at the end: it is made (and goes to readers) once it passes the check."""
    _folder(slug)
    taken = queries.lessons_delivered(db_session(), slug)
    fields = LessonFields("", "2 days", "", "")
    path = _studio().new_lesson_path(slug, "new lesson", taken)
    editor = _lesson_editor(slug, path, fields, "", lesson_text("", fields), kind="new")
    return _show(editor)


@bp.post("/<slug>/new")
@requires(Role.editor)
def add_lesson(slug: str) -> ResponseReturnValue:
    svc = services()
    studio = _studio()
    _folder(slug)
    taken = queries.lessons_delivered(db_session(), slug)
    fields = _form_fields()
    path = studio.new_lesson_path(slug, fields.subject or "new lesson", taken)
    text = lesson_text("", fields)
    action = request.form.get("action")
    if action == "save":
        try:
            outcome = studio.add_lesson(slug, fields, taken, _operator(), svc.clock())
        except StudioError as error:
            flash(f"Not added: {error}", "error")
            editor = _lesson_editor(slug, path, fields, "", text, kind="new")
            return _show(_with_problems(editor, path, text), 500)
        if isinstance(outcome, Saved) and outcome.path is not None:
            _record("add lesson", f"{slug}/{outcome.path.name}", outcome)
            flash(f"Added {outcome.path.name}." + _committed(outcome), "ok")
            return redirect(url_for(".lesson", slug=slug, name=outcome.path.stem.split("-", 1)[1]))
        problems = outcome.problems if isinstance(outcome, Refused) else []
        editor = _lesson_editor(slug, path, fields, "", text, kind="new")
        flash("Not added: fix the problems below.", "error")
        return _show(replace(editor, placed=tuple(place(problems, path, text))), 422)
    if action == "test":
        return _test_send(_lesson_editor(slug, path, fields, "", text, kind="new"), path, text)
    return _no_such_button()


@bp.post("/<slug>/new/preview")
@requires(Role.editor)
@unrecorded
def new_lesson_preview(slug: str) -> ResponseReturnValue:
    _folder(slug)
    fields = _form_fields()
    taken = queries.lessons_delivered(db_session(), slug)
    path = _studio().new_lesson_path(slug, fields.subject or "new lesson", taken)
    text = lesson_text("", fields)
    if _wants_json():
        return _preview_json(path, text)
    editor = _lesson_editor(slug, path, fields, "", text, kind="new")
    return _show(_with_problems(editor, path, text))


# -- history -----------------------------------------------------------------------------------


@bp.get("/<slug>/lessons/<name>/history")
def lesson_history(slug: str, name: str) -> ResponseReturnValue:
    path = _lesson_path(slug, name)
    return _history(
        slug,
        path,
        back=url_for(".lesson", slug=slug, name=name),
        restore=url_for(".lesson_restore", slug=slug, name=name),
        label=name,
    )


@bp.post("/<slug>/lessons/<name>/restore")
@requires(Role.editor)
def lesson_restore(slug: str, name: str) -> ResponseReturnValue:
    path = _lesson_path(slug, name)
    return _restore(path, url_for(".lesson_history", slug=slug, name=name))


@bp.get("/<slug>/<any(magnet, settings):part>/history")
def file_history(slug: str, part: str) -> ResponseReturnValue:
    path = _part_path(slug, part)
    return _history(
        slug,
        path,
        back=url_for(f".{part}", slug=slug),
        restore=url_for(".file_restore", slug=slug, part=part),
        label=path.name,
    )


@bp.post("/<slug>/<any(magnet, settings):part>/restore")
@requires(Role.editor)
def file_restore(slug: str, part: str) -> ResponseReturnValue:
    return _restore(_part_path(slug, part), url_for(".file_history", slug=slug, part=part))


def _part_path(slug: str, part: str) -> Path:
    if part == "settings":
        return _folder(slug) / "sequence.yaml"
    return _studio().magnet_path(slug) or abort(404)


def _history(slug: str, path: Path, back: str, restore: str, label: str) -> ResponseReturnValue:
    studio = _studio()
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
        outcome = _studio().restore(
            path, _text_field("commit"), _text_field("version"), _operator(), svc.clock()
        )
    except StudioError as error:
        flash(str(error), "error")
    else:
        commit = _text_field("commit")[:10]
        target = f"{path.parent.name}/{path.name}@{commit}"
        _flash_outcome(outcome, f"Restored the earlier version of {path.name}.", "restore", target)
    return redirect(back)


# -- the lead magnet ---------------------------------------------------------------------------


def _magnet_preview(slug: str, path: Path, text: str) -> Preview:
    """The magnet as WeasyPrint would typeset it (its HTML), and what the check says."""
    svc = services()
    checked = _studio().check(
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
    values = {key: _text_field(key) for key in MAGNET_KEYS}
    return with_front_matter(read(path).text, values, _text_field("body"))


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
        action=url_for(".save_magnet", slug=slug),
        preview_url=url_for(".magnet_preview", slug=slug),
        preview=preview,
        placed=tuple(place(preview.problems, path, text)),
        history_url=url_for(".file_history", slug=slug, part="magnet"),
    )


@bp.get("/<slug>/magnet")
def magnet(slug: str) -> ResponseReturnValue:
    """magnet.md: its cover (title, subtitle, credential, notice) and its Markdown body.
    The PDF itself is rebuilt at /magnet/build."""
    path = _studio().magnet_path(slug) or abort(404)
    opened = read(path)
    return _show(_magnet_editor(slug, path, opened.text, opened.version))


@bp.post("/<slug>/magnet")
@requires(Role.editor)
def save_magnet(slug: str) -> ResponseReturnValue:
    path = _studio().magnet_path(slug) or abort(404)
    text = _magnet_text(path)
    version = _text_field("version")
    if request.form.get("action") != "save":
        return _no_such_button()
    try:
        outcome = _studio().save(path, text, version, _operator(), services().clock())
    except StudioError as error:
        flash(f"Not saved: {error}", "error")
        return _show(_magnet_editor(slug, path, text, version), 500)
    if isinstance(outcome, Saved):
        _record("save lead magnet", f"{slug}/{path.name}", outcome)
        flash(f"Saved {path.name}." + _committed(outcome), "ok")
        return redirect(url_for(".magnet", slug=slug))
    if isinstance(outcome, Refused):
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        editor = _magnet_editor(slug, path, text, version)
        return _show(replace(editor, placed=tuple(place(outcome.problems, path, text))), 422)
    return _conflict(_magnet_editor(slug, path, text, version), outcome, path, text)


@bp.post("/<slug>/magnet/preview")
@requires(Role.editor)
@unrecorded
def magnet_preview(slug: str) -> ResponseReturnValue:
    path = _studio().magnet_path(slug) or abort(404)
    text = _magnet_text(path)
    if _wants_json():
        return _preview_json(path, text, _magnet_preview(slug, path, text))
    return _show(_magnet_editor(slug, path, text, _text_field("version")))


# -- the sequence's settings -------------------------------------------------------------------


def _settings_form() -> SequenceSettings:
    return SequenceSettings(
        title=_text_field("title"),
        promise=_text_field("promise"),
        sender=_text_field("sender"),
        timezone=_text_field("timezone"),
        window_start=_text_field("window_start"),
        window_end=_text_field("window_end"),
        window_days=tuple(d for d in DAY_NAMES if d in request.form.getlist("window_days")),
        consent=_text_field("consent"),
        magnet_title=_text_field("magnet_title"),
        magnet_attach=request.form.get("magnet_attach") == "yes",
    )


@bp.get("/<slug>/settings")
def settings(slug: str) -> ResponseReturnValue:
    """sequence.yaml's settings as a form (saved by save_settings)."""
    path = _folder(slug) / "sequence.yaml"
    opened = read(path)
    return _settings_page(slug, path, sequence_settings(opened.text), opened.version, [], None)


@bp.post("/<slug>/settings")
@requires(Role.editor)
def save_settings(slug: str) -> ResponseReturnValue:
    """Saved through the same checked, atomic save, keeping the author's comments and every
    key the form does not show."""
    path = _folder(slug) / "sequence.yaml"
    values, version = _settings_form(), _text_field("version")
    try:
        text = settings_text(read(path).text, values)
        outcome = _studio().save(path, text, version, _operator(), services().clock())
    except StudioError as error:
        flash(f"Not saved: {error}", "error")
        return _settings_page(slug, path, values, version, [], None, 422)
    if isinstance(outcome, Saved):
        _record("save settings", f"{slug}/sequence.yaml", outcome)
        flash("Saved the settings." + _committed(outcome), "ok")
        return redirect(url_for(".settings", slug=slug))
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
            has_magnet=_studio().magnet_path(slug) is not None,
        ),
        status,
    )
