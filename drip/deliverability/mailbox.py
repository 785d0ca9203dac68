"""The bounce mailbox: delivery status notifications and complaint reports read over IMAP.

Relays that report by email send an RFC 3464 DSN (`multipart/report;
report-type=delivery-status`) to the envelope sender, and mailbox providers send ARF
complaints (RFC 5965, `report-type=feedback-report`). With `DRIP_BOUNCE_IMAP_URL` the worker
reads the mailbox before each pass: each report becomes `Report`s (matched by the VERP
address it was sent to, the returned Message-ID, or the recipient; only the first two,
signed, prove the report is about a message drip sent), is recorded, and the
message is then moved to `DRIP_BOUNCE_IMAP_PROCESSED`, so nothing is read twice. Anything
else (an out-of-office reply, a person's answer) stays where it is, marked with a keyword
so later passes skip it without reading it again.

The events are committed before the message moves: if the move fails, the next pass reads
the report again and its events are duplicates (same key), so nothing counts twice.

A pass reads at most `PER_PASS` new messages (the reply mailbox too) and asks the guardrail
once, after them: a bad import's thousands of hard bounces took 14 ms each on PostgreSQL,
up to a third of it the guardrail's rates asked after each (bench/bounces.py), and held the
pass's sends meanwhile. The rest wait, in order, for the next pass.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.deliverability.bounces import (
    Kind,
    Policy,
    Recorded,
    Report,
    ask_guardrail,
    record_all,
)
from drip.deliverability.verp import read_verp
from drip.mail.message_ids import read_message_ids

log = logging.getLogger(__name__)

SKIPPED = "DripNotAReport"  # keyword on mail that is neither a DSN nor a complaint
STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
VERP_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
PER_PASS = 500  # new messages read in one pass; the rest wait for the next


# -- parsing ------------------------------------------------------------------------------------


def _address(field_value: str | None) -> str:
    """`rfc822; ada@example.org` -> ada@example.org."""
    if not field_value:
        return ""
    value = str(field_value).split(";", 1)[-1].strip()
    return value.strip("<>").strip()


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        return list(payload)
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [
        HeaderParser(policy=email.policy.default).parsestr(block)
        for block in blocks
        if block.strip()
    ]


def _returned(report: Message) -> Message | None:
    """The returned message or its headers (message/rfc822, text/rfc822-headers)."""
    for part in report.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return inner[0] if isinstance(inner[0], Message) else None
        if kind in ("text/rfc822-headers", "text/global-headers"):
            raw = part.get_payload(decode=True) or b""
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            return HeaderParser(policy=email.policy.default).parsestr(text)
    return None


def _verp_candidates(message: Message, returned: Message | None) -> list[str]:
    """Where the VERP address shows: the DSN's own recipient headers, the returned message's
    Return-Path, and an ARF report's Original-Mail-From."""
    found = [str(v) for name in VERP_HEADERS for v in (message.get_all(name) or [])]
    if returned is not None:
        found += [str(v) for v in (returned.get_all("Return-Path") or [])]
    return [a.strip().strip("<>") for value in found for a in value.split(",")]


@dataclass
class Parsed:
    """What one mailbox message turned out to be."""

    kind: str  # dsn, arf, other
    reports: list[Report] = field(default_factory=list)
    note: str = ""


def _key(message: Message, raw: bytes, recipient: str) -> str:
    ident = str(message.get("Message-ID") or "") or hashlib.sha256(raw).hexdigest()
    digest = hashlib.sha256(f"{ident}\x1f{recipient.lower()}".encode()).hexdigest()
    return f"mailbox:{digest[:48]}"


def _report(
    kind: Kind,
    recipient: str,
    message: Message,
    raw: bytes,
    message_id: str,
    verp: str | None,
    diagnostic: str,
) -> Report:
    """One report read from the bounce mailbox, keyed by the message and its recipient."""
    return Report(
        kind,
        recipient,
        "mailbox",
        _key(message, raw, recipient),
        source="mailbox",
        message_id=message_id or None,
        return_path=verp,
        diagnostic=diagnostic,
    )


