"""Audit: history entries carry data covered by their hash (the fields a case was opened
with, an edit's changes, measures, notes, the audit key's id); actors may be bound to an
operating-system login.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("history") as batch_op:
        batch_op.add_column(sa.Column("data", sa.Text(), nullable=True))
    with op.batch_alter_table("actor") as batch_op:
        batch_op.add_column(sa.Column("os_user", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actor") as batch_op:
        batch_op.drop_column("os_user")
    with op.batch_alter_table("history") as batch_op:
        batch_op.drop_column("data")
