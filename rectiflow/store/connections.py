"""Opening the database: one SQLAlchemy engine per store, with the settings that keep a
daemon alive when the server is not (timeouts, keep-alives), and a way to cut off a thread
that is stuck waiting on it.

A PostgreSQL server that is stopped or frozen (its processes suspended, the host paging, a
network that drops packets silently) answers nothing, and libpq then waits for ever: the
kernel on the server still acknowledges the keep-alives of a suspended process, and a
server-side ``statement_timeout`` needs a server that runs. So the timeouts below cover
what the server can enforce, and :meth:`Connections.interrupt` covers the rest: a
supervisor that sees a thread stuck past its bound shuts that thread's sockets down, and
the thread gets a database error, which it handles like an outage.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

from rectiflow.engine.errors import StoreUnavailable, ValidationError

#: How long a SQLite connection waits for another process's write lock before the store
#: gives up with StoreBusy; ``?timeout=SECONDS`` in the URL sets another.
SQLITE_BUSY_TIMEOUT = 30.0

# libpq parameters, unless the URL sets them: give up connecting after 5 s, probe an idle
# TCP connection after 30 s, drop unacknowledged data after 60 s; on the server, end a
# statement after 60 s and a transaction left idle (its client frozen or gone) after 60 s,
# so that its row locks do not hold the sweep of another daemon back for longer.
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
POSTGRES_SESSION_OPTIONS = "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=60000"


def parse_url(text: str) -> sa.URL:
    """A database URL, refused (ValidationError: a bad argument) when it is empty, does not
    parse or names a database rectiflow does not run on (SQLite, PostgreSQL)."""
    if not text.strip():
        raise ValidationError("no database URL given")
    try:
        url = sa.engine.make_url(text)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ValidationError(f"not a database URL: {text!r} ({exc})") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        shown = url.render_as_string(hide_password=True)
        raise ValidationError(
            f"unknown database {url.drivername!r} in {shown}: use sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB"
        )
    if url.get_backend_name() == "sqlite":
        try:
            _sqlite_timeout(url)
        except ValueError:
            raise ValidationError(f"timeout= in {text!r}: not a number of seconds") from None
    return url


def _sqlite_timeout(url: sa.URL) -> float:
    value = url.query.get("timeout", SQLITE_BUSY_TIMEOUT)
    seconds = float(value if isinstance(value, str | float) else value[-1])
    if not 0 <= seconds <= 86_400:
        raise ValueError(seconds)
    return seconds


def create_engine(url: sa.URL) -> sa.Engine:
    """The SQLAlchemy engine for ``url``, configured for rectiflow's use of it."""
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        timeout = _sqlite_timeout(url)
        kwargs["connect_args"] = {"timeout": timeout, "check_same_thread": False}
        if url.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        args = {k: v for k, v in POSTGRES_CONNECT_ARGS.items() if k not in url.query}
        if "options" not in url.query:
            args["options"] = POSTGRES_SESSION_OPTIONS
        kwargs["connect_args"] = args
    if "poolclass" not in kwargs:
        # Last in, first out: a transition that reads the calendar meanwhile borrows a
        # second connection, and the next transition then gets the first one back, warm.
        kwargs["pool_use_lifo"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except (ImportError, sa.exc.ArgumentError) as exc:  # a driver not installed, a bad option
        shown = url.render_as_string(hide_password=True)
        raise StoreUnavailable(f"cannot open {shown}: {exc}") from None
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, int(_sqlite_timeout(url) * 1000))
    return engine


def _configure_sqlite(engine: sa.Engine, busy_ms: int) -> None:
    """WAL, a busy timeout, foreign keys; and transactions begun by us, not by pysqlite."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


class Connections:
    """Which thread holds which pooled connection, so that a stuck one can be cut off."""

    def __init__(self, engine: sa.Engine) -> None:
        self._held: dict[int, tuple[int, Any]] = {}  # id(record) -> (thread, DB-API conn)
        self._lock = threading.Lock()
        event.listen(engine.pool, "checkout", self._on_checkout)
        event.listen(engine.pool, "checkin", self._on_checkin)
        event.listen(engine.pool, "invalidate", self._on_checkin)

    def _on_checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        with self._lock:
            self._held[id(record)] = (threading.get_ident(), dbapi_conn)

    def _on_checkin(self, _dbapi_conn: Any, record: Any, *_exc: Any) -> None:
        with self._lock:
            self._held.pop(id(record), None)

    def interrupt(self, thread_id: int) -> int:
        """Abort whatever the connections held by ``thread_id`` are waiting on; the thread
        gets a database error (a PostgreSQL connection is shut down and will be replaced, a
        SQLite statement is interrupted). Returns how many connections were cut off."""
        with self._lock:
            held = [conn for thread, conn in self._held.values() if thread == thread_id]
        for conn in held:
            pgconn = getattr(conn, "pgconn", None)
            if pgconn is not None:
                # shutdown() acts on the socket the duplicate shares with libpq: its wait
                # returns at once and the read finds the connection closed.
                with socket.socket(fileno=os.dup(pgconn.socket)) as sock:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed
            elif hasattr(conn, "interrupt"):
                conn.interrupt()
        return len(held)
