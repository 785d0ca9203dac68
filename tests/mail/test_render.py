"""Rendering: the costly work once per lesson version, cheap and safe personalisation."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import pytest

from drip.content.sequences import Sequence
from drip.mail.render import Reader
from drip.services import Services

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def tiny(services: Services) -> Sequence:
    sequence = services.content.library().get("tiny")
    assert sequence is not None
    return sequence


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_a_lesson_is_rendered_once_per_version(services: Services, tiny: Sequence) -> None:
    first = services.renderer.lesson(tiny, tiny.lessons[1])
    again = services.renderer.lesson(tiny, tiny.lessons[1])
    assert first is again
    for n in range(3):
        reader = Reader(f"r{n}@example.org", f"R{n}", n + 1, n + 1)
        raw = first.build(reader, services.links, f"<m{n}@drip.test>", NOW)
        assert parse(raw)["To"] == f"R{n} <r{n}@example.org>"


def test_names_are_escaped_in_html_and_kept_in_text(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    reader = Reader("ada@example.org", "<b>Ada</b> & co", 1, 1)
    message = parse(template.build(reader, services.links, "<m@drip.test>", NOW))
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi &lt;b&gt;Ada&lt;/b&gt; &amp; co," in html
    assert "<b>Ada</b>" not in html
    assert "Hi <b>Ada</b> & co," in text


def test_line_breaks_in_a_name_cannot_add_headers(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    reader = Reader("ada@example.org", "Ada\r\nBcc: victim@example.org", 1, 1)
    raw = template.build(reader, services.links, "<m@drip.test>", NOW)
    message = parse(raw)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in head
    assert "victim@example.org" not in str(message["To"]).split("<")[-1]


def test_non_ascii_names_and_subjects_are_encoded(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    reader = Reader("zoe@example.org", "Zoë Ñúñez", 1, 1)
    raw = template.build(reader, services.links, "<m@drip.test>", NOW)
    raw.decode("ascii")  # every byte on the wire is 7-bit
    message = parse(raw)
    assert message["Subject"] == "Welcome, Zoë Ñúñez"
    assert message["To"].addresses[0].display_name == "Zoë Ñúñez"
    assert "Hi Zoë Ñúñez," in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_default_fills_in_an_empty_name(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    subject, html, text = template.parts(Reader("a@example.org", "", 1, 1), services.links)
    assert subject == "Welcome, friend"
    assert "Hi there," in text and "Hi there," in html


def test_links_are_signed_per_reader(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[2])
    _, _, text_one = template.parts(Reader("a@example.org", "A", 1, 1), services.links)
    _, _, text_two = template.parts(Reader("b@example.org", "B", 2, 2), services.links)
    link_one = services.links.unsubscribe_url(1)
    assert link_one in text_one and link_one not in text_two
    token = link_one.rsplit("/", 1)[1]
    assert services.links.read("unsubscribe", token) == 1


def test_long_lines_stay_within_the_smtp_limit(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    raw = template.build(Reader("a@example.org", "A" * 90, 1, 1), services.links, "<m@x>", NOW)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")


BODY_WITH_MARKUP = """Hi {{ first_name|default("there") }},

## Why it *works*

Pick **one** task, _one_ only, and keep snake_case_names and 2 * 3 * 4 as they are.

* a list item stays a list item
"""


def test_text_part_keeps_a_blank_line_after_headings_and_drops_emphasis_markers(
    services: Services, tiny: Sequence
) -> None:
    template = services.renderer.message(tiny, "markup", "v1", "Subject", "", BODY_WITH_MARKUP)
    message = parse(
        template.build(Reader("ada@example.org", "Ada", 1, 1), services.links, "<m@drip.test>", NOW)
    )
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert (
        "WHY IT WORKS\n\nPick one task, one only, and keep snake_case_names and "
        "2 * 3 * 4 as they are.\n\n* a list item stays a list item\n" in text
    )
    assert "**" not in text and "_one_" not in text


def test_text_signature_separator_is_dash_dash_space(services: Services, tiny: Sequence) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[1])
    message = parse(
        template.build(Reader("ada@example.org", "Ada", 1, 1), services.links, "<m@drip.test>", NOW)
    )
    lines = message.get_body(("plain",)).get_content().splitlines()  # type: ignore[union-attr]
    assert "-- " in lines
    assert "--" not in lines


def test_preheader_is_hidden_without_a_text_colour_and_padded_so_the_snippet_stops_there(
    services: Services, tiny: Sequence
) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    message = parse(
        template.build(Reader("ada@example.org", "Ada", 1, 1), services.links, "<m@drip.test>", NOW)
    )
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    body = html.split("<body", 1)[1]
    hidden = re.search(
        r'<div style="([^"]*)">Your guide is inside\.((?:&#847;&zwnj;&nbsp;)+)'
        r"</div>",
        body,
    )
    assert hidden is not None
    style, spacers = hidden.groups()
    assert "display:none" in style and "mso-hide:all" in style
    assert "color" not in style  # white-on-light text is what SpamAssassin scores
    assert spacers.count("&zwnj;") >= 40
    assert body.index("Your guide is inside.") < body.index("Tiny course")
