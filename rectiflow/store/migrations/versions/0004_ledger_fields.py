"""Ledger fields: the external key, target, responsible person, long-term items, co-units;
escalations backfilled at import.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rcase") as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("ref_key", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("target", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("responsible", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("long_term", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("uq_rcase_ref_key", ["ref_key"], unique=True)
    op.create_table(
        "case_co_unit",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["rcase.id"]),
        sa.ForeignKeyConstraint(["unit"], ["unit.code"]),
        sa.PrimaryKeyConstraint("case_id", "unit"),
    )
    op.create_index("ix_case_co_unit_unit", "case_co_unit", ["unit"], unique=False)
    with op.batch_alter_table("escalation") as batch_op:
        batch_op.add_column(
            sa.Column("backfilled", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("escalation") as batch_op:
        batch_op.drop_column("backfilled")
    op.drop_index("ix_case_co_unit_unit", table_name="case_co_unit")
    op.drop_table("case_co_unit")
    with op.batch_alter_table("rcase") as batch_op:
        batch_op.drop_index("uq_rcase_ref_key")
        batch_op.drop_column("long_term")
        batch_op.drop_column("responsible")
        batch_op.drop_column("target")
        batch_op.drop_column("ref_key")
        batch_op.drop_column("ref")
