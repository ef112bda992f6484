"""The SQLModel tables. Times are UTC; see ``UTCDateTime`` for how each backend keeps them.

No ``from __future__ import annotations`` here: pydantic would evaluate every column's
annotation back from its text (an ``eval`` per column, on every start of the program).
"""

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field
from sqlmodel import SQLModel as _SQLModel
from sqlmodel.main import SQLModelConfig


class SQLModel(_SQLModel):
    """The tables' base: SQLModel, its pydantic validation built on first use.

    The store reads only each table's ``__table__``; no row is ever made from these
    classes, so the validators pydantic would build for each (a third of the cost of
    declaring the tables, paid by every command) are never needed. Named like its base,
    so that a table is declared as in SQLModel's documentation.
    """

    model_config = SQLModelConfig(defer_build=True)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes: ``timestamptz`` on PostgreSQL, ISO-8601 text on SQLite.

    SQLite's own DateTime type parses with a regular expression, which cost more than the
    rest of a transition; ``fromisoformat`` is C and sorts the same way as the text.
    """

    impl = sa.types.String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.types.String(32))
        return dialect.type_descriptor(sa.types.DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: rectiflow stores aware UTC times")
        value = value.astimezone(dt.UTC)
        return value.isoformat() if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        return value.astimezone(dt.UTC)


class EntryData(sa.types.TypeDecorator[dict[str, Any]]):
    """A history entry's data: a JSON object stored as the canonical text its hash covers."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else json.loads(value)


