"""The store interface the engine needs. store/ implements it for SQL and for memory.

The contract, which every implementation keeps (tests/unit/test_memory_store.py and
tests/integration/test_store_contract.py check both):

- Times go in and come out timezone-aware UTC.
- Every change to a case happens inside ``store.case_tx(case_id)``: the case row is read
  and held (``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on SQLite, the store's
  lock in memory) until the block ends; leaving the block normally commits everything done
  through the ``CaseTx``, an exception rolls all of it back.
- Every other write method is its own transaction: it commits before it returns or, when it
  raises, leaves nothing behind.
- Lists come back in a stated order (each method says which), never "as stored".
- A refused write raises the engine's errors: ``NotFound`` for a missing referenced row,
  ``ValidationError`` for a duplicate name, ``ConflictError`` for a lost update.

The records the engine hands the store to write (``NewCase``, ``CaseChange``, ...) are
``records.py``; what it reads back, ``types.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from rectiflow.engine.escalation import EscalationPlan
from rectiflow.engine.records import CaseChange, ImportedCase, NewCase
from rectiflow.engine.types import (
    Actor,
    Case,
    CaseStanding,
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

# The protocols, and the records their methods take (importable from here as from their
# own modules).
__all__ = ["CaseChange", "CaseTx", "EscalationPlan", "ImportedCase", "NewCase", "Store"]


class CaseTx(Protocol):
    """One case held for change (see ``Store.case_tx``). ``case`` is the row as held, and
    after each write the row as written."""

    case: Case

    def actor(self, name: str) -> Actor | None:
        """The actor, read in the same transaction (None: no such actor)."""
        ...

    def measures(self) -> list[Measure]:
        """The case's measures, by id."""
        ...

    def update(self, change: CaseChange, entry: HistoryEntry | None = None) -> Case:
        """Write ``change`` and ``version + 1`` where the version is still the held one
        (else ``ConflictError``); with ``entry``, append it to the history and make it the
        chain's head (``history_seq``, ``last_hash``). Returns the case as written."""
        ...

    def last_entry_at(self) -> dt.datetime | None:
        """The time of the case's newest history entry (None: it has none)."""
        ...

    def add_measure(self, text: str, owner: str, due: dt.datetime | None) -> Measure:
        """Add a measure (a new id). The version moves with the ``update`` (and its history
        entry) that goes with it."""
        ...

    def complete_measure(
        self, measure_id: int, done_at: dt.datetime, evidence_path: str | None,
        evidence_sha256: str | None,
    ) -> Measure:  # fmt: skip
        """Mark a measure of this case done (the version moves with the ``update`` that
        goes with it); ``NotFound`` if the measure does not belong to the case."""
        ...

    def add_note(self, actor: str, at: dt.datetime, text: str) -> Note:
        """Add a progress note (the version moves with the ``update`` that goes with it)."""
        ...

    def extensions(self) -> list[Extension]:
        """The case's extension requests, by id."""
        ...

    def add_extension(
        self, requested_at: dt.datetime, requested_by: str, until: dt.datetime, reason: str
    ) -> Extension:
        """Add a pending extension request (the version moves with the ``update`` that goes
        with it)."""
        ...

    def decide_extension(
        self, extension_id: int, status: str, decided_by: str, decided_at: dt.datetime,
        comment: str | None,
    ) -> Extension:  # fmt: skip
        """Record the decision on a request of this case (``NotFound`` if it is not one)."""
        ...

    def set_co_units(self, units: Sequence[str]) -> None:
        """Replace the case's co-units (unit codes, in this order; ``NotFound`` for an
        unknown unit). The version moves with the ``update`` that goes with it."""
        ...


