"""What the benchmarks share: scratch databases, a seeded ledger, raw DB-API connections.

Each benchmark runs the Engine and a hand-written raw-SQL version of the same work in one
run, on the same kind of database with the same settings, and prints ``ratio engine/raw``.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rectiflow import Engine

UNITS = 10  # child units under one root; cases are spread over them

# Who fires what in the default workflow; bound to the root unit, so the permission check
# walks the unit tree like it does in a real ledger (the verifier is bound to no unit).
ACTORS = {
    "sup": (["supervisor", "reporter"], ["ROOT"]),
    "rev": (["reviewer"], ["ROOT"]),
    "own": (["owner"], ["ROOT"]),
    "ver": (["verifier"], []),
}


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def seed(engine: Engine) -> list[str]:
    """Schema, shipped workflow, a unit tree and the actors. Returns the child unit codes."""
    engine.init()
    engine.add_unit("ROOT", "root")
    units = [f"U{i:02d}" for i in range(UNITS)]
    for code in units:
        engine.add_unit(code, f"unit {code}", "ROOT")
    for name, (roles, bound) in ACTORS.items():
        engine.add_actor(name, roles, bound)
    return units


# --- scratch databases --------------------------------------------------------------------


@contextmanager
def scratch_database(db: str | None, name: str) -> Iterator[str]:
    """A fresh database for one run, removed afterwards.

    SQLite: a file in a temporary folder (``--db sqlite:///PATH`` puts it at PATH instead,
    which must not exist yet). PostgreSQL: ``--db`` names a server and a database to connect
    to; a new database is created next to it (needs CREATEDB) and dropped at the end.
    """
    if db is None or not is_postgres(db):
        if db is not None:
            path = sa.engine.make_url(db).database
            if not path or os.path.exists(path):
                raise SystemExit(f"--db {db}: give a SQLite file that does not exist yet")
            try:
                yield db
            finally:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)
            return
        folder = tempfile.mkdtemp(prefix="rectiflow-bench-")
        try:
            yield f"sqlite:///{folder}/{name}.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    dbname = f"rectiflow_bench_{name}_{uuid.uuid4().hex[:8]}"
    _pg_admin(db, f'CREATE DATABASE "{dbname}"')
    try:
        yield str(sa.engine.make_url(db).set(database=dbname).render_as_string(False))
    finally:
        _pg_admin(db, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def copy_database(src: str, name: str) -> str:
    """An identical copy of a scratch database (a file copy, or CREATE DATABASE ... TEMPLATE);
    remove it with ``drop_copy``."""
    if not is_postgres(src):
        path = sa.engine.make_url(src).database
        assert path is not None
        copy = os.path.join(os.path.dirname(path), f"{name}.db")
        with sqlite3.connect(path) as conn:  # fold the WAL in, so the one file is complete
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        shutil.copyfile(path, copy)
        return f"sqlite:///{copy}"
    url = sa.engine.make_url(src)
    dbname = f"{url.database}_{name}"
    _pg_admin(src, f'CREATE DATABASE "{dbname}" TEMPLATE "{url.database}"')
    return str(url.set(database=dbname).render_as_string(False))


def drop_copy(url: str) -> None:
    if is_postgres(url):
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)')
    else:
        path = sa.engine.make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            if path and os.path.exists(path + suffix):
                os.remove(path + suffix)


def _pg_admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(url, "postgres"), autocommit=True) as conn:
        conn.execute(statement)


def _libpq(url: str, dbname: str | None = None) -> str:
    """A libpq connection string for a ``postgresql+psycopg://`` URL."""
    u = sa.engine.make_url(url)
    parts = {
        "host": u.host, "port": u.port, "user": u.username, "password": u.password,
        "dbname": dbname or u.database, **u.query,
    }  # fmt: skip
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


# --- raw connections ----------------------------------------------------------------------


class Raw:
    """A bare DB-API connection with the settings the store uses (SQLite: WAL,
    synchronous=NORMAL, busy timeout, foreign keys; BEGIN IMMEDIATE for writes).

    SQL is written with ``?`` placeholders and turned into ``%s`` for psycopg. Times are
    bound the way the store binds them: ISO-8601 UTC text on SQLite, timestamptz on
    PostgreSQL.
    """

    def __init__(self, url: str) -> None:
        self.postgres = is_postgres(url)
        if self.postgres:
            import psycopg

            self.conn: Any = psycopg.connect(_libpq(url))
        else:
            path = sa.engine.make_url(url).database or ""
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            for pragma in (
                "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON",
            ):  # fmt: skip
                self.conn.execute(f"PRAGMA {pragma}")
        self.cursor = self.conn.cursor()

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def time(self, value: dt.datetime | None) -> Any:
        if value is None or self.postgres:
            return value
        return value.astimezone(dt.UTC).isoformat()

    def parse_time(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        return value.astimezone(dt.UTC)

    def begin(self) -> None:
        # psycopg opens the transaction itself at the first statement
        if not self.postgres:
            self.cursor.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.postgres:
            self.conn.commit()
        else:
            self.cursor.execute("COMMIT")

    def rollback(self) -> None:
        if self.postgres:
            self.conn.rollback()
        else:
            self.cursor.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


# --- measuring ----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux's ``ru_maxrss`` carries over the parent's peak across fork and exec, so a child
    started by a big parent reports the parent's size; VmHWM in /proc is this program's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fmt_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count} in {seconds:.2f} s)"


def parse_counts(text: str) -> Sequence[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# --- the shipped workflow's deadline rule, written out for the raw side ---------------------

TZ = "Asia/Shanghai"


class RawCalendar:
    """Working-day arithmetic straight on ``chinesecalendar``, memoized per (date, n), as a
    hand-written program would do it: ends of local days, UTC results; Monday-Friday, marked
    provisional, for years the package does not cover."""

    def __init__(self) -> None:
        from zoneinfo import ZoneInfo

        self.tz = ZoneInfo(TZ)
        self._shifts: dict[tuple[dt.date, int], tuple[dt.date, bool]] = {}

    def shift(self, day: dt.date, count: int) -> tuple[dt.date, bool]:
        key = (day, count)
        found = self._shifts.get(key)
        if found is None:
            import chinese_calendar

            step = dt.timedelta(days=1 if count > 0 else -1)
            remaining, provisional = abs(count), False
            while remaining:
                day += step
                try:
                    working = bool(chinese_calendar.is_workday(day))
                except NotImplementedError:
                    working, provisional = day.weekday() < 5, True
                remaining -= working
            found = self._shifts[key] = (day, provisional)
        return found

    def add_workdays(self, at: dt.datetime, count: int) -> tuple[dt.datetime, bool]:
        """The end (23:59:59 local) of the count-th working day after ``at``'s local date."""
        day, provisional = at.astimezone(self.tz).date(), False
        if count:
            day, provisional = self.shift(day, count)
        end = dt.datetime.combine(day, dt.time(23, 59, 59), self.tz).astimezone(dt.UTC)
        return end, provisional
