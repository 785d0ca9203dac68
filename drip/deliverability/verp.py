"""VERP: the envelope sender of each message carries a signed token of its delivery (or, for a
confirmation email, its enrollment), so a bounce names what bounced without trusting its text.
Lower-case hex only: some relays fold the local part's case."""

from __future__ import annotations

import hashlib
import hmac
import re
from email.utils import parseaddr
from functools import lru_cache

from drip.core.config import Settings
from drip.mail.transports import envelope_sender

VERP_TOKEN = re.compile(r"^([de])(\d+)-([0-9a-f]{16})$")


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC with its key already absorbed: copied per message, not rebuilt."""
    return hmac.new(secret.encode(), b"drip.verp.", hashlib.sha256)


def _signature(secret: str, kind: str, ident: int) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{kind}{ident}".encode())
    return mac.hexdigest()[:16]


def verp_token(secret: str, *, delivery_id: int | None, enrollment_id: int) -> str:
    """`d<delivery id>-<sig>` for a lesson, `e<enrollment id>-<sig>` for a confirmation email
    (which has no delivery row). Lower-case hex only: some relays fold the local part's case."""
    kind, ident = ("d", delivery_id) if delivery_id is not None else ("e", enrollment_id)
    return f"{kind}{ident}-{_signature(secret, kind, ident)}"


def read_verp(
    secret: str, address: str, bounce_address: str = "", fallbacks: tuple[str, ...] = ()
) -> tuple[str, int] | None:
    """("d", delivery id) or ("e", enrollment id) from a VERP address whose signature holds
    under `secret` or a key it replaced (`fallbacks`); None for any other address. With
    `bounce_address`, the address must be its +variant."""
    address = parseaddr(address)[1] or address
    local, _, domain = address.strip().lower().rpartition("@")
    base, plus, token = local.partition("+")
    if not plus:
        return None
    if bounce_address:
        want_local, _, want_domain = bounce_address.lower().rpartition("@")
        if (base, domain) != (want_local, want_domain):
            return None
    found = VERP_TOKEN.match(token)
    if found is None or not secret:
        return None
    kind, ident = found.group(1), int(found.group(2))
    keys = (secret, *fallbacks)
    if not any(hmac.compare_digest(found.group(3), _signature(k, kind, ident)) for k in keys):
        return None
    return kind, ident


_plain_envelope = lru_cache(maxsize=256)(envelope_sender)  # parsed From, for every message


def return_path(
    settings: Settings, sender: str, delivery_id: int | None, enrollment_id: int
) -> str:
    """The envelope sender (MAIL FROM) of one message: the VERP address of its delivery when
    `DRIP_BOUNCE_ADDRESS` is set, else the From address of the sequence."""
    if not settings.bounce_address:
        return _plain_envelope(sender)
    local, _, domain = settings.bounce_address.rpartition("@")
    token = verp_token(settings.secret_key, delivery_id=delivery_id, enrollment_id=enrollment_id)
    return f"{local}+{token}@{domain}"
