"""The studio's "Site & author" page at /admin/site: sequences/site.yaml as a form (the
author's name, credential, photo and blog, the privacy and after-confirm links), with how
readers will see the author beside it. Nested in the admin blueprint, so its login check
applies.

Handlers only: drip.studio.editing checks (every sequence inherits the file), writes and commits;
drip.studio.photos checks an uploaded photo. A refused save or a conflict answers with the form as
it was posted.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from drip.content.authors import AUTHOR_KEYS, SITE_URL_KEYS, completed_url
from drip.content.sequences import Problem
from drip.mail.render import SAMPLE_READER
from drip.store.models import Role
from drip.studio.editing import Studio
from drip.studio.lesson_format import diff
from drip.studio.outcomes import Conflict, Refused, Saved, StudioError
from drip.studio.photos import MAX_BYTES, Photo, PhotoError, checked_photo
from drip.studio.yaml_forms import SiteSettings, site_settings, site_text
from drip.web.admin.access import audit, may, requires
from drip.web.context import db_session, services

bp = Blueprint("site", __name__, url_prefix="/site")

FIELDS = (*AUTHOR_KEYS, *SITE_URL_KEYS)
LINKS = ("url", *SITE_URL_KEYS)  # web addresses: `blog.example.org` is completed to https://
LABELS = {  # each field as the form names it, for its problems
    "name": "Name",
    "credential": "Credential",
    "photo": "Photo",
    "url": "Blog address",
    "privacy_url": "Privacy policy address",
    "after_confirm_url": "After-confirming address",
}


def _studio() -> Studio:
    svc = services()
    return Studio(svc.settings, svc.links)


def _form() -> SiteSettings:
    values = {key: request.form.get(key, "") for key in FIELDS}
    return SiteSettings(
        **{key: completed_url(value) if key in LINKS else value for key, value in values.items()}
    )


def _in_words(problem: Problem, key: str) -> Problem:
    """A problem shown at its field, naming the field as the form does ("Blog address"),
    not the key in the file (`author.url`)."""
    message = problem.message
    if key == "name" and "signed without one" in message:
        message = "No name is set: readers would get lessons signed by nobody. Type your name."
    for name in (f"author.{key}", key):
        if message.startswith(name):
            message = LABELS[key] + message[len(name) :]
            break
    return replace(problem, message=message)


def _field_of(problem: Problem) -> str:
    """The form field a problem of site.yaml is about ("" for the list under the form)."""
    words = problem.message
    found = next((key for key in FIELDS if words.startswith((f"author.{key}", key))), "")
    if not found and ("author name" in words or "author.name" in words):
        return "name"  # unset, a placeholder, or differing from DRIP_AUTHOR_NAME
    return found


@bp.get("")
def page() -> ResponseReturnValue:
    """The form, filled from site.yaml as it is, and the preview; viewers see it read-only."""
    opened = _studio().site_document()
    return _page(site_settings(opened.text), opened.version, opened.text)


@bp.post("")
@requires(Role.editor)
def save() -> ResponseReturnValue:
    """Saved through the studio's checked, atomic save, keeping the author's comments; an
    uploaded photo is saved beside site.yaml and named in it."""
    studio = _studio()
    values, version = _form(), request.form.get("version", "")
    photo: Photo | None = None
    upload = request.files.get("photo_file")
    if upload is not None and upload.filename:
        try:
            photo = checked_photo(upload.stream.read(MAX_BYTES + 1))
        except PhotoError as error:
            flash(f"Not saved: {error} (the file is unchanged).", "error")
            return _page(values, version, "", status=422, photo_problem=str(error))
        values = replace(values, photo=photo.name)
    try:
        text = site_text(studio.site_document().text, values)
        outcome = studio.save_site(text, version, g.operator.email, services().clock(), photo)
    except StudioError as error:
        flash(f"Not saved: {error}", "error")
        return _page(values, version, "", status=422)
    if isinstance(outcome, Saved):
        audit("save site", studio.site_path.name, before=outcome.before, after=outcome.after)
        db_session().commit()
        flash("Saved: every sequence now inherits it." + _committed(outcome), "ok")
        return redirect(url_for(".page"))
    if isinstance(outcome, Refused):
        flash("Not saved: fix the problems below (the file is unchanged).", "error")
        return _page(values, version, text, outcome.problems, status=422)
    assert isinstance(outcome, Conflict)
    flash(
        "Not saved: these settings were changed since you opened this page (in another "
        "window, or by someone else). Compare below; Save again to replace them with yours.",
        "error",
    )
    disk = outcome.disk.text if outcome.disk else ""
    now_version = studio.site_document().version
    return _page(values, now_version, text, [], diff(disk, text), disk, status=409)


@bp.get("/history")
def history() -> ResponseReturnValue:
    """site.yaml's commits, each restorable (site_restore)."""
    studio = _studio()
    return render_template(
        "admin/history.html",
        slug="",
        label="site.yaml",
        path=studio.site_path,
        versions=studio.history(studio.site_path),
        git=studio.git,
        version=studio.site_document().version,
        back=url_for(".page"),
        restore=url_for(".restore"),
        restore_endpoint="admin.site.restore",
    )


