"""`rectiflow demo` on a fresh folder, and `--help` of every command."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from cli_support import Cli

COMMANDS = {
    "init", "demo", "escalate", "daemon", "health",
    "unit add", "unit list", "actor add", "actor list", "actor edit",
    "outbox list", "outbox show", "outbox retry", "notify test", "notify check",
    "case open", "case show", "case list", "case fire", "case triggers", "case pause",
    "case resume", "case note", "case edit", "case lookback", "case extend", "case extension",
    "case exempt", "case unexempt", "measure add", "measure done",
    "measure verify-evidence",
    "ledger import", "ledger export",
    "report progress", "report snapshot", "report snapshots", "report ranking", "report lights",
    "workflow list", "workflow show", "workflow validate", "workflow add", "workflow diagram",
    "audit checkpoint", "audit verify", "calendar load", "calendar show", "db status",
}  # fmt: skip


def test_demo__builds_a_ledger_in_a_fresh_folder(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "unused.db", now=None)
    done = cli.run("demo", db=False, env={"TMPDIR": str(tmp_path)})
    found = re.search(r"demo ledger: (\S+)", done.stdout)
    assert found is not None, done.stdout
    db = Path(found.group(1))
    assert db.exists()
    assert db.parent.parent == tmp_path  # a new folder in the temporary folder
    for text in ("哈尔滨市", "closed 已销号", "dismissed", "● red", "accountability", "remind"):
        assert text in done.stdout
    end = re.search(r"--now (\S+)", done.stdout)
    assert end is not None

    listed, verified, again = Cli(db, now=end.group(1)).batch(
        (0, "case", "list", "--json"),
        (0, "audit", "verify"),
        (2, "demo", "--db", str(db)),
    )
    cases = listed.json()
    assert len(cases) >= 12
    states = [c["state"] for c in cases]
    assert states.count("closed") >= 5
    assert {"rectify", "verify", "dismissed"} <= set(states)
    assert any(c["escalations"] for c in cases)
    assert {"red", "yellow", "green"} <= {c["light"] for c in cases}
    assert "history intact" in verified.stdout
    assert "exists" in again.error
    assert not (tmp_path / "rectiflow.db").exists()

    with sqlite3.connect(db) as conn:
        marked = conn.execute(
            "SELECT trigger, comment FROM history WHERE trigger IN "
            "('reject', 'pause', 'resume', 'dismiss')"
        ).fetchall()
    conn.close()
    assert {trigger for trigger, _ in marked} == {"reject", "pause", "resume", "dismiss"}
    assert all(comment for trigger, comment in marked if trigger != "resume")


def test_help__every_command_has_help_with_an_example(tmp_path: Path) -> None:
    # One process walks the whole command tree, so the test costs one Python start.
    script = """
import contextlib, io, json, sys
import typer
from rectiflow.cli import app, main

def walk(group, path):  # as click lists them: the root loads its commands on first use
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        if hasattr(command, "commands"):
            yield from walk(command, path + [name])
        else:
            yield path + [name]

found = {}
for path in walk(typer.main.get_command(app), []):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*path, "--help"])
        except SystemExit as exc:
            found[" ".join(path)] = (exc.code, out.getvalue())
print(json.dumps(found))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        check=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    helps = json.loads(done.stdout)
    assert set(helps) == COMMANDS
    for command, (code, text) in helps.items():
        assert code == 0, command
        assert f"Usage: rectiflow {command}" in text, command
        assert "Example: rectiflow" in text, command
    assert not (tmp_path / "rectiflow.db").exists()  # --help opens no database

    root = Cli(tmp_path / "x.db", now=None).run(db=False)  # bare `rectiflow` shows the help
    for text in ("case open", "approve_plan", "Exit codes", "demo"):
        assert text in root.stdout
