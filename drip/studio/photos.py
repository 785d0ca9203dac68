"""The author's photo uploaded from the studio: a picture by its content, not its name.

The upload's own file name and type are never trusted: Pillow reads the bytes, and only a
JPEG, PNG or WebP of a sane size is kept, under a name made from a hash of its bytes (so it
never replaces another file, and the same picture uploaded twice is one file).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

MAX_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 25_000_000  # far above any portrait; refuses a decompression bomb unopened
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}  # drip.content.authors.PHOTO_TYPES


class PhotoError(ValueError):
    """The upload is not a picture drip keeps; the message says why, for the form."""


@dataclass(frozen=True)
class Photo:
    name: str  # the file name in the sequences folder, e.g. author-3f2a9c1d0b7e.jpg
    data: bytes


def checked_photo(data: bytes) -> Photo:
    """The upload as a photo to save, or PhotoError saying what is wrong with it."""
    if not data:
        raise PhotoError("the photo file is empty")
    if len(data) > MAX_BYTES:
        raise PhotoError(
            f"the photo is {len(data) / 1024 / 1024:.1f} MB; at most "
            f"{MAX_BYTES // 1024 // 1024} MB (a portrait of 800 pixels is plenty)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
                width, height = image.size
                image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("the photo is not a picture: upload a JPEG, PNG or WebP") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise PhotoError(f"the photo is damaged and cannot be read ({error})") from None
    if kind not in SUFFIXES:
        raise PhotoError(f"the photo is a {kind or 'unknown'} picture: upload a JPEG, PNG or WebP")
    if width * height > MAX_PIXELS:
        raise PhotoError(f"the photo is {width}×{height} pixels: make it smaller")
    digest = hashlib.sha256(data).hexdigest()[:12]
    return Photo(f"author-{digest}{SUFFIXES[kind]}", data)
