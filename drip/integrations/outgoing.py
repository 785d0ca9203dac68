"""The one way drip POSTs to a URL someone configured (the outgoing webhooks): guarded
against server-side request forgery.

A URL is checked for shape when it is added and again before every POST (a row may be
older than the check, or written past it). Before every POST the host is resolved once,
every address it resolves to must be public (`ipaddress`'s `is_global`: no loopback,
RFC 1918, 100.64.0.0/10, link-local and the 169.254.169.254 metadata address, IPv6 ULA
or link-local, IPv4-mapped IPv6 of any of those), and the connection goes to that checked
address, so a name that rebinds between the check and the connect reaches nothing new.
The Host header and the TLS server name (SNI) stay the URL's host, and https certificates
are verified for it. Redirects are not followed: a 3xx is a failed delivery.

`DRIP_WEBHOOK_ALLOW_PRIVATE` lifts the address rule, for tests against loopback servers
only (`drip doctor` and the production guardrails list it as a problem). An endpoint added
with `--allow-private` may reach private networks (RFC 1918, 100.64.0.0/10, IPv6 ULA), a
tool on the owner's own network, but never loopback, link-local or metadata addresses.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


class UrlError(ValueError):
    """A URL drip will not POST to; the message says why, in words for an operator."""


class Unresolved(UrlError):
    """The host has no address now (which may change: not a reason to refuse an endpoint)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: scheme, host (a name or an address, without brackets), port, path."""

    scheme: str
    host: str
    port: int
    path: str


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now (the system's resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Reach:
    """Which addresses a POST may reach, and how names are resolved (tests inject both)."""

    allow_private: bool = False  # DRIP_WEBHOOK_ALLOW_PRIVATE: any address, tests only
    resolve: Resolver = system_resolver
    tls: ssl.SSLContext | None = field(default=None, compare=False)  # None: system CAs


def _netloc_problem(parts: SplitResult) -> str | None:
    if "@" in parts.netloc:
        return "it holds a user name or password (an @ before the host); put none in the URL"
    if not parts.hostname:
        return "it names no host"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    return None


def check_url(url: str) -> Target:
    """The URL's parts, or UrlError saying what is wrong with it: http or https only, a
    host and nothing before it, a port from 1 to 65535, no spaces or control characters."""
    if not url or any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise UrlError(
            f"{url!r} is not a webhook URL: it holds spaces, backslashes or control characters"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlError(f"{url!r} is not a webhook URL: only http:// and https:// are allowed")
    problem = _netloc_problem(parts)
    host = (parts.hostname or "").rstrip(".")
    if problem is None and not _is_address(host) and not _is_name(host):
        problem = f"{host!r} is not a host name"
    if problem:
        raise UrlError(f"{url!r} is not a webhook URL: {problem}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_name(host: str) -> bool:
    labels = host.split(".")
    return (
        set(host) <= HOST_CHARACTERS
        and len(host) <= 253
        and all(0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" for label in labels)
    )


def refusal(address: str, reach: Reach, private_network: bool = False) -> str | None:
    """Why `address` may not be reached (None: it may). `private_network`: the endpoint
    was added with --allow-private, so RFC 1918, 100.64.0.0/10 and ULA addresses may be."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if reach.allow_private or (ip.is_global and not ip.is_multicast):
        return None
    if private_network and any(ip in net for net in PRIVATE_NETWORKS):
        return None
    return (
        f"{address} is not a public address (loopback, private, link-local, metadata or "
        "reserved); webhooks reach only public addresses"
    )


def pick_address(target: Target, reach: Reach, private_network: bool = False) -> str:
    """The address to connect to: the host resolved once, every answer checked."""
    if _is_address(target.host):
        addresses = [target.host]
    else:
        try:
            addresses = reach.resolve(target.host, target.port)
        except OSError as error:
            raise Unresolved(f"{target.host} does not resolve: {error}") from None
    if not addresses:
        raise Unresolved(f"{target.host} does not resolve")
    for address in addresses:
        problem = refusal(address, reach, private_network)
        if problem:
            where = "" if address == target.host else f"{target.host} resolves to "
            raise UrlError(where + problem)
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host in the Host header."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and the certificate check use the URL's host."""

    def __init__(
        self, target: Target, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    """What a POST came to: the HTTP status (None: no answer), why it failed, and whether
    trying again can help (a malformed URL never gets better)."""

    status: int | None
    problem: str = ""
    hopeless: bool = False


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    reach: Reach,
    *,
    private_network: bool = False,
    timeout: float = 5,
) -> Answer:
    """POST `body` to `url` under the rules above; never raises for the URL or the network."""
    try:
        target = check_url(url)
    except UrlError as error:
        return Answer(None, str(error), hopeless=True)
    try:
        address = pick_address(target, reach, private_network)
    except UrlError as error:
        return Answer(None, str(error))
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        context = reach.tls or ssl.create_default_context()
        connection = _PinnedHTTPS(target, address, timeout, context)
    else:
        connection = _PinnedHTTP(target, address, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        status, location = response.status, response.getheader("Location", "")
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Answer(None, str(error)[:500] or type(error).__name__)
    finally:
        connection.close()
    if 300 <= status < 400:
        return Answer(status, f"HTTP {status}: redirects are not followed (to {location[:300]!r})")
    return Answer(status, "" if 200 <= status < 300 else f"HTTP {status}")
