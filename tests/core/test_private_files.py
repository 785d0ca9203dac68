"""What drip writes holds readers' addresses and live unsubscribe links: only its own user
may read it, whatever the umask of the process that wrote it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from drip.audience.subscriptions import Consent, subscribe
from drip.content import magnets
from drip.core.clock import FrozenClock
from drip.core.config import load_settings
from drip.services import build_services
from drip.store.db import migrate
from tests.conftest import TESTS


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common default umask, under which files come out world-readable (0644)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under `root` (itself included) and its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def test_database_wal_outbox_secret_and_pdf_cache_are_private_whatever_the_umask(
    tmp_path: Path, clock: FrozenClock, permissive_umask: None
) -> None:
    data = tmp_path / "data"
    settings = load_settings(
        environ={},
        data_dir=data,
        sequences_dir=TESTS / "sequences",
        base_url="http://drip.test",
        postal_address="1 Test Street",
    )
    svc = build_services(settings, clock)
    try:
        migrate(svc.engine)
        with svc.sessions() as session:
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                "ada@example.org",
                clock(),
                consent=Consent(source="test", text="Yes"),
                confirmed=True,
            )
            session.commit()
        report = svc.dispatcher().run_pass(clock())
        assert report.count("sent") == 1
        sequence = svc.content.library().get("tiny")
        assert sequence is not None
        magnets.build(settings, sequence)
        found = modes(data)  # while the engine is open: the WAL and SHM files exist
    finally:
        svc.engine.dispose()
    for name in ("secret_key", "drip.sqlite3", "drip.sqlite3-wal", "drip.sqlite3-shm"):
        assert name in found, sorted(found)
    assert any(name.startswith("outbox/") and name.endswith(".eml") for name in found)
    assert any(name.startswith("magnets/") and name.endswith(".pdf") for name in found)
    wrong = {
        name: mode
        for name, mode in found.items()
        if mode != (oct(0o700) if (data / name).is_dir() else oct(0o600))
    }
    assert wrong == {}
