"""How a `DRIP_*` setting is declared (`setting`: its variable, parser, default and help
text) and read: one parser per kind of value, each refusing a malformed value with a
`ConfigError` whose message names the variable and what it should look like."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is malformed; the message names it."""


def positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than zero, got {raw!r}")
    return value


def url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        parts = urlsplit(raw)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in schemes or not (parts.netloc or parts.path):
            raise ConfigError(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)},"
                f" got {raw!r}"
            )
        return raw

    return parse


def base_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{name} must be an http(s) URL such as https://drip.example.org, got {raw!r}"
        )
    return raw.rstrip("/")


def text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty")
    return raw.strip()


def path(name: str, raw: str) -> Path:
    return Path(text(name, raw)).expanduser()


def origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(
                f"{name} must be a comma-separated list of origins such as "
                f"https://blog.example.org, got {origin!r}"
            )
    return origins


def flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), got {raw!r}")


def rate(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be messages per second, e.g. 14, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than zero, got {raw!r}")
    return value


def fraction(name: str, raw: str) -> float:
    try:
        value = float(raw.strip().rstrip("%")) / (100 if raw.strip().endswith("%") else 1)
    except ValueError:
        raise ConfigError(
            f"{name} must be a fraction such as 0.003 (or 0.3%), got {raw!r}"
        ) from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be between 0 and 1 (0.003 or 0.3%), got {raw!r}")
    return value


def address(name: str, raw: str) -> str:
    value = text(name, raw)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "+" in local or " " in value:
        raise ConfigError(
            f"{name} must be a plain address such as bounces@example.org "
            f"(drip adds +<token> itself), got {raw!r}"
        )
    return value


def arns(name: str, raw: str) -> tuple[str, ...]:
    arns = tuple(a.strip() for a in raw.split(",") if a.strip())
    for arn in arns:
        if not arn.startswith("arn:aws") or arn.count(":") != 5:
            raise ConfigError(
                f"{name} must be a comma-separated list of topic ARNs such as "
                f"arn:aws:sns:eu-west-1:123456789012:drip, got {arn!r}"
            )
    return arns


def keys(name: str, raw: str) -> tuple[str, ...]:
    """Previous secret keys, comma-separated; an empty entry is a typo, not a key."""
    keys = tuple(k.strip() for k in raw.split(","))
    if not all(keys):
        raise ConfigError(
            f"{name} holds an empty entry (two commas, or one at either end), got {raw!r}"
        )
    return keys


@overload
def setting(env: str, parse: Callable[[str, str], T], *, default: T, help: str) -> T: ...


@overload
def setting(
    env: str, parse: Callable[[str, str], T], *, default_factory: Callable[[], T], help: str
) -> T: ...


def setting(
    env: str,
    parse: Callable[[str, str], Any],
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    help: str,
) -> Any:
    """A field of `Settings`: read from `env` by `parse`; `help` is its row in
    docs/operating.md's table (`documented_settings`)."""
    metadata = {"env": env, "parse": parse, "help": help}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)
