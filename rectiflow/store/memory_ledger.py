"""Ledgers in the memory store: external keys, co-units, imports (see LedgerRecords)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from rectiflow.engine.errors import NotFound, ValidationError
from rectiflow.engine.records import ImportedCase, ref_key
from rectiflow.engine.types import Case, Escalation, HistoryEntry, Measure, Note, Unit


class MemoryLedger:
    """Mixed into MemoryStore, whose dicts and lock it shares."""

    _lock: threading.RLock
    _units: dict[str, Unit]
    _cases: dict[int, Case]
    _measures: dict[int, Measure]
    _history: dict[int, list[HistoryEntry]]
    _notes: dict[int, list[Note]]
    _escalations: dict[tuple[int, int, str], Escalation]
    _co_units: dict[int, tuple[str, ...]]
    _ids: dict[str, Iterator[int]]

    def _new_id(self, table: str) -> int:
        raise NotImplementedError

    def _check_ref(self, source: str | None, ref: str | None, case_id: int | None) -> None:
        key = ref_key(source, ref)
        if key is None:
            return
        for other in self._cases.values():
            if other.id != case_id and ref_key(other.source, other.ref) == key:
                raise ValidationError(
                    f"a case with ref {ref!r} from source {source!r} exists already"
                )

    def _check_units(self, units: Sequence[str]) -> None:
        for unit in units:
            if unit not in self._units:
                raise NotFound("unit", unit)

    def co_units_of(self, case_ids: Sequence[int]) -> dict[int, list[str]]:
        with self._lock:
            return {i: sorted(self._co_units[i]) for i in case_ids if self._co_units.get(i)}

    def cases_by_ref(self, keys: Sequence[str]) -> dict[str, Case]:
        wanted = set(keys)
        with self._lock:
            found = {ref_key(c.source, c.ref): c for c in self._cases.values()}
        return {k: c for k, c in found.items() if k is not None and k in wanted}

    def import_cases(
        self, count: int, build: Callable[[Sequence[int]], Iterable[ImportedCase]]
    ) -> list[int]:
        with self._lock:
            ids = [self._new_id("case") for _ in range(count)]
            items = list(build(ids))
            for item in items:  # check all before writing any: all or nothing
                self._check_units([item.case.unit, *item.case.co_units])
                self._check_ref(item.case.source, item.case.ref, None)
            for item in items:
                new = item.case
                self._cases[item.id] = Case(
                    id=item.id, unit_path=self._units[new.unit].path, **new.columns(),
                    history_seq=item.entry.seq, last_hash=item.entry.hash,
                )  # fmt: skip
                self._history[item.id] = [item.entry]
                self._notes[item.id] = []
                self._co_units[item.id] = new.co_units
                for m in item.measures:
                    measure_id = self._new_id("measure")
                    self._measures[measure_id] = Measure(
                        measure_id, item.id, m.text, m.owner, None, m.done_at, None, None
                    )
                for e in item.backfilled:
                    self._escalations[e.case_id, e.visit, e.level] = e
            return [item.id for item in items]
