"""The database engine and sessions; created once at start and passed in."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import create_engine

from bot import models  # noqa: F401  (registers the tables)


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,  # error messages must not carry what members wrote
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# Instances starting together must not run the migrations at the same time.
_MIGRATION_LOCK = 0x466F726C6F7400


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` with the project's Alembic migrations."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Held until this transaction ends: the second instance waits, then finds the
            # schema up to date.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        command.upgrade(_alembic_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def head_revision() -> str | None:
    """The newest migration the code ships."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(engine: sa.Engine) -> None:
    """The schema as the migrations make it (also for a fresh test database)."""
    upgrade(engine)
