"""The links' signing keyed once (drip.mail.links.Dumps) gives itsdangerous's own tokens."""

from __future__ import annotations

from typing import Any

import pytest
from itsdangerous import URLSafeSerializer

from drip.core.config import signing_order
from drip.mail.links import PLAIN, Dumps, Links

VALUES: list[Any] = [
    0,
    1,
    42,
    10**17,
    -3,
    [7, "email"],
    [7, "pause"],
    [12, "has-dates"],
    [3, "welcome", 0, "https://example.org/a?b=c&d=e"],
    [3, "welcome", 2, "https://example.org/" + "a" * 300],  # long enough to be compressed
    [3, "zoë", "ünïcode"],
    "text",
]


@pytest.mark.parametrize("fallbacks", [(), ("older",), ("oldest", "older")])
@pytest.mark.parametrize("purpose", PLAIN)
def test_keyed_once_gives_itsdangerous_token(purpose: str, fallbacks: tuple[str, ...]) -> None:
    serializer = URLSafeSerializer(signing_order("s3cret", fallbacks), salt=f"drip.{purpose}")
    dumps = Dumps(serializer)
    for value in VALUES:
        assert dumps(value) == serializer.dumps(value)
        assert serializer.loads(dumps(value)) == value


def test_every_link_reads_back_with_the_serializers() -> None:
    links = Links("s3cret", "https://drip.example.org", fallbacks=("older",))
    for ident in (1, 99, 123456789):
        token = links.unsubscribe_url(ident).rsplit("/", 1)[1]
        assert links.read("unsubscribe", token) == ident
        assert links.read("preferences", links.token("preferences", ident)) == ident
    pace = links.pace_url(5, "slower").rsplit("/", 1)[1]
    assert links.read_tracked("pace", pace) == [5, "email"]
    track = links.track_url(5, "welcome", 1, "https://example.org/x").split("/l/", 1)[1]
    assert links.read_tracked("track", track) == [5, "welcome", 1, "https://example.org/x"]
