"""Deadlines in the memory store: the sweep's claims and records, the outbox, the
calendar and the daemons' heartbeats (see DeadlineRecords and DaemonRecords)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rectiflow.engine.storage import EscalationPlan
from rectiflow.engine.types import Case, DaemonBeat, Escalation, HistoryEntry, Note, Notification


class MemoryDeadlines:
    """Mixed into MemoryStore, whose dicts and lock it shares."""

    _lock: threading.RLock
    _cases: dict[int, Case]
    _history: dict[int, list[HistoryEntry]]
    _notes: dict[int, list[Note]]
    _escalations: dict[tuple[int, int, str], Escalation]
    _notifications: dict[str, Notification]
    _co_units: dict[int, tuple[str, ...]]
    _calendar: dict[dt.date, bool]
    _daemons: dict[int, DaemonBeat]

    def _new_id(self, table: str) -> int:
        raise NotImplementedError

    # --- deadlines and escalations --------------------------------------------------------

    def _due(self, now: dt.datetime) -> list[Case]:
        return [
            c for c in self._cases.values()
            if c.next_escalation_at is not None and c.next_escalation_at <= now
            and c.paused_at is None
        ]  # fmt: skip

    def escalate_batch(
        self, now: dt.datetime, limit: int,
        plan: Callable[[Case, Sequence[str]], EscalationPlan],
    ) -> tuple[int, list[Escalation]]:  # fmt: skip
        """Claim up to ``limit`` due cases, record their due levels. Nothing is written unless
        the whole batch is planned, as the SQL store commits a batch or nothing."""
        with self._lock:
            claimed = sorted(self._due(now), key=lambda c: (c.next_escalation_at, c.id))[:limit]
            escalations: dict[tuple[int, int, str], Escalation] = {}
            notifications: dict[str, Notification] = {}
            cases: dict[int, Case] = {}
            entries: list[HistoryEntry] = []
            for case in claimed:
                decided = plan(case, self._co_units.get(case.id, ()))
                for esc in decided.escalations:
                    unique = (esc.case_id, esc.visit, esc.level)
                    if unique not in self._escalations and unique not in escalations:
                        escalations[unique] = esc
                for n in decided.notifications:
                    if n.key not in self._notifications and n.key not in notifications:
                        notifications[n.key] = Notification(
                            0, case.id, n.kind, n.level, n.role, now, n.key, n.actor
                        )
                changed: dict[str, Any] = dict(decided.change)
                if decided.entry is not None:
                    entries.append(decided.entry)
                    changed.update(
                        version=case.version + 1, history_seq=decided.entry.seq,
                        last_hash=decided.entry.hash,
                    )  # fmt: skip
                changed.update(
                    next_level=decided.next_level, next_escalation_at=decided.next_escalation_at
                )
                cases[case.id] = dataclasses.replace(case, **changed)
            for entry in entries:
                self._history[entry.case_id].append(entry)
            self._escalations.update(escalations)
            for row in notifications.values():
                self._notifications[row.key] = dataclasses.replace(row, id=self._new_id("n"))
            self._cases.update(cases)
            return len(claimed), list(escalations.values())

    def due_cases(self, now: dt.datetime, after_id: int, limit: int) -> list[Case]:
        with self._lock:
            return sorted((c for c in self._due(now) if c.id > after_id), key=lambda c: c.id)[
                :limit
            ]

    def next_escalation_at(self) -> dt.datetime | None:
        with self._lock:
            times = [
                c.next_escalation_at
                for c in self._cases.values()
                if c.next_escalation_at is not None and c.paused_at is None
            ]
        return min(times, default=None)

    def list_escalations(self, case_id: int | None = None) -> list[Escalation]:
        with self._lock:
            rows = list(self._escalations.values())
        return [e for e in rows if case_id is None or e.case_id == case_id]

    def add_notifications(
        self, rows: Iterable[tuple[int, str, str | None, str, str, str | None]], at: dt.datetime
    ) -> int:
        written = 0
        with self._lock:
            for case_id, kind, level, role, key, actor in rows:
                if key not in self._notifications:
                    self._notifications[key] = Notification(
                        self._new_id("n"), case_id, kind, level, role, at, key, actor
                    )
                    written += 1
        return written

    def list_notifications(
        self, case_id: int | None = None, kind: str | None = None, *,
        actor: str | None = None, level: str | None = None, limit: int | None = None,
    ) -> list[Notification]:  # fmt: skip
        with self._lock:
            rows = sorted(self._notifications.values(), key=lambda n: n.id)
        found = [
            n for n in rows
            if (case_id is None or n.case_id == case_id) and (kind is None or n.kind == kind)
            and (actor is None or n.actor == actor) and (level is None or n.level == level)
        ]  # fmt: skip
        return found if limit is None else found[:limit]

    def cases_without_note_since(self, since: dt.datetime, after_id: int, limit: int) -> list[Case]:
        with self._lock:
            found = [
                self._cases[i] for i in sorted(self._cases)
                if i > after_id
                and (self._cases[i].due_at is not None or self._cases[i].long_term)
                and not any(n.at >= since for n in self._notes[i])
            ]  # fmt: skip
        return found[:limit]

    # --- calendar -------------------------------------------------------------------------

    def load_calendar(self, days: Iterable[tuple[dt.date, bool]]) -> int:
        rows = list(days)
        with self._lock:
            self._calendar.update(rows)
        return len(rows)

    def calendar_days(self) -> list[tuple[dt.date, bool]]:
        with self._lock:
            return sorted(self._calendar.items())

    # --- daemons --------------------------------------------------------------------------

    def register_daemon(self, host: str, pid: int, at: dt.datetime) -> DaemonBeat:
        with self._lock:
            beat = DaemonBeat(self._new_id("daemon"), host, pid, at, at)
            self._daemons[beat.id] = beat
        return beat

    def save_beat(self, beat: DaemonBeat) -> None:
        with self._lock:
            self._daemons[beat.id] = beat

    def list_daemons(self, seen_since: dt.datetime) -> list[DaemonBeat]:
        with self._lock:
            beats = [b for b in self._daemons.values() if b.beat_at >= seen_since]
        return sorted(beats, key=lambda b: (b.started_at, b.id))

    def forget_daemons(self, beat_before: dt.datetime) -> int:
        with self._lock:
            gone = [i for i, b in self._daemons.items() if b.beat_at < beat_before]
            for i in gone:
                del self._daemons[i]
        return len(gone)

    def undelivered(self) -> tuple[dt.datetime | None, int]:
        with self._lock:
            times = [n.created_at for n in self._notifications.values()]
        return (min(times) if times else None), len(times)
