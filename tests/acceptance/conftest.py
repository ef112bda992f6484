"""Fixtures of the CLI tests: the real ``rectiflow`` command against a SQLite file in tmp_path.

Each subprocess costs a Python start and the imports, so a small ledger is built once per
session through the CLI and copied for every test that needs one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_support import OTHER_OWNER, OWNER, REPORTER, REVIEWER, SUPERVISOR, VERIFIER, Cli
from daemon_support import Daemon


@pytest.fixture(scope="session")
def ledger_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger set up through the CLI alone: init, units, actors."""
    cli = Cli(tmp_path_factory.mktemp("template") / "ledger.db")
    init, *_ = cli.batch(
        (0, "init"),
        (0, "unit", "add", "HLJ", "黑龙江省"),
        (0, "unit", "add", "HRB", "哈尔滨市", "--parent", "HLJ"),
        (0, "unit", "add", "QQHR", "齐齐哈尔市", "--parent", "HLJ"),
        (0, "actor", "add", SUPERVISOR, "--role", "supervisor", "--role", "reporter"),
        (0, "actor", "add", REPORTER, "--role", "reporter"),
        (0, "actor", "add", REVIEWER, "--role", "reviewer"),
        (0, "actor", "add", VERIFIER, "--role", "verifier"),
        (0, "actor", "add", OWNER, "--role", "owner", "--unit", "HRB"),
        (0, "actor", "add", OTHER_OWNER, "--role", "owner", "--unit", "QQHR"),
    )
    assert "rectification@1" in init.stdout
    return cli.db


@pytest.fixture
def ledger(ledger_template: Path, tmp_path: Path) -> Cli:
    """A fresh copy of the set-up ledger for one test."""
    db = tmp_path / "ledger.db"
    for suffix in ("", "-wal", "-shm"):  # a clean exit leaves no WAL, but be safe
        source = ledger_template.with_name(ledger_template.name + suffix)
        if source.exists():
            shutil.copy(source, db.with_name(db.name + suffix))
    return Cli(db)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI on a database that does not exist yet."""
    return Cli(tmp_path / "ledger.db")


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[str], Daemon]]:
    """Start `rectiflow daemon` subprocesses; whatever is still running is killed after."""
    started: list[Daemon] = []

    def start(url: str) -> Daemon:
        daemon = Daemon(url, tmp_path / f"daemon{len(started)}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
