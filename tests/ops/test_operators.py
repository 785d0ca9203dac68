"""Operator accounts: argon2 hashes, `drip admin create`, the first operator of `drip serve`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select

from drip.cli import cli
from drip.cli.operators import announce_first_operator, first_password_file
from drip.core.clock import FrozenClock
from drip.ops.operators import (
    FAILED_PER_ACCOUNT,
    FIRST_OPERATOR,
    OperatorError,
    authenticate,
    create_operator,
    first_operator,
)
from drip.services import Services, build_services
from drip.store.models import Operator, RateLimit
from tests.conftest import CHEAP_HASHER, TESTS, make_settings
from tests.web.test_admin_access import csrf_token, logged_in_client

PASSWORD = "correct horse battery"


@pytest.fixture
def svc(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Services:
    return build_services(make_settings(tmp_path, sqlite_url), clock, password_hasher=CHEAP_HASHER)


def operators(svc: Services) -> list[Operator]:
    with svc.sessions() as session:
        return list(session.scalars(select(Operator)))


def test_passwords_are_stored_as_argon2_hashes_and_checked(svc: Services) -> None:
    with svc.sessions() as session:
        create_operator(session, "Ops@Example.org", PASSWORD, svc.clock())
        session.commit()
        (stored,) = session.scalars(select(Operator))
        assert stored.email == "ops@example.org"
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        ok = authenticate(session, "ops@example.org", PASSWORD, "192.0.2.1", svc.clock())
        assert ok.operator is not None and ok.operator.last_login_at == svc.clock()
        wrong = authenticate(
            session, "ops@example.org", "not the password", "192.0.2.1", svc.clock()
        )
        assert wrong.operator is None and not wrong.throttled
        nobody = authenticate(session, "nobody@example.org", PASSWORD, "192.0.2.1", svc.clock())
        assert nobody.operator is None


def test_duplicate_accounts_bad_addresses_and_short_passwords_are_refused(svc: Services) -> None:
    with svc.sessions() as session:
        create_operator(session, "ops@example.org", PASSWORD, svc.clock())
        with pytest.raises(OperatorError, match="already exists"):
            create_operator(session, "OPS@example.org", PASSWORD, svc.clock())
        with pytest.raises(OperatorError, match="at least 10 characters"):
            create_operator(session, "other@example.org", "short", svc.clock())
        with pytest.raises(OperatorError, match="not a valid email"):
            create_operator(session, "not an address", PASSWORD, svc.clock())


def test_failed_logins_are_counted_in_the_database_per_ip_and_account(
    svc: Services, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        create_operator(session, "ops@example.org", PASSWORD, clock())
        for _ in range(FAILED_PER_ACCOUNT):
            authenticate(session, "ops@example.org", "wrong wrong", "192.0.2.1", clock())
        session.commit()
        keys = {r.key: r.count for r in session.scalars(select(RateLimit))}
        assert keys == {
            "login:ip:192.0.2.1": FAILED_PER_ACCOUNT,
            "login:account:ops@example.org:ip:192.0.2.1": FAILED_PER_ACCOUNT,
        }
        throttled = authenticate(session, "ops@example.org", PASSWORD, "192.0.2.1", clock())
        assert throttled.throttled and throttled.operator is None
        elsewhere = authenticate(session, "ops@example.org", PASSWORD, "192.0.2.2", clock())
        assert elsewhere.operator is not None


def test_drip_admin_create_and_password_take_it_from_the_environment_or_a_prompt(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
    }
    runner = CliRunner()
    result = runner.invoke(
        cli, ["admin", "create", "ops@example.org"], env={**env, "DRIP_ADMIN_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output
    assert "operator ops@example.org created" in result.output
    again = runner.invoke(
        cli, ["admin", "create", "ops@example.org"], env={**env, "DRIP_ADMIN_PASSWORD": PASSWORD}
    )
    assert again.exit_code == 1 and "already exists" in again.output
    prompted = runner.invoke(
        cli,
        ["admin", "create", "two@example.org"],
        env={**env, "DRIP_ADMIN_PASSWORD": ""},
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # the prompt hides what is typed
    svc = build_services(make_settings(tmp_path, sqlite_url))
    with svc.sessions() as session:
        assert (
            authenticate(session, "two@example.org", PASSWORD, "ip", svc.clock()).operator
            is not None
        )
    changed = runner.invoke(
        cli,
        ["admin", "password", "two@example.org"],
        env={**env, "DRIP_ADMIN_PASSWORD": "another long password"},
    )
    assert changed.exit_code == 0 and "new password set" in changed.output
    unknown = runner.invoke(
        cli,
        ["admin", "password", "nobody@example.org"],
        env={**env, "DRIP_ADMIN_PASSWORD": "another long password"},
    )
    assert unknown.exit_code == 1 and "there is no operator" in unknown.output
    with svc.sessions() as session:
        assert (
            authenticate(session, "two@example.org", PASSWORD, "ip", svc.clock()).operator is None
        )
        assert (
            authenticate(
                session, "two@example.org", "another long password", "ip", svc.clock()
            ).operator
            is not None
        )


def test_first_start_puts_the_first_operators_password_in_a_private_file_and_says_where(
    svc: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = os.umask(0o022)
    try:
        announce_first_operator(svc)
    finally:
        os.umask(previous)
    printed = capsys.readouterr().out
    path = first_password_file(svc)
    assert FIRST_OPERATOR in printed and str(path) in printed
    password = path.read_text().strip()
    assert password and password not in printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with svc.sessions() as session:
        assert authenticate(session, FIRST_OPERATOR, password, "ip", svc.clock()).operator
    announce_first_operator(svc)
    assert capsys.readouterr().out == ""
    assert len(operators(svc)) == 1


def test_without_a_hasher_given_passwords_get_argon2s_full_default_cost(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, sqlite_url), clock)
    with svc.sessions() as session:
        stored = create_operator(session, "ops@example.org", PASSWORD, clock()).password_hash
    svc.engine.dispose()
    assert not PasswordHasher().check_needs_rehash(stored)
    assert CHEAP_HASHER.check_needs_rehash(stored)  # the tests' cheap cost stays in the tests


def test_no_operator_is_made_up_outside_sqlite(svc: Services) -> None:
    with svc.sessions() as session:
        assert first_operator(session, "postgresql", svc.clock()) is None
        assert session.scalar(select(func.count()).select_from(Operator)) == 0


# Addresses a review made operators with: a name and someone else's address before a
# "@localhost", a line break, a quoted part. Each would have become a studio commit's author.
NOT_ADDRESSES = [
    "Linus Torvalds <torvalds@linux-foundation.org> x@localhost",
    "Linus Torvalds @localhost",
    "eve\n@localhost",
    '"ada lovelace"@example.org',
    "ada@example.org, eve@example.org",
]


def test_an_operators_address_must_be_an_address_alone_wherever_it_is_made(
    svc: Services, tmp_path: Path, sqlite_url: str, app: Flask
) -> None:
    with svc.sessions() as session:
        for text in NOT_ADDRESSES:
            with pytest.raises(OperatorError, match="is not a valid email address"):
                create_operator(session, text, PASSWORD, svc.clock())
        assert create_operator(session, " Admin@LocalHost ", PASSWORD, svc.clock()).email == (
            "admin@localhost"
        )
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_ADMIN_PASSWORD": PASSWORD,
    }
    made = CliRunner().invoke(cli, ["admin", "create", NOT_ADDRESSES[0]], env=env)
    assert made.exit_code == 1 and "is not a valid email address" in made.output
    owner = logged_in_client(app)
    page = owner.get("/admin/operators")
    added = owner.post(
        "/admin/operators",
        data={"csrf_token": csrf_token(page.text), "email": NOT_ADDRESSES[0], "role": "editor"},
        follow_redirects=True,
    )
    assert "Not added: " in added.text and "is not a valid email address" in added.text
    with svc.sessions() as session:  # the app, the command and `svc` share one database
        stored = session.scalars(select(Operator.email)).all()
    assert stored == ["ops@example.org"]  # the owner logged in above, nobody else
