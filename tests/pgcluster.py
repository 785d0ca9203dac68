"""A PostgreSQL cluster of a test's own (Debian's pg_createcluster), on a free port under a
temporary folder, so the test may crash it without touching the server on 5432."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.smtp import free_port


def postgres_version() -> str | None:
    """The newest PostgreSQL installed for pg_createcluster, or None."""
    if shutil.which("pg_createcluster") is None:
        return None
    versions = sorted(
        (Path(p).parent.parent.name for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")),
        key=lambda v: int(v) if v.isdigit() else 0,
    )
    return versions[-1] if versions else None


class Cluster:
    """Created, configured (trust on loopback) and started; `drop()` stops and removes it."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.name = f"drip_fault_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="drip-pg-"))
        os.chmod(self.folder, 0o777)  # the postgres user writes its data and log here
        self.log = self.folder / "postgresql.log"
        self._run(
            "pg_createcluster",
            version,
            self.name,
            "--port",
            str(self.port),
            "--datadir",
            str(self.folder / "data"),
            "--logfile",
            str(self.log),
            "--start-conf",
            "manual",
            "-o",
            "listen_addresses=localhost",
            "-o",
            "fsync=on",
            "--",
            "--auth=trust",
        )
        try:
            self.ctl("start")
        except RuntimeError:
            self.drop()
            raise

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str, *options: str) -> None:
        """pg_ctlcluster on this cluster: start, stop, restart (`-m immediate` to crash)."""
        self._run("pg_ctlcluster", *options, self.version, self.name, action)

    def crash_and_restart(self) -> None:
        """An immediate-mode restart: every backend killed, no checkpoint, WAL replayed."""
        self.ctl("restart", "-m", "immediate")

    def server_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", self.version, self.name],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _run(*command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
