"""What the daemon tests share: a workflow on a clock of seconds, the `rectiflow` command and
the daemon as subprocesses, and the worker that the dispatch tests start with "spawn"
(it lives here, not in a test module, so that the child process can import it by name).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rectiflow import Engine

LEVELS = ["remind", "warn", "supervise", "notify_public", "accountability"]
NOTIFICATIONS_PER_CASE = 6  # warn goes to two roles, the other levels to one

FAST_WORKFLOW = """\
name: fast
version: 1
title: {en: Rectification on a clock of seconds, zh: 秒级整改}
initial: identify
roles: [reporter, owner, head, supervisor]
states:
  identify: {en: Identify, zh: 问题识别, sla: 4s}
  closed: {en: Closed, zh: 已销号, final: true}
transitions:
  - {trigger: close, source: identify, dest: closed, roles: [supervisor]}
escalation:
  - {level: remind, offset: -2s, notify: [owner]}
  - {level: warn, offset: 0, notify: [owner, head]}
  - {level: supervise, offset: +1s, notify: [supervisor]}
  - {level: notify_public, offset: +2s, notify: [supervisor]}
  - {level: accountability, offset: +3s, notify: [supervisor]}
"""


def rectiflow(*args: str, db: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "rectiflow", "--db", db, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"rectiflow {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


class Daemon:
    """A `rectiflow daemon` subprocess with its log in a file."""

    def __init__(
        self,
        db: str,
        log: Path,
        *args: str,
        name: str | None = None,
        program: Sequence[str] = ("-m", "rectiflow"),
        env: dict[str, str] | None = None,
    ) -> None:
        """``args`` go to ``daemon``; ``program`` may name a script that wraps the CLI."""
        self.log = log
        self.name = name or log.stem
        # PostgreSQL shows the name as the sessions' application_name (pg_stat_activity).
        environment = {**os.environ, "PGAPPNAME": self.name, **(env or {})}
        with log.open("ab") as sink:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *program, "--db", db, "daemon", "--log-json", *args],
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env=environment,
            )

    def wait_ready(self) -> None:
        """Until the daemon has installed its signal handlers and started its jobs."""
        wait_until(lambda: b"daemon started" in self.log.read_bytes(), 20, "the daemon to start")

    def records(self) -> list[dict[str, Any]]:
        """The daemon's log so far: loguru's serialized records (message, level, extra)."""
        lines = self.log.read_text("utf-8", errors="replace").splitlines()
        return [json.loads(line)["record"] for line in lines if line.startswith("{")]

    def logged(self, text: str) -> bool:
        """Whether some log message contains ``text``."""
        return any(text in r["message"] for r in self.records())

    def escalations_logged(self) -> list[tuple[int, str]]:
        """(case id, level) of every escalation this daemon says it recorded."""
        return [
            (r["extra"]["case_id"], r["extra"]["level"])
            for r in self.records()
            if r["extra"].get("action") == "escalate"
        ]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test may have left it stopped
            self.proc.kill()
            self.proc.wait(timeout=10)


def fast_ledger(url: str, folder: Path, supervisor: str = "督办员") -> str:
    """A ledger set up through the CLI with the fast workflow, one unit and a supervisor."""
    workflow = folder / "fast.yaml"
    workflow.write_text(FAST_WORKFLOW, "utf-8")
    rectiflow("init", db=url)
    rectiflow("workflow", "add", str(workflow), db=url)
    with Engine(url) as engine:
        engine.add_unit("HRB", "哈尔滨市")
        engine.add_actor(supervisor, roles=["supervisor"])
    return url


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def dispatch_worker(url: str, months: list[str], barrier: Any, out: str) -> None:
    """For each moment in ``months``: wait for the other processes at ``barrier``, then run
    the monthly dispatch at that moment, in small batches so that the processes interleave.
    Writes how many reminders this process inserted in each month."""
    written = []
    with Engine(url) as engine:
        engine.store.list_units()  # connect before the race starts
        for now in months:
            barrier.wait(120)
            moment = dt.datetime.fromisoformat(now)
            written.append(engine.dispatch_reminders(moment, batch_size=25))
    Path(out).write_text(json.dumps({"written": written}), "utf-8")
