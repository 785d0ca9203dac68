"""Files only drip's own user may read: the database, the outbox, the secret, the PDF cache.

The outbox holds live unsubscribe links and the database every reader's address, so each
folder drip creates is 0700 and each file 0600, whatever the umask of the process. Folders
that already exist are left as their owner made them.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents as 0700 folders; an existing one is kept as is."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened
    return path


def create_private_file(path: Path) -> bool:
    """Create an empty 0600 file at `path` unless one exists; True if this call made it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new or truncated 0600 file at `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)
        handle.write(data)
