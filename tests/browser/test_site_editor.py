"""The studio's "Site & author" page (/admin/site): sequences/site.yaml from the browser,
saved through the studio's checked atomic save. Everything runs on a copy in tmp_path (the
tiny course under the repository's own site.yaml, comments and empty name included) in a
git repository of its own; the repository's sequences/ are never touched."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import select

from drip.app import create_app
from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT
from drip.deliverability import guardrails
from drip.ops.operators import create_operator
from drip.services import Services
from drip.store.models import AuditEntry, Role
from drip.studio.photos import MAX_BYTES
from tests.browser.test_studio_browser import shot
from tests.conftest import (
    CHEAP_HASHER,
    TESTS,
    LiveServer,
    advance_through_due_times,
    enroll,
    make_settings,
    screenshot,
    serving,
)
from tests.smtp import SmtpServer
from tests.web.test_admin_access import PASSWORD, csrf_token, log_in

OWNER, EDITOR, VIEWER = "owner@example.org", "editor@example.org", "viewer@example.org"
NAME = "Dr. Maya Patel"
UNSET = "no author name is set"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Setup", "-c", "user.email=s@x.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """The tiny course without an author of its own, under a copy of the repository's
    site.yaml (whose name is empty), committed in a git repository."""
    repo = tmp_path / "courses"
    root = repo / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    yaml_file = root / "tiny" / "sequence.yaml"
    yaml_file.write_text(re.sub(r"(?m)^author:.*\n", "", yaml_file.read_text()))
    shutil.copy(PROJECT_ROOT / "sequences" / "site.yaml", root / "site.yaml")
    git(repo, "init", "--quiet")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "Courses")
    return root


@pytest.fixture
def app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[Flask]:
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=courses)
    application = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    application.config["TESTING"] = True
    svc: Services = application.extensions["drip"]
    with svc.sessions() as session:
        for email, role in ((OWNER, Role.owner), (EDITOR, Role.editor), (VIEWER, Role.viewer)):
            create_operator(session, email, PASSWORD, svc.clock(), role)
        session.commit()
    yield application
    svc.engine.dispose()


def client_for(app: Flask, email: str) -> FlaskClient:
    web = app.test_client()
    assert log_in(web, email=email, password=PASSWORD).status_code == 302
    return web


def form(web: FlaskClient, **changes: str) -> dict[str, object]:
    """The form as the page fills it from site.yaml, with `changes` typed in."""
    page = web.get("/admin/site")
    assert page.status_code == 200
    version = re.search(r'name="version" value="([^"]*)"', page.text)
    assert version
    values: dict[str, object] = {"csrf_token": csrf_token(page.text), "version": version[1]}
    for key in ("name", "credential", "photo", "url", "privacy_url", "after_confirm_url"):
        found = re.search(rf'id="{key}" name="{key}" value="([^"]*)"', page.text)
        assert found, key
        values[key] = found[1]
    return {**values, **changes}


def drip_check(tmp_path: Path, courses: Path) -> Result:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "check-data"),
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    return CliRunner().invoke(cli, ["check"], env=env, catch_exceptions=False)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (42, 111, 176)).save(out, "PNG")
    return out.getvalue()


def test_setting_the_name_writes_site_yaml_keeps_its_comments_and_signs_the_next_lesson(
    app: Flask,
    courses: Path,
    tmp_path: Path,
    smtp_server: SmtpServer,
    clock: FrozenClock,
) -> None:
    svc: Services = app.extensions["drip"]
    site = courses / "site.yaml"
    before = site.read_text()
    assert UNSET in drip_check(tmp_path, courses).output
    assert any(
        p.startswith("author name:")
        for p in guardrails.problems(svc.settings, svc.content.library())
    )
    web = client_for(app, EDITOR)
    dashboard = web.get("/admin/")
    assert 'href="/admin/site">Set the author' in dashboard.text  # the guardrail links here
    assert 'href="/admin/site"' in web.get("/admin/sequences").text

    answer = web.post("/admin/site", data=form(web, name=NAME, url="https://blog.example.org/"))
    assert answer.status_code == 302, answer.text
    text = site.read_text()
    assert f'  name: "{NAME}"' in text
    assert 'url: "https://blog.example.org/" # your blog: https://...' in text
    comments = [line.strip() for line in before.splitlines() if line.strip().startswith("#")]
    assert comments and all(comment in text for comment in comments)
    assert "photo:   # a picture in this folder" in text  # an empty field keeps its comment

    result = drip_check(tmp_path, courses)
    assert result.exit_code == 0, result.output
    assert UNSET not in result.output and "author.name" not in result.output
    problems = guardrails.problems(svc.settings, svc.content.library())
    assert not any(p.startswith("author name:") for p in problems), problems
    assert "Set the author" not in web.get("/admin/").text

    log = git(courses.parent, "log", "-1", "--format=%an|%s", "--name-only")
    assert log.startswith(f"{EDITOR}|Edit site.yaml: the author") and "sequences/site.yaml" in log
    with svc.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "save site")).one()
    assert entry.operator_email == EDITOR and entry.target == "site.yaml"

    enroll(svc, "reader@example.org")
    advance_through_due_times(svc, clock)
    first = smtp_server.to("reader@example.org")[0]
    assert first.message["From"].addresses[0].display_name == NAME
    signature = first.text().replace("\r\n", "\n").split("\n-- \n", 1)[1]
    assert signature.startswith(f"{NAME}\nAssistant Professor of Medicine"), signature
    assert NAME in first.html()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("privacy_url", "javascript:alert(1)", "Privacy policy address must be a web address"),
        ("privacy_url", "ftp://x", "Privacy policy address must be a web address"),
        ("after_confirm_url", "blog", "After-confirming address must be a web address"),
        ("url", "javascript:alert(1)", "Blog address must be a web address"),
        ("photo", "../../etc/passwd.png", "Photo &#39;../../etc/passwd.png&#39; is outside the"),
    ],
)
def test_a_bad_link_is_refused_at_its_field_and_the_file_is_unchanged(
    app: Flask, courses: Path, field: str, value: str, message: str
) -> None:
    site = courses / "site.yaml"
    before = site.read_bytes()
    commits = git(courses.parent, "rev-list", "--count", "HEAD")
    web = client_for(app, EDITOR)
    answer = web.post("/admin/site", data=form(web, name=NAME, **{field: value}))
    assert answer.status_code == 422
    assert "Not saved: fix the problems below (the file is unchanged)." in answer.text
    assert message in answer.text
    field_html = answer.text.split(f'id="{field}"', 1)[1].split('<div class="field">', 1)[0]
    assert message in field_html  # beside its field
    assert f'value="{NAME}"' in answer.text  # what was typed is still in the form
    assert site.read_bytes() == before
    assert git(courses.parent, "rev-list", "--count", "HEAD") == commits


def test_a_blog_address_typed_without_https_is_completed_and_problems_name_fields_in_words(
    app: Flask, courses: Path
) -> None:
    web = client_for(app, EDITOR)
    answer = web.post(
        "/admin/site", data=form(web, name=NAME, url="blog.example.org", privacy_url="x y")
    )
    assert answer.status_code == 422
    assert 'id="url" name="url" value="https://blog.example.org"' in answer.text
    assert "Privacy policy address must be a web address" in answer.text
    assert "author.url" not in answer.text and "privacy_url must" not in answer.text
    saved = web.post("/admin/site", data=form(web, name=NAME, url="blog.example.org/about"))
    assert saved.status_code == 302
    assert 'url: "https://blog.example.org/about"' in (courses / "site.yaml").read_text()
    assert "Commit" not in web.get("/admin/site").text  # no commit hash in the message


def test_a_save_over_a_site_yaml_changed_on_disk_is_a_conflict_showing_both(
    app: Flask, courses: Path
) -> None:
    site = courses / "site.yaml"
    web = client_for(app, EDITOR)
    opened = form(web, name=NAME)
    theirs = site.read_text().replace('name: ""', 'name: "Dr. Other Window"')
    site.write_text(theirs)
    answer = web.post("/admin/site", data=opened)
    assert answer.status_code == 409
    assert "these settings were changed since you opened this page" in answer.text
    assert '-  name: "Dr. Other Window"' in answer.text.replace("&#34;", '"')
    assert f'+  name: "{NAME}"' in answer.text.replace("&#34;", '"')
    assert f'value="{NAME}"' in answer.text
    assert site.read_text() == theirs
    again = re.search(r'name="version" value="([^"]*)"', answer.text)
    assert again
    saved = web.post("/admin/site", data={**opened, "version": again[1]})
    assert saved.status_code == 302
    assert f'name: "{NAME}"' in site.read_text()


def test_an_uploaded_photo_is_checked_by_its_content_and_saved_under_a_safe_name(
    app: Flask, courses: Path
) -> None:
    site = courses / "site.yaml"
    before = site.read_bytes()
    files_before = sorted(p.name for p in courses.iterdir())
    web = client_for(app, EDITOR)
    for data, message in (
        (b"<?php echo 'hi'; ?>", "the photo is not a picture"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "the photo is not a picture"),
        (png() + b"\x00" * MAX_BYTES, "at most 2 MB"),
    ):
        upload = (io.BytesIO(data), "../../evil.png")
        answer = web.post(
            "/admin/site",
            data={**form(web, name=NAME), "photo_file": upload},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 422, message
        assert message in answer.text
        assert site.read_bytes() == before
        assert sorted(p.name for p in courses.iterdir()) == files_before

    upload = (io.BytesIO(png()), "../../Me at the clinic.PNG")
    answer = web.post(
        "/admin/site",
        data={**form(web, name=NAME), "photo_file": upload},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302, answer.text
    (photo,) = courses.glob("author-*.png")
    assert re.fullmatch(r"author-[0-9a-f]{12}\.png", photo.name)
    assert photo.read_bytes() == png()
    assert f'photo: "{photo.name}"' in site.read_text()
    assert photo.name in git(courses.parent, "show", "--name-only", "HEAD")
    page = web.get("/admin/site")
    assert 'src="/subscribe/tiny/author-photo"' in page.text  # the preview shows it
    public = app.test_client().get("/subscribe/tiny")
    photo_url = re.search(r'class="author-photo"[^>]*src="([^"]+)"', public.text)
    assert photo_url, public.text
    served = app.test_client().get(photo_url[1])
    assert served.status_code == 200 and served.data == png()


def test_an_editor_may_save_and_a_viewer_sees_the_page_read_only_and_gets_403(
    app: Flask, courses: Path
) -> None:
    site = courses / "site.yaml"
    viewer = client_for(app, VIEWER)
    page = viewer.get("/admin/site")
    assert page.status_code == 200
    assert 'id="name" name="name" value="" readonly' in page.text
    assert '<button type="submit">Save</button>' not in page.text
    before = site.read_bytes()
    refused = viewer.post("/admin/site", data=form(viewer, name=NAME))
    assert refused.status_code == 403 and "needs the editor role" in refused.text
    assert site.read_bytes() == before
    editor = client_for(app, EDITOR)
    assert '<button type="submit">Save</button>' in editor.get("/admin/site").text
    assert editor.post("/admin/site", data=form(editor, name=NAME)).status_code == 302
    assert f'name: "{NAME}"' in site.read_text()


def test_the_page_previews_the_signature_and_the_sign_up_author_box(
    app: Flask, courses: Path
) -> None:
    site = courses / "site.yaml"
    site.write_text(site.read_text().replace('name: ""', f'name: "{NAME}"'))
    page = client_for(app, VIEWER).get("/admin/site")
    box = page.text.split("data-author-preview>", 1)[1].split("</div>", 1)[0]
    assert f'<strong class="author-name">{NAME}</strong>' in box
    assert "Assistant Professor of Medicine" in box
    text_part = page.text.split("data-preview-text>", 1)[1].split("</pre>", 1)[0]
    assert f"-- \n{NAME}\nAssistant Professor of Medicine" in text_part


def test_an_earlier_site_yaml_is_restored_from_its_history_as_a_new_commit(
    app: Flask, courses: Path
) -> None:
    site = courses / "site.yaml"
    original = site.read_text()
    first = git(courses.parent, "rev-parse", "HEAD").strip()
    web = client_for(app, EDITOR)
    assert web.post("/admin/site", data=form(web, name=NAME)).status_code == 302
    history = web.get("/admin/site/history")
    assert history.status_code == 200
    assert first[:10] in history.text and "Edit site.yaml: the author" in history.text
    version = re.search(r'name="version" value="([^"]*)"', history.text)
    assert version and 'action="/admin/site/restore"' in history.text
    answer = web.post(
        "/admin/site/restore",
        data={"csrf_token": csrf_token(history.text), "commit": first, "version": version[1]},
    )
    assert answer.status_code == 302
    assert site.read_text() == original
    assert git(courses.parent, "log", "-1", "--format=%an|%s").startswith(
        f"{EDITOR}|Restore site.yaml as of {first[:7]}"
    )
    assert "Restored the earlier version of the site" in web.get("/admin/site/history").text


# -- in the browser ----------------------------------------------------------------------------


@pytest.fixture
def live_server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[LiveServer]:
    """drip on loopback serving the copy (conftest's serves the repository's tests/sequences,
    which this page would write to)."""
    with serving(
        tmp_path, sqlite_url, clock, smtp_url=smtp_server.url, sequences_dir=courses
    ) as server:
        with server.services.sessions() as session:
            create_operator(session, EDITOR, PASSWORD, clock(), Role.editor)
            session.commit()
        yield server


@pytest.mark.browser
def test_the_author_fills_in_their_name_in_the_browser_and_the_sign_up_page_shows_it(
    page: Any, live_server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login")
    page.fill("#email", EDITOR)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".who")
    page.goto(f"{live_server.url}/admin/sequences")
    page.click("#site-link")
    expect(page.locator("h1")).to_have_text("Site & author")
    expect(page.locator("#name")).to_have_value("")
    screenshot(page, "admin", "site-author-empty-1280")
    page.fill("#name", NAME)
    page.fill("#privacy_url", "https://blog.example.org/privacy")
    page.click("#site-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("Saved: every sequence now inherits it.")
    expect(page.locator("#name")).to_have_value(NAME)
    expect(page.locator("[data-author-preview] .author-name")).to_have_text(NAME)
    assert f'name: "{NAME}"' in (courses / "site.yaml").read_text()
    shot(page, "site-author-1280")
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    shot(page, "site-author-375")

    page.goto(f"{live_server.url}/subscribe/tiny")
    expect(page.locator(".author .author-name")).to_have_text(NAME)
    expect(page.locator("a[href='https://blog.example.org/privacy']")).to_have_count(1)
    screenshot(page, "admin", "site-author-sign-up-375")


def test_the_site_page_shows_no_problem_of_a_file_the_author_did_not_open(
    app: Flask, courses: Path
) -> None:
    (courses / "tiny" / "02-second.md").write_text("---\nsubject: Two: broken\ndelay: 2d\n---\nB\n")
    web = client_for(app, EDITOR)
    page = web.get("/admin/site").text
    assert "02-second.md" not in page
    assert "02-second.md" in web.get("/admin/sequences").text  # where it is fixed
