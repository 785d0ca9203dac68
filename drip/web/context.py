"""What a request reaches through Flask's context: the services, its database session, CSRF.

A leaf module, as `get_db` is in Flask's tutorial: the blueprints import it, it imports no
blueprint, and the application factory only registers it.
"""

from __future__ import annotations

from flask import current_app, g
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from drip.services import Services

csrf = CSRFProtect()


def services() -> Services:
    svc: Services = current_app.extensions["drip"]
    return svc


def db_session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
