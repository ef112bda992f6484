"""``audit verify`` and ``audit checkpoint`` through the CLI, with and without the audit key;
time only moves forward (issue 14, section 1)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cli_support import REPORTER, SUPERVISOR, Cli

KEY = {"RECTIFLOW_AUDIT_KEY": "office-key-2026"}


def _open(ledger: Cli, env: dict[str, str] | None = None) -> str:
    done = ledger.run(
        "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER, "--json",
        env=env,
    )  # fmt: skip
    return str(json.loads(done.stdout)["id"])


def _sql(ledger: Cli, statement: str) -> None:
    with sqlite3.connect(ledger.db) as conn:
        conn.execute(statement)


def test_audit__a_title_changed_with_sql_exits_7(ledger: Cli) -> None:
    cid = _open(ledger)
    assert "history intact: 1 entries of 1 cases verified" in ledger.run("audit", "verify").stdout
    _sql(ledger, f"UPDATE rcase SET title = '无问题' WHERE id = {cid}")
    error = ledger.fails(7, "audit", "verify")
    assert f"history of case {cid} is broken at seq 1: field title is" in error


def test_audit__time_only_moves_forward(ledger: Cli) -> None:
    cid = _open(ledger)
    error = ledger.fails(
        4, "case", "fire", cid, "confirm", "--actor", SUPERVISOR, now="2026-03-01T10:00:00+08:00"
    )
    assert "time only moves forward: 2026-03-01T10:00:00+08:00 is before the case's last " \
        "history entry at 2026-03-02T10:00:00+08:00" in error  # fmt: skip


def test_audit__keyed_entries_without_the_key_and_with_a_wrong_one(ledger: Cli) -> None:
    _open(ledger, KEY)
    done = ledger.run("audit", "verify")
    assert "history intact: 1 entries" in done.stdout
    assert "warning: 1 keyed entries not checked: key not given" in done.stdout
    assert "warning" not in ledger.run("audit", "verify", env=KEY).stdout
    wrong = ledger.run("audit", "verify", code=7, env={"RECTIFLOW_AUDIT_KEY": "guess"})
    assert "signed with audit key" in wrong.stderr


def test_audit__key_file_with_a_rotation(ledger: Cli, tmp_path: Path) -> None:
    keys = tmp_path / "audit.keys"
    keys.write_text("first-key\n", "utf-8")
    cid = _open(ledger, {"RECTIFLOW_AUDIT_KEY_FILE": str(keys)})
    keys.write_text("first-key\nsecond-key\n", "utf-8")
    env = {"RECTIFLOW_AUDIT_KEY_FILE": str(keys)}
    ledger.run("case", "fire", cid, "confirm", "--actor", SUPERVISOR, env=env)
    assert "warning" not in ledger.run("audit", "verify", env=env).stdout
    ledger.run("audit", "verify", code=7, env={"RECTIFLOW_AUDIT_KEY": "second-key"})


def test_checkpoint__verify_against_it_and_an_altered_file(ledger: Cli, tmp_path: Path) -> None:
    cid = _open(ledger)
    kept = tmp_path / "checkpoint.json"
    assert (
        "checkpoint of 1 cases written"
        in ledger.run("audit", "checkpoint", "--out", str(kept)).stdout
    )
    data = json.loads(kept.read_text("utf-8"))
    assert set(data) == {"at", "cases", "digest"}
    assert data["cases"][cid][0] == 1
    ledger.run("case", "fire", cid, "confirm", "--actor", SUPERVISOR)
    assert (
        "nothing changed up to the checkpoint"
        in ledger.run("audit", "verify", "--against", str(kept)).stdout
    )
    data["cases"][cid][1] = "f" * 64
    kept.write_text(json.dumps(data), "utf-8")
    assert "the file was altered" in ledger.fails(7, "audit", "verify", "--against", str(kept))
    kept.write_text("not json", "utf-8")
    assert "not a checkpoint file" in ledger.fails(2, "audit", "verify", "--against", str(kept))
