"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlmodel import SQLModel

from bot.cli import main
from bot.db import current_revision, downgrade, head_revision, make_engine, upgrade


def test_migrated_schema_matches_the_models(any_engine: sa.Engine) -> None:
    upgrade(any_engine)  # a second upgrade is harmless
    with any_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == [], "a model changed without a migration: run alembic revision"
    assert current_revision(any_engine) == head_revision()


def test_db_upgrade_command(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database", database])
    assert result.exit_code == 0 and f"revision {head_revision()}" in result.output


def test_the_inbox_migration_keeps_the_ids_seen_and_goes_back_and_forth(
    any_engine: sa.Engine,
) -> None:
    with any_engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    SQLModel.metadata.drop_all(any_engine)
    if any_engine.dialect.name == "postgresql":
        with any_engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    upgrade(any_engine, "0003")
    with any_engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO processedupdate (update_id, processed_at) VALUES (:u, :t)"),
            {"u": 2**40, "t": "2026-11-20 10:00:00+00:00"},
        )
    upgrade(any_engine, "0004")
    with any_engine.connect() as connection:
        seen = connection.execute(sa.text("SELECT update_id, state FROM inboxupdate")).all()
    assert [(row[0], row[1]) for row in seen] == [(2**40, "DONE")]
    downgrade(any_engine, "0003")
    upgrade(any_engine)
    assert current_revision(any_engine) == head_revision()


def test_instances_starting_together_on_one_sqlite_file_both_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    engines = [make_engine(url) for _ in range(3)]
    with ThreadPoolExecutor(len(engines)) as pool:
        for done in [pool.submit(upgrade, engine) for engine in engines]:
            done.result()  # raises what the migration raised ("table already exists", say)
    for engine in engines:
        assert current_revision(engine) == head_revision()
        engine.dispose()
