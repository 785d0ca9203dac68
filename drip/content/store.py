"""The sequences as loaded, kept until a file under the folder changes."""

from __future__ import annotations

import os
from pathlib import Path

from drip.content.loader import load_sequences
from drip.content.sequences import Library


class ContentStore:
    """Loads sequences once and again only when a file under the folder changes."""

    def __init__(self, root: Path, author_name: str = "") -> None:
        self.root = root
        self.author_name = author_name
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._library: Library | None = None

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        """Name, mtime and size of every file: one stat each (this runs on every request)."""
        stamp: list[tuple[str, int, int]] = []
        pending = [str(self.root)]
        while pending:
            try:
                entries = list(os.scandir(pending.pop()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=True):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    try:
                        info = entry.stat()
                    except FileNotFoundError:  # deleted since the folder was listed
                        continue
                    stamp.append((entry.path, info.st_mtime_ns, info.st_size))
        return tuple(sorted(stamp))

    def library(self) -> Library:
        stamp = self._current_stamp()
        if self._library is None or stamp != self._stamp:
            self._library = load_sequences(self.root, self.author_name)
            self._stamp = stamp
        return self._library