@bp.post("/restore")
@requires(Role.editor)
def restore() -> ResponseReturnValue:
    commit = request.form.get("commit", "")
    try:
        outcome = _studio().restore_site(
            commit, request.form.get("version", ""), g.operator.email, services().clock()
        )
    except StudioError as error:
        flash(str(error), "error")
        return redirect(url_for(".history"))
    if isinstance(outcome, Saved):
        target = f"site.yaml@{commit[:10]}"
        audit("restore", target, before=outcome.before, after=outcome.after)
        db_session().commit()
        flash(
            "Restored the earlier version of the site & author settings." + _committed(outcome),
            "ok",
        )
    elif isinstance(outcome, Refused):
        flash(
            "Not restored, nothing changed: "
            + "; ".join(f"{p.path.name}, line {p.line}: {p.message}" for p in outcome.errors),
            "error",
        )
    else:
        flash("Not restored, nothing changed: the settings were changed meanwhile.", "error")
    return redirect(url_for(".history"))


def _committed(saved: Saved) -> str:
    if saved.git_error:
        return f" (saved, but its history could not be kept: {saved.git_error})"
    return " Its History keeps the earlier version." if saved.commit else ""


def _page(
    values: SiteSettings,
    version: str,
    text: str,
    problems: list[Problem] | None = None,
    conflict: str | None = None,
    disk_text: str | None = None,
    *,
    status: int = 200,
    photo_problem: str = "",
) -> ResponseReturnValue:
    """The form with `values`; the preview is of `text` (the unsaved file), or of the file
    on disk when the form's values could not make one."""
    svc, studio = services(), _studio()
    if not text:
        try:
            text = site_text(studio.site_document().text, values)
        except StudioError:
            text = studio.site_document().text
    if problems is None:  # the file as it is: what `drip check` said of it (only of it: a
        # lesson's mistake is fixed on its own page, not on this one)
        problems = [p for p in svc.content.library().problems if p.path == studio.site_path]
    shown = [p for p in problems if p.path == studio.site_path or p.severity == "error"]
    by_field: dict[str, list[Problem]] = {key: [] for key in FIELDS}
    elsewhere: list[Problem] = []
    for problem in shown:
        key = _field_of(problem) if problem.path == studio.site_path else ""
        if key:
            by_field[key].append(_in_words(problem, key))
        else:
            elsewhere.append(problem)
    if photo_problem:
        by_field["photo"].append(Problem(studio.site_path, 1, photo_problem))
    return (
        render_template(
            "admin/site.html",
            values=values,
            version=version,
            by_field=by_field,
            elsewhere=elsewhere,
            conflict=conflict,
            disk_text=disk_text,
            preview=studio.site_preview(text, svc.renderer),
            sample=SAMPLE_READER,
            can_edit=may("admin.site.save"),
            max_mb=MAX_BYTES // 1024 // 1024,
            git=studio.git,
        ),
        status,
    )
