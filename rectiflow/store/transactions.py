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

from rectiflow.store import connections
from rectiflow.store.fast import Statements


class SqlTransactions:
    """The engine, its connections and the transactions every part of SqlStore runs in."""

    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url)
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
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
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

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn
