"""Run the real ``rectiflow`` command against a SQLite file.

``Cli.run`` starts one process per command, as a shell would. ``Cli.batch`` runs a list of
commands through the same entry point (``rectiflow.cli.main``) inside one subprocess, so a
test can check many refusals for the price of one Python start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The start of the simulated clock in these tests: a Monday, 10:00 in Shanghai.
T0 = "2026-03-02T10:00:00+08:00"


_BATCH = """
import contextlib, io, json, sys
from rectiflow.cli import main

results = []
for argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one line a refusal prints (asserted to be exactly one ``error: ...`` line)."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), self.stderr
        return lines[0]

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """``rectiflow --db FILE [--now T] ARGS``; asserts the exit code it is told to expect."""

    def __init__(self, db: Path, now: str | None = T0, cwd: Path | None = None) -> None:
        self.db = db
        self.now = now
        self.cwd = cwd or db.parent

    def run(
        self, *args: str, code: int = 0, now: str | None = None, db: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "rectiflow", *self._globals(now, db), *args],
            capture_output=True, text=True, timeout=60, check=False, cwd=self.cwd,
            env=self._env(env),
        )  # fmt: skip
        assert done.returncode == code, (
            f"rectiflow {' '.join(args)} exited {done.returncode}, expected {code}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
        return done

    def batch(self, *commands: tuple[Any, ...]) -> list[Result]:
        """Run ``(code, *args)`` commands in order in one process; check each exit code and
        that each refusal is one line. A later ``--now`` in args overrides the default."""
        argvs = [[*self._globals(None, True), *command[1:]] for command in commands]
        done = subprocess.run(
            [sys.executable, "-c", _BATCH], input=json.dumps(argvs), capture_output=True,
            text=True, timeout=120, check=True, cwd=self.cwd, env=self._env(None),
        )  # fmt: skip
        results = [Result(*row) for row in json.loads(done.stdout)]
        for (code, *args), result in zip(commands, results, strict=True):
            assert result.code == code, (
                f"rectiflow {' '.join(args)} exited {result.code}, expected {code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
            if code != 0:
                assert result.error
        return results

    def _globals(self, now: str | None, db: bool) -> list[str]:
        argv = ["--db", str(self.db)] if db else []
        if now or self.now:
            argv += ["--now", now or self.now or ""]
        return argv

    @staticmethod
    def _env(extra: dict[str, str] | None) -> dict[str, str]:
        environment = {
            k: v for k, v in os.environ.items()
            if not k.startswith("RECTIFLOW_") or k == "RECTIFLOW_CACHE_DIR"  # the session's
        }  # fmt: skip
        environment.update(extra or {})
        return environment

    def json(self, *args: str, now: str | None = None) -> Any:
        return json.loads(self.run(*args, "--json", now=now).stdout)

    def fails(self, code: int, *args: str, now: str | None = None) -> str:
        """Run a command that must be refused; return its one-line error message."""
        done = self.run(*args, code=code, now=now)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: "), done.stderr
        return lines[0]


# Who is who in the test ledger: a province, two cities, one actor per role.
SUPERVISOR, REPORTER, REVIEWER, VERIFIER = "赵敏", "reporter", "reviewer", "verifier"
OWNER, OTHER_OWNER = "李强", "郑洁"  # owners of HRB and of QQHR
