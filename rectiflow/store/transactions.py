"""Transactions of the SQL store: one SQLAlchemy engine, and the ways into it.

SQLite runs in WAL mode; every write transaction starts with ``BEGIN IMMEDIATE`` so two
processes serialize on the write lock instead of failing when a read turns into a write.
The hot paths run on a pooled DB-API cursor with statements compiled once (``fast.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rectiflow.engine.errors import StoreBusy, StoreUnavailable
from rectiflow.store import connections
from rectiflow.store.fast import Statements

# SQLSTATEs of a PostgreSQL transaction that lost a race for a lock (class 40: rollback,
# 55P03: lock not available, 57014: statement cancelled by its timeout): try again later.
_PG_BUSY = ("40", "55P03", "57014")
# What SQLite says when the write lock stayed taken past the busy timeout.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def store_error(exc: BaseException, url: sa.URL) -> StoreUnavailable | None:
    """The store's error for a driver's (or SQLAlchemy's) database error, or None for the
    errors the store handles itself (a unique key taken: IntegrityError)."""
    orig: BaseException = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
    if isinstance(exc, sa.exc.IntegrityError) or type(orig).__name__ == "IntegrityError":
        return None
    if not isinstance(exc, sa.exc.DBAPIError) and not _is_driver_error(orig):
        return None
    reason = " ".join(str(orig).split()) or type(orig).__name__
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if any(text in reason.lower() for text in _SQLITE_BUSY) or sqlstate.startswith(_PG_BUSY):
        return StoreBusy()
    where = url.render_as_string(hide_password=True)
    if "no such table" in reason or sqlstate == "42P01":
        return StoreUnavailable(f"{where} is not a rectiflow ledger (run `rectiflow init`)")
    return StoreUnavailable(f"cannot use the database {where}: {reason}")


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return (
        isinstance(exc, Exception)
        and module.startswith(("sqlite3", "psycopg"))
        and (any(base.__name__ == "Error" for base in type(exc).__mro__))
    )


class SqlTransactions:
    """The engine, its connections and the transactions every part of SqlStore runs in."""

    def __init__(self, url: str) -> None:
        self.url = connections.parse_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = connections.create_engine(self.url)
        self.connections = connections.Connections(self.engine)
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self.statements = Statements(self.engine.dialect)  # the fast path's, by statement
        # The dialect's INSERT (ON CONFLICT ...), imported only for the database in use:
        # importing the PostgreSQL dialect would cost every CLI call on SQLite some 20 ms.
        self._insert: Callable[[sa.Table], Any]
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._insert = sqlite_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            self._insert = postgresql_insert

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn the driver's errors about the database itself (unreachable, locked, not a
        database, read-only) into StoreUnavailable or StoreBusy: the store's boundary."""
        try:
            yield
        except Exception as exc:
            error = store_error(exc, self.url)
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.guard(), self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _cursor(self, *, write: bool = True) -> Iterator[Any]:
        """A write transaction on a pooled DB-API cursor: the hot paths' way in (see
        ``fast.Prepared``). With ``write=False``, one read statement in autocommit instead: no
        transaction of its own, so one round trip. Driver errors come out wrapped as
        SQLAlchemy's, as from ``_write``, and a connection the driver reports broken is not
        reused."""
        try:
            conn = self.engine.raw_connection()
        except Exception as exc:  # the pool hands a failed connect on unwrapped
            raise (store_error(exc, self.url) or exc) from exc
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
                wrapped = sa.exc.DBAPIError.instance(
                    None, None, cast(Any, exc), self._dbapi_error, dialect=self.engine.dialect
                )
                raise (store_error(wrapped, self.url) or wrapped) from exc
            raise
        finally:
            if autocommit and conn.dbapi_connection is not None:
                try:
                    conn.dbapi_connection.autocommit = False
                except self._dbapi_error as exc:
                    conn.invalidate(exc)
            conn.close()  # back to the pool

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.guard(), self.engine.connect() as conn, conn.begin():
            yield conn
