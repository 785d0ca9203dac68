"""Production guardrails: what must be right before drip sends real mail through a relay.

With `DRIP_SMTP_URL` set, the worker's passes, `drip serve`'s schedule and `drip dispatch`
refuse to send while `problems()` finds any (http links, a @localhost sender, no postal
address, no author name), unless `DRIP_ALLOW_UNSAFE_SENDING` is on; the
dashboard and `/healthz` show the same list either way. With the outbox (the embedded
default) nothing is enforced: nobody receives those messages.

`drip doctor` runs every check, these, whether a reply address has something reading its
replies, and the sender domains' DNS records (SPF, DKIM where a selector is given, DMARC),
and prints each with its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

import dns.exception
import dns.resolver

from drip.content.authors import is_placeholder
from drip.content.sequences import Library
from drip.content.site import SITE_FILE
from drip.core.config import POSTAL_ADDRESS_UNSET, Settings

OK, PROBLEM, UNKNOWN = "ok", "problem", "could not look up"
OFF = "off"  # a feature not set up: nothing wrong, and nothing it would do happens
LOCAL_DOMAINS = ("localhost", "localhost.localdomain")


@dataclass(frozen=True)
class Check:
    """One line of `drip doctor`: what was checked, the verdict, and what was found."""

    name: str
    verdict: str  # OK, PROBLEM, UNKNOWN or OFF
    detail: str

    def __str__(self) -> str:
        return f"{self.verdict:<17} {self.name}: {self.detail}"


def _is_local(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain in LOCAL_DOMAINS or domain.endswith(".localhost")


def senders(settings: Settings, library: Library) -> dict[str, list[str]]:
    """Each From address in use -> where it comes from (DRIP_SENDER or a sequence file)."""
    found: dict[str, list[str]] = {}
    uses_default = not library.sequences or any(not s.sender for s in library.sequences.values())
    if uses_default:
        users = sorted(slug for slug, s in library.sequences.items() if not s.sender)
        found.setdefault(settings.sender, []).append(
            "DRIP_SENDER" + (f" (used by {', '.join(users)})" if users else "")
        )
    for slug, sequence in sorted(library.sequences.items()):
        if sequence.sender:
            found.setdefault(sequence.sender, []).append(f"sequences/{slug}/sequence.yaml")
    return found


def _sender_check(sender: str, where: list[str]) -> Check:
    address = parseaddr(sender)[1]
    origin = "; ".join(where)
    name = f"sender {address or sender!r} from {origin}"
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not domain:
        return Check(name, PROBLEM, "no sender address: set one at your own domain")
    if _is_local(domain):
        return Check(
            name,
            PROBLEM,
            f"@{domain} is not a domain mail can come from: use an address at your own domain",
        )
    return Check(name, OK, f"sends from @{domain}")


def author_check(library: Library) -> Check:
    """Every lesson is signed and sent from the author's name: none may go out signed by
    nobody, or by a stand-in such as "Dr. Author"."""
    unsigned: dict[str, list[str]] = {}
    for slug, sequence in sorted(library.sequences.items()):
        if is_placeholder(sequence.author.name):
            unsigned.setdefault(sequence.author.name, []).append(slug)
    if not unsigned:
        names = sorted({s.author.name for s in library.sequences.values()})
        return Check("author name", OK, ", ".join(names) or "no sequences")
    found = "; ".join(
        f"{f'placeholder {name!r}' if name else 'not set'} for {', '.join(slugs)}"
        for name, slugs in unsigned.items()
    )
    return Check(
        "author name",
        PROBLEM,
        f"{found}: set author.name in sequences/{SITE_FILE} (or DRIP_AUTHOR_NAME); "
        "readers see it in the From line and under every lesson. In the browser: the "
        "admin's Sequences → Site & author page (/admin/site)",
    )


def setting_checks(settings: Settings, library: Library) -> list[Check]:
    """The checks that need no network: base URL, senders, postal address, author."""
    checks = []
    base = urlsplit(settings.base_url)
    if base.scheme == "https":
        checks.append(Check("DRIP_BASE_URL", OK, settings.base_url))
    else:
        checks.append(
            Check(
                "DRIP_BASE_URL",
                PROBLEM,
                f"{settings.base_url} is not https: RFC 8058 one-click unsubscribe "
                "needs an https link",
            )
        )
    checks += [_sender_check(sender, where) for sender, where in senders(settings, library).items()]
    if settings.postal_address == POSTAL_ADDRESS_UNSET:
        checks.append(
            Check(
                "DRIP_POSTAL_ADDRESS",
                PROBLEM,
                "not set: CAN-SPAM requires your postal address in every email",
            )
        )
    else:
        checks.append(Check("DRIP_POSTAL_ADDRESS", OK, settings.postal_address))
    checks.append(author_check(library))
    if settings.webhook_allow_private:
        checks.append(
            Check(
                "DRIP_WEBHOOK_ALLOW_PRIVATE",
                PROBLEM,
                "on: outgoing webhooks may reach loopback and private addresses (this "
                "server, its network, the cloud's metadata service); for tests only",
            )
        )
    return checks


def problems(settings: Settings, library: Library) -> list[str]:
    """One line per reason not to send real mail; always empty for the outbox."""
    if not settings.smtp_url:
        return []
    return [
        f"{c.name}: {c.detail}" for c in setting_checks(settings, library) if c.verdict == PROBLEM
    ]


def blocking(settings: Settings, library: Library) -> list[str]:
    """The problems that stop sending now: none when DRIP_ALLOW_UNSAFE_SENDING is on."""
    return [] if settings.allow_unsafe_sending else problems(settings, library)


def refusal(lines: Iterable[str]) -> str:
    """The message of a command or pass that will not send."""
    return "\n".join(
        [
            "refusing to send through DRIP_SMTP_URL:",
            *(f"  {line}" for line in lines),
            "fix these, or set DRIP_ALLOW_UNSAFE_SENDING=true for a test relay",
        ]
    )


# -- DNS (drip doctor only) ---------------------------------------------------------------------


def _txt(resolver: dns.resolver.Resolver, name: str) -> list[str] | None:
    """The TXT strings at `name`; [] when there are none; None when DNS did not answer."""
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException:
        return None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def _record_check(
    resolver: dns.resolver.Resolver, label: str, name: str, prefix: str, advice: str
) -> Check:
    records = _txt(resolver, name)
    if records is None:
        return Check(label, UNKNOWN, f"no answer from DNS for {name}")
    matching = [r for r in records if r.lower().startswith(prefix)]
    if not matching:
        return Check(label, PROBLEM, f"no {prefix} TXT record at {name}: {advice}")
    return Check(label, OK, matching[0])


def dns_checks(domain: str, dkim_selector: str, resolver: dns.resolver.Resolver) -> list[Check]:
    """SPF, DKIM (when the selector is known) and DMARC records of one sender domain."""
    checks = [
        _record_check(
            resolver,
            f"SPF of {domain}",
            domain,
            "v=spf1",
            "receivers cannot tell your relay may send for this domain",
        )
    ]
    if dkim_selector:
        name = f"{dkim_selector}._domainkey.{domain}"
        checks.append(
            _record_check(
                resolver,
                f"DKIM of {domain}",
                name,
                "v=dkim1",
                "publish your relay's DKIM key under this selector",
            )
        )
    checks.append(
        _record_check(
            resolver,
            f"DMARC of {domain}",
            f"_dmarc.{domain}",
            "v=dmarc1",
            "Gmail and Yahoo require DMARC of bulk senders",
        )
    )
    return checks


def ses_webhook_check(settings: Settings) -> Check:
    """SNS signs the messages of any AWS account's topic, so /webhooks/ses takes only the
    topics named in DRIP_SNS_TOPIC_ARNS, and nothing while none are."""
    name = "DRIP_SNS_TOPIC_ARNS"
    if not settings.sns_topic_arns:
        return Check(
            name,
            OFF,
            "not set: /webhooks/ses refuses every Amazon SES notification (403) until the "
            "SNS topic ARNs of your SES account are named here",
        )
    return Check(name, OK, "/webhooks/ses accepts " + ", ".join(settings.sns_topic_arns))


def reply_check(settings: Settings) -> Check | None:
    """With DRIP_REPLY_ADDRESS, readers' replies go to that mailbox: something must hand them
    to drip (the reply mailbox or a provider's inbound webhook), or nobody sees them and
    `pause_on_reply` never pauses. None when no reply address is set."""
    name = "DRIP_REPLY_ADDRESS"
    if not settings.reply_address:
        return None
    readers = {
        f"the mailbox at {urlsplit(settings.reply_imap_url).hostname}": settings.reply_imap_url,
        "/webhooks/postmark/inbound": settings.postmark_auth,
        "/webhooks/mailgun/inbound": settings.mailgun_signing_key,
        "/webhooks/ses/inbound": settings.sns_topic_arns,
    }
    if found := [where for where, setting in readers.items() if setting]:
        return Check(name, OK, "replies are read from " + ", ".join(found))
    return Check(
        name,
        PROBLEM,
        f"{settings.reply_address} receives readers' replies but nothing reads them: set "
        "DRIP_REPLY_IMAP_URL to that mailbox, or point your provider's inbound webhook at "
        "/webhooks/<provider>/inbound and set DRIP_POSTMARK_AUTH, DRIP_MAILGUN_SIGNING_KEY "
        "or DRIP_SNS_TOPIC_ARNS",
    )


def doctor(settings: Settings, library: Library, resolver: dns.resolver.Resolver) -> list[Check]:
    """Every check, in order: settings first, then each sender domain's DNS records."""
    checks = setting_checks(settings, library)
    if not settings.smtp_url:
        checks.insert(
            0,
            Check(
                "DRIP_SMTP_URL",
                OK,
                "not set: mail goes to the outbox and nothing is enforced; "
                "the checks below are what sending for real needs",
            ),
        )
    else:
        relay = urlsplit(settings.smtp_url)
        checks.insert(
            0, Check("DRIP_SMTP_URL", OK, f"relay {relay.hostname}:{relay.port or ''}".rstrip(":"))
        )
    if settings.allow_unsafe_sending:
        checks.insert(
            1,
            Check(
                "DRIP_ALLOW_UNSAFE_SENDING",
                PROBLEM,
                "on: drip sends even with the problems shown here",
            ),
        )
    checks.append(ses_webhook_check(settings))
    if replies := reply_check(settings):
        checks.append(replies)
    domains = sorted(
        {parseaddr(sender)[1].rpartition("@")[2].lower() for sender in senders(settings, library)}
        - {""}
    )
    for domain in domains:
        if not _is_local(domain):
            checks += dns_checks(domain, settings.dkim_selector, resolver)
    return checks
