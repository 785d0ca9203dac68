"""The admin's lead-magnet rebuild: a button queues a build (two clicks make one), the
worker runs it, its page shows the steps and then each PDF's first page; a broken
magnet.md fails the build at its line, as `drip check` says it, and readers keep the PDF
they had."""
# ruff: noqa: F811  (fixtures imported from test_admin_access are parameters here)

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pypdf import PdfReader

from drip.content import magnets
from drip.content.pdf_preview import PREVIEW_WIDTH
from drip.content.sequences import Sequence
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.jobs.magnet_builds import queue_build, run_build
from drip.jobs.worker import magnet_job
from drip.services import Services
from drip.store.models import MagnetBuild
from tests.cli.test_content_tools import drip
from tests.conftest import TESTS, count, make_settings
from tests.web.test_admin_access import (  # noqa: F401  (fixtures)
    add_operator,
    admin,
    csrf_token,
    log_in,
    logged_in,
)

BUILD = "/admin/sequences/tiny/magnet/build"
POINTS = {"A4": (595.28, 841.89), "Letter": (612.0, 792.0)}  # width, height


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """The test courses in a folder of their own, so a test can break the tiny magnet.md."""
    courses = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", courses)
    return make_settings(tmp_path, sqlite_url, sequences_dir=courses)


def svc_of(app: Flask) -> Services:
    svc: Services = app.extensions["drip"]
    return svc


def tiny(svc: Services) -> Sequence:
    sequence = svc.content.library().get("tiny")
    assert sequence is not None and sequence.lead_magnet is not None
    return sequence


def ask_for_build(web: FlaskClient) -> str:
    """Press the page's button, as the browser would; returns where it leads."""
    answer = web.post(BUILD, data={"csrf_token": csrf_token(web.get(BUILD).text)})
    assert answer.status_code == 302
    return answer.headers["Location"]


def progress_of(web: FlaskClient) -> dict[str, Any]:
    answer = web.get(f"{BUILD}.json")
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json or {}
    return data


def test_a_build_run_by_the_worker_makes_each_pdf_and_a_first_page_in_its_proportions(
    logged_in: FlaskClient, app: Flask
) -> None:
    svc = svc_of(app)
    assert ask_for_build(logged_in) == BUILD
    assert "Waiting for the worker to start it" in logged_in.get(BUILD).text

    magnet_job(svc)  # what the scheduler's job does every two seconds

    page = logged_in.get(BUILD).text
    assert "Rebuilt 2026-03-02 13:00 UTC, asked for by ops@example.org." in page
    for size, (width, height) in POINTS.items():
        assert f'src="{BUILD}/{size}.png"' in page and f'href="{BUILD}/{size}.pdf"' in page
        pdf = logged_in.get(f"{BUILD}/{size}.pdf")
        assert pdf.mimetype == "application/pdf"
        box = PdfReader(io.BytesIO(pdf.data)).pages[0].mediabox
        assert (float(box.width), float(box.height)) == pytest.approx((width, height), abs=0.5)
        image = logged_in.get(f"{BUILD}/{size}.png")
        assert image.mimetype == "image/png"
        png = Image.open(io.BytesIO(image.data))
        assert png.format == "PNG" and png.width == PREVIEW_WIDTH
        assert png.height / png.width == pytest.approx(height / width, abs=0.005)
        # the image lies beside the PDF, named for the PDF's stamp
        stamp = magnets.source_stamp(tiny(svc), size)
        common = magnets.common_path(svc.settings, tiny(svc), size)
        assert (common.parent / f"{common.stem}.{stamp[:16]}.png").read_bytes() == image.data
    assert "Letter" in page and "out of date" not in page