def parse_report(raw: bytes, policy: Policy | None = None) -> Parsed:
    """A DSN, an ARF complaint or something else; never raises on odd mail."""
    policy = policy or Policy()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if message.get_content_type() != "multipart/report":
        return Parsed("other", note=f"{message.get_content_type()}, not a report")
    report_type = str(message.get_param("report-type", "") or "").lower()
    returned = _returned(message)
    message_id = str(returned.get("Message-ID") or "") if returned is not None else ""
    # A relay may quote only the body, not the returned headers.
    if not read_message_ids(policy.secret, message_id, policy.fallbacks):
        body = message.as_string() if isinstance(message, EmailMessage) else ""
        ours = read_message_ids(policy.secret, body, policy.fallbacks)
        message_id = ours[0].message_id if ours else message_id
    verp = next(
        (
            a
            for a in _verp_candidates(message, returned)
            if read_verp(policy.secret, a, fallbacks=policy.fallbacks)
        ),
        None,
    )
    if report_type == "delivery-status":
        return _dsn(message, raw, message_id, verp)
    if report_type == "feedback-report":
        return _arf(message, raw, message_id, verp, returned)
    return Parsed("other", note=f"multipart/report with report-type {report_type!r}")


def _dsn(message: Message, raw: bytes, message_id: str, verp: str | None) -> Parsed:
    part = next(
        (
            p
            for p in message.walk()
            if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if part is None:
        return Parsed("other", note="delivery-status report without its status part")
    parsed = Parsed("dsn")
    for block in _fields(part)[1:]:  # the first block is per message, then one per recipient
        action = str(block.get("Action", "")).strip().lower()
        status = STATUS.search(str(block.get("Status", "")))
        recipient = _address(block.get("Original-Recipient")) or _address(
            block.get("Final-Recipient")
        )
        if not recipient:
            continue
        diagnostic = " ".join(
            str(block.get(k, "")).strip() for k in ("Status", "Diagnostic-Code") if block.get(k)
        )
        if action != "failed" or status is None:
            parsed.note = f"{action or 'no action'} for {recipient}: not a bounce"
            continue
        kind: Kind = "hard" if status.group(1) == "5" else "soft"
        diagnostic = re.sub(r"\s+", " ", diagnostic)
        parsed.reports.append(_report(kind, recipient, message, raw, message_id, verp, diagnostic))
    return parsed


def _arf(
    message: Message, raw: bytes, message_id: str, verp: str | None, returned: Message | None
) -> Parsed:
    part = next(
        (p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    if part is None:
        return Parsed("other", note="feedback report without its report part")
    fields = _fields(part)
    block = fields[0] if fields else Message()
    feedback = str(block.get("Feedback-Type", "abuse")).strip().lower()
    if verp is None and block.get("Original-Mail-From"):
        verp = _address(block.get("Original-Mail-From"))
    recipients = [_address(str(v)) for v in (block.get_all("Original-Rcpt-To") or [])]
    if not recipients and returned is not None:
        recipients = [_address(str(returned.get("To") or ""))]
    parsed = Parsed("arf")
    if feedback not in ("abuse", "fraud", "virus", "other"):
        parsed.note = f"feedback type {feedback}: not a complaint"
        return parsed
    source = str(block.get("Reported-Domain") or block.get("Source-IP") or "").strip()
    for recipient in filter(None, recipients):
        diagnostic = f"ARF {feedback}" + (f" from {source}" if source else "")
        parsed.reports.append(
            _report("complaint", recipient, message, raw, message_id, verp, diagnostic)
        )
    return parsed


# -- the mailbox -------------------------------------------------------------------------------


@dataclass
class MailboxPass:
    read: int = 0
    handled: int = 0
    left: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    waiting: int = 0  # new messages past this pass's PER_PASS

    def summary(self) -> str:
        text = (
            f"bounce mailbox: {self.read} read, {self.handled} reports handled, "
            f"{self.left} other messages left in place"
        )
        return text + waiting_note(self.waiting)


def waiting_note(waiting: int) -> str:
    return f", {waiting} more wait for the next pass" if waiting else ""


class BounceMailbox:
    """One IMAP session per pass, to the folder `DRIP_BOUNCE_IMAP_URL` names."""

    def __init__(
        self,
        url: str,
        processed: str = "drip-processed",
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "imaps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (993 if self.tls else 143)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.processed = processed
        self.timeout = timeout
        self.capabilities: set[str] = set()

    def _connect(self) -> imaplib.IMAP4:
        imap: imaplib.IMAP4
        if self.tls:
            imap = imaplib.IMAP4_SSL(
                self.host, self.port, timeout=self.timeout, ssl_context=ssl.create_default_context()
            )
        else:
            imap = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
            if "STARTTLS" in imap.capabilities:
                imap.starttls(ssl.create_default_context())
        imap.login(self.user, self.password)
        # imaplib keeps the capabilities from before the login; servers add MOVE after it.
        typ, data = imap.capability()
        self.capabilities = (
            set(data[0].decode().upper().split())
            if typ == "OK" and data and isinstance(data[0], bytes)
            else set(imap.capabilities)
        )
        return imap

    def run(self, session: Session, now: datetime, policy: Policy) -> MailboxPass:
        """Read every new message, record the reports, move them; leave the rest."""
        result = MailboxPass()

        def handle(raw: bytes) -> bool:
            result.read += 1
            parsed = parse_report(raw, policy)
            if parsed.kind == "other":
                result.left += 1
                return False
            result.recorded += _record(session, parsed.reports, now, policy)
            if not parsed.reports:
                log.info(
                    "bounce mailbox: %s report with nothing to record (%s)",
                    parsed.kind,
                    parsed.note,
                )
            result.handled += 1
            return True

        try:
            result.waiting = self.each_new(SKIPPED, handle)
        finally:  # what was recorded before a failure is asked about too
            session.rollback()  # nothing else is pending: each message's reports committed
            if ask_guardrail(session, result.recorded, now, policy):
                session.commit()
        return result

    def each_new(self, keyword: str, handle: Callable[[bytes], bool]) -> int:
        """One IMAP session: each message neither handled yet nor left with `keyword` is
        read and given to `handle`, then moved to the processed folder (True) or left in
        place with `keyword` (False), up to `PER_PASS` of them, oldest first. The bounce and
        the reply mailboxes alike. How many more wait."""
        imap = self._connect()
        try:
            self._ensure_folder(imap)
            _check(imap.select(_quote(self.folder)), f"select {self.folder}")
            typ, data = imap.uid("SEARCH", "UNDELETED", "UNKEYWORD", keyword)
            _check((typ, data), "search")
            found = sorted(data[0].split(), key=int) if data and data[0] else []
            uids = [u.decode() for u in found[:PER_PASS]]
            for uid in uids:
                typ, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                _check((typ, fetched), f"fetch {uid}")
                raw = next((item[1] for item in fetched if isinstance(item, tuple)), b"")
                if handle(raw):
                    self._move(imap, uid)
                else:
                    imap.uid("STORE", uid, "+FLAGS.SILENT", f"({keyword})")
            imap.expunge()
            return len(found) - len(uids)
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def _ensure_folder(self, imap: imaplib.IMAP4) -> None:
        typ, listed = imap.list('""', _quote(self.processed))
        if typ == "OK" and any(item for item in listed if item):
            return
        _check(imap.create(_quote(self.processed)), f"create {self.processed}")

    def _move(self, imap: imaplib.IMAP4, uid: str) -> None:
        if "MOVE" in self.capabilities:
            _check(imap.uid("MOVE", uid, _quote(self.processed)), f"move {uid}")
            return
        _check(imap.uid("COPY", uid, _quote(self.processed)), f"copy {uid}")
        _check(imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted \Seen)"), f"flag {uid}")


def _record(
    session: Session,
    reports: list[Report],
    now: datetime,
    policy: Policy,
) -> list[Recorded]:
    """Committed before the message moves: a failed move only means a re-read. A webhook
    recording the same event at the same moment makes the second try find it a duplicate."""
    try:
        recorded = record_all(session, reports, now, policy, guard=False)
        session.commit()
    except IntegrityError:
        session.rollback()
        recorded = record_all(session, reports, now, policy, guard=False)
        session.commit()
    return recorded


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(answer: tuple[str, list[Any]], what: str) -> None:
    typ, data = answer
    if typ != "OK":
        raise imaplib.IMAP4.error(f"IMAP {what} failed: {typ} {data!r}")


def read_mailbox(
    session: Session, url: str, processed: str, now: datetime, policy: Policy
) -> MailboxPass:
    return BounceMailbox(url, processed).run(session, now, policy)
