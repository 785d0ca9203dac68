"""Does an address's domain take mail, and is it a slip of the finger on a common provider?

"Could not look up" is not "does not exist": on an offline laptop or in a container without
DNS every look-up fails, and refusing then would refuse gmail.com. Only a definite answer
(the name does not exist, it has no mail server, or it publishes a null MX) refuses; a
look-up that fails is logged and the address accepted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import dns.exception
import dns.resolver
from email_validator import EmailUndeliverableError
from email_validator.deliverability import validate_email_deliverability

log = logging.getLogger(__name__)

Resolver = Callable[[], dns.resolver.Resolver]
TIMEOUT = 5.0  # seconds for one domain's look-ups; a sign-up should not wait longer

# Where most readers have their mail. A domain one slip away from one of these (two for the
# longer names) is very likely that one mistyped; the real domains that are that close to
# another (ymail.com, mail.com) are listed too, so they are never "corrected".
COMMON = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
    "protonmail.com",
    "aol.com",
    "live.com",
    "msn.com",
)
REAL = frozenset(
    (
        *COMMON,
        "ymail.com",
        "mail.com",
        "email.com",
        "gmx.com",
        "gmx.net",
        "me.com",
        "mac.com",
        "pm.me",
        "googlemail.com",
        "rocketmail.com",
        "yahoo.co.uk",
        "hotmail.co.uk",
    )
)


_CACHE = dns.resolver.LRUCache()  # shared: a burst of gmail.com sign-ups asks DNS once


def system_resolver() -> dns.resolver.Resolver:
    """The machine's resolver; raises dns.resolver.NoResolverConfiguration without one."""
    resolver = dns.resolver.Resolver()
    resolver.lifetime = TIMEOUT
    resolver.cache = _CACHE
    return resolver


def takes_mail(domain: str, resolver: Resolver = system_resolver) -> str | None:
    """None when mail can go to `domain`, or when DNS could not say (logged as a warning);
    otherwise why not, from a definite answer."""
    try:
        found = validate_email_deliverability(domain, domain, dns_resolver=resolver())
    except EmailUndeliverableError as error:
        cause = error.__cause__
        if cause is None or isinstance(cause, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer):
            return str(error)
        unknown = str(cause) or type(cause).__name__
    except dns.exception.DNSException as error:  # no resolver configured at all
        unknown = str(error) or type(error).__name__
    else:
        unknown = str(found.get("unknown-deliverability", ""))
    if unknown:
        _log_unknown(domain, unknown)
    return None


def _log_unknown(domain: str, reason: str) -> None:
    log.warning(
        "could not look up an address's mail domain; accepted it",
        extra={"fields": {"domain": domain, "reason": reason}},
    )


def suggestion(address: str) -> str | None:
    """`address` at the common provider its domain is a slip away from, or None."""
    local, _, domain = address.rpartition("@")
    meant = _meant(domain.lower())
    return f"{local}@{meant}" if local and meant else None


@functools.lru_cache(maxsize=4096)
def _meant(domain: str) -> str | None:
    """The common provider `domain` is a slip away from, or None. Cached: most sign-ups
    come from a few domains, and each comparison is a small dynamic programme."""
    if domain in REAL:
        return None
    best: tuple[int, str] | None = None
    for common in COMMON:
        limit = 2 if len(common) > 7 else 1
        if abs(len(domain) - len(common)) > limit:
            continue  # at least that many insertions or deletions apart
        distance = _distance(domain, common)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, common)
    return best[1] if best else None


def _distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]
