"""What the chaos tests share: daemons with options, CPU burners, a case loader, counts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon_support import LEVELS, Daemon

from rectiflow import Engine

HERE = Path(__file__).resolve().parent


class ChaosDaemon(Daemon):
    """A daemon whose ``wrapper`` (a script in this folder) may patch it before running the
    CLI: a pass held past the next tick, say."""

    def __init__(
        self, db: str, log: Path, *args: str, wrapper: str | None = None, **kwargs: Any
    ) -> None:
        program = [str(HERE / wrapper)] if wrapper else ["-m", "rectiflow"]
        super().__init__(db, log, *args, program=program, **kwargs)

    def lines(self) -> list[str]:
        return self.log.read_text("utf-8", errors="replace").splitlines()


@contextmanager
def cpu_burners(count: int = 3) -> Iterator[None]:
    """``count`` processes spinning on the CPU, competing with everything else."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=10)


class Loader(threading.Thread):
    """Opens cases on the fast workflow at ``rate`` a second for ``seconds``, each due in 4 s
    with its five levels over the next 7 s. Uses its own Engine unless handed one."""

    def __init__(
        self, url: str, *, rate: float, seconds: float, engine: Engine | None = None
    ) -> None:
        super().__init__(name="loader", daemon=True)
        self.url, self.rate, self.seconds, self.engine = url, rate, seconds, engine
        self.opened: list[int] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        engine = self.engine or Engine(self.url)
        try:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < self.seconds:
                case = engine.open_case("督办员", unit="HRB", title=f"负载{n}", workflow="fast")
                self.opened.append(case.id)
                n += 1
                time.sleep(max(0.0, start + n / self.rate - time.monotonic()))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            if self.engine is None:
                engine.close()


def escalation_count(url: str) -> int:
    with Engine(url) as engine:
        return len(engine.store.list_escalations())


def missing_levels(url: str, cases: list[int]) -> int:
    """How many of the cases' ladder levels are not recorded."""
    with Engine(url) as engine:
        recorded = {(e.case_id, e.level) for e in engine.store.list_escalations()}
    return sum((c, level) not in recorded for c in cases for level in LEVELS)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
