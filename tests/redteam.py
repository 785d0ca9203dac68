"""Replay the hostile requests of issue 10 against a running drip: each must be refused
with the answer it deserves, none may answer 5xx, and the database must not change.

    python -m tests.redteam --base-url http://127.0.0.1:8000 --secret KEY \\
        --database-url sqlite:///... --operator ops@example.org --password ...

Bounded (one pass over a fixed list, a timeout per request) and loopback only. The
database must hold the reader `ada@example.org` in the course `tiny` (enrollment and
subscriber 1) and the operator; tests/web/test_redteam.py sets that up and runs it against
`drip serve` on SQLite and gunicorn on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine

from drip.mail.links import Links
from drip.store.models import Base

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Tables a refused request may legitimately touch: the counters of the rate limits, and the
# operator's last login and session (the red team logs in to reach the admin pages).
MAY_CHANGE = ("rate_limits", "operators", "operator_sessions")
# ... and the audit log's record of that login (or of a failed one): any other entry means a
# refused request was taken for an operator's action.
LOGINS = ("log in", "failed login")
TIMEOUT = 30


@dataclass(frozen=True)
class Attack:
    name: str
    send: Callable[[requests.Session], requests.Response]
    expected: tuple[int, ...]
    check: Callable[[requests.Response], bool] = lambda _response: True


@dataclass
class Report:
    tried: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)


def snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        tables = {
            t.name: conn.execute(text(f'SELECT * FROM "{t.name}" ORDER BY 1')).all()
            for t in Base.metadata.sorted_tables
            if t.name not in MAY_CHANGE
        }
        tables["audit_entries"] = conn.execute(
            text("SELECT * FROM audit_entries WHERE action NOT IN :logins ORDER BY 1").bindparams(
                bindparam("logins", expanding=True)
            ),
            {"logins": list(LOGINS)},
        ).all()
        return tables


def _csrf(session: requests.Session, url: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=TIMEOUT).text)
    return match[1] if match else ""


def attacks(base: str, links: Links, operator: str, password: str) -> list[Attack]:
    def path(url: str) -> str:
        return base + urlsplit(url).path

    def sign_up(**fields: str) -> Callable[[requests.Session], requests.Response]:
        def send(web: requests.Session) -> requests.Response:
            data = {"csrf_token": _csrf(web, f"{base}/subscribe/tiny"), "consent": "yes", **fields}
            return web.post(f"{base}/subscribe/tiny", data=data, timeout=TIMEOUT)

        return send

    def api(body: str | bytes, **headers: str) -> Callable[[requests.Session], requests.Response]:
        return lambda web: web.post(
            f"{base}/api/subscriptions",
            data=body,
            timeout=TIMEOUT,
            headers={"Content-Type": "application/json", **headers},
        )

    def admin(
        url: str,
        next_url: str | None = None,
    ) -> Callable[[requests.Session], requests.Response]:
        def send(web: requests.Session) -> requests.Response:
            data = {
                "csrf_token": _csrf(web, f"{base}/admin/login"),
                "email": operator,
                "password": password,
                **({"next": next_url} if next_url else {}),
            }
            login = web.post(
                f"{base}/admin/login", data=data, allow_redirects=False, timeout=TIMEOUT
            )
            return (
                login
                if next_url is not None
                else web.get(f"{base}{url}", timeout=TIMEOUT, allow_redirects=False)
            )

        return send

    def preferences(enrollment: str) -> Callable[[requests.Session], requests.Response]:
        def send(web: requests.Session) -> requests.Response:
            url = path(links.preferences_url(1))
            return web.post(
                url,
                data={"csrf_token": _csrf(web, url), "action": "leave", "enrollment": enrollment},
                timeout=TIMEOUT,
            )

        return send

    forged = links.token("confirm", 1)[:-3] + "abc"
    return [
        Attack(
            "an 8 MB address", sign_up(email="a" * (8 * 1024 * 1024) + "@example.org"), (400, 413)
        ),
        Attack("an address of 300 characters", sign_up(email="a" * 300 + "@example.org"), (400,)),
        Attack(
            "a sign-up without its CSRF token",
            lambda web: web.post(
                f"{base}/subscribe/tiny",
                timeout=TIMEOUT,
                data={"email": "eve@example.org", "consent": "yes"},
            ),
            (400,),
        ),
        Attack("JSON of 100,000 [", api("[" * 100_000), (400,)),
        Attack(
            "a JSON body of 20 KB",
            api(
                json.dumps(
                    {
                        "email": "eve@example.org",
                        "sequence": "tiny",
                        "consent": True,
                        "pad": "x" * 20_000,
                    }
                )
            ),
            (400,),
        ),
        Attack(
            "a first name with a lone surrogate",
            api(
                '{"email": "eve@example.org", "sequence": "tiny", "consent": true, '
                '"first_name": "\\ud800x"}'
            ),
            (400,),
        ),
        Attack(
            "a JSON sign-up from a foreign origin",
            api(
                json.dumps({"email": "eve@example.org", "sequence": "tiny", "consent": True}),
                Origin="https://evil.example",
            ),
            (403,),
        ),
        Attack(
            "a JSON sign-up to a sequence that does not exist",
            api(json.dumps({"email": "eve@example.org", "sequence": "nope", "consent": True})),
            (404,),
            lambda r: '"tiny"' in r.json().get("error", {}).get("message", ""),
        ),
        Attack(
            "enrollment=9223372036854775808 on the preferences form",
            preferences("9223372036854775808"),
            (400,),
        ),
        Attack("someone else's enrollment on the preferences form", preferences("2"), (400,)),
        Attack(
            "a plain GET of a real confirmation link (a mail scanner)",
            lambda web: web.get(path(links.confirm_url(1)), timeout=TIMEOUT),
            (200,),
            lambda r: 'method="post"' in r.text,
        ),
        Attack(
            "a forged confirmation link",
            lambda web: web.post(
                f"{base}/confirm/{forged}",
                timeout=TIMEOUT,
                data={"csrf_token": _csrf(web, f"{base}/confirm/{forged}")},
            ),
            (400,),
        ),
        Attack(
            "a forged one-click unsubscribe",
            lambda web: web.post(
                f"{base}/unsubscribe/{forged}",
                data={"List-Unsubscribe": "One-Click"},
                timeout=TIMEOUT,
            ),
            (400,),
        ),
        Attack(
            "an unsubscribe link used as a preferences link",
            lambda web: web.get(
                f"{base}/preferences/{links.token('unsubscribe', 1)}", timeout=TIMEOUT
            ),
            (400,),
        ),
        Attack(
            "a fresh-link request for an address that is not one",
            lambda web: web.post(
                f"{base}/resend",
                timeout=TIMEOUT,
                data={
                    "csrf_token": _csrf(web, f"{base}/confirm/{forged}"),
                    "purpose": "magnet",
                    "email": "not an address",
                },
            ),
            (400,),
        ),
        Attack("/admin/readers/2147483648", admin("/admin/readers/2147483648"), (404,)),
        Attack(
            "a login next holding CR/LF",
            admin("", next_url="/admin/\r\nSet-Cookie: evil=1"),
            (302,),
            lambda r: (
                "evil" not in r.headers.get("Location", "")
                and "evil" not in r.headers.get("Set-Cookie", "")
            ),
        ),
        Attack(
            "path traversal in the outbox viewer",
            admin("/admin/outbox/..%2f..%2fdrip.sqlite3"),
            (400, 404),
        ),
        Attack(
            "the admin without a login",
            lambda web: web.get(f"{base}/admin/readers/1", allow_redirects=False, timeout=TIMEOUT),
            (302,),
            lambda r: r.headers.get("Location", "").startswith("/admin/login"),
        ),
    ]


def run(
    base: str,
    secret: str,
    engine: Engine,
    operator: str,
    password: str,
    out: Callable[[str], None] = print,
) -> Report:
    host = urlsplit(base).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"the red team only attacks loopback, not {host}")
    links = Links(secret, base)
    report = Report()
    before = snapshot(engine)
    for attack in attacks(base, links, operator, password):
        report.tried += 1
        with requests.Session() as web:
            try:
                answer = attack.send(web)
            except requests.RequestException as error:
                report.failures.append(f"{attack.name}: no answer ({error})")
                continue
        if answer.status_code in attack.expected and attack.check(answer):
            report.refused += 1
        else:
            report.failures.append(
                f"{attack.name}: answered {answer.status_code} (expected "
                f"{' or '.join(map(str, attack.expected))}, and "
                "an answer that passes its check)"
            )
        if answer.status_code >= 500:
            report.failures.append(f"{attack.name}: a server error ({answer.status_code})")
    if snapshot(engine) != before:
        report.failures.append("the database changed")
    out(f"red team: {report.tried} hostile requests, {report.refused} refused correctly")
    for failure in report.failures:
        out(f"  FAILED {failure}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("base-url", "secret", "database-url", "operator", "password"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    engine = create_engine(args.database_url)
    report = run(args.base_url.rstrip("/"), args.secret, engine, args.operator, args.password)
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
