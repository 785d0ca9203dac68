"""Every message of the four courses, and the confirmation email, scores 0.0 with Debian's
SpamAssassin and its local rules (no network tests): nothing in drip's own markup costs a
reader's inbox a point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.mail.message_ids import new_message_id
from drip.mail.render import Reader
from drip.services import build_services
from tests.conftest import make_settings

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
NOW = datetime(2026, 3, 16, 14, 0, tzinfo=UTC)
# Settings a production install passes its guardrails with.
PRODUCTION = {
    "base_url": "https://drip.example.org",
    "sender": "Dr. Author <author@example.org>",
    "sequences_dir": SEQUENCES,
    "postal_address": "1 Main Street, Springfield, IL",
}
STATUS = re.compile(
    r"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?)"
    r" autolearn=",
    re.M | re.S,
)


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        reason = "spamassassin is missing (apt-get install -y spamassassin; make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def scores(program: str, messages: dict[str, bytes], folder: Path) -> dict[str, tuple[float, str]]:
    """name -> (score, rules that fired), from one `spamassassin -L` run over every file (the
    rules are loaded once). Bayes is off: it learns from what it saw before, so a score
    would depend on earlier runs."""
    paths = []
    for index, (name, raw) in enumerate(messages.items()):
        path = folder / f"{index:03d}.eml"
        path.write_bytes(raw)
        paths.append((name, path))
    result = subprocess.run(
        [program, "-L", "-x", "--cf=use_bayes 0", *(str(p) for _, p in paths)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    found = STATUS.findall(result.stdout.decode("utf-8", "replace"))
    assert len(found) == len(paths), result.stderr.decode()[-2000:]
    return {
        name: (float(score), "".join(rules.split()))
        for (name, _), (score, rules) in zip(paths, found, strict=True)
    }


def signed_courses(tmp_path: Path, name: str) -> Path:
    """The four courses as the author will send them: signed with a name and the blog (the
    signature block's link is scored too), the credential as the repository has it."""
    courses = tmp_path / "sequences"
    shutil.copytree(SEQUENCES, courses)
    author = yaml.safe_load((SEQUENCES / "site.yaml").read_text())["author"]
    author.update(name=name, url="https://blog.example.org/")
    (courses / "site.yaml").write_text(yaml.safe_dump({"author": author}))
    return courses


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "from_header"),
    [
        ("Dr. Amara Okafor", b'From: "Dr. Amara Okafor" <author@example.org>'),
        ("Dr. Zoë Ağaoğlu", b"From: =?utf-8?b?RHIuIFpvw6sgQcSfYW/En2x1?= <author@example.org>"),
    ],
)
def test_every_lesson_and_the_confirmation_score_zero_with_spamassassin(
    tmp_path: Path, sqlite_url: str, name: str, from_header: bytes
) -> None:
    """Signed by the author, whose name may need encoding in the From line."""
    program = spamassassin()
    clock = FrozenClock(NOW)
    courses = signed_courses(tmp_path, name)
    svc = build_services(
        make_settings(tmp_path, sqlite_url, **{**PRODUCTION, "sequences_dir": courses}), clock
    )
    messages: dict[str, bytes] = {}
    try:
        library = svc.content.library()
        assert sorted(library.sequences) == sorted(p.name for p in courses.iterdir() if p.is_dir())
        reader = Reader("amara@example.org", "Amara", 1, 1)
        for slug, sequence in sorted(library.sequences.items()):
            for lesson in sequence.lessons:
                template = svc.renderer.lesson(sequence, lesson)
                mid = new_message_id("test-secret", 1, lesson.key, svc.renderer.domain)
                messages[f"{slug}/{lesson.key}"] = template.build(reader, svc.links, mid, NOW)
            with svc.sessions() as session:  # the confirmation, as the dispatcher sends it
                subscribe(
                    session,
                    library,
                    slug,
                    f"reader@{slug}.example.org",
                    NOW,
                    consent=Consent(source="test", text=sequence.consent),
                )
                session.commit()
        report = svc.dispatcher().run_pass(NOW)
        assert report.count("sent") == len(library.sequences)
    finally:
        svc.engine.dispose()
    for path in sorted(svc.settings.outbox_dir.glob("*.eml")):
        messages[f"outbox/{path.name}"] = path.read_bytes()
    assert sum(name.startswith("outbox/") for name in messages) == len(library.sequences)
    for key, raw in messages.items():  # each is signed, with the blog link
        assert from_header + b"\r\n" in raw, key
        assert b"\r\nhttps://blog.example.org/\r\n" in raw, key
    folder = tmp_path / "scored"
    folder.mkdir()
    results = scores(program, messages, folder)
    scored = {
        name: f"{score} ({rules})" for name, (score, rules) in results.items() if score != 0.0
    }
    assert scored == {}
