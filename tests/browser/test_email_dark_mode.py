"""The emails in a phone's dark mode (Chromium, 375 px, `prefers-color-scheme: dark`): a
lesson, the confirmation and a broadcast keep readable text on a dark page, their footer and
banner at 14 px or more, their buttons on one line. Screenshots go to
artifacts/screenshots/reader/ for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import preview
from drip.mail.render import Reader
from drip.services import Services, build_services
from drip.store.models import Broadcast
from tests.conftest import make_settings, screenshot

pytestmark = pytest.mark.browser

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
READER = Reader(email="amara@example.org", first_name="Amara", subscriber_id=7, enrollment_id=11)
NOW = datetime(2026, 3, 16, 12, tzinfo=UTC)
BROADCAST = Broadcast(
    id=3,
    name="ERAS opens",
    subject="A note before application season",
    preheader="Two links and one small step.",
    body=(
        'Hi {{ first_name|default("there") }},\n\nA short note between lessons: pick one '
        "baby step for your application and do it today.\n\n"
        "[Read the post on baby steps](https://blog.example.org/baby-steps){.button}\n"
    ),
    audience={"to": ["procrastination"]},
)

# What the page shows, measured as Chromium lays it out.
MEASURE = """() => {
  const none = {fontSize: 'NaN', color: 'none', backgroundColor: 'none'};  // no such element
  const style = s => {
    const e = document.querySelector(s);
    return e ? getComputedStyle(e) : none;
  };
  const button = document.querySelector('a.button, .button a');
  let lines = null;
  if (button) {
    const range = document.createRange();
    range.selectNodeContents(button);
    lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
  }
  const meta = document.querySelector('meta[name="color-scheme"]');
  return {
    scheme: meta && meta.content,
    supported: !!document.querySelector('meta[name="supported-color-schemes"]'),
    footer: parseFloat(style('.footer div').fontSize),
    banner: parseFloat(style('.banner div').fontSize),
    buttonLines: lines,
    text: style('.lesson div').color,
    footerText: style('.footer div').color,
    card: style('.card > table').backgroundColor,
    page: getComputedStyle(document.body).backgroundColor,
    width: document.documentElement.scrollWidth,
  };
}"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("dark")
    settings = make_settings(
        folder, f"sqlite:///{folder / 'drip.sqlite3'}", sequences_dir=SEQUENCES
    )
    services = build_services(settings, FrozenClock(NOW))
    yield services
    services.engine.dispose()


def emails(svc: Services) -> dict[str, str]:
    """The HTML of a lesson with a long button label, a confirmation and a broadcast."""
    library = svc.content.library()
    kit = library.sequences["usmle-insider-kit"]
    lesson = svc.renderer.lesson(kit, kit.lessons[0]).parts(READER, svc.links)[1]
    confirm = svc.renderer.confirmation(library.sequences["networking-tips"])
    broadcast = preview(svc.renderer, library, BROADCAST, svc.links)[1]
    return {
        "lesson-usmle-welcome": lesson,
        "confirmation": confirm.parts(READER, svc.links)[1],
        "broadcast": broadcast,
    }


def luminance(color: str) -> float:
    """WCAG relative luminance of a computed `rgb(r, g, b)`."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", color)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def shown(browser: Any, html: str, scheme: str) -> tuple[dict[str, Any], Any]:
    context = browser.new_context(color_scheme=scheme, viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.set_content(html)
    return page.evaluate(MEASURE), page


@pytest.mark.parametrize("name", ["lesson-usmle-welcome", "confirmation", "broadcast"])
def test_an_email_in_dark_mode_on_a_phone_stays_readable_with_one_line_buttons(
    browser: Any, svc: Services, name: str
) -> None:
    html = emails(svc)[name]
    light, light_page = shown(browser, html, "light")
    dark, page = shown(browser, html, "dark")
    try:
        assert (dark["scheme"], dark["supported"]) == ("light dark", True)
        assert dark["footer"] >= 14 and dark["banner"] >= 14, dark
        assert dark["buttonLines"] == 1, dark
        assert dark["width"] <= 375
        # the colors change with the mode, and text stays readable on its background
        assert luminance(dark["card"]) < 0.05 < 0.9 < luminance(light["card"])
        assert luminance(dark["page"]) < luminance(light["page"])
        assert dark["text"] != light["text"]
        assert contrast(dark["text"], dark["card"]) >= 7, dark
        assert contrast(dark["footerText"], dark["page"]) >= 4.5, dark
        assert contrast(light["text"], light["card"]) >= 7, light
        assert screenshot(page, "reader", f"{name}-dark-375").stat().st_size > 0
        assert screenshot(light_page, "reader", f"{name}-light-375").stat().st_size > 0
    finally:
        page.context.close()
        light_page.context.close()
