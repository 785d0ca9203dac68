"""The sequences as loaded, kept until a file under the folder changes."""

from __future__ import annotations

import threading
from pathlib import Path

from drip.content.loader import load_sequences
from drip.content.sequences import Library
from drip.content.watch import FolderWatch


class ContentStore:
    """Loads sequences once and again only when a file under the folder changes."""

    def __init__(self, root: Path, author_name: str = "") -> None:
        self.root = root
        self.author_name = author_name
        self._watch = FolderWatch(root)
        self._library: Library | None = None
        self._lock = threading.Lock()

    def library(self) -> Library:
        """The library as the files are now. One thread at a time: a request that starts
        while another reloads waits for the new library rather than answer with the old."""
        with self._lock:
            if self._watch.changed() or self._library is None:
                try:
                    self._library = load_sequences(self.root, self.author_name)
                except BaseException:
                    self._watch.again()  # the next request tries again
                    raise
            return self._library
