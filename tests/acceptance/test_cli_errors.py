"""Every refusal is one line on stderr with its documented exit code, and changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cli_support import OTHER_OWNER, OWNER, REPORTER, SUPERVISOR, Cli


def test_exit_codes__each_refusal_is_one_line_and_changes_nothing(
    ledger: Cli, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-report.pdf")
    fire = ("case", "fire", "1")
    _, _, before, *refusals, after = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER),
        (0, "measure", "add", "1", "--text", "梳理事项", "--actor", OWNER),
        (0, "case", "show", "1", "--json"),
        # 2: usage and validation
        (2, "--now", "yesterday", "case", "show", "1"),
        (2, "case", "show", "1", "--colour"),
        (2, *fire),
        (2, "case", "shove", "1"),
        (2, "case", "show", "one"),
        (2, "measure", "done", "1", "--actor", OWNER, "--evidence", missing),
        (2, "measure", "add", "1", "--text", " ", "--actor", OWNER),
        (2, "case", "note", "1", "--actor", SUPERVISOR, "--text", ""),
        (2, "measure", "add", "1", "--text", "x", "--actor", OWNER, "--due", "soon"),
        # 3: not found
        (3, "case", "show", "99"),
        (3, "case", "fire", "99", "confirm", "--actor", SUPERVISOR),
        (3, "measure", "done", "99", "--actor", OWNER),
        (3, "case", "open", "--unit", "XX", "--title", "t", "--actor", REPORTER),
        (3, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER, "--workflow",
         "nope"),
        # 4: transition rejected
        (4, *fire, "submit", "--actor", OWNER),
        (4, *fire, "dismiss", "--actor", SUPERVISOR),
        (4, *fire, "fly", "--actor", SUPERVISOR),
        (4, "case", "resume", "1", "--actor", SUPERVISOR),
        # 5: conflict
        (5, *fire, "confirm", "--actor", SUPERVISOR, "--expect-version", "1"),
        (5, "measure", "add", "1", "--text", "x", "--actor", OWNER, "--expect-version", "1"),
        # 6: permission denied
        (6, *fire, "confirm", "--actor", "路人"),
        (6, *fire, "confirm", "--actor", OWNER),
        (6, "measure", "add", "1", "--text", "越权", "--actor", OTHER_OWNER),
        (6, "case", "pause", "1", "--actor", OWNER, "--comment", "x"),
        (6, "case", "open", "--unit", "HRB", "--title", "t", "--actor", OWNER),
        (0, "case", "show", "1", "--json"),
    )  # fmt: skip
    assert after.stdout == before.stdout
    messages = [r.error for r in refusals]
    for expected in (
        "--now: not an ISO-8601 time", "No such option: --colour", "Missing argument",
        "No such command 'shove'", "Invalid value for 'ID'", "cannot read evidence file",
        "a measure needs a text", "a note needs a text", "--due: not a date",
        "error: no case 99", "error: no case 99", "error: no measure 99", "error: no unit XX",
        "error: no workflow nope",
        "error: cannot submit case 1 in state identify", "a comment is required",
        "cannot fly case 1", "the case is not paused",
        "expected version 1, it is at version 2", "expected version 1",
        "error: 路人 may not confirm case 1", "error: 李强 may not confirm case 1",
        "outside", "may not pause", "may not open",
    ):  # fmt: skip
        message = messages.pop(0)
        assert expected in message, (expected, message)


def test_exit_codes__no_database_is_2_and_an_unusable_one_is_9(cli: Cli, tmp_path: Path) -> None:
    assert "run `rectiflow init` first" in cli.fails(2, "case", "list")
    assert not cli.db.exists()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    broken = Cli(garbage)
    assert "file is not a database" in broken.fails(9, "case", "list")
    debug = broken.run("--debug", "case", "list", code=9)
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: cannot use the database")


def test_audit_verify__tampered_history_exits_7(ledger: Cli) -> None:
    ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER),
        (0, "case", "fire", "1", "confirm", "--actor", SUPERVISOR),
    )
    assert "history intact: 2 entries of 1 cases verified" in ledger.run("audit", "verify").stdout

    with sqlite3.connect(ledger.db) as conn:
        conn.execute("UPDATE history SET actor = '冒名者' WHERE case_id = 1 AND seq = 2")
    conn.close()
    message = ledger.fails(7, "audit", "verify")
    assert message.startswith("error: history of case 1 is broken at seq 2")
