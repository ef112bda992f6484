"""Daemon heartbeats: who sweeps, when a sweep last ran, its last error.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rectiflow.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("beat_at", UTCDateTime(), nullable=False),
        sa.Column("sweep_started_at", UTCDateTime(), nullable=True),
        sa.Column("sweep_ended_at", UTCDateTime(), nullable=True),
        sa.Column("levels_recorded", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_daemon_beat_at", "daemon", ["beat_at"], unique=False)
    # health asks for the oldest undelivered notification on every call
    op.create_index(
        "ix_notification_undelivered", "notification", ["delivered_at", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notification_undelivered", table_name="notification")
    op.drop_index("ix_daemon_beat_at", table_name="daemon")
    op.drop_table("daemon")
