"""Reports in the memory store (see ReportRecords): standings and frozen snapshots."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rectiflow.engine.errors import AlreadyTaken
from rectiflow.engine.escalation import LOOKBACK_LEVEL
from rectiflow.engine.types import (
    Case,
    CaseStanding,
    Escalation,
    Extension,
    Measure,
    SnapshotCase,
    SnapshotInfo,
)


class MemoryReports:
    """Mixed into MemoryStore, whose dicts and lock it shares."""

    _lock: threading.RLock
    _cases: dict[int, Case]
    _measures: dict[int, Measure]
    _escalations: dict[tuple[int, int, str], Escalation]
    _extensions: dict[int, Extension]
    _snapshots: dict[str, tuple[SnapshotInfo, list[SnapshotCase], dict[str, Any]]]

    def case_standings(
        self, now: dt.datetime, unit_paths: Sequence[str] | None = None
    ) -> Iterator[CaseStanding]:
        with self._lock:
            cases = [self._cases[i] for i in sorted(self._cases)]
            measures = list(self._measures.values())
            escalations = list(self._escalations.values())
        for c in cases:
            if unit_paths is not None and not any(c.unit_path.startswith(p) for p in unit_paths):
                continue
            mine = [m for m in measures if m.case_id == c.id]
            levels = tuple(
                e.level for e in escalations
                if e.case_id == c.id and e.visit == c.visit and e.level != LOOKBACK_LEVEL
            )  # fmt: skip
            approved = sum(
                1 for x in self._extensions.values() if x.case_id == c.id and x.status == "approved"
            )
            yield CaseStanding(
                c.id, c.workflow, c.workflow_version, c.unit, c.unit_path, c.category, c.source,
                c.severity, c.state, c.paused_at is not None, c.long_term, c.due_at,
                c.stage_entered_at, c.visit, len(mine), sum(m.done for m in mine),
                sum(1 for m in mine if not m.done and m.due is not None and m.due < now), levels,
                c.title, c.exempt_until is not None, c.relapses, c.lookback_due_at,
                c.lookback_result, approved,
            )  # fmt: skip

    def save_snapshot(
        self, info: SnapshotInfo, cases: Iterable[SnapshotCase], units: Mapping[str, Any]
    ) -> None:
        with self._lock:
            if info.period in self._snapshots:
                raise AlreadyTaken(info.period)
            self._snapshots[info.period] = (info, list(cases), dict(units))

    def get_snapshot(self, period: str) -> SnapshotInfo | None:
        with self._lock:
            found = self._snapshots.get(period)
        return found[0] if found else None

    def list_snapshots(self) -> list[SnapshotInfo]:
        with self._lock:
            return [self._snapshots[p][0] for p in sorted(self._snapshots)]

    def snapshot_cases(
        self, period: str, unit_paths: Sequence[str] | None = None
    ) -> list[SnapshotCase]:
        with self._lock:
            found = self._snapshots.get(period)
        cases = found[1] if found else []
        return [
            dataclasses.replace(c) for c in sorted(cases, key=lambda c: c.case_id)
            if unit_paths is None or any(c.unit_path.startswith(p) for p in unit_paths)
        ]  # fmt: skip

    def snapshot_units(self, period: str) -> dict[str, Any]:
        with self._lock:
            found = self._snapshots.get(period)
        return dict(sorted(found[2].items())) if found else {}
