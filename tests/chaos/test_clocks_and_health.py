"""Clocks the daemon refuses or follows, health an operator can read, systemd's protocol,
a log that is JSON on every line, and a PostgreSQL server that stops answering."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from chaos_support import ChaosDaemon, missing_levels, wait_until
from daemon_support import fast_ledger

from rectiflow import Engine

pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> str:
    return fast_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)


def open_fast(url: str, count: int, now: dt.datetime | None = None) -> list[int]:
    with Engine(url) as engine:
        return [
            engine.open_case("督办员", unit="HRB", title=f"问题{i}", workflow="fast", now=now).id
            for i in range(count)
        ]


def rectiflow(
    *args: str, db: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rectiflow", "--db", db, *args],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


# --- clocks ---------------------------------------------------------------------------------


def test_daemon__a_fixed_clock_is_refused_with_exit_2(db: str) -> None:
    for done in (
        rectiflow("--now", "2026-09-28T10:00", "daemon", db=db),
        rectiflow("daemon", db=db, env={"RECTIFLOW_NOW": "2027-01-01T00:00"}),
    ):
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "real clock" in lines[0]


class ShiftedClock:
    """The wall clock plus an offset that a test moves."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture
def shifted(db: str) -> Iterator[tuple[Engine, ShiftedClock]]:
    clock = ShiftedClock()
    engine = Engine(db, clock=clock)
    yield engine, clock
    engine.close()


def test_embedded__engine_clock_jumps_90_days__the_levels_then_due_are_recorded(
    shifted: tuple[Engine, ShiftedClock],
) -> None:
    engine, clock = shifted
    case = engine.open_case("督办员", unit="HRB", title="跳变", severity="high")  # 5 working days
    engine.start_scheduler()
    time.sleep(2)
    assert engine.escalations(case.id) == []  # nothing is due on the engine's clock yet
    clock.offset = dt.timedelta(days=90)
    wait_until(lambda: len(engine.escalations(case.id)) == 5, 20, "the whole ladder")
    fired = engine.escalations(case.id)
    assert [e.level for e in fired] == [
        "remind", "warn", "supervise", "notify_public", "accountability"
    ]  # fmt: skip
    assert all(e.fired_at > dt.datetime.now(dt.UTC) + dt.timedelta(days=89) for e in fired)


def test_embedded__engine_clock_a_day_behind__sweeps_on_time_and_does_not_spin(
    db: str, shifted: tuple[Engine, ShiftedClock]
) -> None:
    engine, clock = shifted
    clock.offset = -dt.timedelta(days=1)
    engine.start_scheduler()
    cpu = time.process_time()
    cases = [
        engine.open_case("督办员", unit="HRB", title=f"昨天{i}", workflow="fast").id
        for i in range(3)
    ]
    wait_until(lambda: missing_levels(db, cases) == 0, 20, "every level on the engine's clock")
    time.sleep(2)
    # A second or two of CPU for ~10 s of ticks and a few sweeps: not a spin (which burns
    # a whole core, ~10 s).
    assert time.process_time() - cpu < 5
    for case_id in cases:
        for esc in engine.escalations(case_id):
            assert esc.due_at <= esc.fired_at < esc.due_at + dt.timedelta(seconds=5)


# --- health ---------------------------------------------------------------------------------


def health(db: str, max_lag: float = 8) -> tuple[int, dict[str, object], str]:
    """``health --json`` with a limit above the daemon's 5 s heartbeat interval."""
    done = rectiflow("health", "--max-lag", str(max_lag), "--json", db=db)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_health__no_daemon__exit_8(db: str) -> None:
    code, report, stderr = health(db)
    assert code == 8
    assert report["healthy"] is False
    assert "no running daemon" in stderr


def test_health__daemon_stopped_longer_than_max_lag__exit_8_until_it_runs_again(
    db: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    daemon = chaos_daemons(db)
    wait_until(lambda: health(db)[0] == 0, 30, "a healthy daemon")
    code, report, _ = health(db)
    daemons = report["daemons"]
    assert isinstance(daemons, list)
    assert [d["pid"] for d in daemons] == [daemon.proc.pid]

    daemon.signal(signal.SIGSTOP)
    try:
        open_fast(db, 3)  # levels due 2–7 s from now, with nobody sweeping
        wait_until(lambda: "unrecorded" in health(db)[2], 30, "health to fail on the lag")
        code, report, stderr = health(db)
        assert code == 8
        assert report["lag_seconds"] > 8  # type: ignore[operator]
        assert "no daemon has swept" in stderr
    finally:
        daemon.signal(signal.SIGCONT)
    wait_until(lambda: health(db)[0] == 0, 30, "health again once the daemon runs")

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    code, report, stderr = health(db)
    assert code == 8
    assert report["daemons"][0]["stopped_at"] is not None  # type: ignore[index]


def test_health__human_output_names_the_daemon_and_the_lag(
    db: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    daemon = chaos_daemons(db)
    wait_until(lambda: health(db)[0] == 0, 30, "a healthy daemon")
    done = rectiflow("health", db=db)
    assert done.returncode == 0
    assert str(daemon.proc.pid) in done.stdout
    assert "lag of the oldest due level: 0s" in done.stdout
    assert "healthy" in done.stdout


# --- systemd and the log ----------------------------------------------------------------------


def test_daemon__systemd_notify__ready_watchdog_stopping(
    db: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    name = f"rectiflow-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)  # the abstract namespace, as systemd's "@..." addresses
        listener.settimeout(20)
        daemon = chaos_daemons(db, env={"NOTIFY_SOCKET": "@" + name})
        messages = [listener.recv(4096).decode() for _ in range(3)]
        assert messages[0].startswith("READY=1")
        assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        daemon.signal(signal.SIGTERM)
        while (message := listener.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
    assert daemon.wait(timeout=10) == 0


def test_daemon__log_json__every_line_is_json_apschedulers_too(
    db: str, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    daemon = chaos_daemons(db)
    daemon.wait_ready()
    open_fast(db, 2)
    wait_until(lambda: daemon.logged("escalations on"), 20, "a sweep that records levels")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    lines = daemon.lines()
    records = [json.loads(line)["record"] for line in lines]  # each line parses
    assert any(r["extra"].get("action") == "apscheduler" for r in records)


# --- a frozen PostgreSQL ----------------------------------------------------------------------


@pytest.mark.postgres
def test_daemon__postgres_backends_frozen__stall_detected_cut_off_and_levels_recorded(
    postgres_url: str, tmp_path: Path, chaos_daemons: Callable[..., ChaosDaemon]
) -> None:
    url = fast_ledger(postgres_url, tmp_path)
    daemon = chaos_daemons(url, "--stall-timeout", "3", name="frozen-daemon")
    daemon.wait_ready()
    time.sleep(2)  # its pool holds a connection between passes
    dsn = url.replace("postgresql+psycopg://", "postgresql://")

    with psycopg.connect(dsn, autocommit=True) as conn:
        frozen = [
            pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'frozen-daemon'"
            )
        ]  # fmt: skip
    assert frozen
    for pid in frozen:  # the server processes of the daemon's sessions stop answering
        os.kill(pid, signal.SIGSTOP)
    try:
        cases = open_fast(url, 3)
        wait_until(lambda: daemon.logged("sweep stuck"), 30, "the stall to be detected")
        wait_until(lambda: missing_levels(url, cases) == 0, 40, "every level, on new sessions")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    stuck = [r for r in daemon.records() if "sweep stuck" in r["message"]]
    assert stuck[0]["level"]["name"] == "ERROR"
    assert stuck[0]["extra"]["lag"] >= 3
    assert daemon.proc.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
