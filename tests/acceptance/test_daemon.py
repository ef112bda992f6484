"""The daemon as a subprocess, on a workflow whose SLAs are seconds.

These are the only tests that wait on the clock: levels must appear within 2 s of their
due time, a ``kill -9`` and a restart must neither lose nor repeat an escalation, and
SIGTERM must end the daemon (exit 0) within 5 s.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_support import LEVELS, Daemon, fast_ledger, wait_until

from rectiflow import Engine


@pytest.fixture
def db(tmp_path: Path) -> str:
    return fast_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)


def open_cases(url: str, count: int) -> list[int]:
    with Engine(url) as engine:
        return [
            engine.open_case("督办员", unit="HRB", title=f"测试问题{i}", workflow="fast").id
            for i in range(count)
        ]


def recorded(url: str) -> list[tuple[int, str, dt.datetime, dt.datetime]]:
    with Engine(url) as engine:
        return [(e.case_id, e.level, e.due_at, e.fired_at) for e in engine.store.list_escalations()]


@pytest.mark.slow
def test_daemon__levels_fire_within_2s_in_order_and_sigterm_exits_0(
    db: str, daemons: Callable[[str], Daemon]
) -> None:
    daemon = daemons(db)
    daemon.wait_ready()  # the daemon starts with nothing due; cases arrive while it idles
    cases = open_cases(db, 3)
    wait_until(lambda: len(recorded(db)) == 3 * len(LEVELS), 20, "every level of 3 cases")

    rows = recorded(db)
    for case_id in cases:
        levels = [level for c, level, _, _ in rows if c == case_id]
        assert levels == LEVELS  # ladder order, each once
    for _, level, due_at, fired_at in rows:
        assert due_at <= fired_at < due_at + dt.timedelta(seconds=2), level
    with Engine(db) as engine:
        roles = Counter(n.level for n in engine.store.list_notifications(kind="escalation"))
    assert roles == {
        "remind": 3,
        "warn": 6,
        "supervise": 3,
        "notify_public": 3,
        "accountability": 3,
    }

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert b"daemon stopped" in daemon.log.read_bytes()


@pytest.mark.slow
def test_daemon__kill_9_and_restart_records_every_level_exactly_once(
    db: str, daemons: Callable[[str], Daemon]
) -> None:
    first = daemons(db)
    cases = open_cases(db, 40)
    wait_until(lambda: len(recorded(db)) >= 40, 20, "the first levels")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.wait(timeout=5)
    during_downtime = len(recorded(db))
    time.sleep(3)  # levels come due while no daemon runs

    daemons(db)
    wait_until(lambda: len(recorded(db)) == len(cases) * len(LEVELS), 20, "every level")
    time.sleep(1.5)  # and nothing more arrives afterwards
    rows = recorded(db)
    assert during_downtime < len(rows) == len(cases) * len(LEVELS)
    assert Counter((c, level) for c, level, _, _ in rows) == {
        (c, level): 1 for c in cases for level in LEVELS
    }
    with Engine(db) as engine:
        keys = [n.key for n in engine.store.list_notifications(kind="escalation")]
    assert len(keys) == len(set(keys)) == len(cases) * 6


@pytest.mark.slow
def test_daemon__two_daemons_on_one_sqlite_file_record_each_level_once(
    db: str, daemons: Callable[[str], Daemon]
) -> None:
    a, b = daemons(db), daemons(db)
    a.wait_ready()
    b.wait_ready()
    cases = open_cases(db, 30)
    wait_until(lambda: len(recorded(db)) == len(cases) * len(LEVELS), 25, "every level")
    time.sleep(1.5)
    assert len(recorded(db)) == len(cases) * len(LEVELS)
    for daemon in (a, b):
        daemon.signal(signal.SIGINT)
        assert daemon.wait(timeout=5) == 0


@pytest.mark.slow
def test_daemon__second_signal_exits_at_once(db: str, daemons: Callable[[str], Daemon]) -> None:
    daemon = daemons(db)
    daemon.wait_ready()
    open_cases(db, 1)  # its first level comes due in 2 s
    # Hold SQLite's write lock, so that the pass that claims the level waits on it (the busy
    # timeout is 30 s): a pass stays in hand, and the first signal's graceful stop with it.
    lock = sqlite3.connect(db.removeprefix("sqlite:///"), timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        time.sleep(4)  # the level is due, and two ticks have passed since: a pass is waiting
        assert recorded(db) == []

        daemon.signal(signal.SIGTERM)
        wait_until(
            lambda: b"finishing the batch in hand" in daemon.log.read_bytes(), 5, "the 1st signal"
        )
        time.sleep(1)
        assert daemon.proc.poll() is None, "the first signal did not wait for the pass in hand"

        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pytest.fail("the second signal did not end the daemon at once")
        # 128 + signum: the daemon's own handler; the default one would give -signum, and
        # the graceful stop 0 (and not before the lock is released).
        assert code == 128 + signal.SIGTERM
        assert time.monotonic() - started < 3
        assert b"daemon stopped" not in daemon.log.read_bytes()
    finally:
        lock.rollback()
        lock.close()
