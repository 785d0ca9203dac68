"""Has anything under the sequences folder changed since the last look?

The content store asks on every request that reads a course, so the answer must be cheap:
an author's saved file must show on the very next page, and a stat of every file (the
portable way) costs about 135 µs a request with this repository's `sequences/`.

- On Linux, inotify watches on every folder (and on every file reached through a symbolic
  link) answer with one ioctl when nothing changed. The kernel queues an event before the
  writing call returns, so a save is seen by the next look, not eventually.
  Inotify sees only what this machine's kernel writes, not a change another host makes
  on a network filesystem: every file is still stat'ed every two seconds.
- Elsewhere, or when the kernel refuses (its per-user limits), the stat of every file.

One inotify queue serves a whole process, whatever the number of folders watched (the
kernel allows a user 128 queues; a test run makes hundreds of apps). After a fork
(gunicorn's workers) each process opens its own: a queue read by one process is emptied
for all.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

try:
    from inotify_simple import INotify
    from inotify_simple import flags as inotify_flags
except ImportError:  # not Linux: the stat of every file instead
    INotify = None

HAS_INOTIFY = INotify is not None
log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int], ...]


def stamp(root: Path) -> Stamp:
    """Name, mtime and size of every file under `root`, symbolic links followed."""
    found: list[tuple[str, int, int]] = []
    for entry in _walk(root):
        if entry.is_file(follow_symlinks=True):
            try:
                info = entry.stat()
            except FileNotFoundError:  # deleted since the folder was listed
                continue
            found.append((entry.path, info.st_mtime_ns, info.st_size))
    return tuple(sorted(found))


def _walk(root: Path) -> list[os.DirEntry[str]]:
    """Every entry under `root`, folders reached through links included, each folder once.
    A folder's real path is its parent's and its name, so only a link costs a lookup."""
    entries: list[os.DirEntry[str]] = []
    pending, seen = [(str(root), os.path.realpath(root))], set[str]()
    while pending:
        folder, real = pending.pop()
        if real in seen:  # a link back up the tree
            continue
        seen.add(real)
        try:
            listed = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # gone, or unreadable: nothing to stamp or watch in it
        entries.extend(listed)
        for entry in listed:
            if entry.is_dir(follow_symlinks=True):
                linked = entry.is_symlink()
                target = os.path.realpath(entry.path) if linked else os.path.join(real, entry.name)
                pending.append((entry.path, target))
    return entries


def _watched_paths(root: Path) -> list[str]:
    """The root, every folder under it, and every entry that is a symbolic link (a
    folder's watch does not see a write made through the link's target)."""
    return [str(root)] + [
        entry.path
        for entry in _walk(root)
        if entry.is_symlink() or entry.is_dir(follow_symlinks=False)
    ]


class _Queue:
    """The process's inotify queue, shared by every watch in it."""

    def __init__(self) -> None:
        self.inotify = INotify(nonblocking=True)
        self.pid = os.getpid()
        self.owners: dict[int, weakref.WeakSet[FolderWatch]] = {}

    def add(self, owner: FolderWatch, paths: list[str]) -> None:
        for path in paths:
            try:
                descriptor = self.inotify.add_watch(path, _MASK)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue  # gone since it was listed, or unreadable (the stat every 2 s)
            self.owners.setdefault(descriptor, weakref.WeakSet()).add(owner)

    def drain(self) -> None:
        """Mark the owners of every queued event as changed."""
        for event in self.inotify.read(timeout=0):
            if event.mask & inotify_flags.Q_OVERFLOW:  # events were lost: assume everything
                for owners in self.owners.values():
                    for owner in owners:
                        owner.dirty = True
                continue
            for owner in self.owners.get(event.wd, ()):
                owner.dirty = True
            if event.mask & inotify_flags.IGNORED:  # the kernel dropped this watch
                self.owners.pop(event.wd, None)


_MASK = 0
if INotify is not None:
    _MASK = (
        inotify_flags.MODIFY
        | inotify_flags.ATTRIB
        | inotify_flags.CLOSE_WRITE
        | inotify_flags.MOVED_FROM
        | inotify_flags.MOVED_TO
        | inotify_flags.CREATE
        | inotify_flags.DELETE
        | inotify_flags.DELETE_SELF
        | inotify_flags.MOVE_SELF
    )
_queue: _Queue | None = None
_queue_lock = threading.Lock()
_inotify_refused = INotify is None


def _process_queue() -> _Queue:
    """This process's queue: a forked worker opens its own (see the module's docstring)."""
    global _queue
    if _queue is not None and _queue.pid != os.getpid():
        _queue.inotify.close()  # the parent's copy: the parent keeps its own open
        _queue = None
    if _queue is None:
        _queue = _Queue()
    return _queue


class FolderWatch:
    """Answers `changed()`: True the first time, then whenever something under the root
    may have changed since the last call.

    Inotify sees only what this machine's kernel writes: a file changed on a network
    filesystem by another host raises no event. So with inotify, every file is still
    stat'ed once every `RESTAT` seconds (`clock`: monotonic seconds, injected by tests)."""

    RESTAT = 2.0

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.dirty = True
        self._clock = clock
        self._watched_in: _Queue | None = None
        self._last: Stamp | None = None
        self._stamped_at = -math.inf

    def changed(self) -> bool:
        global _inotify_refused
        if not _inotify_refused and self.root.is_dir():
            try:
                if self._changed_by_inotify():
                    self._restamped()  # after the watches are set: nothing falls between
                    return True
            except OSError as error:  # too many queues or watches for this user
                _inotify_refused, self._last = True, None
                log.warning("watching %s: %s; checking every file instead", self.root, error)
            else:
                if self._clock() - self._stamped_at < self.RESTAT:
                    return False
        return self._restamped()

    def _restamped(self) -> bool:
        """Stamp every file; True if the stamp differs from the last one."""
        now, self._stamped_at = stamp(self.root), self._clock()
        if now == self._last:
            return False
        self._last = now
        return True

    def again(self) -> None:
        """Answer True at the next call, whatever happens meanwhile."""
        self.dirty, self._last = True, None

    def _changed_by_inotify(self) -> bool:
        with _queue_lock:
            queue = _process_queue()
            if self._watched_in is queue:
                queue.drain()
                if not self.dirty:
                    return False
            # Watched before the caller reads the files: a change made while it reads is
            # queued for the next look. A folder created since is watched from now on.
            self.dirty = False
            queue.add(self, _watched_paths(self.root))
            self._watched_in = queue
            return True
