"""The signed Reply-To address: `reply+<token>@<domain>` names the message it answers.

With `DRIP_REPLY_ADDRESS` (`reply@example.org`) every lesson, broadcast and offer carries
`Reply-To: reply+r<enrollment>.<label>.<mac>@example.org`, where `label` is what the
message's Message-ID names (a lesson key, `broadcast-<id>`, `offer-<slug>`) and `mac` is
HMAC-SHA256 of the rest under the secret key, cut to 64 bits, as the VERP bounce address
signs its delivery (drip.deliverability.bounces). A reply sent to that address proves it
answers a message drip sent to that enrollment; an address made up from an enrollment
number and a lesson does not verify. After a rotation a token made under a previous key
(`DRIP_SECRET_KEY_FALLBACKS`) still verifies, so replies to old lessons still find home.

Lower-case only: some relays fold the local part's case, so the label is signed folded.
Without `DRIP_REPLY_ADDRESS` the header stays the sequence's own `reply_to` (or none).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache

from drip.mail.message_ids import SIGNED

TOKEN = re.compile(r"^r(\d{1,18})\.([a-z0-9_-]{1,100})\.([0-9a-f]{16})$")


@dataclass(frozen=True)
class Answered:
    """What a verified reply address names: the enrollment, and the message's label
    (folded to lower case)."""

    enrollment_id: int
    label: str


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC with its key already absorbed: copied per message, not rebuilt."""
    return hmac.new(secret.encode(), b"drip.reply.", hashlib.sha256)


def _mac(secret: str, enrollment_id: int, label: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{enrollment_id}.{label}".encode())
    return mac.hexdigest()[:16]


def reply_token(secret: str, enrollment_id: int, label: str) -> str:
    label = label.lower()
    return f"r{enrollment_id}.{label}.{_mac(secret, enrollment_id, label)}"


def reply_address(base: str, secret: str, message_id: str) -> str | None:
    """The signed reply address of the message with `message_id` (drip's own, as
    drip.mail.message_ids makes them), or None when `base` is unset or the id is not one
    of drip's (a preview's)."""
    found = SIGNED.fullmatch(message_id.strip()) if base and secret else None
    if found is None:
        return None
    local, _, domain = base.rpartition("@")
    return f"{local}+{reply_token(secret, int(found.group(1)), found.group(2))}@{domain}"


def read_reply_address(
    address: str, secret: str, fallbacks: tuple[str, ...] = (), base: str = ""
) -> Answered | None:
    """What a reply address names, when its signature holds under `secret` or a key it
    replaced; None for any other address. With `base`, it must be base's +variant."""
    address = parseaddr(address)[1] or address
    local, _, domain = address.strip().lower().rpartition("@")
    stem, plus, token = local.partition("+")
    if not plus or not secret:
        return None
    if base:
        want_local, _, want_domain = base.lower().rpartition("@")
        if (stem, domain) != (want_local, want_domain):
            return None
    found = TOKEN.match(token)
    if found is None:
        return None
    enrollment_id, label = int(found.group(1)), found.group(2)
    keys = (secret, *fallbacks)
    if not any(hmac.compare_digest(found.group(3), _mac(k, enrollment_id, label)) for k in keys):
        return None
    return Answered(enrollment_id, label)
