"""A real Dovecot IMAP server on loopback, with its own configuration in a temporary folder.

One mailbox user, passdb from a passwd-file, maildir storage, no TLS (loopback only). As
root, Dovecot's login processes run as `dovenull` and the mail as `nobody`, so the folder
is made outside pytest's private tmp (which only root may enter) and given to `nobody`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import unavailable
from tests.processes import stop, wait_listening
from tests.smtp import free_port

USER, PASSWORD = "bounces", "bounce-secret"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot",) if Path(p).exists()), None
    )


def start_dovecot(capability: str = "") -> Dovecot:
    """A Dovecot of its own; a missing binary skips the test here and fails it in CI."""
    binary = dovecot_binary()
    if binary is None:
        unavailable("dovecot is not installed: apt-get install -y dovecot-imapd")
    return Dovecot(binary, capability)


class Dovecot:
    def __init__(self, binary: str, capability: str = "") -> None:
        """`capability`: what to advertise instead of Dovecot's own (e.g. without MOVE)."""
        self.folder = Path(tempfile.mkdtemp(prefix="drip-dovecot-"))
        self.port = free_port()
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        mail = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.geteuid())
        for sub in ("run", "state", "mail", "home"):
            (self.folder / sub).mkdir()
        (self.folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        login_user = "dovenull" if root else me
        internal_user = "dovecot" if root else me
        self.config = self.folder / "dovecot.conf"
        self.config.write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.folder}/run
state_dir = {self.folder}/state
instance_name = drip-test-{self.port}
log_path = {self.folder}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name}
first_valid_uid = {mail.pw_uid if not root else 1}
mail_location = maildir:{self.folder}/mail/%u
{f"imap_capability = {capability}" if capability else ""}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.folder}/passwd
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={self.folder}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
        if root:
            self.folder.chmod(0o755)
            for sub in ("mail", "home"):
                os.chown(self.folder / sub, mail.pw_uid, mail.pw_gid)
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:  # until Dovecot greets on its port (it starts in well under a second)
            wait_listening(self.process, self.port, "dovecot", self.log, _greets)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop(self.process, self.folder)


def _greets(sock: socket.socket) -> bool:
    return sock.recv(100).startswith(b"* OK")
