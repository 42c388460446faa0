"""The migrations build exactly the schema the models declare, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from outdial.models import Base
from outdial.store import campaigns as campaign_store
from outdial.store import imports as import_store
from outdial.store.db import alembic_config, make_engine
from tests.conftest import scratch_pg_database


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], f"models and migrations differ: {differences}"


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'unmigrated.db'}"
        return
    with scratch_pg_database("outdial_migration") as url:
        yield url


def test_0009_gives_imports_already_there_no_sends_and_goes_back(unmigrated_url: str) -> None:
    """Rows from before the heartbeat get ``sends`` 0 (NOT NULL, through a server default the
    migration drops again, as the model has none) and no heartbeat; the downgrade keeps them."""
    from alembic import command

    config = alembic_config(unmigrated_url)
    command.upgrade(config, "0008")
    engine = make_engine(unmigrated_url)
    created = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            campaign_id = campaign_store.create(conn, {"name": "c", "account": "ck"})
            conn.execute(
                text(
                    "INSERT INTO imports (id, campaign_id, state, options, rows, accepted, rejected, duplicates,"
                    " suppressed, has_report, created_at) VALUES ('" + "a" * 32 + "', :campaign, 'queued', '{}',"
                    " 0, 0, 0, 0, 0, false, :created)"
                ),
                {"campaign": campaign_id, "created": created.replace(tzinfo=None)},
            )
        command.upgrade(config, "head")
        with engine.connect() as conn:
            found = import_store.by_id(conn, "a" * 32)
        assert found is not None and (found.state, found.sends, found.sent_at, found.progress_at) == (
            "queued",
            0,
            None,
            None,
        )
        command.downgrade(config, "0008")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("imports")}
            assert not {"progress_at", "sends", "sent_at"} & columns
            assert conn.execute(text("SELECT state FROM imports")).scalars().all() == ["queued"]
    finally:
        engine.dispose()