def test_the_progress_goes_from_queued_through_each_step_to_done(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    ask_for_build(logged_in)
    queued = progress_of(logged_in)
    assert (queued["status"], queued["steps_done"], queued["percent"]) == ("queued", 0, 0)
    seen: list[tuple[str, int, int, str]] = []
    pages: list[str] = []

    def look(_done: int) -> None:  # after each step commits, as the page's reload would
        data = progress_of(logged_in)
        seen.append((data["status"], data["steps_done"], data["percent"], data["step"]))
        pages.append(logged_in.get(BUILD).text)

    finished = run_build(
        svc.sessions, svc.content.library(), svc.settings, queued["id"], clock(), progress=look
    )

    assert finished is not None and finished.status == "done"
    assert seen == [
        ("running", 0, 0, "typesetting the A4 PDF"),
        ("running", 1, 33, "typesetting the Letter PDF"),
        ("running", 2, 66, "saving the PDFs and their first pages"),
        ("running", 3, 100, ""),
    ]
    assert "Step 2 of 3 (33% done): typesetting the Letter PDF." in pages[1]
    assert '<progress id="magnet-bar" value="1" max="3">' in pages[1]
    assert 'http-equiv="refresh"' in pages[1] and "Rebuild the PDF</button>" not in pages[1]
    done = progress_of(logged_in)
    assert (done["status"], done["steps_done"], done["percent"], done["error"]) == (
        "done",
        3,
        100,
        None,
    )
    assert [(p["page_size"], p["current"]) for p in done["pdfs"]] == [
        ("A4", True),
        ("Letter", True),
    ]
    assert 'http-equiv="refresh"' not in logged_in.get(BUILD).text  # nothing left to wait for


def test_a_broken_magnet_md_fails_at_its_line_and_readers_keep_the_pdf_they_had(
    logged_in: FlaskClient, app: Flask, tmp_path: Path
) -> None:
    svc = svc_of(app)
    ask_for_build(logged_in)
    magnet_job(svc)
    sequence = tiny(svc)
    common = magnets.common_path(svc.settings, sequence)
    before = common.read_bytes()
    image_before = logged_in.get(f"{BUILD}/A4.png").data
    source = sequence.lead_magnet.source if sequence.lead_magnet else Path()
    source.write_text("---\ntitle: Tiny guide\nsubtitle: For tests: a guide\n---\n## One\n")

    ask_for_build(logged_in)
    magnet_job(svc)

    failed = progress_of(logged_in)
    problem = (
        f"{source}:3: the subtitle has a colon (:) in it: put the subtitle in quotes, "
        'e.g. subtitle: "Step 2: small talk"'
    )
    assert (failed["status"], failed["error"]) == ("failed", problem)
    checked = drip(tmp_path / "check", "check", sequences=svc.settings.sequences_dir)
    assert checked.exit_code == 1 and problem in checked.output  # the same words, same line
    page = logged_in.get(BUILD).text
    assert "failed; readers still get the PDF built before" in page
    assert "out of date" in page  # the PDF shown is the old one, and says so
    assert common.read_bytes() == before
    assert logged_in.get(f"{BUILD}/A4.png").data == image_before
    assert magnets.magnet_pdf(svc.settings, tiny(svc), {}) == before  # a reader's download


def test_two_clicks_make_one_build_and_a_click_after_it_ends_makes_another(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    ask_for_build(logged_in)
    ask_for_build(logged_in)
    with svc.sessions() as session:
        joined = queue_build(session, svc.content.library(), "tiny", who="b@x.org", now=clock())
        session.commit()
        assert joined.requested_by == "ops@example.org"
    assert count(svc, MagnetBuild) == 1
    page = logged_in.get(BUILD).text
    assert "Waiting for the worker" in page and "Rebuild the PDF</button>" not in page

    magnet_job(svc)
    ask_for_build(logged_in)

    assert count(svc, MagnetBuild) == 2
    assert progress_of(logged_in)["status"] == "queued"


def test_the_build_page_and_its_button_need_a_logged_in_operator(
    admin: FlaskClient, app: Flask
) -> None:
    token = csrf_token(admin.get("/admin/login").text)
    for method, url in [
        ("GET", BUILD),
        ("GET", f"{BUILD}.json"),
        ("GET", f"{BUILD}/A4.png"),
        ("GET", f"{BUILD}/A4.pdf"),
        ("POST", BUILD),
    ]:
        answer = admin.open(url, method=method, data={"csrf_token": token})
        assert answer.status_code == 302 and answer.location.startswith("/admin/login"), url
    log_in(admin)
    assert admin.post(BUILD).status_code == 400  # logged in, but without the form's token
    assert count(svc_of(app), MagnetBuild) == 0


def test_a_sequence_without_a_lead_magnet_or_an_unknown_size_is_not_found(
    logged_in: FlaskClient,
) -> None:
    assert logged_in.get("/admin/sequences/nothing-here/magnet/build").status_code == 404
    assert logged_in.get(f"{BUILD}/A5.png").status_code == 404
    assert logged_in.get(f"{BUILD}/A4.pdf").status_code == 404  # none built yet
