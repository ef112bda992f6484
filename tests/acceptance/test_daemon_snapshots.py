"""The daemon's monthly snapshot: a daemon that starts with last month's snapshot missing
takes it at once (the 23:59 cron itself cannot be waited for), two daemons on one SQLite
file take it once between them, and a restart does not take it again."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_support import Daemon, fast_ledger, wait_until

from rectiflow import Engine
from rectiflow.app.reports import quarter_snapshots


def last_month() -> str:
    """The month before now in Asia/Shanghai, the engine's default zone."""
    first = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def taken(url: str) -> list[tuple[str, str, dt.datetime]]:
    with Engine(url) as engine:
        return [(s.period, s.taken_by, s.taken_at) for s in engine.snapshots()]


def said(daemons: list[Daemon], text: str) -> int:
    return sum(1 for d in daemons for r in d.records() if text in r["message"])


def in_last_month() -> dt.datetime:
    first = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(day=1, hour=10)
    return first - dt.timedelta(days=10)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A ledger whose cases were opened last month."""
    url = fast_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    with Engine(url) as engine:
        for i in range(3):
            engine.open_case(
                "督办员", unit="HRB", title=f"问题{i}", workflow="fast", now=in_last_month()
            )
    return url


@pytest.mark.slow
def test_daemon__a_ledger_younger_than_last_month_owes_no_snapshot_of_it(
    tmp_path: Path, daemons: Callable[[str], Daemon]
) -> None:
    url = fast_ledger(f"sqlite:///{tmp_path / 'young.db'}", tmp_path)
    with Engine(url) as engine:
        engine.open_case("督办员", unit="HRB", title="本月新问题", workflow="fast")
    daemon = daemons(url)
    daemon.wait_ready()
    time.sleep(3)
    assert taken(url) == []


@pytest.mark.slow
def test_daemons__catch_up_last_months_snapshot_once(
    db: str, daemons: Callable[[str], Daemon]
) -> None:
    month = last_month()
    periods = [month, *quarter_snapshots(month)]  # and its quarter when it ends one
    a, b = daemons(db), daemons(db)
    a.wait_ready()
    b.wait_ready()
    wait_until(lambda: len(taken(db)) == len(periods), 20, f"the snapshot of {month}")
    time.sleep(3)  # both daemons have passed by now: the second found it taken
    rows = taken(db)
    assert [(period, by) for period, by, _ in rows] == [(p, "daemon") for p in sorted(periods)]
    with Engine(db) as engine:
        frozen = engine.store.snapshot_cases(month)
    assert len(frozen) == 3
    assert said([a, b], f"snapshot {month} taken") == 1
    assert said([a, b], "failed") == 0

    for daemon in (a, b):
        daemon.stop()
    c = daemons(db)
    c.wait_ready()
    time.sleep(3)
    assert taken(db) == rows
    assert said([c], f"snapshot {month}") == 0  # not taken, not failed
