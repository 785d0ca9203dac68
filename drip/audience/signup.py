"""A sign-up as it arrives, from drip's page, an embedded form or the JSON API: checked
here, then counted against the limits and queued (drip.audience.signup_queue) for the
worker to take in (drip.audience.intake).

Plain functions of what the request carried (the fields, the peer's IP and user agent),
`now` and the settings, so the three entry points share one set of rules and a test can
call them without a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from drip.audience.mail_domains import Resolver, suggestion, system_resolver, takes_mail
from drip.audience.subscriptions import SubscriptionError, clean_timezone, normalize_email
from drip.audience.tags import TagError, clean_tag
from drip.content.sequences import Sequence
from drip.core.config import Settings

RESPONSIBILITIES = ("0", "1", "2+")  # the form's answers (templates/public/_fields.html)
# Field sizes, checked before any parsing: an address cannot be longer (RFC 5321), and
# nothing longer than these is a person's answer; a huge field would only cost CPU.
MAX_EMAIL = 254
MAX_NAME = 200
MAX_FIELD = 100
MAX_TAGS = 10


class SignUpRefused(Exception):
    """A sign-up that cannot go ahead: `field` the culprit, `suggestion` the address the
    reader probably meant, `throttled` when it is one too many from the network or for the
    address (the web layer answers 429, and 400 for the rest)."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        suggestion: str | None = None,
        *,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.throttled = throttled
        self.field = field
        self.suggestion = suggestion

    @property
    def code(self) -> str:
        """A stable name for the refusal, for programs (the sign-up API's error code)."""
        if self.throttled:
            return "throttled"
        if self.field == "consent":
            return "consent_required"
        return "invalid_email" if self.field in ("email", None) else "invalid_field"


@dataclass(frozen=True)
class SignUp:
    """One sign-up as submitted."""

    email: str
    first_name: str = ""
    timezone: str = ""
    consent: bool = False
    honeypot: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    email_checked: bool = False  # the reader kept the address after "did you mean"


@dataclass(frozen=True)
class Peer:
    """Who sent it, as the web server saw them; kept with the consent record."""

    ip: str
    user_agent: str = ""
    source: str = ""


def _text_problem(form: SignUp) -> SignUpRefused | None:
    """Sizes first, then text a database can store (a lone surrogate cannot be encoded)."""
    limits = {
        "email": (form.email, MAX_EMAIL),
        "first_name": (form.first_name, MAX_NAME),
        "timezone": (form.timezone, MAX_FIELD),
        **{name: (value, MAX_FIELD) for name, value in form.fields.items()},
    }
    for name, (value, limit) in limits.items():
        if len(value) > limit:
            return SignUpRefused(
                f"The {name.replace('_', ' ')} is too long (at most {limit} characters).",
                field=name,
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return SignUpRefused(
                f"The {name.replace('_', ' ')} has characters we cannot "
                "read. Please type it again.",
                field=name,
            )
    return None


def limits(kind: str, ip: str, address: str | None, settings: Settings) -> dict[str, int]:
    """The counters one attempt of `kind` (a sign-up, a fresh-link request) moves: per IP,
    and per address once the address is known; each with its hourly limit."""
    keys = {f"{kind}:ip:{ip}": settings.signup_limit_ip}
    if address is not None:
        keys[f"{kind}:address:{address}"] = settings.signup_limit_address
    return keys


def signup_attributes(sequence: Sequence, raw: dict[str, str]) -> dict[str, Any]:
    """The extra answers a sequence asks for (`signup_fields`), checked; blanks are left out."""
    attributes: dict[str, Any] = {}
    if "exam_date" in sequence.signup_fields and raw.get("exam_date", "").strip():
        try:
            attributes["exam_date"] = date.fromisoformat(raw["exam_date"].strip()).isoformat()
        except ValueError:
            raise SignUpRefused(
                "Please give the exam date as a date, e.g. 2026-09-15.", field="exam_date"
            ) from None
    if "responsibilities" in sequence.signup_fields and raw.get("responsibilities", ""):
        if raw["responsibilities"] not in RESPONSIBILITIES:
            raise SignUpRefused(
                "Please pick one of the answers about responsibilities.", field="responsibilities"
            )
        attributes["responsibilities"] = raw["responsibilities"]
    return attributes


def _address(
    form: SignUp, settings: Settings, resolver: Resolver
) -> tuple[str | None, SignUpRefused | None]:
    """(address, problem): the address well formed, not a slip on a common provider (unless
    the reader said it is right), and, with DRIP_CHECK_EMAIL_DOMAIN, at a domain DNS does
    not deny mail."""
    typed = form.email.strip()
    try:
        address = normalize_email(typed)
    except SubscriptionError:
        return None, SignUpRefused(
            "That doesn't look like an email address we can write to. Please check it.",
            field="email",
        )
    meant = None if form.email_checked else suggestion(typed)
    if meant:
        return None, SignUpRefused(f"Did you mean {meant}?", field="email", suggestion=meant)
    why = takes_mail(address.rpartition("@")[2], resolver) if settings.check_email_domain else None
    if why:
        refused = SignUpRefused(
            f"{why} Please check the address.", field="email", suggestion=suggestion(typed)
        )
        return None, refused
    return address, None


def check(
    sequence: Sequence,
    form: SignUp,
    settings: Settings,
    resolver: Resolver = system_resolver,
) -> tuple[str | None, SignUpRefused | None, str | None, dict[str, Any]]:
    """(address, problem, time zone, attributes) from the form; no database involved."""
    if problem := _text_problem(form):
        return None, problem, None, {}
    try:
        timezone: str | None = clean_timezone(form.timezone.strip() or None, sequence)
    except SubscriptionError:
        timezone = None  # an odd browser value: the sequence's zone is a fine default
    if not form.email.strip():
        return None, SignUpRefused("Please enter your email address.", field="email"), None, {}
    address, problem = _address(form, settings, resolver)
    if problem or address is None:
        return None, problem, None, {}
    if not form.consent:
        return (
            address,
            SignUpRefused("Please tick the box to say you want these emails.", field="consent"),
            None,
            {},
        )
    try:
        attributes = signup_attributes(sequence, form.fields)
    except SignUpRefused as refused:
        return address, refused, None, {}
    if len(form.tags) > MAX_TAGS:
        return address, SignUpRefused(f"At most {MAX_TAGS} tags.", field="tags"), None, {}
    try:
        for tag in form.tags:
            clean_tag(tag)
    except TagError as error:
        return address, SignUpRefused(str(error), field="tags"), None, {}
    return address, None, timezone, attributes
