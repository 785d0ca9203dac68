"""What content may make drip read: the one rule for every reference a course's files give.

A lead magnet is typeset on the server, so whatever its HTML points at, WeasyPrint would
fetch as the server: `/etc/passwd`, the secret key, the database, an address on the
private network. The rule: a `data:` URL is served as it is; a file only when it is a
picture inside the course's own folder once every symlink is followed (no part of its path
hidden, like `.git`); nothing else at all: no `file:` elsewhere, no `http(s):`, no other
scheme. `pdf_fetcher` applies it as WeasyPrint's `url_fetcher`, `refusal` says in words why
a reference is refused (for `drip check` and the studio), and `inside` keeps the lessons,
the lead magnet's file (drip.content.sequence_file) and the served author photo
(drip.web.public.signup) in their folders.

The studio checks a change in a scratch copy of the folder whose other files link back to
the real one; `standing_in` lets those links count as the copy's own while it checks.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import DataHandler, Request, url2pathname

# The only files a document may take (no attachments, style sheets or fonts reach here):
# a database or a key beside the pictures is never so much as opened.
PICTURES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})
MAX_BYTES = 20 * 1024 * 1024  # a picture in a PDF; more is a mistake, not a picture
# (scratch copy, real folder) pairs the studio is checking in this thread
_STAND_INS: ContextVar[tuple[tuple[Path, Path], ...]] = ContextVar("drip_stand_ins", default=())


class Refused(ValueError):
    """Content pointed at something drip does not read; the message says what and why.
    WeasyPrint skips a resource whose fetch raises (and logs the message)."""


@contextmanager
def standing_in(copy: Path, real: Path) -> Iterator[None]:
    """While the studio checks `copy` (a scratch folder whose entries link to `real`), the
    files of `real` count as inside `copy`."""
    token = _STAND_INS.set((*_STAND_INS.get(), (copy.resolve(), real.resolve())))
    try:
        yield
    finally:
        _STAND_INS.reset(token)


def inside(path: Path, folder: Path) -> Path | None:
    """`path` with every symlink followed, if it is a file inside `folder` (itself resolved,
    or the real folder the studio's copy stands in for) and no part below the folder is
    hidden; None otherwise."""
    try:
        resolved = path.resolve(strict=True)
        root = folder.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    roots = [root, *(real for copy, real in _STAND_INS.get() if copy == root)]
    for base in roots:
        if resolved.is_relative_to(base) and resolved.is_file():
            hidden = any(part.startswith(".") for part in resolved.relative_to(base).parts)
            return None if hidden else resolved
    return None


def _local_path(target: str, folder: Path) -> Path | None:
    """The file a reference names: a `file:` URL, or a path (relative to `folder`)."""
    parts = urlsplit(target)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return Path(url2pathname(parts.path))
    if parts.scheme or parts.netloc:
        return None
    path = Path(unquote(parts.path))
    return path if path.is_absolute() else folder / path


def refusal(target: str, folder: Path) -> str | None:
    """Why drip will not read `target` for content in `folder`, in words for an author, or
    None when it may: a data: URL, or a file inside the folder."""
    scheme = urlsplit(target.strip()).scheme.lower()
    if scheme == "data":
        return None
    if scheme not in ("", "file"):
        return (
            f"{target} is fetched from the web: drip reads nothing from other addresses "
            "for the PDF; put the picture in the course folder and name it, e.g. plan.png"
        )
    path = _local_path(target.strip(), folder)
    if path is None or inside(path, folder) is None:
        return (
            f"{target} is not a file in the course folder {folder.name}/ (a file elsewhere, "
            "a link out of the folder, or a hidden one): drip reads only the folder's own files"
        )
    if path.suffix.lower() not in PICTURES:
        kinds = ", ".join(sorted(PICTURES))
        return f"{target} is not a picture ({kinds}): the PDF takes only pictures from the folder"
    return None


def _data(url: str) -> tuple[str, bytes, str]:
    answer = DataHandler().data_open(Request(url))
    return url, answer.read(), str(answer.headers["Content-Type"])


def serve(url: str, folder: Path) -> tuple[str, bytes, str]:
    """(the URL served, its bytes, its media type) for a reference by the rule, or Refused."""
    reason = refusal(url, folder)
    if reason is not None:
        raise Refused(reason)
    if urlsplit(url).scheme.lower() == "data":
        return _data(url)
    path = inside(_local_path(url, folder) or folder, folder)
    assert path is not None  # refusal() said it is a file in the folder
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # not swapped for a link since
    with os.fdopen(fd, "rb") as handle:
        body = handle.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise Refused(f"{path.name} is over {MAX_BYTES // 1024 // 1024} MB")
    return path.as_uri(), body, mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@cache
def _fetcher_class() -> Any:
    """WeasyPrint's fetcher with `serve` in place of its own (loaded only when a PDF is)."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class ContentFetcher(URLFetcher):  # type: ignore[misc]  # WeasyPrint ships no types
        def __init__(self, folder: Path) -> None:
            super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
            self.folder = folder

        def fetch(self, url: str, headers: Any = None) -> Any:
            served, body, kind = serve(url, self.folder)
            return URLFetcherResponse(served, body, {"Content-Type": kind})

    return ContentFetcher


def pdf_fetcher(folder: Path) -> Any:
    """The `url_fetcher` for every WeasyPrint document made from content in `folder`: it
    serves by the rule, and raises Refused (WeasyPrint leaves the resource out) for the rest."""
    return _fetcher_class()(folder)
