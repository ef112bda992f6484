"""The in-memory store: plain dicts behind one lock, for unit tests and quick experiments.

It behaves like the SQL store (same errors, same ordering, same uniqueness rules) so that
the engine can be tested without a database. ``case_tx`` holds the lock for the whole block
and puts back the case's records as they were if the block raises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rectiflow.engine.errors import ConflictError, NotFound, ValidationError
from rectiflow.engine.records import CaseChange, NewCase
from rectiflow.engine.types import (
    Actor,
    Case,
    DaemonBeat,
    Escalation,
    Extension,
    HistoryEntry,
    Measure,
    Note,
    Notification,
    SnapshotCase,
    SnapshotInfo,
    Unit,
    WorkflowRecord,
)
from rectiflow.store.memory_deadlines import MemoryDeadlines
from rectiflow.store.memory_ledger import MemoryLedger
from rectiflow.store.memory_reports import MemoryReports


class MemoryCaseTx:
    """One case held for change; writes go straight to the store, which undoes them on error."""

    def __init__(self, store: MemoryStore, case: Case) -> None:
        self.store = store
        self.case = case

    def actor(self, name: str) -> Actor | None:
        return self.store.get_actor(name)

    def measures(self) -> list[Measure]:
        return self.store.list_measures(self.case.id)

    def update(self, change: CaseChange, entry: HistoryEntry | None = None) -> Case:
        stored = self.store._cases[self.case.id]
        if stored.version != self.case.version:
            raise ConflictError(self.case.id, self.case.version, None)
        values: dict[str, Any] = {**change, "version": self.case.version + 1}
        if "source" in change or "ref" in change:
            merged = dataclasses.replace(self.case, **change)
            self.store._check_ref(merged.source, merged.ref, self.case.id)
        if "unit" in change:
            values["unit_path"] = self.store._units[change["unit"]].path
        if entry is not None:
            values["history_seq"] = entry.seq
            values["last_hash"] = entry.hash
        self.case = dataclasses.replace(self.case, **values)
        self.store._cases[self.case.id] = self.case
        if entry is not None:
            self.store._history[self.case.id].append(entry)
        return self.case

    def last_entry_at(self) -> dt.datetime | None:
        entries = self.store._history.get(self.case.id)
        return entries[-1].at if entries else None

    def add_measure(self, text: str, owner: str, due: dt.datetime | None) -> Measure:
        measure_id = self.store._new_id("measure")
        measure = Measure(measure_id, self.case.id, text, owner, due, None, None, None)
        self.store._measures[measure.id] = measure
        return measure

    def complete_measure(
        self, measure_id: int, done_at: dt.datetime, evidence_path: str | None,
        evidence_sha256: str | None,
    ) -> Measure:  # fmt: skip
        found = self.store._measures.get(measure_id)
        if found is None or found.case_id != self.case.id:
            raise NotFound("measure", measure_id)
        measure = dataclasses.replace(
            found, done_at=done_at, evidence_path=evidence_path, evidence_sha256=evidence_sha256
        )
        self.store._measures[measure_id] = measure
        return measure

    def set_co_units(self, units: Sequence[str]) -> None:
        self.store._check_units(units)
        self.store._co_units[self.case.id] = tuple(units)

    def add_note(self, actor: str, at: dt.datetime, text: str) -> Note:
        note = Note(self.store._new_id("note"), self.case.id, actor, at, text)
        self.store._notes[self.case.id].append(note)
        return note

    def extensions(self) -> list[Extension]:
        return self.store.list_extensions(self.case.id)

    def add_extension(
        self, requested_at: dt.datetime, requested_by: str, until: dt.datetime, reason: str
    ) -> Extension:
        extension = Extension(
            self.store._new_id("extension"), self.case.id, requested_at, requested_by, until,
            reason, "pending",
        )  # fmt: skip
        self.store._extensions[extension.id] = extension
        return extension

    def decide_extension(
        self, extension_id: int, status: str, decided_by: str, decided_at: dt.datetime,
        comment: str | None,
    ) -> Extension:  # fmt: skip
        found = self.store._extensions.get(extension_id)
        if found is None or found.case_id != self.case.id:
            raise NotFound("extension", extension_id)
        decided = dataclasses.replace(
            found, status=status, decided_by=decided_by, decided_at=decided_at, comment=comment
        )
        self.store._extensions[extension_id] = decided
        return decided


class MemoryStore(MemoryLedger, MemoryReports, MemoryDeadlines):
    """The store interface on dicts. One RLock serializes every call, as one database would."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))
        self._units: dict[str, Unit] = {}
        self._actors: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # roles, units
        self._os_users: dict[str, str | None] = {}
        self._workflows: dict[tuple[str, int], WorkflowRecord] = {}
        self._cases: dict[int, Case] = {}
        self._measures: dict[int, Measure] = {}
        self._history: dict[int, list[HistoryEntry]] = {}
        self._notes: dict[int, list[Note]] = {}
        self._escalations: dict[tuple[int, int, str], Escalation] = {}  # insertion order = id
        self._notifications: dict[str, Notification] = {}  # by unique key
        self._extensions: dict[int, Extension] = {}
        self._calendar: dict[dt.date, bool] = {}
        self._daemons: dict[int, DaemonBeat] = {}
        self._co_units: dict[int, tuple[str, ...]] = {}
        self._snapshots: dict[str, tuple[SnapshotInfo, list[SnapshotCase], dict[str, Any]]] = {}

    def _new_id(self, table: str) -> int:
        return next(self._ids[table])

    def schema_revision(self) -> tuple[str | None, str]:
        return "memory", "memory"  # nothing to migrate: the store lives as long as the process

    def create_schema(self, *, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass

    # --- units and actors -----------------------------------------------------------------

    def add_unit(self, code: str, name: str, parent: str | None) -> Unit:
        with self._lock:
            if code in self._units:
                raise ValidationError(f"unit {code} already exists")
            path = f"/{code}/"
            if parent is not None:
                if parent not in self._units:
                    raise NotFound("unit", parent)
                path = f"{self._units[parent].path}{code}/"
            unit = self._units[code] = Unit(code, name, parent, path)
            return unit

    def get_unit(self, code: str) -> Unit | None:
        with self._lock:
            return self._units.get(code)

    def list_units(self) -> list[Unit]:
        with self._lock:
            return sorted(self._units.values(), key=lambda u: u.path)

    def add_actor(self, name: str, roles: Sequence[str], units: Sequence[str]) -> Actor:
        with self._lock:
            if name in self._actors:
                raise ValidationError(f"actor {name} already exists")
            for code in units:
                if code not in self._units:
                    raise NotFound("unit", code)
            self._actors[name] = (tuple(roles), tuple(dict.fromkeys(units)))
            actor = self.get_actor(name)
        assert actor is not None
        return actor

    def get_actor(self, name: str) -> Actor | None:
        with self._lock:
            if name not in self._actors:
                return None
            roles, units = self._actors[name]
            paths = tuple(self._units[u].path for u in units)
            return Actor(name, roles, units, paths, self._os_users.get(name))

    def set_os_user(self, name: str, os_user: str | None) -> None:
        with self._lock:
            if name not in self._actors:
                raise NotFound("actor", name)
            self._os_users[name] = os_user

    def list_actors(self) -> list[Actor]:
        with self._lock:
            return [a for a in map(self.get_actor, sorted(self._actors)) if a is not None]

    # --- workflows ------------------------------------------------------------------------

    def register_workflow(self, record: WorkflowRecord) -> bool:
        with self._lock:
            existing = self._workflows.get((record.name, record.version))
            if existing is not None:
                if existing.digest != record.digest:
                    raise ValidationError(
                        f"workflow {record.name}@{record.version} is already registered with "
                        "different content; a registered version is immutable, "
                        "give it a new version"
                    )
                return False
            self._workflows[record.name, record.version] = record
            return True

    def get_workflow(self, name: str, version: int | None = None) -> WorkflowRecord | None:
        with self._lock:
            if version is not None:
                return self._workflows.get((name, version))
            versions = [v for (n, v) in self._workflows if n == name]
            return self._workflows[name, max(versions)] if versions else None

    def list_workflows(self) -> list[WorkflowRecord]:
        with self._lock:
            return [self._workflows[key] for key in sorted(self._workflows)]

    # --- cases ----------------------------------------------------------------------------

    def open_case(self, new: NewCase, first_entry: Callable[[int], HistoryEntry]) -> Case:
        with self._lock:
            unit = self._units.get(new.unit)
            if unit is None:
                raise NotFound("unit", new.unit)
            if (new.workflow, new.workflow_version) not in self._workflows:
                raise NotFound("workflow", f"{new.workflow}@{new.workflow_version}")
            self._check_units(new.co_units)
            self._check_ref(new.source, new.ref, None)
            case_id = self._new_id("case")
            entry = first_entry(case_id)
            self._co_units[case_id] = new.co_units
            case = self._cases[case_id] = Case(
                id=case_id, unit_path=unit.path, **new.columns(), history_seq=1,
                last_hash=entry.hash,
            )  # fmt: skip
            self._history[case_id] = [entry]
            self._notes[case_id] = []
            return case

    def get_case(self, case_id: int) -> Case | None:
        with self._lock:
            return self._cases.get(case_id)

    @contextmanager
    def case_tx(self, case_id: int) -> Iterator[MemoryCaseTx]:
        with self._lock:
            case = self._cases.get(case_id)
            if case is None:
                raise NotFound("case", case_id)
            # Records a case transaction can touch, kept to put back if the block raises.
            measures = {m.id: m for m in self._measures.values() if m.case_id == case_id}
            history_len, notes_len = len(self._history[case_id]), len(self._notes[case_id])
            co_units = self._co_units.get(case_id, ())
            extensions = dict(self._extensions)
            try:
                yield MemoryCaseTx(self, case)
            except BaseException:
                self._cases[case_id] = case
                self._co_units[case_id] = co_units
                self._extensions = extensions
                for measure_id in [m.id for m in self._measures.values() if m.case_id == case_id]:
                    del self._measures[measure_id]
                self._measures.update(measures)
                del self._history[case_id][history_len:]
                del self._notes[case_id][notes_len:]
                raise

    def list_cases(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        provisional_only: bool = False,
    ) -> list[Case]:  # fmt: skip
        with self._lock:
            cases = [self._cases[i] for i in sorted(self._cases)]
        return [
            c for c in cases
            if (unit_paths is None or any(c.unit_path.startswith(p) for p in unit_paths))
            and (state is None or c.state == state)
            and (not provisional_only or (c.due_at is not None and c.due_provisional))
        ]  # fmt: skip

    def find_cases(
        self, *, limit: int | None = None, offset: int = 0, unit_paths: Sequence[str] | None = None,
        state: str | None = None, severity: str | None = None, source: str | None = None,
        category: str | None = None, text: str | None = None,
        opened_since: dt.datetime | None = None, opened_before: dt.datetime | None = None,
        overdue_at: dt.datetime | None = None, include_co: bool = False,
        supervised_by: str | None = None,
    ) -> list[Case]:  # fmt: skip
        """Cases by id, filtered as the SQL store filters them, one page of them."""
        needle = text.casefold() if text is not None else None
        with self._lock:
            cases = [self._cases[i] for i in sorted(self._cases)]

        def paths(c: Case) -> list[str]:
            co = self._co_units.get(c.id, ()) if include_co else ()
            return [c.unit_path, *(self._units[u].path for u in co)]

        found = [
            c for c in cases
            if (unit_paths is None
                or any(path.startswith(p) for path in paths(c) for p in unit_paths))
            and all(value is None or value == have for value, have in (
                (state, c.state), (severity, c.severity), (source, c.source),
                (category, c.category)))
            and (needle is None or needle in c.title.casefold()
                 or needle in (c.description or "").casefold())
            and (opened_since is None or c.created_at >= opened_since)
            and (opened_before is None or c.created_at < opened_before)
            and (overdue_at is None or (c.due_at is not None and c.paused_at is None
                                        and c.exempt_until is None and c.due_at < overdue_at))
            and (supervised_by is None or c.supervised_by == supervised_by)
        ]  # fmt: skip
        return found[offset:] if limit is None else found[offset : offset + limit]

    def count_cases(self, **filters: Any) -> int:
        return len(self.find_cases(**filters))

    def measures_of(self, case_ids: Sequence[int]) -> dict[int, list[Measure]]:
        wanted = set(case_ids)
        found: dict[int, list[Measure]] = {}
        with self._lock:
            for m in sorted(self._measures.values(), key=lambda m: m.id):
                if m.case_id in wanted:
                    found.setdefault(m.case_id, []).append(m)
        return found

    def escalations_of(self, case_ids: Sequence[int]) -> dict[int, list[Escalation]]:
        wanted = set(case_ids)
        found: dict[int, list[Escalation]] = {}
        for e in self.list_escalations():
            if e.case_id in wanted:
                found.setdefault(e.case_id, []).append(e)
        return found

    def notes_of(self, case_ids: Sequence[int]) -> dict[int, list[Note]]:
        return {i: notes for i in case_ids if (notes := self.list_notes(i))}

    def iter_case_ids(self) -> Iterator[int]:
        with self._lock:
            ids = sorted(self._cases)
        yield from ids

    def get_measure(self, measure_id: int) -> Measure | None:
        with self._lock:
            return self._measures.get(measure_id)

    def list_measures(self, case_id: int) -> list[Measure]:
        with self._lock:
            return sorted(
                (m for m in self._measures.values() if m.case_id == case_id), key=lambda m: m.id
            )

    def list_history(self, case_id: int) -> list[HistoryEntry]:
        with self._lock:
            return sorted(self._history.get(case_id, []), key=lambda e: e.seq)

    def list_extensions(self, case_id: int) -> list[Extension]:
        with self._lock:
            return sorted(
                (e for e in self._extensions.values() if e.case_id == case_id), key=lambda e: e.id
            )

    def list_notes(self, case_id: int) -> list[Note]:
        with self._lock:
            return sorted(self._notes.get(case_id, []), key=lambda n: (n.at, n.id))
