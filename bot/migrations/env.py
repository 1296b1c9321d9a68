"""Alembic environment: the SQLModel metadata, and the connection handed in by bot.db."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from bot import models  # noqa: F401  (registers the tables)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through bot.db.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
