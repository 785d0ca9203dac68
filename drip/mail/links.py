"""Signed links in email: confirm, unsubscribe, preferences and the lead-magnet download.

Unsubscribe and preferences links never expire (a reader may leave from a years-old email);
confirmation and download links do, after the days the settings give. After the secret key
is rotated, a link made under one of its `fallbacks` still reads; new links are signed with
the current key alone.
"""

from __future__ import annotations

import hmac
import json
import zlib
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.signer import HMACAlgorithm

from drip.core.clock import Clock, system_clock
from drip.core.config import signing_order
from drip.mail.reply_address import reply_address


class LinkError(Exception):
    """A link was forged, mangled or has expired; `expired` tells which."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


# These never expire: a reader may leave, or click a link, from an old email.
PLAIN = (
    "unsubscribe",
    "preferences",
    "track",
    "open",
    "offer",
    "broadcast",
    "tag",
    "keep",
    "leave",
    "pace",
)
TIMED = ("confirm", "magnet")


class Dumps:
    """`URLSafeSerializer.dumps` with its work done once: itsdangerous derives the key, keys
    a new HMAC and builds a JSON encoder for every token, most of a token's cost, and a
    lesson carries several. Here the payload is made as itsdangerous makes it (compact
    JSON, zlib when that is shorter, URL-safe base64) and the HMAC, keyed once, is copied
    per token: the same token (tests/mail/test_links_signing.py compares them)."""

    _json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

    def __init__(self, serializer: URLSafeSerializer) -> None:
        signer = serializer.make_signer()
        algorithm = signer.algorithm
        if not isinstance(algorithm, HMACAlgorithm) or serializer.serializer_kwargs:
            raise TypeError("only itsdangerous's default JSON and HMAC signing are kept")
        self._sep = signer.sep
        self._mac = hmac.new(signer.derive_key(), digestmod=algorithm.digest_method)

    def __call__(self, value: Any) -> str:
        data = self._json.encode(value).encode("utf-8")
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            payload = b"." + urlsafe_b64encode(compressed).rstrip(b"=")
        else:
            payload = urlsafe_b64encode(data).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode()


@dataclass(frozen=True)
class Links:
    secret: str
    base_url: str
    confirm_days: int = 7
    download_days: int = 30
    clock: Clock = system_clock
    fallbacks: tuple[str, ...] = ()
    reply_address: str = ""  # DRIP_REPLY_ADDRESS: replies come back signed (drip.replies)

    def _plain(self, purpose: str) -> URLSafeSerializer:
        return self._serializers()[0][purpose]

    def _timed(self, purpose: str) -> URLSafeTimedSerializer:
        return self._serializers()[1][purpose]

    def _dumps(self, purpose: str) -> Dumps:
        """Signs for a purpose whose links never expire (the same token as `_plain`)."""
        return self._serializers()[2][purpose]

    def _serializers(
        self,
    ) -> tuple[dict[str, URLSafeSerializer], dict[str, URLSafeTimedSerializer], dict[str, Dumps]]:
        """Built once per Links and kept: every email carries links, so this is hot."""
        cached = self.__dict__.get("_cache")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        clock = self.clock

        class ClockSigner(TimestampSigner):
            """Expiry follows the injected clock, so tests need not wait for days."""

            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        # itsdangerous signs with the last key and verifies under any of them.
        keys = signing_order(self.secret, self.fallbacks)
        plain = {p: URLSafeSerializer(keys, salt=f"drip.{p}") for p in PLAIN}
        cached = (
            plain,
            {p: URLSafeTimedSerializer(keys, salt=f"drip.{p}", signer=ClockSigner) for p in TIMED},
            {p: Dumps(serializer) for p, serializer in plain.items()},
        )
        object.__setattr__(self, "_cache", cached)  # a frozen dataclass may still memoise
        return cached

    def token(self, purpose: str, ident: int) -> str:
        if purpose in TIMED:
            return str(self._timed(purpose).dumps(ident))
        return self._dumps(purpose)(ident)

    def url(self, purpose: str, ident: int) -> str:
        return f"{self.base_url}/{purpose}/{self.token(purpose, ident)}"

    def unsubscribe_url(self, enrollment_id: int) -> str:
        return self.url("unsubscribe", enrollment_id)

    def preferences_url(self, subscriber_id: int) -> str:
        return self.url("preferences", subscriber_id)

    def confirm_url(self, enrollment_id: int) -> str:
        return self.url("confirm", enrollment_id)

    def magnet_url(self, enrollment_id: int) -> str:
        return self.url("magnet", enrollment_id)

    def tag_url(self, enrollment_id: int, tag: str) -> str:
        """A lesson's link that tags its reader ({{ tag_link("has-dates") }})."""
        return f"{self.base_url}/t/{self._dumps('tag')([enrollment_id, tag])}"

    def pace_url(self, enrollment_id: int, choice: str, via: str = "email") -> str:
        """A pace link (pause, slower, now, away), from a lesson's footer ("email") or the
        preferences page (drip.web.public.pace). The signature names the enrollment and
        where the link was; the choice is the path's, as every choice is the reader's to
        make. So a footer's four links cost one signature, not four (the last is kept)."""
        key = (enrollment_id, via)
        memo: tuple[tuple[int, str], str] | None = getattr(self, "_pace_memo", None)
        if memo is None or memo[0] != key:
            memo = (key, self._dumps("pace")([enrollment_id, via]))
            object.__setattr__(self, "_pace_memo", memo)  # a frozen dataclass may memoise
        return f"{self.base_url}/pace/{choice}/{memo[1]}"

    def stop_url(self, recipient_id: int) -> str:
        """A broadcast's unsubscribe link: no more broadcasts, or everything."""
        return f"{self.base_url}/stop/{self.token('broadcast', recipient_id)}"

    def track_url(self, enrollment_id: int, lesson: str, index: int, target: str) -> str:
        """A lesson's link as sent when its sequence tracks links: it names the delivery
        (enrollment and lesson) and the link, and carries where it leads."""
        token = self._dumps("track")([enrollment_id, lesson, index, target])
        return f"{self.base_url}/l/{token}"

    def open_url(self, enrollment_id: int, lesson: str) -> str:
        return f"{self.base_url}/o/{self._dumps('open')([enrollment_id, lesson])}.gif"

    def reply_to(self, message_id: str, plain: bytes) -> bytes:
        """The Reply-To line of the message with `message_id`: the signed reply address
        of that message, or `plain` (the sequence's own reply_to, maybe none) without
        DRIP_REPLY_ADDRESS, or for a preview's made-up id."""
        address = reply_address(self.reply_address, self.secret, message_id)
        return f"Reply-To: {address}\r\n".encode() if address else plain

    def read_tracked(self, purpose: str, token: str) -> list[Any]:
        """What a /l/ or /o/ token carries; raises LinkError when it was forged or cut."""
        try:
            value = self._plain(purpose).loads(token)
        except BadSignature:
            raise LinkError("this link is broken: it may have been cut or altered") from None
        if not isinstance(value, list):
            raise LinkError("this link is broken")
        return value

    def read(self, purpose: str, token: str) -> int:
        """The id a token carries; raises LinkError when it is forged or expired."""
        try:
            if purpose == "confirm":
                value = self._timed(purpose).loads(token, max_age=self.confirm_days * 86400)
            elif purpose == "magnet":
                value = self._timed(purpose).loads(token, max_age=self.download_days * 86400)
            else:
                value = self._plain(purpose).loads(token)
        except SignatureExpired:
            raise LinkError("this link has expired", expired=True) from None
        except BadSignature:
            raise LinkError("this link is not valid: it may have been cut or altered") from None
        if not isinstance(value, int):
            raise LinkError("this link is not valid")
        return value


