"""The store's boundary: what the driver says about the database itself comes out as
StoreUnavailable (exit 9) or StoreBusy (exit 5), never as SQLAlchemy's or the driver's own
exceptions (issue 14, section 3)."""

from __future__ import annotations

import contextlib
import io
import socket
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rectiflow import Engine
from rectiflow.cli import main
from rectiflow.engine.errors import StoreBusy, StoreUnavailable, ValidationError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0), err.getvalue()
    raise AssertionError("main returned")


def test_postgres__unreachable_server_role_or_database_is_store_unavailable(
    postgres_server: Any,
) -> None:
    port = postgres_server.port
    urls = {
        "port": f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/postgres",
        "role": f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/postgres",
        "database": f"postgresql+psycopg://postgres@127.0.0.1:{port}/no_such_db",
        "host": "postgresql+psycopg://postgres@no-such-host.invalid:5432/postgres",
    }
    for what, url in urls.items():
        with Engine(url) as engine, pytest.raises(StoreUnavailable) as refused:
            engine.init()
        assert not isinstance(refused.value, StoreBusy), what
        assert "cannot use the database" in str(refused.value), what
        assert "secret" not in str(refused.value)
        code, err = _cli("--db", url, "case", "list")
        assert code == 9, (what, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "secret" not in err


def test_postgres__another_programs_database_needs_force(postgres_url: str) -> None:
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
    with Engine(postgres_url) as engine:
        with pytest.raises(StoreUnavailable, match=r"not a rectiflow ledger .*invoices"):
            engine.init()
        with pytest.raises(StoreUnavailable, match="not a rectiflow ledger"):
            engine.schema_revision()
        engine.init(force=True)
        current, head = engine.schema_revision()
        assert current == head


def test_postgres__a_fresh_database_is_not_a_ledger_until_init(postgres_url: str) -> None:
    with Engine(postgres_url) as engine:
        with pytest.raises(StoreUnavailable, match="not a rectiflow ledger"):
            engine.list_units()
        engine.init()
        assert engine.list_units() == []


def test_sqlite__locked_longer_than_the_busy_timeout_is_store_busy(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Engine(f"sqlite:///{db}") as engine:
        engine.init()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Engine(f"sqlite:///{db}?timeout=0.2") as engine:
            with pytest.raises(StoreBusy, match="database is busy, try again"):
                engine.add_unit("HLJ", "黑龙江省")
            assert StoreBusy.exit_code == 5
            assert isinstance(StoreBusy(), StoreUnavailable)  # the scheduler backs off on both
    finally:
        holder.rollback()
        holder.close()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", ValidationError),
        ("mysql://u@h/db", ValidationError),
        ("://", ValidationError),
        ("sqlite:///x.db?timeout=-1", ValidationError),
    ],
)
def test_urls__empty_unknown_or_malformed_are_validation_errors(
    url: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Engine(url)


def test_sqlite__not_a_database_and_a_folder_are_store_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 1000)
    for url in (f"sqlite:///{garbage}", f"sqlite:///{tmp_path}", f"sqlite:///{tmp_path}/no/x.db"):
        with Engine(url) as engine, pytest.raises(StoreUnavailable):
            engine.init()
    assert garbage.read_bytes() == b"\x00garbage" * 1000


def test_scheduler__treats_store_unavailable_as_a_database_error(tmp_path: Path) -> None:
    from rectiflow import scheduler

    assert issubclass(StoreUnavailable, scheduler._DATABASE_ERRORS)
    busy = StoreBusy()
    busy.__cause__ = sqlite3.OperationalError("database is locked")
    assert scheduler._first_line(busy) == "database is busy, try again"
