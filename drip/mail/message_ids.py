"""Message-IDs: the one function that builds every one drip sends, and the one that reads
them back out of a bounce or complaint report.

`<drip.<enrollment>.<label>.<random>.<mac>@<sending domain>>`

- `random`: 64 bits from `secrets`, drawn when the message's row is written before the
  hand-off and stored on that row, so a retried hand-off of the same row carries the same
  id (an inbox drops the duplicate) while two installations, or a database restored or
  moved, never send the same id to the same person (Gmail drops a message whose id it saw).
- `mac`: HMAC-SHA256 of everything before it under the secret key, truncated to 64 bits. A
  report quoting the id proves it came from a message drip sent; one made up from an
  enrollment number and a lesson name does not verify (drip.deliverability.bounces). After a
  rotation, an id made under a previous key (DRIP_SECRET_KEY_FALLBACKS) still verifies.
- the domain is the From address's, as RFC 5322 asks of the generator; it is not signed, as
  relays may fold its case.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache

LABEL = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
SIGNED = re.compile(
    r"<?drip\.(\d{1,18})\.([A-Za-z0-9_-]{1,100})\.([0-9a-f]{16})\.([0-9a-f]{16})@[^>\s]+>?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Signed:
    """What a verified Message-ID names: the enrollment and which of its messages."""

    enrollment_id: int
    label: str  # a lesson key, "confirm", "magnet-link", "offer-<slug>", "broadcast-<id>"
    message_id: str


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC with its key already absorbed: copied per message, not rebuilt."""
    return hmac.new(secret.encode(), b"drip.message-id.", hashlib.sha256)


def _mac(secret: str, local: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(local.encode())
    return mac.hexdigest()[:16]


@lru_cache(maxsize=256)
def sending_domain(sender: str, fallback: str) -> str:
    """The domain of a From address (`Name <a@example.org>`), else `fallback`; cached, as
    every message asks and a library has few senders."""
    domain = parseaddr(sender)[1].rpartition("@")[2].strip().lower()
    return domain if re.fullmatch(r"[a-z0-9.-]+", domain) else fallback


def new_message_id(secret: str, enrollment_id: int, label: str, domain: str) -> str:
    """A fresh Message-ID for one message to one enrollment: store it on the message's row
    before the hand-off, and hand the stored one to every retry of that row."""
    if not LABEL.match(label):
        raise ValueError(f"{label!r} cannot be part of a Message-ID")
    if not secret:
        raise ValueError("a Message-ID needs the secret key (DRIP_SECRET_KEY)")
    local = f"drip.{enrollment_id}.{label}.{secrets.token_hex(8)}"
    return f"<{local}.{_mac(secret, local)}@{domain}>"


def message_id_for(
    secret: str, enrollment_id: int, label: str, sender: str, fallback_domain: str
) -> str:
    """The one way every kind of message gets its id: fresh, signed, at the domain of its
    From address (`sender`; `fallback_domain` when it has none). Written on the message's
    row before the hand-off; every retry of the row hands over the stored one."""
    domain = sending_domain(sender, fallback_domain)
    return new_message_id(secret, enrollment_id, label, domain)


def read_message_ids(secret: str, text: str, fallbacks: tuple[str, ...] = ()) -> list[Signed]:
    """Every Message-ID drip made with `secret`, or a key it replaced (`fallbacks`, so mail
    sent before a rotation still bounces home), in `text` (a header, a quoted message); an
    id whose signature verifies under none of them is not drip's and is left out."""
    if not secret:
        return []
    keys = (secret, *fallbacks)
    found = []
    for match in SIGNED.finditer(text):
        enrollment, label, token, mac = match.groups()
        local = f"drip.{enrollment}.{label}.{token.lower()}"
        if any(hmac.compare_digest(mac.lower(), _mac(key, local)) for key in keys):
            found.append(Signed(int(enrollment), label, f"<{match.group(0).strip('<>')}>"))
    return found