def _time(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class UnitRow(SQLModel, table=True):
    __tablename__ = "unit"
    code: str = Field(primary_key=True, max_length=64)
    name: str
    parent: str | None = Field(default=None, foreign_key="unit.code")
    path: str = Field(index=True)


class ActorRow(SQLModel, table=True):
    __tablename__ = "actor"
    name: str = Field(primary_key=True, max_length=128)
    roles: str  # comma-separated role names
    os_user: str | None = None  # the operating-system login bound to the actor


class ActorContactRow(SQLModel, table=True):
    """How a person is reached: the delivery channels read it."""

    __tablename__ = "actor_contact"
    actor: str = Field(foreign_key="actor.name", primary_key=True, max_length=128)
    email: str | None = None
    mobile: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None


class ActorUnitRow(SQLModel, table=True):
    __tablename__ = "actor_unit"
    actor: str = Field(primary_key=True, foreign_key="actor.name")
    unit: str = Field(primary_key=True, foreign_key="unit.code")


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflow"
    name: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    digest: str = Field(max_length=64)
    source_text: str
    registered_at: dt.datetime = _time()


class CaseRow(SQLModel, table=True):
    __tablename__ = "rcase"  # "case" is a reserved word in SQL
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["workflow", "workflow_version"], ["workflow.name", "workflow.version"]
        ),
        sa.Index("ix_rcase_next_escalation_at", "next_escalation_at"),
        sa.Index("ix_rcase_unit_state", "unit", "state"),
        sa.Index("uq_rcase_ref_key", "ref_key", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    workflow: str
    workflow_version: int
    unit: str = Field(foreign_key="unit.code")
    title: str
    description: str | None = None
    category: str | None = None
    source: str | None = None
    severity: str = Field(max_length=8)
    state: str = Field(max_length=64)
    version: int
    created_at: dt.datetime = _time()
    stage_entered_at: dt.datetime = _time()
    due_at: dt.datetime | None = _time(default=None)
    due_provisional: bool = False
    due: dt.datetime | None = _time(default=None)
    visit: int = 1
    next_level: int = 0
    next_escalation_at: dt.datetime | None = _time(default=None)
    paused_at: dt.datetime | None = _time(default=None)
    pause_credit: int = 0
    history_seq: int = 0
    last_hash: str = Field(max_length=64)
    ref: str | None = None  # the ledger's 序号/编号
    # "source\x1fref": unique, so that a ledger imported twice creates nothing the second time
    ref_key: str | None = None
    target: str | None = None
    responsible: str | None = None
    long_term: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    supervising_unit: str | None = None  # a unit code (units are never deleted)
    relapses: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lookback_due_at: dt.datetime | None = _time(default=None)
    lookback_result: str | None = Field(default=None, max_length=16)
    lookback_at: dt.datetime | None = _time(default=None)
    lookback_actor: str | None = None
    exempted_at: dt.datetime | None = _time(default=None)
    exempt_until: dt.datetime | None = _time(default=None)
    exempt_reason: str | None = None


class CaseCoUnitRow(SQLModel, table=True):
    """A unit that works on a case beside its lead unit (配合单位)."""

    __tablename__ = "case_co_unit"
    case_id: int = Field(foreign_key="rcase.id", primary_key=True)
    unit: str = Field(foreign_key="unit.code", primary_key=True, index=True)


class MeasureRow(SQLModel, table=True):
    __tablename__ = "measure"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rcase.id", index=True)
    text: str
    owner: str
    due: dt.datetime | None = _time(default=None)
    done_at: dt.datetime | None = _time(default=None)
    evidence_path: str | None = None
    evidence_sha256: str | None = Field(default=None, max_length=64)


class HistoryRow(SQLModel, table=True):
    """Append-only: rows are inserted with their chain hash and never updated."""

    __tablename__ = "history"
    case_id: int = Field(foreign_key="rcase.id", primary_key=True)
    seq: int = Field(primary_key=True)
    trigger: str
    source: str | None = None
    dest: str
    actor: str
    at: dt.datetime = _time()
    comment: str | None = None
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    data: dict[str, Any] | None = Field(default=None, sa_type=EntryData)


class EscalationRow(SQLModel, table=True):
    __tablename__ = "escalation"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "visit", "level", name="uq_escalation_visit_level"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rcase.id", index=True)
    visit: int
    state: str
    level: str
    due_at: dt.datetime = _time()
    fired_at: dt.datetime = _time()
    # reached before the case was imported: recorded, nobody notified
    backfilled: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    raised_to: str | None = None  # 提级督办: the unit a raising level moved the case up to


class NotificationRow(SQLModel, table=True):
    """The outbox: one row per person (and the role they hold it for); delivery channels
    read it. ``actor`` is None where nobody held the role (and on rows of the time when the
    outbox named roles only)."""

    __tablename__ = "notification"
    __table_args__ = (sa.Index("ix_notification_undelivered", "delivered_at", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rcase.id", index=True)
    kind: str = Field(max_length=16)
    level: str | None = None
    role: str
    created_at: dt.datetime = _time()
    key: str = Field(unique=True, max_length=200)
    delivered_at: dt.datetime | None = _time(default=None)
    expanded_at: dt.datetime | None = _time(default=None, index=True)  # deliveries made
    actor: str | None = Field(default=None, index=True)


class ExtensionRow(SQLModel, table=True):
    """An owner's request for more time (申请延期) and the decision on it."""

    __tablename__ = "extension"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rcase.id", index=True)
    requested_at: dt.datetime = _time()
    requested_by: str
    until: dt.datetime = _time()
    reason: str
    status: str = Field(max_length=16)  # pending, approved, rejected
    decided_by: str | None = None
    decided_at: dt.datetime | None = _time(default=None)
    comment: str | None = None


class DaemonRow(SQLModel, table=True):
    """One row per daemon process: its heartbeat, written by the daemon, read by ``health``."""

    __tablename__ = "daemon"
    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)
    pid: int
    started_at: dt.datetime = _time()
    beat_at: dt.datetime = _time(index=True)
    sweep_started_at: dt.datetime | None = _time(default=None)
    sweep_ended_at: dt.datetime | None = _time(default=None)
    levels_recorded: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = _time(default=None)
    stopped_at: dt.datetime | None = _time(default=None)


class DeliveryRow(SQLModel, table=True):
    """One notification to one person on one channel, sent at least once."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_delivery_key"),
        sa.Index("ix_delivery_due", "status", "next_attempt_at"),
        sa.Index("ix_delivery_notification", "notification_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id")
    channel: str = Field(max_length=64)
    recipient: str = Field(max_length=128)
    role: str
    key: str = Field(max_length=300)  # the idempotency key a receiver sees on every resend
    status: str = Field(max_length=16)  # pending, retrying, sent, dead
    attempts: int = 0
    next_attempt_at: dt.datetime = _time()
    claimed_until: dt.datetime | None = _time(default=None)  # a sender's lease
    digest: bool = False  # waits for the channel's daily digest
    created_at: dt.datetime = _time()
    sent_at: dt.datetime | None = _time(default=None)
    last_code: str | None = Field(default=None, max_length=32)
    last_error: str | None = None


class DeliveryAttemptRow(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    at: dt.datetime = _time()
    outcome: str = Field(max_length=16)
    code: str | None = Field(default=None, max_length=32)
    detail: str


class NoteRow(SQLModel, table=True):
    __tablename__ = "note"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rcase.id", index=True)
    actor: str
    at: dt.datetime = _time(index=True)
    text: str


class SnapshotRow(SQLModel, table=True):
    """A period's frozen report (``2026-03``, ``2026-Q1``): taken once, never changed."""

    __tablename__ = "snapshot"
    period: str = Field(primary_key=True, max_length=16)
    kind: str = Field(max_length=8)  # month or quarter
    as_of: dt.datetime = _time()
    taken_at: dt.datetime = _time()
    taken_by: str


class SnapshotCaseRow(SQLModel, table=True):
    __tablename__ = "snapshot_case"
    period: str = Field(foreign_key="snapshot.period", primary_key=True, max_length=16)
    case_id: int = Field(primary_key=True)
    unit: str
    unit_path: str
    category: str = Field(max_length=32)
    light: str | None = Field(default=None, max_length=8)
    state: str = Field(max_length=64)
    due_at: dt.datetime | None = _time(default=None)
    level: str | None = Field(default=None, max_length=32)


class SnapshotUnitRow(SQLModel, table=True):
    __tablename__ = "snapshot_unit"
    period: str = Field(foreign_key="snapshot.period", primary_key=True, max_length=16)
    unit: str = Field(primary_key=True)
    figures: str = Field(sa_type=sa.Text)  # JSON: the unit's tally, its subtree rolled up


class CalendarDayRow(SQLModel, table=True):
    __tablename__ = "calendar_day"
    day: dt.date = Field(primary_key=True)
    workday: bool


metadata = SQLModel.metadata
# The Core tables behind the models, for the store's statements.
unit_t: sa.Table = UnitRow.__table__  # type: ignore[attr-defined]
actor_t: sa.Table = ActorRow.__table__  # type: ignore[attr-defined]
actor_unit_t: sa.Table = ActorUnitRow.__table__  # type: ignore[attr-defined]
workflow_t: sa.Table = WorkflowRow.__table__  # type: ignore[attr-defined]
case_t: sa.Table = CaseRow.__table__  # type: ignore[attr-defined]
case_co_unit_t: sa.Table = CaseCoUnitRow.__table__  # type: ignore[attr-defined]
measure_t: sa.Table = MeasureRow.__table__  # type: ignore[attr-defined]
history_t: sa.Table = HistoryRow.__table__  # type: ignore[attr-defined]
escalation_t: sa.Table = EscalationRow.__table__  # type: ignore[attr-defined]
notification_t: sa.Table = NotificationRow.__table__  # type: ignore[attr-defined]
daemon_t: sa.Table = DaemonRow.__table__  # type: ignore[attr-defined]
actor_contact_t: sa.Table = ActorContactRow.__table__  # type: ignore[attr-defined]
delivery_t: sa.Table = DeliveryRow.__table__  # type: ignore[attr-defined]
delivery_attempt_t: sa.Table = DeliveryAttemptRow.__table__  # type: ignore[attr-defined]
note_t: sa.Table = NoteRow.__table__  # type: ignore[attr-defined]
snapshot_t: sa.Table = SnapshotRow.__table__  # type: ignore[attr-defined]
snapshot_case_t: sa.Table = SnapshotCaseRow.__table__  # type: ignore[attr-defined]
snapshot_unit_t: sa.Table = SnapshotUnitRow.__table__  # type: ignore[attr-defined]
calendar_t: sa.Table = CalendarDayRow.__table__  # type: ignore[attr-defined]
extension_t: sa.Table = ExtensionRow.__table__  # type: ignore[attr-defined]
