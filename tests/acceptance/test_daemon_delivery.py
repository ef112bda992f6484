"""`rectiflow daemon --notify-config FILE` as a subprocess, delivering to real local servers:
a kill -9 in the middle of a batch loses nothing (what was in flight is sent again with the
same key), and an endpoint that never answers does not hold up the sweep."""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import LEVELS, Daemon, fast_ledger, wait_until
from notify_servers import Answer, Recorder, serving, silent_server

from rectiflow import Engine

SECRET = "whsec-daemon-5e4d3c2b1a"
ENV = {"OPS_SECRET": SECRET}
# The dispatcher's lease (5 min) shortened so that a killed daemon's batch comes back in
# seconds; everything else is the real command.
SHORT_LEASE = (
    "-c",
    "import datetime, sys\n"
    "from rectiflow.notify.dispatcher import Dispatcher\n"
    "Dispatcher.__init__.__kwdefaults__['lease'] = datetime.timedelta(seconds=2)\n"
    "from rectiflow.cli import main\n"
    "main(sys.argv[1:])\n",
)


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = fast_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    with Engine(url) as engine:
        engine.add_actor("责任人", ["owner"], ["HRB"])
        engine.add_actor("分管领导", ["head"], ["HRB"])
    return url


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        daemon.stop()


def notify_config(folder: Path, url: str, timeout: str = "5s") -> str:
    path = folder / "notify.yaml"
    path.write_text(
        "channels:\n"
        "  - name: ops\n"
        "    type: webhook\n"
        f"    url: {url}\n"
        "    secret: env:OPS_SECRET\n"
        f"    timeout: {timeout}\n"
        "retry: [1s, 1s, 1s]\n",
        "utf-8",
    )
    return str(path)


def deliveries(url: str) -> list[tuple[str, str]]:
    with Engine(url) as engine:
        return [(d.key, d.status) for d, _ in engine.store.list_deliveries()]


@pytest.mark.slow
def test_daemon__kill_9_mid_batch_loses_nothing_resends_with_the_same_key(
    db: str, tmp_path: Path, started: list[Daemon]
) -> None:
    with Engine(db) as engine:
        for i in range(20):
            engine.open_case("督办员", unit="HRB", title=f"测试问题{i}", workflow="fast")
        engine.escalate_due(engine.now() + dt.timedelta(seconds=60))  # every level, now
        assert engine.health().undelivered == 20 * 6
    with serving(Recorder(shape="webhook", secret=SECRET)) as server:
        server.default = Answer(200, delay=0.05)  # a batch of 100 takes 5 s
        config = notify_config(tmp_path, server.url + "/hooks")
        args = ("--notify-config", config)
        first = Daemon(db, tmp_path / "first.log", *args, program=SHORT_LEASE, env=ENV)
        started.append(first)
        wait_until(lambda: len(server.received) >= 30, 30, "the first batch to be in flight")
        os.kill(first.proc.pid, signal.SIGKILL)
        first.wait(timeout=5)
        in_flight = len(server.received)
        assert Counter(status for _, status in deliveries(db))["sent"] < in_flight

        second = Daemon(db, tmp_path / "second.log", *args, program=SHORT_LEASE, env=ENV)
        started.append(second)
        wait_until(
            lambda: all(status == "sent" for _, status in deliveries(db)), 40, "every delivery"
        )
    rows = deliveries(db)
    assert len(rows) >= 20 * 6  # and the monthly dispatch's, when a start catches it up
    keys = server.keys()
    assert set(keys) == {key for key, _ in rows}  # each one arrived, under its own key
    assert len(keys) >= len(rows)  # some twice (in flight at the kill), never under a new key
    assert all(server_got.verified for server_got in server.received)
    with Engine(db) as engine:
        assert engine.health().undelivered == 0


@pytest.mark.slow
def test_daemon__sweep_keeps_its_timing_while_an_endpoint_hangs(
    db: str, tmp_path: Path, started: list[Daemon]
) -> None:
    with silent_server() as url:
        config = notify_config(tmp_path, url, timeout="10s")
        daemon = Daemon(db, tmp_path / "daemon.log", "--notify-config", config, env=ENV)
        started.append(daemon)
        daemon.wait_ready()
        with Engine(db) as engine:
            cases = [
                engine.open_case("督办员", unit="HRB", title=f"测试问题{i}", workflow="fast").id
                for i in range(3)
            ]

        def recorded() -> list[tuple[int, str, dt.datetime, dt.datetime]]:
            with Engine(db) as engine:
                return [
                    (e.case_id, e.level, e.due_at, e.fired_at)
                    for e in engine.store.list_escalations()
                ]

        wait_until(lambda: len(recorded()) == 3 * len(LEVELS), 20, "every level of 3 cases")
        rows = recorded()
        for case_id in cases:
            assert [level for c, level, _, _ in rows if c == case_id] == LEVELS
        for _, level, due_at, fired_at in rows:
            assert due_at <= fired_at < due_at + dt.timedelta(seconds=2), level
        with Engine(db) as engine:
            stuck = engine.store.list_deliveries()
            assert stuck  # the dispatcher had work...
            assert not [d for d, _ in stuck if d.status == "sent"]  # ...and nothing got through
            assert any(d.claimed_until is not None for d, _ in stuck)  # a send is hanging
