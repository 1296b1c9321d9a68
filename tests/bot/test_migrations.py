"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlmodel import SQLModel

from bot.cli import main
from bot.db import current_revision, head_revision, upgrade


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
