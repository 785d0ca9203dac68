"""Settings from `DRIP_*` environment variables, each with a default and a help text.

A malformed value stops start-up with one line naming the variable. Nothing here runs at
import time: `load_settings()` is called by the application factory and the CLI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from drip.core import setting_values as read
from drip.core.files import FILE_MODE, private_dir
from drip.core.setting_values import ConfigError as ConfigError  # raised here too; re-exported
from drip.core.setting_values import setting

# The folder above the package: the checkout, when drip runs from one (its sequences/).
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
POSTAL_ADDRESS_UNSET = "(postal address not set: DRIP_POSTAL_ADDRESS)"


def _default_sequences_dir() -> Path:
    """./sequences of the directory drip starts in, so an installed drip finds the author's."""
    here = Path.cwd() / "sequences"
    return here if here.is_dir() else PROJECT_ROOT / "sequences"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "drip"


@dataclass(frozen=True)
class Settings:
    """Every setting drip reads. `metadata["help"]` is what docs/operating.md's table shows."""

    data_dir: Path = setting(
        "DRIP_DATA_DIR",
        read.path,
        default_factory=_default_data_dir,
        help="Where the embedded default keeps its SQLite database, outbox and generated "
        "secret (outside the repository). Default: $XDG_DATA_HOME/drip or "
        "~/.local/share/drip.",
    )
    database_url: str = setting(
        "DRIP_DATABASE_URL",
        read.url(("sqlite", "postgresql", "postgres")),
        default="",
        help="SQLAlchemy URL of the database, e.g. postgresql+psycopg://drip@db/drip. "
        "Default: a SQLite file in the data directory.",
    )
    database_pooler: bool = setting(
        "DRIP_DATABASE_POOLER",
        read.flag,
        default=False,
        help="true when DRIP_DATABASE_URL is a pooler in transaction mode (PgBouncer before "
        "1.21): drip then prepares no statement on the server and sets nothing at connect, "
        "since each transaction may get another server connection.",
    )
    smtp_url: str = setting(
        "DRIP_SMTP_URL",
        read.url(("smtp", "smtps")),
        default="",
        help="smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465 "
        "(implicit TLS). Unset: messages are written as .eml files to the outbox.",
    )
    secret_key: str = setting(
        "DRIP_SECRET_KEY",
        read.text,
        default="",
        help="Signs links in email and session cookies. Unset: generated once and kept in "
        "the data directory.",
    )
    secret_key_fallbacks: tuple[str, ...] = setting(
        "DRIP_SECRET_KEY_FALLBACKS",
        read.keys,
        default=(),
        help="Previous secret keys, comma-separated, after rotating DRIP_SECRET_KEY: "
        "links, bounce addresses and Message-IDs in mail already sent, and operators' "
        "cookies, still verify under them; everything new is signed with DRIP_SECRET_KEY "
        "alone.",
    )
    base_url: str = setting(
        "DRIP_BASE_URL",
        read.base_url,
        default="http://127.0.0.1:8000",
        help="Public address of drip; links in email start with it. Must be https to send "
        "through DRIP_SMTP_URL (RFC 8058 one-click unsubscribe). Unset: `drip serve` uses "
        "the host and port it serves (it prints which), other commands http://127.0.0.1:8000.",
    )
    sender: str = setting(
        "DRIP_SENDER",
        read.text,
        default="drip <drip@localhost>",
        help="From address used by sequences that do not name their own sender. An "
        "address at your own domain (not @localhost) is required to send through "
        "DRIP_SMTP_URL.",
    )
    postal_address: str = setting(
        "DRIP_POSTAL_ADDRESS",
        read.text,
        default=POSTAL_ADDRESS_UNSET,
        help="Sender's postal address, shown in every email's footer (CAN-SPAM). "
        "Required to send through DRIP_SMTP_URL.",
    )
    author_name: str = setting(
        "DRIP_AUTHOR_NAME",
        read.text,
        default="",
        help="The courses' author as readers should see it, where no file names one "
        "(author.name in sequences/site.yaml or a sequence.yaml wins): the From name, the "
        "signature under every email, the sign-up page and the PDF covers. Unset and "
        "unnamed in the files: drip check warns, and sending through DRIP_SMTP_URL is held.",
    )
    unsubscribe_mailto: str = setting(
        "DRIP_UNSUBSCRIBE_MAILTO",
        read.text,
        default="",
        help="Optional address added as a mailto: to List-Unsubscribe.",
    )
    sequences_dir: Path = setting(
        "DRIP_SEQUENCES_DIR",
        read.path,
        default_factory=_default_sequences_dir,
        help="Folder holding one sub-folder per sequence. Default: sequences/ in the "
        "current directory when there is one, else the sequences/ of the checkout "
        "drip runs from.",
    )
    dispatch_interval: int = setting(
        "DRIP_DISPATCH_INTERVAL",
        read.positive_int,
        default=15,
        help="Seconds between two dispatch passes of the scheduler (default 15); a new "
        "reader's confirmation email goes out within this time.",
    )
    batch_size: int = setting(
        "DRIP_BATCH_SIZE",
        read.positive_int,
        default=200,
        help="Messages one worker claims at a time for each of its SMTP sessions "
        "(DRIP_SMTP_CONNECTIONS); the sessions stay open from one batch to the next of a pass.",
    )
    send_rate: float = setting(
        "DRIP_SEND_RATE",
        read.rate,
        default=0.0,
        help="Messages per second the relay allows, across all workers together (they "
        "share the budget through the database); never exceeded in any second. "
        "Unset: no cap.",
    )
    smtp_connections: int = setting(
        "DRIP_SMTP_CONNECTIONS",
        read.positive_int,
        default=1,
        help="SMTP sessions one worker keeps busy at once (within DRIP_SEND_RATE), for every "
        "kind of message: for a relay far away on the network, where one session waits on "
        "every reply.",
    )
    lease_seconds: int = setting(
        "DRIP_LEASE_SECONDS",
        read.positive_int,
        default=300,
        help="How long a claim lasts; a dead worker's readers go back to the queue after.",
    )
    max_attempts: int = setting(
        "DRIP_MAX_ATTEMPTS",
        read.positive_int,
        default=8,
        help="Transient SMTP failures tolerated for one lesson before the enrollment is "
        "paused for the operator.",
    )
    confirm_days: int = setting(
        "DRIP_CONFIRM_DAYS",
        read.positive_int,
        default=7,
        help="Days a confirmation link stays valid; unconfirmed sign-ups expire after.",
    )
    reader_daily_cap: int = setting(
        "DRIP_READER_DAILY_CAP",
        read.positive_int,
        default=1,
        help="Emails one reader is sent in a day (their time zone), across every course "
        "and broadcast; more wait for the reader's next day. Confirmations, their reminder "
        "and download links they asked for are never held or counted.",
    )
    reader_weekly_cap: int | None = setting(
        "DRIP_READER_WEEKLY_CAP",
        read.positive_int,
        default=None,
        help="Emails one reader is sent in a week (Monday to Sunday, their time zone), "
        "across every course and broadcast; more wait for the next week. Unset: no weekly "
        "cap.",
    )
    link_days: int = setting(
        "DRIP_LINK_DAYS",
        read.positive_int,
        default=30,
        help="Days a lead-magnet download link stays valid.",
    )
    cors_origins: tuple[str, ...] = setting(
        "DRIP_CORS_ORIGINS",
        read.origins,
        default=(),
        help="Comma-separated origins (e.g. https://blog.example.org) allowed to post to "
        "the JSON sign-up endpoint.",
    )
    check_email_domain: bool = setting(
        "DRIP_CHECK_EMAIL_DOMAIN",
        read.flag,
        default=True,
        help="Refuse sign-ups whose address domain DNS says does not exist or takes no "
        "mail. A look-up that fails (no DNS: an offline laptop, a container) accepts the "
        "address and logs a warning.",
    )
    signup_limit_ip: int = setting(
        "DRIP_SIGNUP_LIMIT_IP",
        read.positive_int,
        default=20,
        help="Sign-ups (and, separately, fresh-link requests) accepted per IP address per "
        "hour, across all web workers.",
    )
    signup_limit_address: int = setting(
        "DRIP_SIGNUP_LIMIT_ADDRESS",
        read.positive_int,
        default=5,
        help="Sign-ups (and, separately, fresh-link requests) accepted per email address per hour.",
    )
    bounce_address: str = setting(
        "DRIP_BOUNCE_ADDRESS",
        read.address,
        default="",
        help="Envelope sender for bounces, e.g. bounces@example.org: each message goes out "
        "from bounces+<signed delivery token>@example.org (VERP), so a bounce finds "
        "its delivery. Unset: the sequence's From address.",
    )
    bounce_imap_url: str = setting(
        "DRIP_BOUNCE_IMAP_URL",
        read.url(("imap", "imaps")),
        default="",
        help="imaps://user:pass@host/INBOX (or imap://): the worker reads bounce reports "
        "(DSN, ARF) from this mailbox every pass and moves those it handled.",
    )
    bounce_imap_processed: str = setting(
        "DRIP_BOUNCE_IMAP_PROCESSED",
        read.text,
        default="drip-processed",
        help="Folder of the bounce mailbox that handled reports are moved to (created if absent).",
    )
    reply_address: str = setting(
        "DRIP_REPLY_ADDRESS",
        read.address,
        default="",
        help="Where readers' replies go, e.g. reply@example.org: each lesson, broadcast "
        "and offer carries Reply-To reply+<signed token>@example.org, so a reply finds its "
        "reader and lesson. Unset: the sequence's reply_to (the author's address).",
    )
    reply_imap_url: str = setting(
        "DRIP_REPLY_IMAP_URL",
        read.url(("imap", "imaps")),
        default="",
        help="imaps://user:pass@host/INBOX (or imap://): the worker reads readers' replies "
        "from this mailbox every pass and moves those it handled.",
    )
    reply_imap_processed: str = setting(
        "DRIP_REPLY_IMAP_PROCESSED",
        read.text,
        default="drip-processed",
        help="Folder of the reply mailbox that handled replies are moved to (created if absent).",
    )
    webhook_token: str = setting(
        "DRIP_WEBHOOK_TOKEN",
        read.text,
        default="",
        help="Bearer token for drip's own POST /webhooks/bounce. Unset: that endpoint "
        "refuses everything.",
    )
    webhook_allow_private: bool = setting(
        "DRIP_WEBHOOK_ALLOW_PRIVATE",
        read.flag,
        default=False,
        help="UNSAFE, for tests only: outgoing webhooks may reach loopback, private and "
        "link-local addresses (the cloud's metadata service too). Off, they reach public "
        "addresses only. `drip doctor` and a real relay's guardrails list it as a problem.",
    )
    sns_certificate: Path | None = setting(
        "DRIP_SNS_CERTIFICATE",
        read.path,
        default=None,
        help="A local PEM file holding Amazon SNS's signing certificate, used instead of "
        "downloading the one the SigningCertURL names (air-gapped installs, tests).",
    )
    sns_topic_arns: tuple[str, ...] = setting(
        "DRIP_SNS_TOPIC_ARNS",
        read.arns,
        default=(),
        help="Comma-separated SNS topic ARNs /webhooks/ses accepts (any other topic's "
        "signed messages are refused). Unset: /webhooks/ses refuses everything (403), "
        "since SNS signs any AWS account's topic.",
    )
    postmark_auth: str = setting(
        "DRIP_POSTMARK_AUTH",
        read.text,
        default="",
        help="user:password that Postmark's webhook must send as HTTP basic auth (put "
        "https://user:password@drip.example.org/webhooks/postmark in Postmark).",
    )
    mailgun_signing_key: str = setting(
        "DRIP_MAILGUN_SIGNING_KEY",
        read.text,
        default="",
        help="Mailgun's HTTP webhook signing key, checking POST /webhooks/mailgun.",
    )
    sendgrid_public_key: str = setting(
        "DRIP_SENDGRID_PUBLIC_KEY",
        read.text,
        default="",
        help="The verification key SendGrid shows for its signed event webhook (base64), "
        "checking POST /webhooks/sendgrid.",
    )
    soft_bounce_limit: int = setting(
        "DRIP_SOFT_BOUNCE_LIMIT",
        read.positive_int,
        default=3,
        help="Soft bounces in a row (no clean send between them) that suppress an address "
        "(default 3).",
    )
    complaint_pause: float = setting(
        "DRIP_COMPLAINT_PAUSE",
        read.fraction,
        default=0.003,
        help="Complaint rate of the last 1,000 sends (once 500 are counted) above which "
        "all sending pauses until an operator resumes it (default 0.003, 0.3%).",
    )
    bounce_pause: float = setting(
        "DRIP_BOUNCE_PAUSE",
        read.fraction,
        default=0.05,
        help="Hard-bounce rate of the last 1,000 sends (once 500 are counted) above which "
        "all sending pauses until an operator resumes it (default 0.05, 5%).",
    )
    allow_unsafe_sending: bool = setting(
        "DRIP_ALLOW_UNSAFE_SENDING",
        read.flag,
        default=False,
        help="Send through DRIP_SMTP_URL although `drip doctor` finds problems (http links, "
        "a @localhost sender, no postal address, no author name): for a test relay only. "
        "The problems still show on the dashboard and in /healthz.",
    )
    metrics_token: str = setting(
        "DRIP_METRICS_TOKEN",
        read.text,
        default="",
        help="Bearer token /metrics asks for; with it a scrape gets every count. Unset: "
        "/metrics is open and shows only what no sign-up moves (last pass age, "
        "scheduler alive, guardrail problems).",
    )
    home_url: str = setting(
        "DRIP_HOME_URL",
        read.base_url,
        default="",
        help="Where / redirects (e.g. your blog). Unset: / is a small page linking to "
        "each course's sign-up page.",
    )
    dkim_selector: str = setting(
        "DRIP_DKIM_SELECTOR",
        read.text,
        default="",
        help="DKIM selector your relay signs with; `drip doctor` then looks up "
        "<selector>._domainkey.<sender domain>.",
    )
    studio_git: bool = setting(
        "DRIP_STUDIO_GIT",
        read.flag,
        default=True,
        help="Where the sequences folder is in a git repository, each change made in the "
        "admin's course editor is a commit with the operator as author. Set false to "
        "write the files without committing.",
    )

    @property
    def verifying_keys(self) -> tuple[str, ...]:
        """The secret key, then its fallbacks: what a signature drip made may be under."""
        return (self.secret_key, *self.secret_key_fallbacks)

    @property
    def batch(self) -> int:
        """Messages a worker claims at a time: DRIP_BATCH_SIZE for each SMTP session, so that
        a batch takes about as long with eight sessions as with one, and the sessions wait
        at a batch's edges (its first envelopes, its last answers) as rarely."""
        return self.batch_size * self.smtp_connections

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'drip.sqlite3'}"


def documented_settings() -> list[tuple[str, str]]:
    """(variable, help) for every setting, in declaration order, as docs/operating.md lists them."""
    return [(f.metadata["env"], f.metadata["help"]) for f in fields(Settings)]


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read every `DRIP_*` variable, refusing malformed ones; `overrides` win (tests use them)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f.metadata["env"])
        if raw is not None and f.name not in overrides:
            values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
    values.update(overrides)
    settings = Settings(**values)
    if not settings.secret_key:
        settings = Settings(**{**values, "secret_key": _stored_secret(settings.data_dir)})
    if settings.secret_key in settings.secret_key_fallbacks:
        raise ConfigError(
            "DRIP_SECRET_KEY_FALLBACKS holds the current DRIP_SECRET_KEY: list only the keys "
            "it replaced"
        )
    return settings


def _stored_secret(data_dir: Path) -> str:
    """Generate the secret once and keep it beside the embedded database, never in the repo."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    private_dir(data_dir)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:  # another process won the race; use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)
        handle.write(secret)
    return secret


def signing_order(secret: str, fallbacks: tuple[str, ...]) -> list[str]:
    """The keys as itsdangerous wants them: oldest first, the one that signs last."""
    return [*reversed(fallbacks), secret]
