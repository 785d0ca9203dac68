"""Link tracking, off by default: a tracked link records one click and redirects to the
original with the UTM parameters; a scanner's fetch is kept apart; a forged token
redirects nowhere; a broadcast to a tracked course counts its own clicks."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from drip.app import create_app
from drip.audience.clicks import clicks_by_link
from drip.audience.segments import members, parse
from drip.core.clock import FrozenClock
from drip.dispatch.broadcast_report import report
from drip.dispatch.broadcasts import parse_broadcast, schedule
from drip.services import Services
from drip.store.models import Event, LinkClick
from tests.conftest import TESTS, enroll, make_settings
from tests.smtp import SmtpServer

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1", "Accept": "text/html,*/*"}
ARTICLE = "https://blog.example.org/match-tips?ref=mail"


def courses(tmp_path: Path, flags: str) -> Path:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    settings = folder / "tiny" / "sequence.yaml"
    settings.write_text(settings.read_text() + flags)
    lesson = folder / "tiny" / "02-second.md"
    lesson.write_text(lesson.read_text() + f"\nRead [the article]({ARTICLE}) today.\n")
    return folder


@pytest.fixture
def tracked(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    app = create_app(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses(tmp_path, "track_links: true\nutm: true\n"),
        ),
        clock=clock,
    )
    yield app
    app.extensions["drip"].engine.dispose()


def second_lesson(svc: Services, clock: FrozenClock, smtp_server: SmtpServer) -> str:
    enroll(svc)
    for _ in range(12):
        svc.dispatcher().run_pass(clock())
        if len(smtp_server.to("ada@example.org")) == 2:
            break
        clock.advance(hours=12)
    return smtp_server.to("ada@example.org")[1].text()


def test_a_tracked_link_counts_one_click_and_redirects_with_utm_parameters(
    tracked: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = tracked.extensions["drip"]
    text = second_lesson(svc, clock, smtp_server)
    link = re.search(r"http://drip\.test(/l/\S+?)\)", text)
    assert link and ARTICLE not in text

    clock.advance(minutes=3)
    answer = tracked.test_client().get(link[1], headers=BROWSER)

    assert answer.status_code == 302
    assert answer.headers["Location"] == (
        "https://blog.example.org/match-tips?ref=mail&utm_source=drip&utm_medium=email"
        "&utm_campaign=tiny&utm_content=second"
    )
    with svc.sessions() as session:
        assert clicks_by_link(session, "tiny") == {("second", 0, ARTICLE): (1, 0)}
        assert session.scalars(select(Event.kind).where(Event.kind == "clicked")).all() == [
            "clicked"
        ]


def test_a_scanner_fetching_the_link_at_once_is_kept_apart_from_readers(
    tracked: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = tracked.extensions["drip"]
    link = re.search(r"http://drip\.test(/l/\S+?)\)", second_lesson(svc, clock, smtp_server))
    assert link

    scanner = tracked.test_client().get(link[1], headers={"User-Agent": "Barracuda"})
    hurried = tracked.test_client().get(link[1], headers=BROWSER)  # the same second as sent

    assert scanner.status_code == hurried.status_code == 302
    with svc.sessions() as session:
        assert clicks_by_link(session, "tiny") == {("second", 0, ARTICLE): (0, 2)}


def test_a_forged_tracking_token_redirects_nowhere_and_records_nothing(tracked: Flask) -> None:
    svc: Services = tracked.extensions["drip"]
    forged = svc.links.track_url(1, "second", 0, "https://evil.example/")
    token = forged.rsplit("/", 1)[1]
    for path in (f"/l/{token[:-2]}xx", "/l/garbage", f"/l/{token}x"):
        answer = tracked.test_client().get(path, headers=BROWSER)
        assert answer.status_code == 400 and "Location" not in answer.headers
        assert "This link is broken" in answer.text
    with svc.sessions() as session:
        assert session.scalars(select(LinkClick)).all() == []


def test_links_are_left_alone_and_there_is_no_open_pixel_by_default(
    services: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    library = services.content.library()
    second = library.sequences["tiny"].lesson("second")
    assert second is not None
    template = services.renderer.lesson(library.sequences["tiny"], second)
    assert template.tracked == () and "/o/" not in template.html


def test_track_opens_adds_a_pixel_that_records_an_open(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    app = create_app(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses(tmp_path, "track_opens: true\n"),
        ),
        clock=clock,
    )
    svc: Services = app.extensions["drip"]
    html = second_lesson(svc, clock, smtp_server)
    message = smtp_server.to("ada@example.org")[1]
    pixel = re.search(r'src="http://drip\.test(/o/[^"]+\.gif)"', message.html())
    assert pixel, html
    answer = app.test_client().get(pixel[1], headers=BROWSER)
    assert answer.status_code == 200 and answer.mimetype == "image/gif"
    with svc.sessions() as session:
        assert [c.link_index for c in session.scalars(select(LinkClick))] == [-1]
    app.extensions["drip"].engine.dispose()


def test_a_broadcast_to_a_tracked_course_counts_its_readers_clicks_apart_from_scanners(
    tracked: Flask, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    svc: Services = tracked.extensions["drip"]
    enroll(svc, "ada@example.org")
    enroll(svc, "bo@example.org")
    library = svc.content.library()
    spec = parse_broadcast(
        f'---\nsubject: "News"\nto: tiny\n---\nRead [the article]({ARTICLE}).\n',
        tmp_path / "news.md",
        library,
    )
    with svc.sessions() as session:
        broadcast = schedule(session, library, spec, clock(), clock())
    clock.advance(hours=1)  # the window opens
    svc.dispatcher().run_pass(clock())
    texts = {r: m.text() for m in smtp_server.messages if m.subject == "News" for r in m.recipients}
    links = {r: re.findall(r"http://drip\.test(/l/\S+?)\)", text)[0] for r, text in texts.items()}
    web = tracked.test_client()
    scanned = web.get(links["bo@example.org"], headers=BROWSER)  # as it arrives
    clock.advance(minutes=3)
    clicked = web.get(links["ada@example.org"], headers=BROWSER)
    web.get(links["ada@example.org"], headers=BROWSER)  # the same reader again

    assert scanned.status_code == clicked.status_code == 302
    assert clicked.headers["Location"].startswith(ARTICLE)
    with svc.sessions() as session:
        progress = report(session, broadcast, library)
        assert (progress["sent"], progress["clicked"], progress["tracked"]) == (2, 1, True)
        clickers = members(session, parse({"clicked_within_days": 1}), clock())
    assert clickers.first == ["ada@example.org"]
