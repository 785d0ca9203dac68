"""Alembic environment: drip hands over its engine; there is no alembic.ini to edit."""

from __future__ import annotations

from alembic import context

from drip.store.models import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
