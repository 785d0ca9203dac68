"""The content store's question on every request: has a file under the sequences folder
changed since the last look? Asked of inotify on Linux and of a stat of every file where
inotify is missing or refused; both must see a save at the very next look."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drip.content import store as store_module
from drip.content import watch as watch_module
from drip.content.loader import load_sequences
from drip.content.store import ContentStore
from drip.content.watch import FolderWatch

TINY = Path(__file__).resolve().parents[1] / "sequences" / "tiny"

pytestmark = pytest.mark.skipif(not watch_module.HAS_INOTIFY, reason="inotify is Linux's")


@pytest.fixture(params=["inotify", "stat"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(watch_module, "_inotify_refused", request.param == "stat")
    yield request.param


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "sequences"
    (root / "course").mkdir(parents=True)
    (root / "course" / "01-hello.md").write_text("Hello\n")
    return root


def looked(root: Path) -> FolderWatch:
    watch = FolderWatch(root)
    assert watch.changed(), "the first look always loads"
    assert not watch.changed(), "nothing changed since"
    return watch


def test_a_file_saved_in_place_is_seen_by_the_next_look(mode: str, folder: Path) -> None:
    watch = looked(folder)
    with open(folder / "course" / "01-hello.md", "r+") as lesson:  # same size, same inode
        lesson.write("Jello")
    assert watch.changed()
    assert not watch.changed()


def test_an_editors_save_by_rename_and_a_deleted_file_are_seen(mode: str, folder: Path) -> None:
    watch = looked(folder)
    (folder / "course" / ".01-hello.md.swp").write_text("Hello again\n")
    os.replace(folder / "course" / ".01-hello.md.swp", folder / "course" / "01-hello.md")
    assert watch.changed()
    (folder / "course" / "01-hello.md").unlink()
    assert watch.changed()
    assert not watch.changed()


def test_a_new_folder_is_watched_from_the_look_that_found_it(mode: str, folder: Path) -> None:
    watch = looked(folder)
    (folder / "second").mkdir()
    watch.changed()  # inotify: yes, and it watches the new folder; a stat: no files changed
    (folder / "second" / "01-first.md").write_text("First\n")
    assert watch.changed(), "a file written in a folder created after the first look"
    (folder / "second" / "01-first.md").write_text("First, edited\n")
    assert watch.changed()


def test_a_file_reached_through_a_link_is_seen_when_its_target_changes(
    mode: str, folder: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "shared.md"
    elsewhere.write_text("Shared\n")
    (folder / "course" / "02-shared.md").symlink_to(elsewhere)
    watch = looked(folder)
    elsewhere.write_text("Shared, edited\n")
    assert watch.changed()


def test_a_link_back_up_the_tree_is_followed_once(mode: str, folder: Path) -> None:
    (folder / "course" / "loop").symlink_to(folder, target_is_directory=True)
    watch = looked(folder)
    (folder / "course" / "01-hello.md").write_text("Edited\n")
    assert watch.changed()


def test_a_folder_removed_and_made_again_is_read_again(mode: str, folder: Path) -> None:
    watch = looked(folder)
    (folder / "course" / "01-hello.md").unlink()
    (folder / "course").rmdir()
    folder.rmdir()
    assert watch.changed()
    folder.mkdir()
    (folder / "new.md").write_text("New\n")
    assert watch.changed()
    assert not watch.changed()


def test_a_forked_worker_does_not_empty_its_parents_queue(folder: Path) -> None:
    """gunicorn forks its workers: a queue shared after a fork would hand each event to
    whichever process reads first, and the other would never reload."""
    watch = looked(folder)
    child = os.fork()
    if child == 0:  # the worker: its first look, an edit, a look that sees it
        try:
            ok = watch.changed() and not watch.changed()
            (folder / "course" / "01-hello.md").write_text("Edited by the worker\n")
            ok = ok and watch.changed()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the worker did not see its own edit"
    assert watch.changed(), "the parent's queue still holds the edit"


def test_a_change_inotify_cannot_see_is_found_by_a_stat_two_seconds_on(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another host writing to a network filesystem raises no event here."""
    monkeypatch.setattr(watch_module, "_inotify_refused", False)
    clock = [100.0]
    watch = FolderWatch(folder, clock=lambda: clock[0])
    assert watch.changed()
    (folder / "course" / "01-hello.md").write_text("Edited on another host\n")
    watch_module._process_queue().inotify.read(timeout=0)  # the event never came
    assert not watch.changed(), "between two stats, only inotify is asked"
    clock[0] += FolderWatch.RESTAT
    assert watch.changed()
    assert not watch.changed()


