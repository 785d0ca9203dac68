"""Tools for content owners: drip preview, drip schedule, and the warnings of drip check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from drip.cli import cli
from tests.conftest import TESTS
from tests.smtp import SmtpServer

REPO = TESTS.parent


def drip_env(tmp_path: Path, sequences: Path = TESTS / "sequences") -> dict[str, str]:
    return {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SEQUENCES_DIR": str(sequences),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'drip.sqlite3'}",
    }


def drip(tmp_path: Path, *args: str, sequences: Path = TESTS / "sequences") -> Result:
    return CliRunner().invoke(
        cli, list(args), env=drip_env(tmp_path, sequences), catch_exceptions=False
    )


def test_preview_writes_each_lesson_as_the_reader_gets_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = drip(tmp_path, "preview", "tiny", "--out", str(out))

    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (out / "tiny").iterdir())
    assert written == [
        "01-welcome.html",
        "01-welcome.txt",
        "02-second.html",
        "02-second.txt",
        "03-third.html",
        "03-third.txt",
    ]
    html = (out / "tiny" / "01-welcome.html").read_text()
    text = (out / "tiny" / "01-welcome.txt").read_text()
    assert text.startswith("Subject: Welcome, Alex\n")
    assert "Hi Alex," in html and "Hi Alex," in text
    assert 'href="http://drip.test/sample/preview/magnet"' in html  # a link for nobody
    assert "DRIPV" not in html + text and "{{" not in html + text
    assert "<strong>bold</strong>" in (out / "tiny" / "02-second.html").read_text()


def test_a_preview_is_signed_for_nobody_and_its_links_say_it_is_a_preview(tmp_path: Path) -> None:
    result = drip(tmp_path, "preview", "tiny", "third")

    assert result.exit_code == 0, result.output
    html = (tmp_path / "data" / "previews" / "tiny" / "03-third.html").read_text()
    assert 'href="http://drip.test/sample/preview/unsubscribe"' in html
    assert "/unsubscribe/" not in html and "/preferences/" not in html


def test_a_preview_link_leads_to_a_page_that_says_so(app: Flask) -> None:
    page = app.test_client().get("/sample/preview/unsubscribe")
    assert page.status_code == 200
    assert "This link is from a preview" in page.text and "belongs to no reader" in page.text
    assert app.test_client().get("/sample/other/unsubscribe").status_code == 404


def test_check_fails_on_a_lead_magnet_that_cannot_be_typeset(tmp_path: Path) -> None:
    courses = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", courses)
    (courses / "tiny" / "magnet.md").write_text("---\ntitle: [unclosed\n---\nSome text.\n")

    result = drip(tmp_path, "check", sequences=courses)

    assert result.exit_code == 1
    assert f"{courses}/tiny/magnet.md:3: this is not valid YAML (expected ',' or ']'" in (
        result.output
    )


def test_preview_of_one_lesson_with_the_default_names(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = drip(tmp_path, "preview", "tiny", "welcome", "--out", str(out), "--name", "")

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "tiny").iterdir()) == ["01-welcome.html", "01-welcome.txt"]
    assert (out / "tiny" / "01-welcome.txt").read_text().startswith("Subject: Welcome, friend")
    assert "Hi there," in (out / "tiny" / "01-welcome.html").read_text()


def test_preview_names_the_lessons_when_one_is_unknown(tmp_path: Path) -> None:
    result = drip(tmp_path, "preview", "tiny", "fourth", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "no lesson 'fourth' in tiny (lessons: welcome, second, third)" in result.output


def test_schedule_prints_when_each_lesson_lands_across_a_clock_change(tmp_path: Path) -> None:
    # Friday 6 March 2026, 09:30 in New York; the clocks go forward on Sunday 8 March.
    result = drip(
        tmp_path,
        "schedule",
        "tiny",
        "--signup",
        "2026-03-06T14:30:00Z",
        "--timezone",
        "America/New_York",
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "tiny: reader in America/New_York, confirmed Fri 2026-03-06 09:30 EST",
        "day   0  Fri 2026-03-06 09:30 EST  01-welcome  "
        'Welcome, {{ first_name|default("friend") }}',
        "day   2  Sun 2026-03-08 09:30 EDT  02-second  Lesson two",
        "day   5  Wed 2026-03-11 09:30 EDT  03-third  Lesson three",
    ]


def test_schedule_moves_lessons_into_the_readers_morning(tmp_path: Path) -> None:
    # 18:30 in Kolkata: the welcome goes at once; two days later 18:30 is past the 09:00-11:00
    # window, so lesson two waits for the next morning, and lesson three follows it by 3 days.
    result = drip(
        tmp_path,
        "schedule",
        "tiny",
        "--signup",
        "2026-03-02T13:00:00Z",
        "--timezone",
        "Asia/Kolkata",
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("day   0  Mon 2026-03-02 18:30 IST  01-welcome")
    assert lines[2] == "day   3  Thu 2026-03-05 09:00 IST  02-second  Lesson two"
    assert lines[3] == "day   6  Sun 2026-03-08 09:00 IST  03-third  Lesson three"


def test_schedule_reads_a_signup_time_without_offset_in_the_readers_zone(tmp_path: Path) -> None:
    result = drip(
        tmp_path, "schedule", "tiny", "--signup", "2026-03-02T18:30", "--timezone", "Asia/Kolkata"
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "tiny: reader in Asia/Kolkata, confirmed Mon 2026-03-02 18:30 IST"
    )


def test_schedule_refuses_a_signup_time_that_is_not_a_time(tmp_path: Path) -> None:
    result = drip(tmp_path, "schedule", "tiny", "--signup", "next tuesday")
    assert result.exit_code == 2
    assert "'next tuesday' is not an ISO-8601 time" in result.output


def test_schedule_refuses_an_unknown_time_zone(tmp_path: Path) -> None:
    result = drip(
        tmp_path,
        "schedule",
        "tiny",
        "--signup",
        "2026-03-02T13:00:00Z",
        "--timezone",
        "Mars/Olympus",
    )
    assert result.exit_code == 2
    assert "'Mars/Olympus' is not an IANA time zone" in result.output


@pytest.fixture
def flawed(tmp_path: Path) -> Path:
    """A sequence whose lessons each have one thing drip check should warn about."""
    folder = tmp_path / "sequences" / "flawed"
    folder.mkdir(parents=True)
    (folder / "sequence.yaml").write_text(
        'title: "Flawed"\npromise: "Warnings."\nauthor: {name: "Ada Okafor"}\n'
    )
    (folder / "plan.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    lessons = {
        "01-clean.md": "Fine: ![A study plan](plan.png) and [https](https://example.org).\n",
        "02-huge.md": "".join(f"Paragraph {n} " + "word " * 200 + "\n\n" for n in range(110)),
        "03-no-alt.md": "Intro.\n\n![](plan.png)\n",
        "04-http.md": "Intro.\n\nSee [the site](http://example.org/page).\n",
        "05-missing.md": "Intro.\n\nOpen [the worksheet](worksheet.pdf).\n",
    }
    for name, body in lessons.items():
        (folder / name).write_text(f'---\nsubject: "{name}"\ndelay: 1d\n---\n{body}')
    return folder


def test_check_warns_about_size_alt_text_http_and_missing_files_without_failing(
    tmp_path: Path, flawed: Path
) -> None:
    result = drip(tmp_path, "check", sequences=flawed.parent)

    assert result.exit_code == 0, result.output
    warnings = sorted(line for line in result.output.splitlines() if ": warning: " in line)
    assert len(warnings) == 4, result.output
    huge, no_alt, http, missing = warnings
    assert huge.startswith(f"{flawed / '02-huge.md'}:1: warning: the lesson's HTML is ")
    assert "Gmail clips" in huge
    assert no_alt == (
        f"{flawed / '03-no-alt.md'}:7: warning: image plan.png has no alt text; "
        "write what it shows, e.g. ![Study plan](plan.png)"
    )
    assert http == (
        f"{flawed / '04-http.md'}:7: warning: plain http link "
        "http://example.org/page: use https:// if the site offers it"
    )
    assert missing == (
        f"{flawed / '05-missing.md'}:7: warning: href='worksheet.pdf' points at "
        "a file that does not exist"
    )
    assert "flawed: 5 lessons" in result.output


@pytest.mark.slow
def test_check_passes_on_the_four_courses_warning_only_that_the_author_has_no_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository leaves the name for the author to fill in: until then, one warning at
    site.yaml; with DRIP_AUTHOR_NAME (or the name in the file), none at all."""
    slugs = ("interview-questions", "networking-tips", "procrastination", "usmle-insider-kit")
    monkeypatch.chdir(REPO)  # as an author runs it: files named from the project
    unnamed = drip(tmp_path, "check", sequences=REPO / "sequences")
    env = {**drip_env(tmp_path, REPO / "sequences"), "DRIP_AUTHOR_NAME": "Dr. Amara Okafor"}
    named = CliRunner().invoke(cli, ["check"], env=env, catch_exceptions=False)

    assert unnamed.exit_code == 0, unnamed.output
    (warning,) = [line for line in unnamed.output.splitlines() if "warning" in line]
    assert warning == (
        "sequences/site.yaml:7: warning: no author name is set, so "
        f"{', '.join(slugs)} would go out signed without one: set author.name in site.yaml "
        "(every sequence inherits it) or DRIP_AUTHOR_NAME"
    )
    assert named.exit_code == 0, named.output
    assert "warning" not in named.output
    for slug in slugs:
        assert f"{slug}: " in unnamed.output and f"{slug}: " in named.output


