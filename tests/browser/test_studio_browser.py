"""The author's studio in Debian's Chromium: open a lesson, watch the preview follow the
typing, save (and see the file and `drip check` agree), be refused with the problem at its
line, meet a conflict, send a test. The courses are a copy in a git repository under
tmp_path, never the repository's own sequences/. Screenshots go to
artifacts/screenshots/admin/."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import expect

from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.ops.operators import create_operator
from drip.services import Services
from drip.store.models import Role
from tests.browser.test_admin_browser import log_in, sign_up
from tests.conftest import TESTS, LiveServer, screenshot, serving
from tests.smtp import SmtpServer
from tests.web.test_admin_access import OPERATOR, PASSWORD, add_operator

pytestmark = pytest.mark.browser


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """A copy of the tiny course in a git repository of its own."""
    repo = tmp_path / "courses"
    shutil.copytree(TESTS / "sequences" / "tiny", repo / "sequences" / "tiny")
    for args in (["init", "--quiet"], ["add", "."], ["commit", "--quiet", "-m", "Tiny"]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=Setup", "-c", "user.email=s@x.org", *args],
            check=True,
            capture_output=True,
        )
    return repo / "sequences"


@pytest.fixture
def server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[LiveServer]:
    with serving(
        tmp_path, sqlite_url, clock, smtp_url=smtp_server.url, sequences_dir=courses
    ) as live:
        add_operator(live.services)
        yield live


def add_role(svc: Services, email: str, role: Role) -> None:
    with svc.sessions() as session:
        create_operator(session, email, PASSWORD, svc.clock(), role)
        session.commit()


def log_in_as(page: Any, server: LiveServer, email: str) -> None:
    page.goto(f"{server.url}/admin/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".who")


def drip_check(tmp_path: Path, courses: Path) -> Any:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "check-data"),
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    return CliRunner().invoke(cli, ["check"], env=env, catch_exceptions=False)


def open_lesson(page: Any, server: LiveServer, name: str = "second") -> None:
    log_in(page, server)
    page.goto(f"{server.url}/admin/sequences/tiny/lessons/{name}")
    page.wait_for_selector("textarea#body")


def shot(page: Any, name: str) -> None:
    """A full-page screenshot with the preview frames painted: headless Chromium leaves a
    frame below the fold blank in a full-page shot, so the window is made as tall as the
    page for it."""
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": height})
    for frame in page.locator("iframe.email").all():
        frame.content_frame.locator("body").wait_for()
    screenshot(page, "admin", name)
    page.set_viewport_size(size)


def frame_text(page: Any, selector: str) -> str:
    frame = page.frame_locator(selector)
    return str(frame.locator("body").inner_text())


def test_an_edit_shows_in_the_preview_as_it_is_typed_and_a_save_writes_the_file(
    page: Any, server: LiveServer, courses: Path, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    open_lesson(page, server)
    assert "The second lesson, with bold words." in frame_text(page, "iframe.desktop")
    shot(page, "studio-lesson-1280")
    page.fill("#subject", "Lesson two: the plan")
    page.fill("#body", "The second lesson, **rewritten** for {{ first_name }}.\n")
    expect(page.locator("[data-preview-subject]")).to_have_text("Lesson two: the plan")
    expect(page.locator("iframe.phone")).to_have_attribute("srcdoc", re.compile("rewritten"))
    # a new srcdoc loads in the frame after the attribute changes: wait for that document
    page.frame_locator("iframe.phone").locator("body", has_text="rewritten").wait_for()
    assert "rewritten for Alex." in frame_text(page, "iframe.phone")
    page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    saved = page.text_content(".flash.ok")  # in words: no commit hash
    assert saved == "Saved 02-second.md. Its History keeps the earlier version."
    text = (courses / "tiny" / "02-second.md").read_text()
    assert 'subject: "Lesson two: the plan"' in text and "**rewritten**" in text
    assert page.input_value("#subject") == "Lesson two: the plan"
    result = drip_check(tmp_path, courses)
    assert result.exit_code == 0, result.output
    log = subprocess.run(
        ["git", "-C", str(courses), "log", "-1", "--format=%ae %s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert log.strip() == f"{OPERATOR} Edit tiny/02-second.md"
    page.set_viewport_size({"width": 375, "height": 800})
    shot(page, "studio-lesson-375")


def test_a_save_that_breaks_the_lesson_is_refused_with_the_problem_at_its_line(
    page: Any, server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    path = courses / "tiny" / "02-second.md"
    before = path.read_bytes()
    open_lesson(page, server)
    page.fill("#body", "Hello,\n\nThis is for {{ frist_name }}.\n")
    page.wait_for_selector("[data-problems=body] li")  # live, before any save
    assert "line 3" in page.text_content("[data-problems=body]")
    with page.expect_navigation():  # to the refusal's load: its line links need admin.js
        page.click("button[name=action][value=save]")
    assert "Not saved" in page.text_content(".flash.error")
    problem = page.text_content("[data-problems=body] li")
    assert "line 3: unknown variable 'frist_name'" in problem
    assert (
        page.input_value("#body").replace("\r\n", "\n")
        == "Hello,\n\nThis is for {{ frist_name }}.\n"
    )
    assert path.read_bytes() == before
    page.click("[data-problems=body] a[data-line='3']")
    selected = page.evaluate(
        "(() => { const t = document.querySelector('#body'); "
        "return t.value.slice(t.selectionStart, t.selectionEnd); })()"
    )
    assert selected == "This is for {{ frist_name }}."
    page.fill("#delay", "next tuesday")
    page.click("button[name=action][value=save]")
    page.wait_for_selector("[data-problems=delay] li")
    assert "bad delay 'next tuesday'" in page.text_content("[data-problems=delay]")
    assert path.read_bytes() == before
    shot(page, "studio-refused")


def test_a_save_over_a_file_changed_on_disk_is_refused_and_shows_both(
    page: Any, server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    path = courses / "tiny" / "02-second.md"
    open_lesson(page, server)
    theirs = path.read_text().replace("The second lesson", "Their second lesson")
    path.write_text(theirs)
    page.fill("#body", "My second lesson.\n")
    with page.expect_navigation():  # the diff's every line and the textarea, parsed
        page.click("button[name=action][value=save]")
    page.wait_for_selector("#conflict")
    assert path.read_text() == theirs
    diff = page.text_content("#conflict pre.diff")
    assert "-Their second lesson, with **bold** words." in diff
    assert "+My second lesson." in diff
    assert page.input_value("#body").strip() == "My second lesson."
    shot(page, "studio-conflict")
    page.click("button[name=action][value=save]")  # now knowingly over their version
    page.wait_for_selector(".flash.ok")
    assert "My second lesson." in path.read_text()


def test_send_me_a_test_delivers_the_form_as_it_is_with_links_to_the_test_page(
    page: Any, server: LiveServer, smtp_server: SmtpServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    path = courses / "tiny" / "03-third.md"
    before = path.read_bytes()
    open_lesson(page, server, "third")
    page.fill("#subject", "Lesson three, unsaved")
    page.fill("#to", "author@example.net")
    page.click("button[name=action][value=test]")
    page.wait_for_selector(".flash.ok")
    assert "to author@example.net" in page.text_content(".flash.ok")
    assert page.input_value("#subject") == "Lesson three, unsaved"  # the form is kept
    assert path.read_bytes() == before  # a test sends, it does not save
    [message] = smtp_server.messages
    assert message.subject == "[TEST] Lesson three, unsaved"
    assert message.recipients == ["author@example.net"]
    hrefs = re.findall(r'href="([^"]+)"', message.html())
    assert hrefs and all("/sample/test/" in h for h in hrefs if h.startswith(server.url)), hrefs
    assert not any("/unsubscribe/" in h or "/preferences/" in h for h in hrefs)
    page.goto(next(h for h in hrefs if "/sample/test/" in h))
    assert "This link is from a test send" in page.text_content("h1")


def test_the_sequence_page_moves_adds_and_removes_lessons(
    page: Any, server: LiveServer, smtp_server: SmtpServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server)
    page.goto(f"{server.url}/admin/sequences/tiny")
    with page.expect_navigation():  # the lessons' table below the flash, whole
        page.click("button[aria-label='Move third up']")
    page.wait_for_selector(".flash.ok")
    assert sorted(p.name for p in (courses / "tiny").glob("0*.md")) == [
        "01-welcome.md",
        "02-third.md",
        "03-second.md",
    ]
    keys = page.eval_on_selector_all(
        "table.lessons td.mono", "cells => cells.map(c => c.textContent)"
    )
    assert keys == ["welcome", "third", "second"]
    page.click("text=Add a lesson")
    page.fill("#subject", "Four: the interview day")
    page.fill("#delay", "1 week")
    page.fill("#body", "Sleep well the night before.\n")
    page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    assert (courses / "tiny" / "04-four-the-interview-day.md").is_file()
    page.goto(f"{server.url}/admin/sequences/tiny")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[aria-label='Remove second']")
    page.wait_for_selector(".flash.ok")
    assert not (courses / "tiny" / "03-second.md").exists()
    screenshot(page, "admin", "studio-sequence")
    page.fill("#confirm-to", "author@example.net")
    page.click("button[name=action][value=test]")
    page.wait_for_selector(".flash.ok")
    [message] = smtp_server.messages
    assert message.subject.startswith("[TEST] ") and "Tiny course" in message.subject


def test_a_lesson_history_shows_each_version_and_restores_one(
    page: Any, server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    path = courses / "tiny" / "02-second.md"
    original = path.read_text()
    open_lesson(page, server)
    page.fill("#body", "A second version.\n")
    page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    with page.expect_navigation():  # every version, not the first one parsed
        page.click("a.button:text-is('History')")
    page.wait_for_selector("section.version")
    assert page.locator("section.version").count() == 2
    assert "+A second version." in page.text_content("section.version >> nth=0")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():  # every version, not the first one parsed
        page.click("text=Restore this version")
    page.wait_for_selector(".flash.ok")
    assert path.read_text() == original
    assert page.locator("section.version").count() == 3
    screenshot(page, "admin", "studio-history")


@pytest.mark.slow
def test_the_settings_and_the_lead_magnet_save_through_the_same_check(
    page: Any, server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server)
    page.goto(f"{server.url}/admin/sequences/tiny/settings")
    page.fill("#title", "Tiny course, renamed")
    with page.expect_navigation():  # eval_on_selector does not wait for #timezone
        page.click("button:text('Save')")
    page.wait_for_selector(".flash.ok")
    assert 'title: "Tiny course, renamed"' in (courses / "tiny" / "sequence.yaml").read_text()
    assert page.eval_on_selector("#timezone", "e => e.tagName") == "SELECT"  # picked, not typed
    page.select_option("#timezone", "Europe/Paris")
    page.click("button:text('Save')")
    page.wait_for_selector(".flash.ok")
    assert re.search(r"timezone: \W?Europe/Paris", (courses / "tiny" / "sequence.yaml").read_text())
    page.fill("#window_start", "half past nine")
    page.click("button:text('Save')")
    page.wait_for_selector(".flash.error")
    said = page.text_content(".problems").strip()
    assert said.startswith("Send window: ") and "sequence.yaml" not in said  # the form's words
    page.goto(f"{server.url}/admin/sequences/tiny/magnet")
    page.fill("#subtitle", "For tests, revised")
    expect(page.locator("iframe.desktop")).to_have_attribute(
        "srcdoc", re.compile("For tests, revised")
    )
    page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    assert 'subtitle: "For tests, revised"' in (courses / "tiny" / "magnet.md").read_text()
    assert page.get_attribute("a:text('Rebuild the PDF')", "href") == (
        "/admin/sequences/tiny/magnet/build"
    )
    shot(page, "studio-magnet")


@pytest.mark.slow
def test_a_viewer_cannot_save_and_the_audit_log_says_who_changed_what(
    page: Any, server: LiveServer, courses: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    svc = server.services
    add_role(svc, "editor@example.org", Role.editor)
    add_role(svc, "viewer@example.org", Role.viewer)
    path = courses / "tiny" / "02-second.md"

    log_in_as(page, server, "editor@example.org")
    page.goto(f"{server.url}/admin/sequences/tiny/lessons/second")
    page.fill("#subject", "Lesson two, by the editor")
    page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    page.goto(f"{server.url}/admin/sequences/tiny")
    page.click("button[aria-label='Move third up']")
    page.wait_for_selector(".flash.ok")
    page.click(".who button:text('Log out')")

    log_in_as(page, server, "viewer@example.org")
    page.goto(f"{server.url}/admin/sequences/tiny/lessons/second")
    assert page.locator("button[name=action]").count() == 0
    assert "your role is viewer" in page.text_content(".edit-form")
    before = (courses / "tiny" / "03-second.md").read_bytes()
    with page.expect_navigation() as answer:  # the form posted anyway, by hand
        page.evaluate(
            """() => {
                const form = document.querySelector("form.edit-form");
                const action = document.createElement("input");
                action.name = "action";
                action.value = "save";
                form.appendChild(action);
                form.querySelector("#subject").value = "Lesson two, by the viewer";
                form.submit();
            }"""
        )
    assert answer.value.status == 403
    assert "needs the editor role" in page.text_content("main")
    assert (courses / "tiny" / "03-second.md").read_bytes() == before
    assert not path.exists()  # moved to 03- by the editor
    page.goto(f"{server.url}/admin/")
    page.click(".who button:text('Log out')")

    log_in(page, server)  # the owner
    page.goto(f"{server.url}/admin/audit")
    rows = page.locator("table.audit tbody tr").all_text_contents()
    edits = [" ".join(r.split()) for r in rows if "lesson" in r]
    assert any(
        "editor@example.org" in r and "move lesson" in r and "tiny/third" in r for r in edits
    )
    assert any(
        "editor@example.org" in r and "save lesson" in r and "02-second.md" in r for r in edits
    )
    assert not any("viewer@example.org" in r for r in edits)
    assert not any("preview" in r for r in rows)  # previews as the author typed: not changes
    assert '+ subject: "Lesson two, by the editor"' in page.text_content("table.audit")
    screenshot(page, "admin", "studio-audit")


def test_without_javascript_the_preview_button_renders_the_unsaved_form(
    browser: Any, server: LiveServer, courses: Path
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        path = courses / "tiny" / "02-second.md"
        before = path.read_bytes()
        open_lesson(page, server)
        page.fill("#subject", "Lesson two, previewed")
        page.fill("#body", "\nA body that starts with a blank line.\n")
        with page.expect_navigation():  # to the load: the srcdoc frames rendered
            page.click("button:text('Preview')")
        page.wait_for_selector("[data-preview-subject]:text('Lesson two, previewed')")
        assert "A body that starts with a blank line." in frame_text(page, "iframe.phone")
        assert page.input_value("#body").replace("\r\n", "\n").startswith("\nA body")
        assert path.read_bytes() == before
        page.click("button[name=action][value=save]")
        page.wait_for_selector(".flash.ok")
        assert "---\n\nA body that starts with a blank line.\n" in path.read_text()
    finally:
        context.close()


BROKEN = (
    "---\n"
    "subject: Day 2: the plan\n"  # a text editor's unquoted colon: the YAML does not read
    "delay: 3 days\n"
    'preheader: "What the inbox shows beside it"\n'
    "---\n"
    "The second lesson, with **bold** words.\n"
)


def test_a_lesson_with_broken_front_matter_opens_filled_in_and_saves_whole(
    page: Any, server: LiveServer, courses: Path, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    path = courses / "tiny" / "02-second.md"
    path.write_text(BROKEN)
    assert drip_check(tmp_path, courses).exit_code == 1
    open_lesson(page, server)
    assert page.text_content("h1") != "New lesson"
    assert page.input_value("#subject") == "Day 2: the plan"
    assert page.input_value("#delay") == "3 days"
    assert page.input_value("#preheader") == "What the inbox shows beside it"
    raw = page.locator("#raw-file")
    expect(raw).to_contain_text("subject: Day 2: the plan")
    bad = raw.locator("li.bad")
    expect(bad).to_have_count(1)
    expect(bad).to_contain_text("line 2: the subject has a colon")
    shot(page, "studio-broken-front-matter")
    page.fill("#subject", "Day 2: the whole plan")
    with page.expect_navigation():  # the whole page, before looking for what is gone
        page.click("button[name=action][value=save]")
    page.wait_for_selector(".flash.ok")
    assert page.locator("#raw-file").count() == 0
    text = path.read_text()
    assert text == (
        "---\n"
        'subject: "Day 2: the whole plan"\n'
        "delay: 3 days\n"
        'preheader: "What the inbox shows beside it"\n'
        "---\n"
        "The second lesson, with **bold** words.\n"
    )
    result = drip_check(tmp_path, courses)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_readers_of_a_vanished_course_and_a_missing_author_name_are_dashboard_problems(
    page: Any, server: LiveServer, courses: Path, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_up(server.services, "ada@example.org")
    (courses / "tiny").rename(tmp_path / "tiny-elsewhere")  # a wrong or emptied folder
    log_in(page, server)
    problems = page.locator("#course-problems")
    expect(problems).to_contain_text("1 reader is in the course “tiny”, which has no folder")
    expect(problems).to_contain_text(f"No sequences found in {courses}.")
    screenshot(page, "admin", "dashboard-course-problems")
    page.click("#course-problems a[href$='/admin/sequences']")
    expect(page.locator("#course-problems")).to_contain_text("1 reader is in the course “tiny”")
    assert "every sequence reads cleanly" not in page.text_content("main")
    unsigned = courses / "unsigned"
    shutil.copytree(tmp_path / "tiny-elsewhere", unsigned)
    settings = (unsigned / "sequence.yaml").read_text()
    (unsigned / "sequence.yaml").write_text(
        "\n".join(line for line in settings.splitlines() if not line.startswith("author:"))
    )
    page.goto(f"{server.url}/admin/")
    expect(problems).to_contain_text("The author's name is not set")
    assert "No sequences found" not in problems.text_content()
    page.click("#course-problems a:has-text('Site & author')")
    page.wait_for_url(re.compile(r"/admin/site$"))
