"""Value types: frozen records that the store returns and the engine reasons about.

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Light(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    name: str
    parent: str | None
    path: str  # "/ROOT/CHILD/": an actor bound to a unit acts on every path below it


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    roles: tuple[str, ...]
    units: tuple[str, ...]  # unit codes; empty = acts everywhere
    unit_paths: tuple[str, ...]
    os_user: str | None = None  # the operating-system login it is bound to (None: any)

    def covers(self, unit_path: str) -> bool:
        return not self.unit_paths or any(unit_path.startswith(p) for p in self.unit_paths)


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    workflow: str
    workflow_version: int
    unit: str
    unit_path: str
    title: str
    description: str | None
    category: str | None
    source: str | None
    severity: str
    state: str
    version: int
    created_at: dt.datetime
    stage_entered_at: dt.datetime
    due_at: dt.datetime | None  # the current stage deadline
    due_provisional: bool
    due: dt.datetime | None  # the case's own rectification deadline, when fixed at opening
    visit: int  # stage visits so far; a re-entered state is a new visit
    next_level: int  # index in the ladder of the next level to fire this visit
    next_escalation_at: dt.datetime | None
    paused_at: dt.datetime | None
    pause_credit: int  # paused time granted this visit (working days, days or seconds)
    history_seq: int
    last_hash: str
    ref: str | None = None  # the external key in its ledger (序号/编号), with ``source``
    target: str | None = None  # 整改目标
    responsible: str | None = None  # 责任人: a name as the ledger writes it
    long_term: bool = False  # 长期坚持: in its due state without a date, no deadline runs
    # 提级督办: the unit a raising ladder level moved the case up to (None: its own unit)
    supervising_unit: str | None = None
    relapses: int = 0  # how often a look-back (or a relapse) sent it back after closing
    lookback_due_at: dt.datetime | None = None  # 回头看 of the latest closing
    lookback_result: str | None = None  # held or relapsed; None: not recorded yet
    lookback_at: dt.datetime | None = None
    lookback_actor: str | None = None
    exempted_at: dt.datetime | None = None  # 容错免责: no ladder level fires until exempt_until
    exempt_until: dt.datetime | None = None
    exempt_reason: str | None = None

    @property
    def supervised_by(self) -> str:
        """The unit that supervises the case: the one it was raised to, or its own."""
        return self.supervising_unit or self.unit


@dataclass(frozen=True, slots=True)
class Measure:
    id: int
    case_id: int
    text: str
    owner: str
    due: dt.datetime | None
    done_at: dt.datetime | None
    evidence_path: str | None
    evidence_sha256: str | None

    @property
    def done(self) -> bool:
        return self.done_at is not None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    case_id: int
    seq: int
    trigger: str
    source: str | None
    dest: str
    actor: str
    at: dt.datetime
    comment: str | None
    prev_hash: str
    hash: str
    # what the entry records beyond its fields (a JSON object, covered by the hash); None
    # on entries written before history had data
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Escalation:
    case_id: int
    visit: int
    state: str
    level: str
    due_at: dt.datetime
    fired_at: dt.datetime
    backfilled: bool = False  # reached before the case was imported; nobody was notified
    raised_to: str | None = None  # the unit a raising level moved the case up to


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    case_id: int
    actor: str
    at: dt.datetime
    text: str


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    case_id: int
    kind: str  # "escalation" or "dispatch"
    level: str | None
    role: str
    created_at: dt.datetime
    key: str  # unique: the same notification is never written twice
    actor: str | None = None  # the person it is for (None: nobody holds the role)


@dataclass(frozen=True, slots=True)
class Extension:
    """An owner's request for more time (申请延期) and what the supervisor decided."""

    id: int
    case_id: int
    requested_at: dt.datetime
    requested_by: str
    until: dt.datetime
    reason: str
    status: str  # pending, approved, rejected
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    name: str
    version: int
    digest: str
    source_text: str
    registered_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SweepSummary:
    cases: int
    fired: int
    by_level: dict[str, int]
    next_due_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DaemonBeat:
    """A daemon's heartbeat row: who it is and how its sweep went, for ``health``."""

    id: int
    host: str
    pid: int
    started_at: dt.datetime
    beat_at: dt.datetime
    sweep_started_at: dt.datetime | None = None
    sweep_ended_at: dt.datetime | None = None
    levels_recorded: int = 0  # since the daemon started
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """What ``rectiflow health`` reports, as of ``as_of``.

    ``lag`` is how long the oldest due level has waited unrecorded (0 when nothing is due);
    ``swept_ago`` how long since any daemon last finished a sweep (None: never)."""

    as_of: dt.datetime
    daemons: list[DaemonBeat]
    oldest_due_at: dt.datetime | None
    lag: dt.timedelta
    swept_ago: dt.timedelta | None
    oldest_undelivered_at: dt.datetime | None
    undelivered: int


@dataclass(frozen=True, slots=True)
class CaseStanding:
    """Where a case stands, as the store aggregates it for reports in one query: its row's
    figures, its measures counted, and the levels recorded in its current visit."""

    id: int
    workflow: str
    workflow_version: int
    unit: str
    unit_path: str
    category: str | None
    source: str | None
    severity: str
    state: str
    paused: bool
    long_term: bool
    due_at: dt.datetime | None
    stage_entered_at: dt.datetime
    visit: int
    measures: int
    measures_done: int
    measures_late: int  # not done, and past their own due date
    levels: tuple[str, ...]  # recorded this visit, in no set order
    title: str = ""  # for the lists a report prints (the overdue ones)
    exempted: bool = False
    relapses: int = 0
    lookback_due_at: dt.datetime | None = None
    lookback_result: str | None = None
    extensions_approved: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    period: str  # 2026-03 or 2026-Q1
    kind: str  # month or quarter
    as_of: dt.datetime
    taken_at: dt.datetime
    taken_by: str  # an actor, or "daemon"


@dataclass(frozen=True, slots=True)
class SnapshotCase:
    period: str
    case_id: int
    unit: str
    unit_path: str
    category: str
    light: str | None
    state: str
    due_at: dt.datetime | None
    level: str | None  # the highest level reached in the visit


@dataclass(frozen=True, slots=True)
class Contacts:
    actor: str
    email: str | None = None
    mobile: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification to one person on one channel (see DeliveryStore)."""

    id: int
    notification_id: int
    channel: str
    recipient: str
    role: str
    key: str
    status: str  # pending, retrying, sent, dead
    attempts: int
    next_attempt_at: dt.datetime
    claimed_until: dt.datetime | None
    digest: bool
    created_at: dt.datetime
    sent_at: dt.datetime | None
    last_code: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    id: int
    delivery_id: int
    at: dt.datetime
    outcome: str  # delivered, retry, dead
    code: str | None
    detail: str
