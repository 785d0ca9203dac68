"""Every lesson of the four courses as a phone (375 px) and a desktop mail app (800 px) show
it, in Chromium: nothing runs off the side, the lesson text is there and readable. The
screenshots go to artifacts/screenshots/email/ for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drip.content.lessons import VARIABLE
from drip.content.loader import load_sequences
from drip.content.sequences import Lesson, Sequence
from drip.core.clock import FrozenClock
from drip.mail.markdown_body import markdown_to_text
from drip.mail.render import Reader
from drip.services import Services, build_services
from tests.conftest import make_settings, screenshot

pytestmark = pytest.mark.browser

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
AUTHOR = "Dr. Amara Okafor"  # the name the author will fill in (sequences/site.yaml)
COURSES = load_sequences(SEQUENCES, author_name=AUTHOR).sequences
LESSONS = [
    (slug, lesson.key) for slug, sequence in sorted(COURSES.items()) for lesson in sequence.lessons
]
READER = Reader(email="amara@example.org", first_name="Amara", subscriber_id=7, enrollment_id=11)
WIDTHS = (375, 800)
WORD = re.compile(r"[^\W_]+")

OVERFLOWING = """() => {
  const limit = document.documentElement.clientWidth;
  return Array.from(document.body.querySelectorAll('*'))
    .filter(e => { const r = e.getBoundingClientRect();
                   return r.width > 0 && r.height > 0 && (r.right > limit + 1 || r.left < -1); })
    .map(e => `${e.tagName.toLowerCase()}.${e.className} right=${
      Math.round(e.getBoundingClientRect().right)}`);
}"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("screens")
    settings = make_settings(
        folder, f"sqlite:///{folder / 'drip.sqlite3'}", sequences_dir=SEQUENCES
    )
    services = build_services(settings, FrozenClock(datetime(2026, 3, 16, 12, tzinfo=UTC)))
    yield services
    services.engine.dispose()


def opening_words(lesson: Lesson) -> list[str]:
    """The first words of the lesson's first paragraph, as a reader named Amara reads them."""
    paragraph = next(block for block in lesson.body.strip().split("\n\n") if block.strip())
    text = VARIABLE.sub(lambda m: READER.first_name, markdown_to_text(paragraph))
    return WORD.findall(text.lower().replace("'", "").replace("’", ""))[:6]


@pytest.mark.parametrize(("slug", "key"), LESSONS, ids=[f"{s}-{k}" for s, k in LESSONS])
def test_lesson_fits_a_phone_and_a_desktop_and_its_text_shows(
    page: Any, svc: Services, slug: str, key: str
) -> None:
    sequence: Sequence = COURSES[slug]
    lesson = sequence.lesson(key)
    assert lesson is not None
    _, html, _ = svc.renderer.lesson(sequence, lesson).parts(READER, svc.links)
    expected = opening_words(lesson)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.set_content(html)
        shown = page.locator(".lesson").first
        assert shown.is_visible()
        text = shown.inner_text().lower().replace("'", "").replace("’", "")
        assert " ".join(expected) in " ".join(WORD.findall(text)), (width, expected)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(OVERFLOWING) == [], width
        size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('.lesson p')).fontSize)"
        )
        assert size >= 16, (width, size)  # readable on a phone without zooming
        assert page.get_by_text("Unsubscribe", exact=True).is_visible()
        signature = page.locator(".signature").first  # the lesson ends signed
        assert signature.is_visible() and AUTHOR in signature.inner_text()
        assert sequence.author.credential in signature.inner_text()
        path = screenshot(page, "email", f"{slug}-{lesson.number:02d}-{key}-{width}")
        assert path.stat().st_size > 0
