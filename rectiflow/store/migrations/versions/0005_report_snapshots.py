"""Report snapshots: the progress figures frozen per period (month or quarter), per case
and per unit, for rankings and light history.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rectiflow.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot",
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("taken_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )
    op.create_table(
        "snapshot_case",
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("unit_path", sa.String(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("light", sa.String(length=8), nullable=True),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["period"], ["snapshot.period"]),
        sa.PrimaryKeyConstraint("period", "case_id"),
    )
    op.create_table(
        "snapshot_unit",
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["period"], ["snapshot.period"]),
        sa.PrimaryKeyConstraint("period", "unit"),
    )


def downgrade() -> None:
    op.drop_table("snapshot_unit")
    op.drop_table("snapshot_case")
    op.drop_table("snapshot")