def test_when_the_kernel_refuses_a_queue_every_file_is_checked_instead(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(**_: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(watch_module, "_inotify_refused", False)
    monkeypatch.setattr(watch_module, "_queue", None)
    monkeypatch.setattr(watch_module, "INotify", refused)
    with caplog.at_level(logging.WARNING, logger="drip.content.watch"):
        watch = looked(folder)
    assert "checking every file instead" in caplog.text
    assert watch_module._inotify_refused
    (folder / "course" / "01-hello.md").write_text("Edited\n")
    assert watch.changed()


def test_the_store_loads_again_after_a_load_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sequences"
    shutil.copytree(TINY, root / "tiny")
    store = ContentStore(root)
    assert store.library().get("tiny") is not None
    lesson = root / "tiny" / "01-welcome.md"
    lesson.write_text(lesson.read_text().replace("Here is", "Edited: here is"))

    def broken(*_: object) -> None:
        raise OSError("disk read error")

    with monkeypatch.context() as patched:
        patched.setattr("drip.content.store.load_sequences", broken)
        with pytest.raises(OSError):
            store.library()
    edited = store.library().get("tiny")
    assert edited is not None and "Edited: here is" in edited.lessons[0].body


def test_a_request_during_a_reload_waits_for_the_new_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload consumes the change: a second request must not answer with the old
    library meanwhile, as if nothing had changed."""
    root = tmp_path / "sequences"
    shutil.copytree(TINY, root / "tiny")
    store = ContentStore(root)
    store.library()
    lesson = root / "tiny" / "01-welcome.md"
    lesson.write_text(lesson.read_text().replace("Here is", "Edited: here is"))

    loading, go_on, arrived = threading.Event(), threading.Event(), threading.Event()

    def slow_load(*args: Any) -> Any:
        loading.set()
        go_on.wait(10)
        return load_sequences(*args)

    class Noticed:
        """The store's lock, telling when a second request reaches it."""

        def __init__(self, lock: Any) -> None:
            self.lock = lock

        def __enter__(self) -> None:
            if threading.current_thread().name == "second":
                arrived.set()
            self.lock.acquire()

        def __exit__(self, *_: object) -> None:
            self.lock.release()

    monkeypatch.setattr(store_module, "load_sequences", slow_load)
    monkeypatch.setattr(store, "_lock", Noticed(store._lock))
    answers: dict[str, str] = {}

    def request(name: str) -> None:
        course = store.library().get("tiny")
        answers[name] = course.lessons[0].body if course else ""

    first = threading.Thread(target=request, args=("first",), name="first")
    first.start()
    assert loading.wait(10)
    second = threading.Thread(target=request, args=("second",), name="second")
    second.start()
    assert arrived.wait(10), "the second request did not ask for the store's lock"
    go_on.set()
    first.join(10)
    second.join(10)
    assert "Edited: here is" in answers["first"]
    assert "Edited: here is" in answers["second"]


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user to read")
def test_an_unreadable_folder_does_not_turn_inotify_off() -> None:
    """An unreadable folder is the loader's business; the watch skips it and goes on by
    inotify (checked as an unprivileged user: root reads every folder)."""
    base = Path(tempfile.mkdtemp())
    try:
        os.chmod(base, 0o755)
        (base / "course").mkdir(mode=0o755)
        (base / "course" / "01-hello.md").write_text("Hello\n")
        (base / "locked").mkdir(mode=0o000)
        child = os.fork()
        if child == 0:  # the unprivileged reader
            ok = False
            try:
                os.setgid(65534)
                os.setuid(65534)
                watch_module._inotify_refused = False
                watch = FolderWatch(base)
                ok = watch.changed() and not watch.changed()
                ok = ok and not watch_module._inotify_refused
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        (base / "locked").chmod(0o755)
        shutil.rmtree(base)
