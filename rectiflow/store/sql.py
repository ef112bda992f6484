"""The SQL store: SQLModel tables, SQLAlchemy Core on the hot path.

SqlStore is assembled from one class per concern: ``transactions`` (the engine, the write
and read transactions, the DB-API cursor of the fast path in ``fast``), ``reads`` (lists
and pages of cases), ``deadlines`` (the sweep, notifications, the calendar) and
``daemons``; this module adds the schema, units, actors, workflows and the change of one
case. PostgreSQL holds the case row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from rectiflow.engine.errors import ConflictError, NotFound, StoreUnavailable, ValidationError
from rectiflow.engine.history import GENESIS
from rectiflow.engine.records import CaseChange, NewCase, ref_key
from rectiflow.engine.types import (
    Actor,
    Case,
    Extension,
    HistoryEntry,
    Measure,
    Note,
    Unit,
    WorkflowRecord,
)
from rectiflow.store.case_writes import HISTORY_KEYS, INSERT_HISTORY, UPDATE_CASE, entry_values
from rectiflow.store.daemons import DaemonRecords
from rectiflow.store.deadlines import DeadlineRecords
from rectiflow.store.delivery import DeliveryRecords
from rectiflow.store.ledger import LedgerRecords
from rectiflow.store.reads import CASE_BY_ID, MEASURES_OF_CASE, CaseReads, case_of
from rectiflow.store.reports import ReportRecords
from rectiflow.store.tables import (
    actor_t,
    actor_unit_t,
    case_co_unit_t,
    case_t,
    extension_t,
    history_t,
    measure_t,
    note_t,
    unit_t,
    workflow_t,
)

_ACTORS = (
    sa.select(actor_t.c.name, actor_t.c.roles, unit_t.c.code, unit_t.c.path, actor_t.c.os_user)
    .select_from(actor_t)
    .outerjoin(actor_unit_t, actor_unit_t.c.actor == actor_t.c.name)
    .outerjoin(unit_t, unit_t.c.code == actor_unit_t.c.unit)
)
_ACTOR_BY_NAME = _ACTORS.where(actor_t.c.name == bindparam("name"))
_ALL_ACTORS = _ACTORS.order_by(actor_t.c.name, unit_t.c.code)
_CASE_FOR_UPDATE = CASE_BY_ID.with_for_update(of=case_t)


def _actor(rows: Sequence[Sequence[Any]]) -> Actor | None:
    """An actor from its rows (name, roles, unit code, unit path, os user): one row per
    unit."""
    if not rows:
        return None
    units = tuple(r[2] for r in rows if r[2] is not None)
    paths = tuple(r[3] for r in rows if r[3] is not None)
    roles = tuple(r for r in rows[0][1].split(",") if r)
    return Actor(rows[0][0], roles, units, paths, rows[0][4])


# Statements of a change to a case, run on the fast path (``fast.Statements``).
_DELETE_CO_UNITS = case_co_unit_t.delete().where(case_co_unit_t.c.case_id == bindparam("case_id"))
_INSERT_CO_UNIT = case_co_unit_t.insert()
_INSERT_MEASURE = measure_t.insert().returning(*measure_t.c)
_MEASURE_KEYS = ["case_id", "text", "owner", "due"]
_COMPLETE_MEASURE = (
    measure_t.update()
    .where(measure_t.c.id == bindparam("where_id"), measure_t.c.case_id == bindparam("where_case"))
    .returning(*measure_t.c)
)
_INSERT_NOTE = note_t.insert().returning(*note_t.c)
_EXTENSIONS_OF_CASE = (
    sa.select(extension_t)
    .where(extension_t.c.case_id == bindparam("case_id"))
    .order_by(extension_t.c.id)
)
_INSERT_EXTENSION = extension_t.insert().returning(*extension_t.c)
_EXTENSION_KEYS = ["case_id", "requested_at", "requested_by", "until", "reason", "status"]
_DECIDE_EXTENSION = (
    extension_t.update()
    .where(
        extension_t.c.id == bindparam("where_id"),
        extension_t.c.case_id == bindparam("where_case"),
    )
    .returning(*extension_t.c)
)
_DECISION_KEYS = ["status", "decided_by", "decided_at", "comment"]
_LAST_ENTRY_AT = sa.select(history_t.c.at).where(
    history_t.c.case_id == bindparam("case_id"), history_t.c.seq == bindparam("seq")
)


class SqlCaseTx:
    """One case held for change inside one database transaction (a DB-API cursor)."""

    def __init__(self, store: SqlStore, cursor: Any, row: dict[str, Any]) -> None:
        self.store = store
        self.cursor = cursor
        self.row = row  # the case's columns, kept to build the updated Case cheaply
        self.case = Case(**row)

    def actor(self, name: str) -> Actor | None:
        return _actor(self.store.statements(_ACTOR_BY_NAME).rows(self.cursor, {"name": name}))

    def measures(self) -> list[Measure]:
        found = self.store.statements(MEASURES_OF_CASE)
        return [Measure(**r) for r in found.dicts(self.cursor, {"case_id": self.case.id})]

    def update(self, change: CaseChange, entry: HistoryEntry | None = None) -> Case:
        values: dict[str, Any] = {**change, "version": self.case.version + 1}
        if "source" in change or "ref" in change:
            merged = {**self.row, **change}
            values["ref_key"] = ref_key(merged["source"], merged["ref"])
        if entry is not None:
            values["history_seq"] = entry.seq
            values["last_hash"] = entry.hash
        keys = tuple(values)
        stmt = self.store.statements(UPDATE_CASE, keys)
        where = {"where_id": self.case.id, "where_version": self.case.version}
        if stmt.execute(self.cursor, {**values, **where}).rowcount != 1:
            raise ConflictError(self.case.id, self.case.version, None)
        if entry is not None:
            history = self.store.statements(INSERT_HISTORY, HISTORY_KEYS)
            history.execute(self.cursor, entry_values(entry))
        self.row = {k: v for k, v in {**self.row, **values}.items() if k != "ref_key"}
        if "unit" in change:  # the case's unit path follows its unit
            unit = self.store.get_unit(change["unit"])
            if unit is None:
                raise NotFound("unit", change["unit"])
            self.row["unit_path"] = unit.path
        self.case = Case(**self.row)
        return self.case

    def set_co_units(self, units: Sequence[str]) -> None:
        # The caller checked the units: a foreign key failing here aborts the transaction.
        self.store.statements(_DELETE_CO_UNITS).execute(self.cursor, {"case_id": self.case.id})
        if units:
            insert = self.store.statements(_INSERT_CO_UNIT, ["case_id", "unit"])
            insert.executemany(self.cursor, [{"case_id": self.case.id, "unit": u} for u in units])

    def last_entry_at(self) -> dt.datetime | None:
        found = self.store.statements(_LAST_ENTRY_AT).rows(
            self.cursor, {"case_id": self.case.id, "seq": self.case.history_seq}
        )
        return found[0][0] if found else None

    def add_measure(self, text: str, owner: str, due: dt.datetime | None) -> Measure:
        stmt = self.store.statements(_INSERT_MEASURE, _MEASURE_KEYS)
        values = {"case_id": self.case.id, "text": text, "owner": owner, "due": due}
        return Measure(**stmt.dicts(self.cursor, values)[0])

    def complete_measure(
        self, measure_id: int, done_at: dt.datetime, evidence_path: str | None,
        evidence_sha256: str | None,
    ) -> Measure:  # fmt: skip
        keys = ["done_at", "evidence_path", "evidence_sha256"]
        stmt = self.store.statements(_COMPLETE_MEASURE, keys)
        found = stmt.dicts(self.cursor, {
            "done_at": done_at, "evidence_path": evidence_path, "evidence_sha256": evidence_sha256,
            "where_id": measure_id, "where_case": self.case.id,
        })  # fmt: skip
        if not found:
            raise NotFound("measure", measure_id)
        return Measure(**found[0])

    def add_note(self, actor: str, at: dt.datetime, text: str) -> Note:
        stmt = self.store.statements(_INSERT_NOTE, ["case_id", "actor", "at", "text"])
        values = {"case_id": self.case.id, "actor": actor, "at": at, "text": text}
        return Note(**stmt.dicts(self.cursor, values)[0])

    def extensions(self) -> list[Extension]:
        found = self.store.statements(_EXTENSIONS_OF_CASE)
        return [Extension(**r) for r in found.dicts(self.cursor, {"case_id": self.case.id})]

    def add_extension(
        self, requested_at: dt.datetime, requested_by: str, until: dt.datetime, reason: str
    ) -> Extension:
        stmt = self.store.statements(_INSERT_EXTENSION, _EXTENSION_KEYS)
        return Extension(**stmt.dicts(self.cursor, {
            "case_id": self.case.id, "requested_at": requested_at, "requested_by": requested_by,
            "until": until, "reason": reason, "status": "pending",
        })[0])  # fmt: skip

    def decide_extension(
        self, extension_id: int, status: str, decided_by: str, decided_at: dt.datetime,
        comment: str | None,
    ) -> Extension:  # fmt: skip
        stmt = self.store.statements(_DECIDE_EXTENSION, _DECISION_KEYS)
        found = stmt.dicts(self.cursor, {
            "status": status, "decided_by": decided_by, "decided_at": decided_at,
            "comment": comment, "where_id": extension_id, "where_case": self.case.id,
        })  # fmt: skip
        if not found:
            raise NotFound("extension", extension_id)
        return Extension(**found[0])


class SqlStore(
    CaseReads, DeadlineRecords, LedgerRecords, ReportRecords, DeliveryRecords, DaemonRecords
):
    """The store on SQLite or PostgreSQL through one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._case_for_update = CASE_BY_ID if self.is_sqlite else _CASE_FOR_UPDATE

    def create_schema(self, revision: str = "head", *, force: bool = False) -> None:
        from rectiflow.store import migrate  # alembic costs every CLI call 0.1 s to import

        if not force:
            self._refuse_foreign()
        if not self.is_sqlite:
            with self._write() as conn:
                migrate.upgrade(conn, revision)
            return
        # SQLite alters a table by copying it, and dropping the old copy would trip the
        # foreign keys of the rows that point at it: switch them off around the migration
        # (only possible outside a transaction) and check them before turning them back on.
        with self.guard(), self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin():
                    migrate.upgrade(conn, revision)
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise RuntimeError(f"migration broke a foreign key: {tuple(broken)}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's revision, the newest this code knows); StoreUnavailable when the
        database holds another program's tables."""
        from rectiflow.store import migrate

        self._refuse_foreign()
        with self._read() as conn:
            return migrate.current(conn), migrate.head()

    def _refuse_foreign(self) -> None:
        from rectiflow.store import migrate

        with self._read() as conn:
            tables = migrate.foreign_tables(conn)
        if tables:
            shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
            raise StoreUnavailable(
                f"{self.url.render_as_string(hide_password=True)} is not a rectiflow ledger "
                f"(it holds other tables: {shown}); `rectiflow init --force` adds the "
                "ledger's tables beside them"
            )

    # --- units and actors -----------------------------------------------------------------

    def add_unit(self, code: str, name: str, parent: str | None) -> Unit:
        try:
            return self._add_unit(code, name, parent)
        except sa.exc.IntegrityError:  # inserted concurrently by another process
            raise ValidationError(f"unit {code} already exists") from None

    def _add_unit(self, code: str, name: str, parent: str | None) -> Unit:
        with self._write() as conn:
            if conn.execute(sa.select(unit_t.c.code).where(unit_t.c.code == code)).first():
                raise ValidationError(f"unit {code} already exists")
            path = f"/{code}/"
            if parent is not None:
                parent_path = conn.execute(
                    sa.select(unit_t.c.path).where(unit_t.c.code == parent)
                ).scalar()
                if parent_path is None:
                    raise NotFound("unit", parent)
                path = f"{parent_path}{code}/"
            conn.execute(unit_t.insert().values(code=code, name=name, parent=parent, path=path))
        return Unit(code, name, parent, path)

    def get_unit(self, code: str) -> Unit | None:
        with self._read() as conn:
            row = conn.execute(sa.select(unit_t).where(unit_t.c.code == code)).first()
        return Unit(**row._mapping) if row else None

    def list_units(self) -> list[Unit]:
        with self._read() as conn:
            return [
                Unit(**r._mapping) for r in conn.execute(sa.select(unit_t).order_by(unit_t.c.path))
            ]

    def add_actor(self, name: str, roles: Sequence[str], units: Sequence[str]) -> Actor:
        try:
            return self._add_actor(name, roles, units)
        except sa.exc.IntegrityError:  # inserted concurrently by another process
            raise ValidationError(f"actor {name} already exists") from None

    def _add_actor(self, name: str, roles: Sequence[str], units: Sequence[str]) -> Actor:
        with self._write() as conn:
            if conn.execute(sa.select(actor_t.c.name).where(actor_t.c.name == name)).first():
                raise ValidationError(f"actor {name} already exists")
            for code in units:
                if not conn.execute(sa.select(unit_t.c.code).where(unit_t.c.code == code)).first():
                    raise NotFound("unit", code)
            conn.execute(actor_t.insert().values(name=name, roles=",".join(roles)))
            for code in dict.fromkeys(units):
                conn.execute(actor_unit_t.insert().values(actor=name, unit=code))
            actor = _actor(conn.execute(_ACTOR_BY_NAME, {"name": name}).all())
        assert actor is not None
        return actor

    def set_os_user(self, name: str, os_user: str | None) -> None:
        with self._write() as conn:
            done = conn.execute(
                actor_t.update().where(actor_t.c.name == name).values(os_user=os_user)
            )
            if done.rowcount != 1:
                raise NotFound("actor", name)

    def get_actor(self, name: str) -> Actor | None:
        with self._read() as conn:
            return _actor(conn.execute(_ACTOR_BY_NAME, {"name": name}).all())

    def list_actors(self) -> list[Actor]:
        with self._read() as conn:
            rows = conn.execute(_ALL_ACTORS).all()
        by_name: dict[str, list[Any]] = {}
        for row in rows:  # one row per (actor, unit)
            by_name.setdefault(row[0], []).append(row)
        return [actor for group in by_name.values() if (actor := _actor(group)) is not None]

    # --- workflows ------------------------------------------------------------------------

    def register_workflow(self, record: WorkflowRecord) -> bool:
        try:
            return self._register_workflow(record)
        except sa.exc.IntegrityError:
            # Another process (say, a second daemon's `init`) inserted the same name and
            # version between our look and our insert: look again, and compare with it.
            return self._register_workflow(record)

    def _register_workflow(self, record: WorkflowRecord) -> bool:
        with self._write() as conn:
            existing = conn.execute(
                sa.select(workflow_t.c.digest).where(
                    workflow_t.c.name == record.name, workflow_t.c.version == record.version
                )
            ).scalar()
            if existing is not None:
                if existing != record.digest:
                    raise ValidationError(
                        f"workflow {record.name}@{record.version} is already registered with "
                        "different content; a registered version is immutable: give it a new one"
                    )
                return False
            conn.execute(
                workflow_t.insert().values(
                    name=record.name,
                    version=record.version,
                    digest=record.digest,
                    source_text=record.source_text,
                    registered_at=record.registered_at,
                )
            )
        return True

    def get_workflow(self, name: str, version: int | None = None) -> WorkflowRecord | None:
        stmt = sa.select(workflow_t).where(workflow_t.c.name == name)
        if version is None:
            stmt = stmt.order_by(workflow_t.c.version.desc()).limit(1)
        else:
            stmt = stmt.where(workflow_t.c.version == version)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return WorkflowRecord(**row._mapping) if row else None

    def list_workflows(self) -> list[WorkflowRecord]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(workflow_t).order_by(workflow_t.c.name, workflow_t.c.version)
            )
            return [WorkflowRecord(**r._mapping) for r in rows]

    # --- cases ----------------------------------------------------------------------------

    def open_case(self, new: NewCase, first_entry: Callable[[int], HistoryEntry]) -> Case:
        # The chain's head needs the id, so the row goes in with the genesis hash first.
        row = {
            **new.columns(), "ref_key": ref_key(new.source, new.ref), "history_seq": 0,
            "last_hash": GENESIS,
        }  # fmt: skip
        with self._write() as conn:
            try:
                case_id = conn.execute(
                    case_t.insert().values(**row).returning(case_t.c.id)
                ).scalar_one()
            except sa.exc.IntegrityError as exc:
                if row["ref_key"] is not None and self.cases_by_ref([row["ref_key"]]):
                    raise ValidationError(
                        f"a case with ref {new.ref!r} from source {new.source!r} exists already"
                    ) from exc
                raise
            if new.co_units:
                conn.execute(
                    case_co_unit_t.insert(), [{"case_id": case_id, "unit": u} for u in new.co_units]
                )
            entry = first_entry(case_id)
            conn.execute(
                case_t.update()
                .where(case_t.c.id == case_id)
                .values(last_hash=entry.hash, history_seq=1)
            )
            conn.execute(INSERT_HISTORY, entry_values(entry))
            return case_of(conn.execute(CASE_BY_ID, {"id": case_id}).one())

    def get_case(self, case_id: int) -> Case | None:
        with self._read() as conn:
            row = conn.execute(CASE_BY_ID, {"id": case_id}).first()
        return case_of(row) if row else None

    @contextmanager
    def case_tx(self, case_id: int) -> Iterator[SqlCaseTx]:
        with self._cursor() as cursor:
            found = self.statements(self._case_for_update).dicts(cursor, {"id": case_id})
            if not found:
                raise NotFound("case", case_id)
            yield SqlCaseTx(self, cursor, found[0])
