"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from drip.store.db import make_engine
from drip.store.models import Base


def test_the_migrated_database_matches_the_models(backend_url: str) -> None:
    engine = make_engine(backend_url)  # migrated to the newest revision by the fixture
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == [], f"add a migration to drip/store/migrations/versions: {differences}"
