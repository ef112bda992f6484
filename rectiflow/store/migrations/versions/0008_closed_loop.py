"""The loop after the lifecycle: look-backs and relapses, exemptions, extension requests,
cases raised to the unit above, and outbox rows that name a person.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rectiflow.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rcase") as batch_op:
        batch_op.add_column(sa.Column("supervising_unit", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("relapses", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lookback_due_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lookback_result", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("lookback_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lookback_actor", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("exempted_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("exempt_until", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("exempt_reason", sa.String(), nullable=True))
    with op.batch_alter_table("escalation") as batch_op:
        batch_op.add_column(sa.Column("raised_to", sa.String(), nullable=True))
    with op.batch_alter_table("notification") as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(), nullable=True))
        batch_op.create_index("ix_notification_actor", ["actor"], unique=False)
    op.create_table(
        "extension",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("comment", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["rcase.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_extension_case_id", "extension", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_extension_case_id", table_name="extension")
    op.drop_table("extension")
    with op.batch_alter_table("notification") as batch_op:
        batch_op.drop_index("ix_notification_actor")
        batch_op.drop_column("actor")
    with op.batch_alter_table("escalation") as batch_op:
        batch_op.drop_column("raised_to")
    with op.batch_alter_table("rcase") as batch_op:
        for name in (
            "exempt_reason", "exempt_until", "exempted_at", "lookback_actor", "lookback_at",
            "lookback_result", "lookback_due_at", "relapses", "supervising_unit",
        ):  # fmt: skip
            batch_op.drop_column(name)