class Store(Protocol):
    """Persistence for one ledger. Thread-safe: one store serves every thread of a process,
    and several processes may share one SQL database."""

    def create_schema(self, *, force: bool = False) -> None:
        """Create the schema or bring it to the newest revision. Idempotent; one process at
        a time (an advisory lock on PostgreSQL, the write lock on SQLite). A database that
        holds other tables and no revision of ours is refused (StoreUnavailable) unless
        ``force``."""
        ...

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's schema revision or None, the newest revision this code knows)."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used again."""
        ...

    # --- units and actors

    def add_unit(self, code: str, name: str, parent: str | None) -> Unit:
        """Add a unit below ``parent`` (None: a root); its path is the parent's plus
        ``CODE/``. ``ValidationError`` if the code exists, ``NotFound`` for the parent."""
        ...

    def get_unit(self, code: str) -> Unit | None: ...

    def list_units(self) -> list[Unit]:
        """Every unit, by path (so each parent comes before its children)."""
        ...

    def add_actor(self, name: str, roles: Sequence[str], units: Sequence[str]) -> Actor:
        """Add an actor with its roles, in order, and its units (none: acts everywhere).
        ``ValidationError`` if the name exists, ``NotFound`` for a unit."""
        ...

    def get_actor(self, name: str) -> Actor | None: ...

    def set_os_user(self, name: str, os_user: str | None) -> None:
        """Bind the actor to an operating-system login (None: unbound); ``NotFound``."""
        ...

    def list_actors(self) -> list[Actor]:
        """Every actor, by name."""
        ...

    # --- workflows (immutable per name + version)

    def register_workflow(self, record: WorkflowRecord) -> bool:
        """Store a workflow version; True if new, False if the same digest is there already,
        ``ValidationError`` if that name and version exist with another digest. Safe
        against a concurrent registration of the same version."""
        ...

    def get_workflow(self, name: str, version: int | None = None) -> WorkflowRecord | None:
        """That version, or the highest version of ``name`` when none is given."""
        ...

    def list_workflows(self) -> list[WorkflowRecord]:
        """Every registered version, by name then version."""
        ...

    # --- cases

    def open_case(self, new: NewCase, first_entry: Callable[[int], HistoryEntry]) -> Case:
        """Insert the case and its first history entry in one transaction.
        ``first_entry(case_id)`` builds the entry once the id is known; it becomes the head
        of the chain (``history_seq`` 1). ``NotFound`` for the unit or the workflow."""
        ...

    def get_case(self, case_id: int) -> Case | None: ...

    def case_tx(self, case_id: int) -> AbstractContextManager[CaseTx]:
        """Hold the case for change until the block ends (see the module docstring): a
        ``case_tx`` on the same case in another thread or process waits. ``NotFound``
        if there is no such case."""
        ...

    def list_cases(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        provisional_only: bool = False,
    ) -> list[Case]:  # fmt: skip
        """Cases by id: in a unit whose path starts with one of ``unit_paths`` (None: any),
        in ``state``, and with ``provisional_only`` only those whose current deadline is
        provisional."""
        ...

    def iter_case_ids(self) -> Iterator[int]:
        """Every case id, ascending; no transaction stays open while the caller iterates."""
        ...

    def get_measure(self, measure_id: int) -> Measure | None: ...

    def list_measures(self, case_id: int) -> list[Measure]:
        """The case's measures, by id."""
        ...

    def list_history(self, case_id: int) -> list[HistoryEntry]:
        """The case's history, by sequence number."""
        ...

    def list_notes(self, case_id: int) -> list[Note]:
        """The case's notes, by time then id."""
        ...

    def list_extensions(self, case_id: int) -> list[Extension]:
        """The case's extension requests, by id."""
        ...

    def find_cases(
        self, *, limit: int | None = None, offset: int = 0,
        unit_paths: Sequence[str] | None = None, state: str | None = None,
        severity: str | None = None, source: str | None = None, category: str | None = None,
        text: str | None = None, opened_since: dt.datetime | None = None,
        opened_before: dt.datetime | None = None, overdue_at: dt.datetime | None = None,
        include_co: bool = False, supervised_by: str | None = None,
    ) -> list[Case]:  # fmt: skip
        """One page of the cases that pass every filter given, by id. ``unit_paths``: the
        case's unit lies under one of them (with ``include_co``, or one of its co-units
        does); ``text``: a case-insensitive substring of the title or the
        description; ``overdue_at``: neither paused nor exempted, and past its stage
        deadline at that time; ``supervised_by``: the unit it was raised to, or its own
        unit when it never was."""
        ...

    def count_cases(self, **filters: Any) -> int:
        """How many cases ``find_cases`` would list without a page."""
        ...

    def measures_of(self, case_ids: Sequence[int]) -> dict[int, list[Measure]]:
        """The measures of each case that has any, by id; one query per 900 cases."""
        ...

    def escalations_of(self, case_ids: Sequence[int]) -> dict[int, list[Escalation]]:
        """The recorded levels of each case that has any, in the order recorded."""
        ...

    def notes_of(self, case_ids: Sequence[int]) -> dict[int, list[Note]]:
        """The notes of each case that has any, oldest first."""
        ...

    # --- ledgers: external keys, co-units, imports
    def co_units_of(self, case_ids: Sequence[int]) -> dict[int, list[str]]:
        """The co-units of each case that has any, by unit code."""
        ...

    def cases_by_ref(self, keys: Sequence[str]) -> dict[str, Case]:
        """The cases whose ``ref_key(source, ref)`` is among ``keys``, by key."""
        ...

    def import_cases(
        self, count: int, build: Callable[[Sequence[int]], Iterable[ImportedCase]]
    ) -> list[int]:
        """One transaction: reserve ``count`` new case ids, hand them to ``build`` (which
        hashes each case's history entry with its id, and may yield the cases one by one:
        the store writes them as they come), and write every case, co-unit, measure,
        history entry and backfilled escalation it gives, one per id; all or nothing. A
        duplicate external key raises ``ValidationError``. Returns the ids written."""
        ...

    # --- reports
    def case_standings(
        self, now: dt.datetime, unit_paths: Sequence[str] | None = None
    ) -> Iterator[CaseStanding]:
        """Every case (under ``unit_paths``), by id, with its measures counted (late: not
        done and due before ``now``) and the levels recorded in its current visit: one
        aggregate query, streamed."""
        ...

    def save_snapshot(
        self, info: SnapshotInfo, cases: Iterable[SnapshotCase], units: Mapping[str, Any]
    ) -> None:
        """Freeze a period's figures, all or nothing; ``AlreadyTaken`` if it exists."""
        ...

    def get_snapshot(self, period: str) -> SnapshotInfo | None: ...

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot, by period."""
        ...

    def snapshot_cases(
        self, period: str, unit_paths: Sequence[str] | None = None
    ) -> list[SnapshotCase]:
        """The frozen cases of a period (under ``unit_paths``), by case id."""
        ...

    def snapshot_units(self, period: str) -> dict[str, Any]:
        """The frozen figures of each unit (its subtree rolled up), by unit code."""
        ...

    # --- deadlines and escalations

    def escalate_batch(
        self, now: dt.datetime, limit: int,
        plan: Callable[[Case, Sequence[str]], EscalationPlan],
    ) -> tuple[int, list[Escalation]]:  # fmt: skip
        """Claim up to ``limit`` cases due at ``now`` (``next_escalation_at <= now``, not
        paused), oldest due first, then by id; hold them (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, so two sweeps claim different cases); ask ``plan(case, co_units)`` for
        each and write its escalations and notifications (each unique: one already there is
        skipped, not an error) and its next level, only where the case is still on the same
        visit; with the plan's ``change`` and ``entry``, those columns too and the history
        entry (the version moves, as in ``CaseTx.update``). One transaction: the whole
        batch or nothing. ``plan`` must not use the store: it runs while the batch holds
        its locks.
        Returns (cases claimed, escalations newly recorded)."""
        ...

    def due_cases(self, now: dt.datetime, after_id: int, limit: int) -> list[Case]:
        """Up to ``limit`` cases due at ``now`` with an id above ``after_id``, by id.
        Reads only: the dry run's way through what ``escalate_batch`` would claim."""
        ...

    def next_escalation_at(self) -> dt.datetime | None:
        """The earliest ``next_escalation_at`` of a case not paused (None: nothing
        pending). One indexed query: asked every second by an idle daemon."""
        ...

    def list_escalations(self, case_id: int | None = None) -> list[Escalation]:
        """Recorded escalations (of one case, or all), in the order they were recorded."""
        ...

    def add_notifications(
        self, rows: Iterable[tuple[int, str, str | None, str, str, str | None]], at: dt.datetime
    ) -> int:
        """Write outbox rows (case id, kind, level, role, unique key, person) created ``at``;
        a key already there is skipped. One transaction. Returns how many were written."""
        ...

    def list_notifications(
        self, case_id: int | None = None, kind: str | None = None, *,
        actor: str | None = None, level: str | None = None, limit: int | None = None,
    ) -> list[Notification]:  # fmt: skip
        """Outbox rows (of one case, kind, person, level; at most ``limit``), by id."""
        ...

    def cases_without_note_since(self, since: dt.datetime, after_id: int, limit: int) -> list[Case]:
        """Up to ``limit`` cases with a current stage deadline and no note at or after
        ``since``, with an id above ``after_id``, by id."""
        ...

    # --- the working calendar loaded by an administrator

    def load_calendar(self, days: Iterable[tuple[dt.date, bool]]) -> int:
        """Upsert (day, is working day) rows in one transaction; how many were given."""
        ...

    def calendar_days(self) -> list[tuple[dt.date, bool]]:
        """Every loaded day, by date. Cheap: asked in the middle of a transition."""
        ...

    # --- daemon heartbeats and health

    def register_daemon(self, host: str, pid: int, at: dt.datetime) -> DaemonBeat:
        """Add a daemon's row; the returned beat carries its id."""
        ...

    def save_beat(self, beat: DaemonBeat) -> None:
        """Overwrite the daemon's row (by ``beat.id``) with ``beat``."""
        ...

    def list_daemons(self, seen_since: dt.datetime) -> list[DaemonBeat]:
        """Daemons whose last beat is at or after ``seen_since``, oldest start first."""
        ...

    def forget_daemons(self, beat_before: dt.datetime) -> int:
        """Delete the rows of daemons last seen before ``beat_before``; how many went."""
        ...

    def undelivered(self) -> tuple[dt.datetime | None, int]:
        """(creation time of the oldest undelivered notification, how many are undelivered)."""
        ...
