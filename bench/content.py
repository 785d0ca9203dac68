"""What a request pays to learn that no course changed, against a stat of every file.

Every public page and every sign-up asks the content store for the library
(drip.content.store), which asks drip.content.watch whether a file under the sequences
folder changed. Until stop 34 that was a stat of every file, which is still what happens
where inotify is missing or refused, and what this bench takes as its baseline:
drip.content.watch.stamp on the same folder, in the same run.

    .venv/bin/python bench/content.py                      # this repository's sequences/
    .venv/bin/python bench/content.py --folder tests/sequences

Prints both costs a call and `stat_vs_watch` (how many times dearer the stat is).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from drip.content import watch
from drip.content.store import ContentStore

ROOT = Path(__file__).resolve().parent.parent


def per_call(call: Callable[[], object], calls: int) -> float:
    """The mean cost of one call over `calls` calls, in µs."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "sequences")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    folder = args.folder.resolve()
    store = ContentStore(folder)
    store.library()  # loaded once, as the first request does
    files = len(watch.stamp(folder))
    kind = "inotify" if watch.HAS_INOTIFY else "a stat of every file (no inotify here)"
    # In turns, so that a change in the machine's load falls on both.
    looks, stats = [], []
    for _ in range(args.rounds):
        looks.append(per_call(store.library, args.calls))
        stats.append(per_call(lambda: watch.stamp(folder), args.calls))
    look, stat = statistics.median(looks), statistics.median(stats)
    print(f"{folder} ({files} files), the store's look by {kind}")
    print(f"library() when nothing changed  {look:7.1f} µs a call")
    print(f"a stat of every file            {stat:7.1f} µs a call")
    print(f"stat_vs_watch {stat / look:.1f}")


if __name__ == "__main__":
    main()