def test_a_test_send_reaches_the_smtp_server_marked_test_with_links_for_nobody(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    env = {"DRIP_SMTP_URL": smtp_server.url}
    result = CliRunner().invoke(
        cli,
        ["test-send", "tiny", "third", "--to", "me@example.org"],
        env={**drip_env(tmp_path), **env},
        catch_exceptions=False,
    )
    confirm = CliRunner().invoke(
        cli,
        ["test-send", "tiny", "confirm", "--to", "me@example.org"],
        env={**drip_env(tmp_path), **env},
        catch_exceptions=False,
    )

    assert result.exit_code == 0 and confirm.exit_code == 0, result.output + confirm.output
    third, confirmation = smtp_server.to("me@example.org")
    assert third.subject == "[TEST] Lesson three"
    assert confirmation.subject == "[TEST] Please confirm: Tiny course"
    assert "http://drip.test/sample/test/unsubscribe" in third.text()
    assert "http://drip.test/sample/test/confirm" in confirmation.text()
    assert "/unsubscribe/" not in third.text() and "/confirm/" not in confirmation.text()


def test_a_test_send_of_an_unknown_lesson_names_the_lessons(tmp_path: Path) -> None:
    result = drip(tmp_path, "test-send", "tiny", "fourth", "--to", "me@example.org")
    assert result.exit_code == 1
    assert "no lesson 'fourth' in tiny (lessons: confirm, welcome, second, third)" in result.output
