"""inbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 15:36:59.612870
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _unique_where(table: str, column: str) -> None:
    """A unique index on a column's non-NULL values (both SQLite and PostgreSQL)."""
    op.create_index(
        f"ux_{table}_{column}",
        table,
        [column],
        unique=True,
        sqlite_where=sa.text(f"{column} IS NOT NULL"),
        postgresql_where=sa.text(f"{column} IS NOT NULL"),
    )


def upgrade() -> None:
    op.create_table(
        "inboxupdate",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("PENDING", "WORKING", "DONE", "FAILED", name="inboxstate"),
            nullable=False,
        ),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("lease_until", bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("available_at", bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )
    with op.batch_alter_table("inboxupdate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inboxupdate_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inboxupdate_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inboxupdate_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_inboxupdate_user_id"), ["user_id"], unique=False)
    # The ids already seen stay seen: a late repeat delivery still creates nothing.
    op.execute(
        "INSERT INTO inboxupdate (update_id, payload, state, attempts, received_at) "
        "SELECT update_id, '', 'DONE', 0, processed_at FROM processedupdate"
    )
    op.drop_table("processedupdate")
    for table in ("casemessage", "question", "pendingmessage"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("update_id", sa.BigInteger(), nullable=True))
        _unique_where(table, "update_id")
    _unique_where("case", "question_id")


def downgrade() -> None:
    op.drop_index("ux_case_question_id", table_name="case")
    for table in ("pendingmessage", "question", "casemessage"):
        op.drop_index(f"ux_{table}_update_id", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("update_id")
    op.create_table(
        "processedupdate",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("processed_at", bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )
    op.execute(
        "INSERT INTO processedupdate (update_id, processed_at) "
        "SELECT update_id, received_at FROM inboxupdate"
    )
    op.drop_table("inboxupdate")
    sa.Enum(name="inboxstate").drop(op.get_bind(), checkfirst=True)
