"""Daemon heartbeats and the figures ``health`` reads, for the SQL store."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rectiflow.engine.types import DaemonBeat
from rectiflow.store.tables import daemon_t, notification_t

_BEAT_COLUMNS = [c for c in daemon_t.c if c.key != "id"]


class DaemonRecords:
    """Mixed into SqlStore, whose transactions it uses."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def register_daemon(self, host: str, pid: int, at: dt.datetime) -> DaemonBeat:
        values: dict[str, Any] = {
            "host": host, "pid": pid, "started_at": at, "beat_at": at, "levels_recorded": 0,
        }  # fmt: skip
        with self._write() as conn:
            daemon_id = conn.execute(
                daemon_t.insert().values(values).returning(daemon_t.c.id)
            ).scalar_one()
        return DaemonBeat(id=daemon_id, **values)

    def save_beat(self, beat: DaemonBeat) -> None:
        values = {c.key: getattr(beat, c.key) for c in _BEAT_COLUMNS}
        with self._write() as conn:
            conn.execute(daemon_t.update().where(daemon_t.c.id == beat.id).values(values))

    def list_daemons(self, seen_since: dt.datetime) -> list[DaemonBeat]:
        stmt = (
            sa.select(daemon_t)
            .where(daemon_t.c.beat_at >= seen_since)
            .order_by(daemon_t.c.started_at, daemon_t.c.id)
        )
        with self._read() as conn:
            return [DaemonBeat(**row._mapping) for row in conn.execute(stmt)]

    def forget_daemons(self, beat_before: dt.datetime) -> int:
        with self._write() as conn:
            return conn.execute(daemon_t.delete().where(daemon_t.c.beat_at < beat_before)).rowcount

    def undelivered(self) -> tuple[dt.datetime | None, int]:
        """(when the oldest undelivered notification was written, how many there are)."""
        n = notification_t.c
        oldest = sa.select(sa.func.min(n.created_at)).where(n.delivered_at.is_(None))
        count = sa.select(sa.func.count()).where(n.delivered_at.is_(None))
        with self._read() as conn:
            at = conn.execute(oldest).scalar()
            total = conn.execute(count).scalar_one()
        if isinstance(at, str):  # min() over the text column bypasses the type decorator
            at = dt.datetime.fromisoformat(at)
        return at, int(total)
