"""Several daemons and several processes on one database (issue 5, part 4).

Daemons run as subprocesses on a PostgreSQL database of the session's server, with a
workflow whose SLAs are seconds: each escalation is recorded once however many daemons
sweep, a ``kill -9`` mid-sweep loses nothing, and a database that drops away for a few
seconds is waited out. The monthly dispatch is raced by several OS processes, on
PostgreSQL and on a SQLite file.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from daemon_support import (
    FAST_WORKFLOW,
    LEVELS,
    NOTIFICATIONS_PER_CASE,
    Daemon,
    dispatch_worker,
    fast_ledger,
    wait_until,
)

from rectiflow import Engine

SPAWN = multiprocessing.get_context("spawn")
SUPERVISOR = "督办员"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def pg_db(postgres_url: str, tmp_path: Path) -> str:
    """A PostgreSQL ledger set up through the CLI, with the fast workflow, a unit, an actor."""
    return fast_ledger(postgres_url, tmp_path, SUPERVISOR)


def open_cases(url: str, count: int, now: dt.datetime | None = None) -> list[int]:
    with Engine(url) as engine:
        return [
            engine.open_case(
                SUPERVISOR, unit="HRB", title=f"测试问题{i}", workflow="fast", now=now
            ).id
            for i in range(count)
        ]


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def escalation_count(url: str) -> int:
    """Cheap enough to poll every 0.1 s over thousands of rows."""
    with _connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM escalation").fetchone()
    assert row is not None
    return int(row[0])


def assert_each_level_once(url: str, cases: list[int]) -> None:
    """Every level of every case recorded once, in ladder order; one notification per role."""
    with Engine(url) as engine:
        rows = engine.store.list_escalations()
        keys = [n.key for n in engine.store.list_notifications(kind="escalation")]
    assert Counter((e.case_id, e.level) for e in rows) == {
        (c, level): 1 for c in cases for level in LEVELS
    }
    by_case: dict[int, list[str]] = {}
    for e in rows:
        by_case.setdefault(e.case_id, []).append(e.level)
    assert all(levels == LEVELS for levels in by_case.values())
    assert len(keys) == len(set(keys)) == len(cases) * NOTIFICATIONS_PER_CASE


@pytest.mark.postgres
@pytest.mark.slow
def test_three_daemons__one_postgres_database__each_escalation_recorded_once(
    pg_db: str, daemons: Callable[[str], Daemon]
) -> None:
    trio = [daemons(pg_db) for _ in range(3)]
    for daemon in trio:
        daemon.wait_ready()
    cases = open_cases(pg_db, 200)
    expected = len(cases) * len(LEVELS)
    wait_until(lambda: escalation_count(pg_db) == expected, 30, "every level of 200 cases")
    time.sleep(1.5)  # and nothing more arrives afterwards

    assert_each_level_once(pg_db, cases)
    # Each daemon logs only the rows it inserted itself: together, each level exactly once.
    logged = [entry for daemon in trio for entry in daemon.escalations_logged()]
    assert Counter(logged) == {(c, level): 1 for c in cases for level in LEVELS}

    started = time.monotonic()
    for daemon in trio:
        daemon.signal(signal.SIGTERM)
    assert [daemon.wait(timeout=5) for daemon in trio] == [0, 0, 0]
    assert time.monotonic() - started < 5


def claim_holders(url: str) -> set[str]:
    """The application names of the sessions holding claimed case rows: a sweep batch in
    hand (``SELECT ... FOR UPDATE`` takes a RowShareLock on the table till it commits)."""
    with _connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.relation = 'rcase'::regclass AND l.mode = 'RowShareLock'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons__kill_9_mid_sweep__the_other_records_every_level_once(
    pg_db: str, daemons: Callable[[str], Daemon]
) -> None:
    # Every level already due: the first sweeps have 7,500 levels to record, 500 cases (one
    # transaction) a batch.
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cases = open_cases(pg_db, 1500, now=an_hour_ago)
    expected = len(cases) * len(LEVELS)
    pair = {daemon.name: daemon for daemon in (daemons(pg_db), daemons(pg_db))}

    in_hand: list[str] = []

    def first_escalations_and_a_batch_in_hand() -> bool:
        in_hand[:] = sorted(claim_holders(pg_db) & set(pair)) if escalation_count(pg_db) else []
        return bool(in_hand)

    wait_until(first_escalations_and_a_batch_in_hand, 30, "escalations and a batch in hand")
    victim = pair.pop(in_hand[0])
    (survivor,) = pair.values()
    os.kill(victim.proc.pid, signal.SIGKILL)
    assert victim.wait(timeout=5) == -signal.SIGKILL
    assert escalation_count(pg_db) < expected  # killed mid-sweep: work was left to do

    wait_until(lambda: escalation_count(pg_db) == expected, 60, "every level of every case")
    time.sleep(1.5)
    assert escalation_count(pg_db) == expected
    assert_each_level_once(pg_db, cases)
    # The survivor carried on and repeated nothing that the victim had recorded (whose log
    # may lack its last committed batch: it can die between the commit and the log lines).
    killed, carried = victim.escalations_logged(), survivor.escalations_logged()
    assert carried
    assert len(set(carried)) == len(carried)
    assert set(killed).isdisjoint(carried)
    assert survivor.proc.poll() is None
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(timeout=5) == 0


def _dispatch_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _race_dispatch(url: str, months: list[str], processes: int, tmp_path: Path) -> list[list[int]]:
    """Run the monthly dispatch of each month in several processes at once; what each wrote."""
    barrier = SPAWN.Barrier(processes)
    outs = [tmp_path / f"dispatch{i}.json" for i in range(processes)]
    procs = [
        SPAWN.Process(target=dispatch_worker, args=(url, months, barrier, str(out)), daemon=True)
        for out in outs
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [p.exitcode for p in procs] == [0] * processes, "a dispatch process died or hung"
    return [json.loads(out.read_text("utf-8"))["written"] for out in outs]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_monthly_dispatch__raced_by_4_processes__one_reminder_per_case_and_month(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _dispatch_url(backend, request, tmp_path)
    march = dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with Engine(url) as engine:
        engine.init()
        engine.register_workflow(FAST_WORKFLOW, "fast.yaml")
        engine.add_unit("HRB", "哈尔滨市")
        engine.add_actor(SUPERVISOR, roles=["supervisor"])
    cases = open_cases(url, 120, now=march)
    closed, noted, others = cases[0], cases[1], cases[2:]
    with Engine(url) as engine:
        engine.fire(closed, "close", SUPERVISOR, now=march + dt.timedelta(days=1))
        engine.note(noted, SUPERVISOR, "整改方案已上报", now=march + dt.timedelta(days=8))

    # All four race March's dispatch, then all four race April's.
    months = ["2026-03-25T09:00:00+08:00", "2026-04-25T09:00:00+08:00"]
    written = _race_dispatch(url, months, 4, tmp_path)

    with Engine(url) as engine:
        keys = [n.key for n in engine.store.list_notifications(kind="dispatch")]
    assert len(keys) == len(set(keys))
    march_keys = {f"dispatch:{c}:2026-03:owner" for c in others}  # not the noted, not the closed
    april_keys = {f"dispatch:{c}:2026-04:owner" for c in [noted, *others]}  # March's note is old
    assert set(keys) == march_keys | april_keys
    # Each row was inserted by exactly one process.
    assert [sum(w[0] for w in written), sum(w[1] for w in written)] == [
        len(march_keys),
        len(april_keys),
    ]


@pytest.mark.postgres
@pytest.mark.slow
def test_daemon__postgres_unreachable_for_seconds__retries_then_records_each_level_once(
    pg_db: str, postgres_server: Any, daemons: Callable[[str], Daemon]
) -> None:
    daemon = daemons(pg_db)
    daemon.wait_ready()
    cases = open_cases(pg_db, 20)
    # Block the database once the first level of every case is in: the other four come due
    # during the outage.
    wait_until(lambda: escalation_count(pg_db) >= len(cases), 10, "the first level of each case")
    name = pg_db.rsplit("/", 1)[1]
    with postgres_server.admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
    blocked = dt.datetime.now(dt.UTC)
    try:
        time.sleep(6)
        assert daemon.proc.poll() is None, "the daemon died while the database was away"
        warnings = [r["message"] for r in daemon.records() if r["level"]["name"] == "WARNING"]
        assert any(m.startswith("sweep failed") for m in warnings), warnings
    finally:
        with postgres_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    back = dt.datetime.now(dt.UTC)

    expected = len(cases) * len(LEVELS)
    wait_until(lambda: escalation_count(pg_db) == expected, 20, "every level after the outage")
    time.sleep(1.5)
    assert_each_level_once(pg_db, cases)
    with Engine(pg_db) as engine:
        late = [e for e in engine.store.list_escalations() if e.due_at > blocked]
    assert len(late) >= len(cases) * 3  # supervise and later came due during the outage...
    assert all(e.fired_at >= back for e in late)  # ...and were recorded once it was over
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=5) == 0
