"""A real PgBouncer on loopback in transaction mode, in front of the tests' PostgreSQL, with
its own configuration in a temporary folder.

Transaction mode hands each transaction whichever server connection is free: what a client
left on one (a statement prepared by name) is missing on the next, or already there. A pool
of two server connections for many clients makes that happen at once. PgBouncer refuses to
run as root: as root it runs as `nobody`, from a folder outside pytest's private tmp.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import unavailable
from tests.processes import stop, wait_listening
from tests.smtp import free_port


def start_pgbouncer(postgres_url: str) -> PgBouncer:
    """A PgBouncer of its own; a missing binary skips the test here and fails it in CI."""
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None
    )
    if binary is None:
        unavailable("pgbouncer is not installed: apt-get install -y pgbouncer")
    return PgBouncer(binary, postgres_url)


class PgBouncer:
    def __init__(self, binary: str, postgres_url: str) -> None:
        self.target = make_url(postgres_url)
        self.folder = Path(tempfile.mkdtemp(prefix="drip-pgbouncer-"))
        self.port = free_port()
        user = self.target.username or "postgres"
        (self.folder / "users.txt").write_text(f'"{user}" ""\n')
        config = self.folder / "pgbouncer.ini"
        config.write_text(f"""\
[databases]
* = host={self.target.host or "127.0.0.1"} port={self.target.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder}/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
logfile = {self.folder}/pgbouncer.log
""")
        command = [binary, str(config)]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.folder.chmod(0o755)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command = [binary, "-u", "nobody", str(config)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.folder
        )
        try:
            wait_listening(self.process, self.port, "pgbouncer", self.log)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The tests' database, through the pooler."""
        through = self.target.set(host="127.0.0.1", port=self.port)
        return through.render_as_string(hide_password=False)

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop(self.process, self.folder)
