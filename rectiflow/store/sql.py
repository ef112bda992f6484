"""The SQL store: SQLModel tables, SQLAlchemy Core on the hot path.

SQLite runs in WAL mode; every write transaction starts with ``BEGIN IMMEDIATE`` so two
processes serialize on the write lock instead of failing when a read turns into a write.
PostgreSQL holds the case row with ``SELECT ... FOR UPDATE`` and the sweep claims with
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from rectiflow.engine.errors import ConflictError, NotFound, ValidationError
from rectiflow.engine.history import GENESIS
from rectiflow.engine.storage import CaseChange, EscalationPlan, NewCase
from rectiflow.engine.types import (
    Actor,
    Case,
    Escalation,
    HistoryEntry,
    Measure,
    Note,
    Notification,
    Unit,
    WorkflowRecord,
)
from rectiflow.store import connections
from rectiflow.store.daemons import DaemonRecords
from rectiflow.store.tables import (
    actor_t,
    actor_unit_t,
    calendar_t,
    case_t,
    escalation_t,
    history_t,
    measure_t,
    note_t,
    notification_t,
    unit_t,
    workflow_t,
)

_CASE_COLUMNS = [*case_t.c, unit_t.c.path.label("unit_path")]
_SELECT_CASE = sa.select(*_CASE_COLUMNS).join(unit_t, unit_t.c.code == case_t.c.unit)
_CASE_BY_ID = _SELECT_CASE.where(case_t.c.id == bindparam("id"))
_ACTORS = (
    sa.select(actor_t.c.name, actor_t.c.roles, unit_t.c.code, unit_t.c.path)
    .select_from(actor_t)
    .outerjoin(actor_unit_t, actor_unit_t.c.actor == actor_t.c.name)
    .outerjoin(unit_t, unit_t.c.code == actor_unit_t.c.unit)
)
_ACTOR_BY_NAME = _ACTORS.where(actor_t.c.name == bindparam("name"))
_ALL_ACTORS = _ACTORS.order_by(actor_t.c.name, unit_t.c.code)
_MEASURES_OF_CASE = (
    sa.select(measure_t).where(measure_t.c.case_id == bindparam("case_id")).order_by(measure_t.c.id)
)
_INSERT_HISTORY = history_t.insert()
_IDS_PER_QUERY = 900  # under SQLite's limit of bound parameters (999 before 3.32)


def _case(row: Row[Any]) -> Case:
    return Case(**row._mapping)


def _measure(row: Row[Any]) -> Measure:
    return Measure(**row._mapping)


def _actor(rows: Sequence[Sequence[Any]]) -> Actor | None:
    """An actor from its rows (name, roles, unit code, unit path): one row per unit."""
    if not rows:
        return None
    units = tuple(r[2] for r in rows if r[2] is not None)
    paths = tuple(r[3] for r in rows if r[3] is not None)
    roles = tuple(r for r in rows[0][1].split(",") if r)
    return Actor(rows[0][0], roles, units, paths)


def _entry_values(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "case_id": entry.case_id, "seq": entry.seq, "trigger": entry.trigger,
        "source": entry.source, "dest": entry.dest, "actor": entry.actor, "at": entry.at,
        "comment": entry.comment, "prev_hash": entry.prev_hash, "hash": entry.hash,
    }  # fmt: skip


# Statements of the hot paths (a change to a case, a sweep batch), run through _Prepared.
_UPDATE_CASE = case_t.update().where(
    case_t.c.id == bindparam("where_id"), case_t.c.version == bindparam("where_version")
)
_HISTORY_KEYS = [c.key for c in history_t.c]
_INSERT_MEASURE = measure_t.insert().returning(*measure_t.c)
_MEASURE_KEYS = ["case_id", "text", "owner", "due"]
_COMPLETE_MEASURE = (
    measure_t.update()
    .where(measure_t.c.id == bindparam("where_id"), measure_t.c.case_id == bindparam("where_case"))
    .returning(*measure_t.c)
)
_INSERT_NOTE = note_t.insert().returning(*note_t.c)
_NEXT_LEVEL = case_t.update().where(
    case_t.c.id == bindparam("where_id"), case_t.c.visit == bindparam("where_visit")
)
_ESCALATION_KEYS = ["case_id", "visit", "state", "level", "due_at", "fired_at"]
_NOTIFICATION_KEYS = ["case_id", "kind", "level", "role", "created_at", "key"]
_CALENDAR_DAYS = sa.select(calendar_t.c.day, calendar_t.c.workday).order_by(calendar_t.c.day)
_PYFORMAT = re.compile(r"%\((\w+)\)s")


class _Prepared:
    """A Core statement compiled once for one dialect and run on the DB-API cursor.

    SQLAlchemy's work per execution (cache key, parameter and result set-up: some 40 µs a
    statement) is more than SQLite needs to run one of these; the hot paths keep Core's SQL
    and its type conversions (``bind_processor``/``result_processor``) and skip the rest.
    """

    def __init__(self, stmt: Any, dialect: sa.Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        order = compiled.positiontup  # qmark on SQLite
        if order is None and dialect.paramstyle == "pyformat":
            # psycopg takes %(name)s with a dict, or %s with a tuple for less work a call
            order = _PYFORMAT.findall(self.sql)
            self.sql = _PYFORMAT.sub("%s", self.sql)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self.positional = order is not None
        self.names = list(order if order is not None else binds)
        self.defaults = {  # values Core put in the statement itself, e.g. a LIMIT
            name: binds[name].value for name in self.names if not binds[name].required
        }
        self.bind_convert = [
            (i, process)
            for i, name in enumerate(self.names)
            if (process := binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        columns = list(stmt.exported_columns)
        self.fields = [c.key for c in columns]
        self.convert = [
            (i, process)
            for i, c in enumerate(columns)
            if (process := c.type.dialect_impl(dialect).result_processor(dialect, None))
        ]

    def bind(self, values: dict[str, Any]) -> Any:
        if self.defaults:
            values = {**self.defaults, **values}
        out = [values[name] for name in self.names]
        for i, process in self.bind_convert:
            if out[i] is not None:
                out[i] = process(out[i])
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))

    def execute(self, cursor: Any, values: dict[str, Any]) -> Any:
        cursor.execute(self.sql, self.bind(values))
        return cursor

    def executemany(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        cursor.executemany(self.sql, [self.bind(values) for values in rows])

    def rows(self, cursor: Any, values: dict[str, Any]) -> list[list[Any]]:
        return [self._row(raw) for raw in self.execute(cursor, values).fetchall()]

    def dicts(self, cursor: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
        raws = self.execute(cursor, values).fetchall()
        return [dict(zip(self.fields, self._row(raw), strict=True)) for raw in raws]

    def _row(self, raw: Sequence[Any]) -> list[Any]:
        row = list(raw)
        for i, process in self.convert:
            if row[i] is not None:
                row[i] = process(row[i])
        return row


class SqlCaseTx:
    """One case held for change inside one database transaction (a DB-API cursor)."""

    def __init__(self, store: SqlStore, cursor: Any, row: dict[str, Any]) -> None:
        self.store = store
        self.cursor = cursor
        self.row = row  # the case's columns, kept to build the updated Case cheaply
        self.case = Case(**row)

    def actor(self, name: str) -> Actor | None:
        return _actor(self.store._stmt("actor", _ACTOR_BY_NAME).rows(self.cursor, {"name": name}))

    def measures(self) -> list[Measure]:
        found = self.store._stmt("measures", _MEASURES_OF_CASE)
        return [Measure(**r) for r in found.dicts(self.cursor, {"case_id": self.case.id})]

    def update(self, change: CaseChange, entry: HistoryEntry | None = None) -> Case:
        values: dict[str, Any] = {**change, "version": self.case.version + 1}
        if entry is not None:
            values["history_seq"] = entry.seq
            values["last_hash"] = entry.hash
        keys = tuple(values)
        stmt = self.store._stmt(("update", keys), _UPDATE_CASE, keys)
        where = {"where_id": self.case.id, "where_version": self.case.version}
        if stmt.execute(self.cursor, {**values, **where}).rowcount != 1:
            raise ConflictError(self.case.id, self.case.version, None)
        if entry is not None:
            history = self.store._stmt("history", _INSERT_HISTORY, _HISTORY_KEYS)
            history.execute(self.cursor, _entry_values(entry))
        self.row = {**self.row, **values}
        self.case = Case(**self.row)
        return self.case

    def add_measure(self, text: str, owner: str, due: dt.datetime | None) -> Measure:
        self.update({})
        stmt = self.store._stmt("add_measure", _INSERT_MEASURE, _MEASURE_KEYS)
        values = {"case_id": self.case.id, "text": text, "owner": owner, "due": due}
        return Measure(**stmt.dicts(self.cursor, values)[0])

    def complete_measure(
        self, measure_id: int, done_at: dt.datetime, evidence_path: str | None,
        evidence_sha256: str | None,
    ) -> Measure:  # fmt: skip
        self.update({})
        keys = ["done_at", "evidence_path", "evidence_sha256"]
        stmt = self.store._stmt("complete_measure", _COMPLETE_MEASURE, keys)
        found = stmt.dicts(self.cursor, {
            "done_at": done_at, "evidence_path": evidence_path, "evidence_sha256": evidence_sha256,
            "where_id": measure_id, "where_case": self.case.id,
        })  # fmt: skip
        if not found:
            raise NotFound("measure", measure_id)
        return Measure(**found[0])

    def add_note(self, actor: str, at: dt.datetime, text: str) -> Note:
        stmt = self.store._stmt("add_note", _INSERT_NOTE, ["case_id", "actor", "at", "text"])
        values = {"case_id": self.case.id, "actor": actor, "at": at, "text": text}
        return Note(**stmt.dicts(self.cursor, values)[0])


class SqlStore(DaemonRecords):
    """The store on SQLite or PostgreSQL through one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = connections.create_engine(self.url)
        self.connections = connections.Connections(self.engine)
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self._statements: dict[Hashable, _Prepared] = {}
        self._case_for_update = (
            _CASE_BY_ID if self.is_sqlite else _CASE_BY_ID.with_for_update(of=case_t)
        )

    def close(self) -> None:
        self.engine.dispose()

    def create_schema(self, revision: str = "head") -> None:
        from rectiflow.store import migrate  # alembic costs every CLI call 0.1 s to import

        if not self.is_sqlite:
            with self._write() as conn:
                migrate.upgrade(conn, revision)
            return
        # SQLite alters a table by copying it, and dropping the old copy would trip the
        # foreign keys of the rows that point at it: switch them off around the migration
        # (only possible outside a transaction) and check them before turning them back on.
        with self.engine.connect() as conn:
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
        """(the database's revision, the newest this code knows)."""
        from rectiflow.store import migrate

        with self._read() as conn:
            return migrate.current(conn), migrate.head()

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _cursor(self, *, write: bool = True) -> Iterator[Any]:
        """A write transaction on a pooled DB-API cursor: the hot paths' way in (see
        ``_Prepared``). With ``write=False``, one read statement in autocommit instead: no
        transaction of its own, so one round trip. Driver errors come out wrapped as
        SQLAlchemy's, as from ``_write``, and a connection the driver reports broken is not
        reused."""
        try:
            conn = self.engine.raw_connection()
        except self._dbapi_error as exc:  # the pool hands a failed connect on unwrapped
            raise sa.exc.DBAPIError.instance(
                None, None, exc, self._dbapi_error, dialect=self.engine.dialect
            ) from exc
        # One cursor per DB-API connection, kept in the pool's info for it (cleared when
        # the pool reconnects): making a psycopg cursor costs as much as a statement.
        cursor = conn.info.get("rectiflow_cursor")
        if cursor is None:
            cursor = conn.info["rectiflow_cursor"] = conn.cursor()
        autocommit = not write and not self.is_sqlite  # pysqlite is in autocommit already
        try:
            if write and self.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            if autocommit:
                conn.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            yield cursor
            if write:
                conn.commit()
        except BaseException as exc:
            dbapi_error = isinstance(exc, self._dbapi_error)
            dialect = self.engine.dialect
            if dbapi_error and dialect.is_disconnect(cast(Any, exc), conn.dbapi_connection, cursor):
                conn.invalidate(exc)
            elif write:
                try:
                    conn.rollback()
                except self._dbapi_error as again:
                    conn.invalidate(again)
            if dbapi_error:
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, self._dbapi_error, dialect=self.engine.dialect
                ) from exc
            raise
        finally:
            if autocommit and conn.dbapi_connection is not None:
                try:
                    conn.dbapi_connection.autocommit = False
                except self._dbapi_error as exc:
                    conn.invalidate(exc)
            conn.close()  # back to the pool

    def _stmt(
        self, key: Hashable, stmt: Any, column_keys: Sequence[str] | None = None
    ) -> _Prepared:
        """The statement compiled for this database, once per key (the dialect knows the
        server only after the first connection, so not before first use)."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = _Prepared(stmt, self.engine.dialect, column_keys)
        return found

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

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
        row = {**new.columns(), "history_seq": 0, "last_hash": GENESIS}
        with self._write() as conn:
            case_id = conn.execute(
                case_t.insert().values(**row).returning(case_t.c.id)
            ).scalar_one()
            entry = first_entry(case_id)
            conn.execute(
                case_t.update()
                .where(case_t.c.id == case_id)
                .values(last_hash=entry.hash, history_seq=1)
            )
            conn.execute(_INSERT_HISTORY, _entry_values(entry))
            return _case(conn.execute(_CASE_BY_ID, {"id": case_id}).one())

    def get_case(self, case_id: int) -> Case | None:
        with self._read() as conn:
            row = conn.execute(_CASE_BY_ID, {"id": case_id}).first()
        return _case(row) if row else None

    @contextmanager
    def case_tx(self, case_id: int) -> Iterator[SqlCaseTx]:
        with self._cursor() as cursor:
            found = self._stmt("case_tx", self._case_for_update).dicts(cursor, {"id": case_id})
            if not found:
                raise NotFound("case", case_id)
            yield SqlCaseTx(self, cursor, found[0])

    def list_cases(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        open_only: bool = False, provisional_only: bool = False,
    ) -> list[Case]:  # fmt: skip
        stmt = _SELECT_CASE.order_by(case_t.c.id)
        if unit_paths is not None:
            stmt = stmt.where(
                sa.or_(*(unit_t.c.path.startswith(p, autoescape=True) for p in unit_paths))
            )
        if state is not None:
            stmt = stmt.where(case_t.c.state == state)
        if open_only or provisional_only:
            stmt = stmt.where(case_t.c.due_at.is_not(None))
        if provisional_only:
            stmt = stmt.where(case_t.c.due_provisional.is_(True))
        with self._read() as conn:
            return [_case(r) for r in conn.execute(stmt)]

    def _case_filters(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        severity: str | None = None, source: str | None = None, category: str | None = None,
        text: str | None = None, opened_since: dt.datetime | None = None,
        opened_before: dt.datetime | None = None, overdue_at: dt.datetime | None = None,
    ) -> list[Any]:  # fmt: skip
        c = case_t.c
        where: list[Any] = []
        if unit_paths is not None:
            where.append(
                sa.or_(*(unit_t.c.path.startswith(p, autoescape=True) for p in unit_paths))
            )
        for column, value in ((c.state, state), (c.severity, severity), (c.source, source),
                              (c.category, category)):  # fmt: skip
            if value is not None:
                where.append(column == value)
        if text is not None:
            where.append(
                sa.or_(c.title.icontains(text, autoescape=True),
                       c.description.icontains(text, autoescape=True))
            )  # fmt: skip
        if opened_since is not None:
            where.append(c.created_at >= opened_since)
        if opened_before is not None:
            where.append(c.created_at < opened_before)
        if overdue_at is not None:
            where += [c.due_at.is_not(None), c.paused_at.is_(None), c.due_at < overdue_at]
        return where

    def find_cases(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[Case]:
        """Cases by id, filtered in SQL (see ``_case_filters``), one page of them."""
        stmt = _SELECT_CASE.where(*self._case_filters(**filters)).order_by(case_t.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        with self._cursor(write=False) as cursor:  # a long list: rows straight off DB-API
            found = _Prepared(stmt, self.engine.dialect, None).dicts(cursor, {})
        return [Case(**row) for row in found]

    def count_cases(self, **filters: Any) -> int:
        """How many cases ``find_cases`` would list without a limit."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(case_t.join(unit_t, unit_t.c.code == case_t.c.unit))
            .where(*self._case_filters(**filters))
        )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def _of_cases(self, table: sa.Table, columns: Sequence[Any], case_ids: Sequence[int]) -> Any:
        """Rows of ``table`` for these cases in the order of its id, as dicts: one statement
        per 900 ids (compiled once, the last id repeated to fill a short chunk); a case's
        rows all come from one statement."""
        key = ("of_cases", table.name)
        ids = sorted(set(case_ids))
        with self._cursor(write=False) as cursor:
            prepared = self._statements.get(key)
            if prepared is None:
                slots = [bindparam(f"id{i}", type_=sa.Integer) for i in range(_IDS_PER_QUERY)]
                stmt = sa.select(*columns).where(table.c.case_id.in_(slots)).order_by(table.c.id)
                prepared = self._stmt(key, stmt)
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                chunk += [chunk[-1]] * (_IDS_PER_QUERY - len(chunk))
                yield from prepared.dicts(cursor, {f"id{i}": v for i, v in enumerate(chunk)})

    def measures_of(self, case_ids: Sequence[int]) -> dict[int, list[Measure]]:
        """The measures of each case, by id (cases without any are left out)."""
        found: dict[int, list[Measure]] = {}
        for row in self._of_cases(measure_t, list(measure_t.c), case_ids):
            found.setdefault(row["case_id"], []).append(Measure(**row))
        return found

    def escalations_of(self, case_ids: Sequence[int]) -> dict[int, list[Escalation]]:
        """The escalations of each case in the order recorded, by id."""
        c = escalation_t.c
        columns = [c.case_id, c.visit, c.state, c.level, c.due_at, c.fired_at]
        found: dict[int, list[Escalation]] = {}
        for row in self._of_cases(escalation_t, columns, case_ids):
            found.setdefault(row["case_id"], []).append(Escalation(**row))
        return found

    def notes_of(self, case_ids: Sequence[int]) -> dict[int, list[Note]]:
        """The progress notes of each case by time, by id."""
        found: dict[int, list[Note]] = {}
        for row in self._of_cases(note_t, list(note_t.c), case_ids):
            found.setdefault(row["case_id"], []).append(Note(**row))
        for notes in found.values():
            notes.sort(key=lambda n: (n.at, n.id))
        return found

    def iter_case_ids(self) -> Iterator[int]:
        last = 0
        while True:
            with self._read() as conn:
                ids = (
                    conn.execute(
                        sa.select(case_t.c.id)
                        .where(case_t.c.id > last)
                        .order_by(case_t.c.id)
                        .limit(1000)
                    )
                    .scalars()
                    .all()
                )
            if not ids:
                return
            yield from ids
            last = ids[-1]

    def get_measure(self, measure_id: int) -> Measure | None:
        with self._read() as conn:
            row = conn.execute(sa.select(measure_t).where(measure_t.c.id == measure_id)).first()
        return _measure(row) if row else None

    def list_measures(self, case_id: int) -> list[Measure]:
        with self._read() as conn:
            return [_measure(r) for r in conn.execute(_MEASURES_OF_CASE, {"case_id": case_id})]

    def list_history(self, case_id: int) -> list[HistoryEntry]:
        stmt = sa.select(history_t).where(history_t.c.case_id == case_id).order_by(history_t.c.seq)
        with self._read() as conn:
            return [HistoryEntry(**r._mapping) for r in conn.execute(stmt)]

    def list_notes(self, case_id: int) -> list[Note]:
        stmt = (
            sa.select(note_t).where(note_t.c.case_id == case_id).order_by(note_t.c.at, note_t.c.id)
        )
        with self._read() as conn:
            return [Note(**r._mapping) for r in conn.execute(stmt)]

    # --- deadlines and escalations --------------------------------------------------------

    def escalate_batch(
        self, now: dt.datetime, limit: int, plan: Callable[[Case], EscalationPlan]
    ) -> tuple[int, list[Escalation]]:
        """Claim up to ``limit`` due cases, record their due levels, commit. Returns
        (cases claimed, escalations newly recorded)."""
        recorded: list[Escalation] = []
        with self._cursor() as cursor:
            claim = self._stmt(("claim", limit), self._claim(limit))
            cases = [Case(**row) for row in claim.dicts(cursor, {"now": now})]
            insert_escalation = self._stmt(
                "insert_escalation",
                self._insert(escalation_t).on_conflict_do_nothing().inline(),
                _ESCALATION_KEYS,
            )
            insert_notification = self._stmt(
                "insert_notification",
                self._insert(notification_t).on_conflict_do_nothing().inline(),
                _NOTIFICATION_KEYS,
            )
            next_level = self._stmt("next_level", _NEXT_LEVEL, ["next_level", "next_escalation_at"])
            for case in cases:
                decided = plan(case)
                for esc in decided.escalations:
                    inserted = insert_escalation.execute(cursor, {
                        "case_id": esc.case_id, "visit": esc.visit, "state": esc.state,
                        "level": esc.level, "due_at": esc.due_at, "fired_at": esc.fired_at,
                    }).rowcount  # fmt: skip
                    if inserted:
                        recorded.append(esc)
                if decided.notifications:
                    insert_notification.executemany(cursor, [
                        {"case_id": case.id, "kind": "escalation", "level": level,
                         "role": role, "created_at": now, "key": key}
                        for level, role, key in decided.notifications
                    ])  # fmt: skip
                next_level.execute(cursor, {
                    "next_level": decided.next_level,
                    "next_escalation_at": decided.next_escalation_at,
                    "where_id": case.id, "where_visit": case.visit,
                })  # fmt: skip
        return len(cases), recorded

    def _claim(self, limit: int) -> Any:
        stmt = (
            _SELECT_CASE.where(
                case_t.c.next_escalation_at <= bindparam("now"),
                case_t.c.paused_at.is_(None),
            )
            .order_by(case_t.c.next_escalation_at, case_t.c.id)
            .limit(limit)
        )
        if not self.is_sqlite:
            stmt = stmt.with_for_update(of=case_t, skip_locked=True)
        return stmt

    def due_cases(self, now: dt.datetime, after_id: int, limit: int) -> list[Case]:
        stmt = (
            _SELECT_CASE.where(
                case_t.c.next_escalation_at <= now,
                case_t.c.paused_at.is_(None),
                case_t.c.id > after_id,
            )
            .order_by(case_t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_case(r) for r in conn.execute(stmt)]

    def next_escalation_at(self) -> dt.datetime | None:
        stmt = sa.select(sa.func.min(case_t.c.next_escalation_at)).where(
            case_t.c.paused_at.is_(None)
        )
        with self._read() as conn:
            value = conn.execute(stmt).scalar()
        if isinstance(value, str):  # min() over the text column bypasses the type decorator
            return dt.datetime.fromisoformat(value)
        return value

    def list_escalations(self, case_id: int | None = None) -> list[Escalation]:
        c = escalation_t.c
        stmt = sa.select(
            c.case_id, c.visit, c.state, c.level, c.due_at, c.fired_at,
        ).order_by(escalation_t.c.id)  # fmt: skip
        if case_id is not None:
            stmt = stmt.where(escalation_t.c.case_id == case_id)
        with self._read() as conn:
            return [Escalation(**r._mapping) for r in conn.execute(stmt)]

    def add_notifications(
        self, rows: Iterable[tuple[int, str, str | None, str, str]], at: dt.datetime
    ) -> int:
        values = [
            {"case_id": c, "kind": kind, "level": level, "role": role, "key": key, "created_at": at}
            for c, kind, level, role, key in rows
        ]
        if not values:
            return 0
        # Count the rows RETURNING gives back: psycopg reports rowcount -1 for executemany.
        stmt = self._insert(notification_t).on_conflict_do_nothing().returning(notification_t.c.id)
        with self._write() as conn:
            return len(conn.execute(stmt, values).all())

    def list_notifications(
        self, case_id: int | None = None, kind: str | None = None
    ) -> list[Notification]:
        stmt = sa.select(
            notification_t.c.id, notification_t.c.case_id, notification_t.c.kind,
            notification_t.c.level, notification_t.c.role, notification_t.c.created_at,
            notification_t.c.key,
        ).order_by(notification_t.c.id)  # fmt: skip
        if case_id is not None:
            stmt = stmt.where(notification_t.c.case_id == case_id)
        if kind is not None:
            stmt = stmt.where(notification_t.c.kind == kind)
        with self._read() as conn:
            return [Notification(**r._mapping) for r in conn.execute(stmt)]

    def cases_without_note_since(self, since: dt.datetime, after_id: int, limit: int) -> list[Case]:
        noted = sa.select(note_t.c.id).where(note_t.c.case_id == case_t.c.id, note_t.c.at >= since)
        stmt = (
            _SELECT_CASE.where(
                case_t.c.due_at.is_not(None), case_t.c.id > after_id, ~sa.exists(noted)
            )
            .order_by(case_t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_case(r) for r in conn.execute(stmt)]

    # --- calendar -------------------------------------------------------------------------

    def load_calendar(self, days: Iterable[tuple[dt.date, bool]]) -> int:
        values = [{"day": d, "workday": w} for d, w in days]
        if not values:
            return 0
        with self._write() as conn:
            stmt = self._insert(calendar_t)
            stmt = stmt.on_conflict_do_update(
                index_elements=[calendar_t.c.day], set_={"workday": stmt.excluded.workday}
            )
            conn.execute(stmt, values)
        return len(values)

    def calendar_days(self) -> list[tuple[dt.date, bool]]:
        # Asked again whenever a deadline comes out provisional, in the middle of a
        # transition: the lean read path.
        with self._cursor(write=False) as cursor:
            rows = self._stmt("calendar", _CALENDAR_DAYS).rows(cursor, {})
        return [(day, bool(workday)) for day, workday in rows]
