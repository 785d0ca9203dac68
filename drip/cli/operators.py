"""`drip admin ...`: operator accounts for the admin pages at /admin."""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlalchemy import select

from drip.cli.common import services
from drip.core.files import private_dir, write_private
from drip.integrations.api_keys import SCOPES, ApiKeyError, create_key, list_keys, revoke_key
from drip.integrations.hooks import EVENT_TYPES, HookError, add_endpoint, endpoints
from drip.integrations.outgoing import Reach
from drip.ops.operator_sessions import end_every_session
from drip.ops.operators import (
    FIRST_OPERATOR,
    OperatorError,
    create_operator,
    first_operator,
    first_operator_needed,
    set_password,
)
from drip.services import Services
from drip.store.models import Operator, Role, WebhookEndpoint


def first_password_file(svc: Services) -> Path:
    return svc.settings.data_dir / "first-admin-password"


def announce_first_operator(svc: Services) -> None:
    """`drip serve`: create the first operator if needed. Its password goes to a 0600 file
    in the data folder, never to the terminal: a log collector or a shared screen would
    keep it. The message says where the file is. The file is written once: one already
    there holds a password someone may still use, so it is left alone and no operator is
    made with a password nobody could read."""
    path = first_password_file(svc)
    with svc.sessions() as session:
        if path.exists():
            if first_operator_needed(session, svc.engine.dialect.name):
                click.echo(
                    f"admin: this database has no operator, and {path} is kept as it is (it "
                    f"may hold the password of another drip database): create one with "
                    f"`drip admin create you@example.org`",
                    err=True,
                )
            return
        password = first_operator(session, svc.engine.dialect.name, svc.clock())
        if not password:
            return
        private_dir(path.parent)
        write_private(path, f"{password}\n".encode())
        session.commit()
    click.echo(
        f"admin: log in at /admin as {FIRST_OPERATOR} with the password in {path} "
        f"(readable by this user only; change it with `drip admin password "
        f"{FIRST_OPERATOR}`, then delete the file)"
    )


@click.group("admin")
def admin_group() -> None:
    """Operator accounts for the admin pages at /admin."""


def _password() -> str:
    return os.environ.get("DRIP_ADMIN_PASSWORD") or str(
        click.prompt("Password", hide_input=True, confirmation_prompt=True)
    )


@admin_group.command("create")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.owner.value,
    show_default=True,
    help="owner: everything; editor: content only; viewer: read-only.",
)
def create_command(email: str, role: str) -> None:
    """Create an operator; the password comes from DRIP_ADMIN_PASSWORD or a hidden prompt."""
    password = _password()
    svc = services()
    with svc.sessions() as session:
        try:
            operator = create_operator(session, email, password, svc.clock(), Role(role))
        except OperatorError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        click.echo(f"operator {operator.email} created ({operator.role})")


@admin_group.command("password")
@click.argument("email")
def password_command(email: str) -> None:
    """Give an operator a new password (DRIP_ADMIN_PASSWORD or a hidden prompt); their
    current sessions end."""
    password = _password()
    with services().sessions() as session:
        try:
            operator = set_password(session, email, password)
        except OperatorError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        click.echo(f"new password set for {operator.email}")


@admin_group.command("end-sessions")
@click.argument("email", required=False)
def end_sessions_command(email: str | None) -> None:
    """End the sessions of one operator, or of every operator when no address is given
    (after rotating DRIP_SECRET_KEY, or if it leaked): each logs in again."""
    with services().sessions() as session:
        operator = None
        if email is not None:
            address = email.strip().lower()
            operator = session.scalar(select(Operator).where(Operator.email == address))
            if operator is None:
                raise click.ClickException(f"there is no operator {address}")
        ended = end_every_session(session, operator)
        session.commit()
    whose = operator.email if operator is not None else "every operator"
    click.echo(f"ended {ended} session(s) of {whose}")


@click.group("api-key")
def api_key_group() -> None:
    """Keys for the REST API at /api/v1 (Authorization: Bearer <key>)."""


@api_key_group.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), default="read", show_default=True)
def api_key_create(name: str, scope: str) -> None:
    """Make a key and print it once: only its hash is kept."""
    svc = services()
    with svc.sessions() as session:
        try:
            key = create_key(session, name, scope, svc.clock())
        except ApiKeyError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
    click.echo(key)
    click.echo(f"api key {name!r} ({scope}); it is shown only this once", err=True)


@api_key_group.command("revoke")
@click.argument("name")
def api_key_revoke(name: str) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    svc = services()
    with svc.sessions() as session:
        try:
            revoke_key(session, name, svc.clock())
        except ApiKeyError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
    click.echo(f"api key {name!r} revoked")


@api_key_group.command("list")
def api_key_list() -> None:
    """Every key: name, scope, last use, revoked or not."""
    with services().sessions() as session:
        for key in list_keys(session):
            used = key.last_used_at.isoformat() if key.last_used_at else "never used"
            state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
            click.echo(f"{key.name}  {key.scope}  {used}  {state}")


@click.group("webhook")
def webhook_group() -> None:
    """Endpoints of other tools that hear about readers (signed JSON POSTs)."""


@webhook_group.command("add")
@click.argument("url")
@click.option("--events", required=True, help=f"Comma-separated: {', '.join(EVENT_TYPES)}.")
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow an endpoint on your own private network (10/8, 172.16/12, 192.168/16, "
    "100.64/10, IPv6 ULA); never loopback, link-local or metadata addresses.",
)
def webhook_add(url: str, events: str, allow_private: bool) -> None:
    """Add an endpoint and print its signing secret once."""
    svc = services()
    with svc.sessions() as session:
        try:
            endpoint, secret = add_endpoint(
                session,
                url,
                [e.strip() for e in events.split(",") if e.strip()],
                svc.clock(),
                allow_private=allow_private,
                reach=Reach(allow_private=svc.settings.webhook_allow_private),
            )
        except HookError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        click.echo(secret)
        click.echo(f"webhook {endpoint.id} -> {url}; the secret is shown only this once", err=True)


@webhook_group.command("list")
def webhook_list() -> None:
    """Every endpoint, its events, and its deliveries waiting or given up."""
    with services().sessions() as session:
        for endpoint in endpoints(session):
            click.echo(f"{endpoint.id}  {endpoint.url}  {endpoint.events}")


@webhook_group.command("remove")
@click.argument("endpoint_id", type=int)
def webhook_remove(endpoint_id: int) -> None:
    """Stop sending to an endpoint."""
    svc = services()
    with svc.sessions() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.removed_at is not None:
            raise click.ClickException(f"there is no webhook {endpoint_id}")
        endpoint.removed_at = svc.clock()
        session.commit()
    click.echo(f"webhook {endpoint_id} removed")