SAMPLE_KINDS = ("preview", "test")


@dataclass(frozen=True)
class SampleLinks(Links):
    """Links for a preview or a test send: they lead to a page that says so, never to a
    reader's unsubscribe or preferences, so a forwarded preview can touch nobody."""

    kind: str = "preview"

    def url(self, purpose: str, ident: int) -> str:
        return f"{self.base_url}/sample/{self.kind}/{purpose}"

    def stop_url(self, recipient_id: int) -> str:
        return self.url("broadcast", recipient_id)  # a broadcast's unsubscribe: nobody's

    def track_url(self, enrollment_id: int, lesson: str, index: int, target: str) -> str:
        return target  # a preview shows where the link leads; nobody's click is counted

    def open_url(self, enrollment_id: int, lesson: str) -> str:
        return f"{self.base_url}/sample/{self.kind}/open"

    def tag_url(self, enrollment_id: int, tag: str) -> str:
        return f"{self.base_url}/sample/{self.kind}/tag"

    def pace_url(self, enrollment_id: int, choice: str, via: str = "email") -> str:
        return f"{self.base_url}/sample/{self.kind}/pace"


def sample_links(links: Links, kind: str = "preview") -> SampleLinks:
    return SampleLinks(
        links.secret,
        links.base_url,
        links.confirm_days,
        links.download_days,
        links.clock,
        links.fallbacks,
        kind=kind,
    )
