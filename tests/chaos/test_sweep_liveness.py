"""Whatever happens to one sweep pass, a later one comes while a level is due.

The scenario that used to stop the sweep for good: a loader opening 30 cases a second (five
levels each within 7 s) while three processes burn both cores; and a pass whose thread is
held past the next tick. Each must end with every due level recorded, on SQLite and on
PostgreSQL, in the daemon and in the embedded scheduler.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chaos_support import (
    ChaosDaemon,
    Loader,
    cpu_burners,
    escalation_count,
    missing_levels,
    wait_until,
)
from daemon_support import LEVELS, fast_ledger

from rectiflow import Engine
from rectiflow.scheduler import SWEEP, Scheduler

pytestmark = pytest.mark.slow

# CI runs 10 s of load; CHAOS_LOAD_SECONDS=60 gives the full scenario.
LOAD_SECONDS = float(os.environ.get("CHAOS_LOAD_SECONDS", "10"))
RATE = 30  # cases a second
SETTLE_SECONDS = 10  # after the load: the last case's last level is due 7 s after it opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    return fast_ledger(url, tmp_path)


@pytest.fixture
def embedded(ledger_url: str) -> Iterator[Engine]:
    engine = Engine(ledger_url)
    yield engine
    engine.close()  # stops the scheduler too


def _load_and_check(url: str, engine: Engine | None = None) -> None:
    with cpu_burners(3):
        loader = Loader(url, rate=RATE, seconds=LOAD_SECONDS, engine=engine)
        loader.start()
        loader.join(LOAD_SECONDS + 60)
        stopped = time.monotonic()
    assert not loader.errors, loader.errors
    # The loader kept up, roughly (it shares the cores with the burners and the sweep).
    assert len(loader.opened) >= RATE * LOAD_SECONDS // 4
    # The target is 0 missing 10 s after the load (met on a quiet machine, see README); CI
    # machines share their cores, so the test allows 20 s more before it calls it a stall.
    time.sleep(max(0.0, stopped + SETTLE_SECONDS - time.monotonic()))
    late = missing_levels(url, loader.opened)
    wait_until(
        lambda: missing_levels(url, loader.opened) == 0, 20,
        f"every level ({late} still missing {SETTLE_SECONDS} s after the load)",
    )  # fmt: skip
    assert escalation_count(url) == len(loader.opened) * len(LEVELS)


def test_daemon__cpu_burners_and_30_cases_a_second__every_level_recorded(
    ledger_url: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    daemon = chaos_daemons(ledger_url)
    daemon.wait_ready()
    _load_and_check(ledger_url)
    assert daemon.proc.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0


def test_embedded__cpu_burners_and_a_loader_thread__every_level_recorded(
    ledger_url: str, embedded: Engine
) -> None:
    embedded.start_scheduler()
    _load_and_check(ledger_url, engine=embedded)


def test_daemon__every_pass_held_past_the_next_tick__every_level_recorded(
    ledger_url: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    daemon = chaos_daemons(ledger_url, wrapper="slow_pass_daemon.py")
    daemon.wait_ready()
    loader = Loader(ledger_url, rate=10, seconds=5)
    loader.run()
    wait_until(lambda: missing_levels(ledger_url, loader.opened) == 0, 30, "every level")
    assert daemon.proc.poll() is None


def test_embedded__every_pass_held_past_the_next_tick__every_level_recorded(
    ledger_url: str, embedded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Scheduler._pass

    def held(self: Scheduler) -> None:
        job(self)
        time.sleep(1.5)  # past the next tick: it finds this run still going

    monkeypatch.setattr(Scheduler, "_pass", held)
    embedded.start_scheduler()
    loader = Loader(ledger_url, rate=10, seconds=5, engine=embedded)
    loader.run()
    wait_until(lambda: missing_levels(ledger_url, loader.opened) == 0, 30, "every level")


def test_embedded__passes_that_raise__a_later_pass_records_every_level(
    ledger_url: str, embedded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"left": 2}
    escalate_due = Engine.escalate_due

    def flaky(self: Engine, *args: object, **kwargs: object) -> object:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("a bug in one pass")
        return escalate_due(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "escalate_due", flaky)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    cases = [
        embedded.open_case("督办员", unit="HRB", title=f"问题{i}", workflow="fast", now=past).id
        for i in range(5)
    ]
    embedded.start_scheduler()
    wait_until(lambda: missing_levels(ledger_url, cases) == 0, 30, "every level after 2 failures")
    assert failures["left"] == 0


def test_embedded__ticks_stop_arriving__the_supervisor_rearms_them(
    ledger_url: str, embedded: Engine
) -> None:
    scheduler = embedded.start_scheduler()
    assert scheduler.aps is not None
    # What a wall clock set back a day does to APScheduler: the next tick a day away.
    tomorrow = dt.datetime.now(embedded.tz) + dt.timedelta(days=1)
    time.sleep(1.5)
    scheduler.aps.modify_job(SWEEP, next_run_time=tomorrow)
    cases = [
        embedded.open_case("督办员", unit="HRB", title=f"问题{i}", workflow="fast").id
        for i in range(3)
    ]
    wait_until(lambda: missing_levels(ledger_url, cases) == 0, 30, "every level, re-armed")


def test_daemon__kill_9_mid_sweep_under_load__another_daemon_records_the_rest(
    tmp_path: Path, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    url = fast_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with Engine(url) as engine:
        cases = [
            engine.open_case("督办员", unit="HRB", title=f"积压{i}", workflow="fast",
                             now=an_hour_ago).id
            for i in range(1500)
        ]  # fmt: skip
    with cpu_burners(3):
        victim = chaos_daemons(url, "--batch-size", "100")
        wait_until(lambda: escalation_count(url) > 0, 60, "the first batches")
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        left = missing_levels(url, cases)
        survivor = chaos_daemons(url, "--batch-size", "100")
        wait_until(lambda: missing_levels(url, cases) == 0, 90, "the rest, by the survivor")
    assert left > 0  # killed mid-sweep: work was left
    assert escalation_count(url) == len(cases) * len(LEVELS)
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(timeout=10) == 0
