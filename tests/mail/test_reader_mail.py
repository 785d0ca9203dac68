"""What a reader reads in the emails drip writes itself: the confirmation and the offer of the
next course in plain text (a link on its own line, never "the button", no line broken inside a
sentence), course titles quoted American style, and a welcome that says its PDF is attached."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drip.audience.subscriptions import Consent, subscribe
from drip.content.loader import load_sequences
from drip.core.clock import FrozenClock
from drip.mail.render import Reader
from drip.services import Services, build_services
from tests.conftest import make_settings
from tests.smtp import SmtpServer

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
AUTHOR = "Dr. Amara Okafor"
COURSES = load_sequences(SEQUENCES, author_name=AUTHOR).sequences
READER = Reader(email="amara@example.org", first_name="Amara", subscriber_id=7, enrollment_id=11)
LINK = re.compile(r"http://drip\.test/\S+")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("mail")
    settings = make_settings(
        folder, f"sqlite:///{folder / 'drip.sqlite3'}", sequences_dir=SEQUENCES
    )
    services = build_services(settings, FrozenClock(datetime(2026, 3, 16, 12, tzinfo=UTC)))
    yield services
    services.engine.dispose()


def shown(text: str) -> str:
    """The text part with each personal link as <link>: the links are signed per reader."""
    return LINK.sub("<link>", text)


def test_the_confirmations_text_part_reads_as_plain_text(svc: Services) -> None:
    _, _, text = svc.renderer.confirmation(COURSES["networking-tips"]).parts(READER, svc.links)
    assert shown(text) == (
        "Do contacts help in getting residency?\n\n"
        "Hi Amara,\n\n"
        "Someone, hopefully you, asked to receive “Do contacts help in getting residency?” "
        "at this address. Confirm with one click below, and the first email will follow "
        "right away.\n\n"
        "If it wasn't you, ignore this email: nothing more will be sent, and the request "
        "expires by itself.\n\n"
        "Yes, send it to me:\n<link>\n\n"
        "-- \n"
        "Dr. Amara Okafor\nAssistant Professor of Medicine practicing in US\n\n"
        "You are getting this email because you signed up for “Do contacts help in getting "
        "residency?”\n"
        "Unsubscribe: <link>\nEmail preferences: <link>\n1 Test Street, Springfield\n"
    )


def test_the_offers_text_part_reads_as_plain_text_with_titles_quoted(svc: Services) -> None:
    offer = svc.renderer.offer(COURSES["procrastination"], COURSES["usmle-insider-kit"])
    _, _, text = offer.parts(READER, svc.links)
    assert shown(text) == (
        "Get ready for the Match: 5 steps to stop procrastinating\n\n"
        "Hi Amara,\n\n"
        "You have finished “Get ready for the Match: 5 steps to stop procrastinating.” If you "
        "want to keep going, the next course is “USMLE insider kit: the study system of three "
        "IMGs who cracked the USMLE”: The four-step study system three IMGs used on every "
        "USMLE step, with a study schedule you can follow from today to exam day.\n\n"
        "One click below starts it, with no other form to fill in. If you'd rather not, do "
        "nothing: this is the only email about it.\n\n"
        "Yes, send me that course:\n<link>\n\n"
        "-- \n"
        "Dr. Amara Okafor\nAssistant Professor of Medicine practicing in US\n\n"
        "You are getting this email because you signed up for “Get ready for the Match: 5 "
        "steps to stop procrastinating.”\n"
        "Unsubscribe: <link>\nEmail preferences: <link>\n1 Test Street, Springfield\n"
    )


def test_a_title_ending_in_a_question_mark_keeps_only_its_own_mark_inside_the_quotes(
    svc: Services,
) -> None:
    offer = svc.renderer.offer(COURSES["networking-tips"], COURSES["procrastination"])
    _, html, text = offer.parts(READER, svc.links)
    assert "You have finished “Do contacts help in getting residency?” If you" in text
    assert "”." not in text and "”," not in text and "?." not in text
    assert "“Do contacts help in getting residency?”" in html


def test_a_welcome_that_carries_the_pdf_says_so_and_one_without_it_does_not(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sequences = tmp_path / "sequences"
    for slug in ("usmle-insider-kit", "interview-questions"):
        shutil.copytree(SEQUENCES / slug, sequences / slug)
    kit = sequences / "usmle-insider-kit" / "sequence.yaml"
    kit.write_text(kit.read_text().replace("attach: false", "attach: true"))
    svc = build_services(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=sequences),
        clock,
    )
    with svc.sessions() as session:
        for slug in ("usmle-insider-kit", "interview-questions"):
            subscribe(
                session,
                svc.content.library(),
                slug,
                f"{slug}@example.org",
                clock(),
                consent=Consent("test", "Yes."),
                confirmed=True,
            )
        session.commit()
    svc.dispatcher().run_pass(clock())
    svc.engine.dispose()

    (attached,) = smtp_server.to("usmle-insider-kit@example.org")
    (linked,) = smtp_server.to("interview-questions@example.org")
    assert len(list(attached.message.iter_attachments())) == 1
    assert list(linked.message.iter_attachments()) == []
    said = "The PDF is also attached to this email"
    assert said in attached.text() and said in attached.html()
    # right after the download button, which stays for a reader whose mail app hides PDFs
    paragraphs = [p.strip() for p in attached.text().replace("\r\n", "\n").split("\n\n")]
    button = next(i for i, p in enumerate(paragraphs) if "/magnet/" in p)
    assert paragraphs[button + 1].startswith(said)
    assert "attached" not in linked.text()


@pytest.mark.parametrize("slug", sorted(COURSES))
def test_the_last_lesson_links_the_authors_blog_or_leaves_the_sentence_out(
    tmp_path: Path, svc: Services, slug: str
) -> None:
    sequences = tmp_path / "sequences"
    shutil.copytree(SEQUENCES, sequences)
    site = sequences / "site.yaml"
    site.write_text(
        site.read_text().replace("  url:     #", '  url: "https://blog.example.org/imgs"  #')
    )
    with_blog = load_sequences(sequences, author_name=AUTHOR).sequences[slug]
    without = COURSES[slug]
    assert with_blog.author.url == "https://blog.example.org/imgs" and not without.author.url

    _, html, text = svc.renderer.lesson(with_blog, with_blog.lessons[-1]).parts(READER, svc.links)
    assert "on my blog (https://blog.example.org/imgs), where you found this course." in text
    assert '<a href="https://blog.example.org/imgs">my blog</a>' in html

    _, html, text = svc.renderer.lesson(without, without.lessons[-1]).parts(READER, svc.links)
    assert "blog" not in text.split("-- ")[0] and "my blog" not in html
    assert "## What to do next".removeprefix("## ").upper() in text  # the rest stays
