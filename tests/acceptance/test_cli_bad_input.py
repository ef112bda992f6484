"""Bad input is refused with one line on stderr and its documented exit code, never exit 1,
and the database is left as it was (issue 14, section 3)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import OWNER, REPORTER, SUPERVISOR, Cli


def _digest(db: Path) -> str:
    """What the ledger holds, table by table (the file's bytes move with WAL checkpoints)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        text = repr([(t, sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"')))) for t in tables])
    return hashlib.sha256(text.encode()).hexdigest()


# --- the database ---------------------------------------------------------------------------


def test_database__unusable_files_and_urls_are_refused_with_9_or_2(
    cli: Cli, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    for args, code, expected in (
        (("--db", str(garbage), "case", "list"), 9, "file is not a database"),
        (("--db", str(garbage), "init"), 9, "file is not a database"),
        (("--db", str(tmp_path), "init"), 9, "is a folder, not a SQLite file"),
        (("--db", str(tmp_path / "no" / "x.db"), "init"), 9, "no folder"),
        (("--db", "", "case", "list"), 2, "no database URL given"),
        (("--db", "  ", "init"), 2, "no database URL given"),
        (("--db", "foo://bar/x", "case", "list"), 2, "unknown database 'foo'"),
        (("--db", "mysql://u:pw@h/x", "case", "list"), 2, "unknown database 'mysql'"),
        (("--db", "://", "case", "list"), 2, "not a database URL"),
        (("--db", "sqlite:///x.db?timeout=soon", "init"), 2, "not a number of seconds"),
    ):
        done = cli.run(*args, code=code, db=False)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: "), done.stderr
        assert expected in lines[0], (args, lines[0])
        assert "Traceback" not in done.stderr
    assert "pw" not in cli.run("--db", "mysql://u:pw@h/x", "init", code=2, db=False).stderr
    assert garbage.read_bytes() == b"this is not a database" * 100
    assert not (tmp_path / "no").exists()


def test_database__read_only_and_immutable_files_refuse_writes(ledger: Cli) -> None:
    before = _digest(ledger.db)
    read_only = Cli(ledger.db)
    url = f"sqlite:///file:{ledger.db}?mode=ro&uri=true"
    done = read_only.run("--db", url, "unit", "add", "X", "某地", code=9, db=False)
    assert "attempt to write a readonly database" in done.stderr
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    if subprocess.run(["chattr", "+i", str(ledger.db)], check=False).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        message = ledger.fails(9, "unit", "add", "X", "某地")
        assert "readonly database" in message
        assert "HRB" in ledger.run("unit", "list").stdout  # reads still work
    finally:
        subprocess.run(["chattr", "-i", str(ledger.db)], check=True)
    assert _digest(ledger.db) == before


def test_database__locked_past_the_busy_timeout_is_5_busy_try_again(ledger: Cli) -> None:
    before = _digest(ledger.db)
    holder = sqlite3.connect(ledger.db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        busy = Cli(ledger.db)
        url = f"sqlite:///{ledger.db}?timeout=0.3"
        done = busy.run(
            "--db", url, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER,
            code=5, db=False,
        )  # fmt: skip
        assert done.stderr.strip() == "error: database is busy, try again"
    finally:
        holder.rollback()
        holder.close()
    assert _digest(ledger.db) == before


def test_database__another_programs_database_is_not_a_ledger(cli: Cli) -> None:
    with sqlite3.connect(cli.db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, '张三')")
    before = _digest(cli.db)
    assert "not a rectiflow ledger" in cli.fails(9, "init")
    assert "not a rectiflow ledger" in cli.fails(9, "db", "status")
    assert "not a rectiflow ledger" in cli.fails(9, "case", "list")
    assert _digest(cli.db) == before
    cli.run("init", "--force")
    assert "up to date" in cli.run("db", "status").stdout
    with sqlite3.connect(cli.db) as conn:
        assert conn.execute("SELECT name FROM customers").fetchall() == [("张三",)]


# --- arguments and the environment ----------------------------------------------------------


def test_arguments__ids_dates_zones_and_bytes_out_of_range_are_2(ledger: Cli) -> None:
    big = str(2**64)
    _, before, *_, after = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER),
        (0, "case", "show", "1", "--json"),
        (2, "case", "show", big),
        (2, "case", "show", "-1"),
        (2, "case", "fire", "1", "confirm", "--actor", SUPERVISOR, "--expect-version", big),
        (2, "measure", "done", big, "--actor", OWNER),
        (2, "measure", "add", big, "--text", "x", "--actor", OWNER),
        (2, "case", "list", "--limit", big),
        (2, "case", "list", "--offset", big),
        (2, "audit", "verify", "--case", big),
        (2, "calendar", "show", "9999"),
        (2, "--now", "0001-01-01T00:00", "case", "list"),
        (2, "--now", "9999-12-31T23:59:59", "case", "list"),
        (2, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER, "--due",
         "9999-12-31"),
        (2, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER, "--due",
         "0001-01-01"),
        (2, "case", "list", "--opened-since", "0001-01-01"),
        (2, "case", "list", "--opened-before", "9999-12-31T00:00"),
        (2, "case", "open", "--unit", "HRB", "--title", "caf\udce9", "--actor", REPORTER),
        (0, "case", "show", "1", "--json"),
    )  # fmt: skip
    assert after.stdout == before.stdout


def test_arguments__non_utf8_bytes_in_argv_are_refused(ledger: Cli) -> None:
    before = _digest(ledger.db)
    done = subprocess.run(
        [sys.executable, "-m", "rectiflow", "--db", str(ledger.db), "case", "open", "--unit",
         "HRB", "--title", b"\xff\xfe bad".decode("utf-8", "surrogateescape"), "--actor",
         REPORTER],
        capture_output=True, check=False, env=Cli._env({"LC_ALL": "C.UTF-8"}),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert b"not UTF-8 text" in done.stderr
    assert b"Traceback" not in done.stderr
    assert _digest(ledger.db) == before


def test_environment__unknown_time_zone_is_2(ledger: Cli) -> None:
    done = ledger.run("case", "list", code=2, env={"RECTIFLOW_TZ": "Mars/Olympus_Mons"})
    assert done.stderr.strip().startswith("error: unknown time zone 'Mars/Olympus_Mons'")
    ledger.run("case", "list", code=2, env={"RECTIFLOW_TZ": "../../etc/passwd"})


def test_environment__invalid_dispatch_cron_stops_the_daemon_before_it_starts(
    ledger: Cli,
) -> None:
    daemon = Cli(ledger.db, now=None)  # the daemon runs on the real clock
    for cron in ("every day", "0 9 32 * *", "* * * *"):
        done = daemon.run("daemon", code=2, env={"RECTIFLOW_DISPATCH_CRON": cron})
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "RECTIFLOW_DISPATCH_CRON" in lines[0]
        assert "started" not in done.stderr


# --- calendar files -------------------------------------------------------------------------

# 2027: nine weekday holidays (元旦, 春节 Mon–Fri, 清明, 劳动节, 国庆) and a make-up Saturday.
WHOLE_2027 = (
    "date,kind\n2027-01-01,holiday\n2027-02-08,holiday\n2027-02-09,holiday\n"
    "2027-02-10,holiday\n2027-02-11,holiday\n2027-02-12,holiday\n2027-04-05,holiday\n"
    "2027-05-03,holiday\n2027-10-01,holiday\n2027-02-20,workday\n"
)


def test_calendar__bom_and_gb18030_files_load(ledger: Cli, tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + WHOLE_2027.encode())
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(("# 2027年节假日安排（国务院办公厅）\n" + WHOLE_2027).encode("gb18030"))
    yaml_bom = tmp_path / "bom.yaml"
    yaml_bom.write_bytes(
        b"\xef\xbb\xbf" + "".join(
            f"'{line.split(',')[0]}': {line.split(',')[1]}\n"
            for line in WHOLE_2027.splitlines()[1:]
        ).encode()
    )  # fmt: skip
    ledger.batch(
        (0, "calendar", "load", str(bom)),
        (0, "calendar", "load", str(gbk)),
        (0, "calendar", "load", str(yaml_bom)),
    )
    shown = ledger.json("calendar", "show", "2027", "--all")
    days = {row["date"]: row for row in shown["days"]}
    assert days["2027-02-08"]["day"] == "holiday"
    assert days["2027-02-20"]["day"] == "workday"
    assert days["2027-02-08"]["source"] == "loaded"


def test_calendar__conflicts_gaps_spans_and_hostile_files_are_refused(
    ledger: Cli, tmp_path: Path
) -> None:
    def file(name: str, text: str | bytes) -> str:
        path = tmp_path / name
        if isinstance(text, str):
            path.write_text(text, "utf-8")
        else:
            path.write_bytes(text)
        return str(path)

    before = _digest(ledger.db)
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as stream:
        stream.truncate(50 << 20)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    refusals = ledger.batch(
        (2, "calendar", "load", file("twice.csv", WHOLE_2027 + "2027-10-01,workday\n")),
        (2, "calendar", "load", file("short.csv", "date,kind\n2027-10-01,holiday\n")),
        (2, "calendar", "load", file("span.csv", WHOLE_2027 + "2099-01-01,holiday\n")),
        (2, "calendar", "load", file("far.csv", "date,kind\n9999-01-01,holiday\n")),
        (2, "calendar", "load", file("old.csv", "date,kind\n0001-01-01,holiday\n")),
        (2, "calendar", "load", file("nul.csv", "date,kind\n2027-01-01\x00,holiday\n")),
        (2, "calendar", "load", file("time.yaml", "- {date: 2027-01-01 10:00:00, kind: x}\n")),
        (2, "calendar", "load", file("bomb.yaml", "a: &a [x]\nb: *a\n")),
        (2, "calendar", "load", file("deep.yaml", "[" * 10_000 + "]" * 10_000)),
        (2, "calendar", "load", str(huge)),
        (2, "calendar", "load", str(fifo)),
        (2, "calendar", "load", str(tmp_path)),
    )  # fmt: skip
    messages = [r.error for r in refusals]
    for expected, message in zip(
        ["2027-10-01 is given as workday here and as the other kind at", "fewer than 7 holidays",
         "the dates span 2027–2099", "outside the years", "outside the years", "bad date",
         "bad date", "anchors and aliases", "nested more than", "larger than", "not a file",
         "not a file"],
        messages, strict=True,
    ):  # fmt: skip
        assert expected in message, (expected, message)
    assert "short.csv" in messages[1]
    assert "--partial" in messages[1]
    assert _digest(ledger.db) == before
    ledger.run("calendar", "load", file("short2.csv", "date,kind\n2027-10-01,holiday\n"),
               "--partial")  # fmt: skip


# --- text -----------------------------------------------------------------------------------


def test_text__control_characters_line_breaks_and_overlong_fields_are_refused(
    ledger: Cli, tmp_path: Path
) -> None:
    long_title = "问" * 501
    sheet = tmp_path / "台账.csv"
    sheet.write_text(f"序号,存在问题,责任单位\n1,{'长' * 501},HRB\n2,正常的问题,HRB\n", "utf-8")
    opened = ("case", "open", "--unit", "HRB", "--actor", REPORTER)
    _, _, before, *refusals, after = ledger.batch(
        (0, *opened, "--title", "审批效率低"),
        (0, "measure", "add", "1", "--text", "梳理事项", "--actor", OWNER),
        (0, "case", "show", "1", "--json"),
        (2, *opened, "--title", "\x1b[2J\x1b[H清屏"),
        (2, *opened, "--title", "标题\x1b]0;pwned\x07"),
        (2, *opened, "--title", "两行\n标题"),
        (2, *opened, "--title", "bidi \u202etxt.exe"),
        (2, *opened, "--title", long_title),
        (2, *opened, "--title", "t", "--description", "\x00"),
        (2, *opened, "--title", "t", "--ref", "a\tb"),
        (2, "case", "note", "1", "--actor", SUPERVISOR, "--text", "进展\x1b[31m"),
        (2, "case", "note", "1", "--actor", SUPERVISOR, "--text", "长" * 10_001),
        (2, "case", "pause", "1", "--actor", SUPERVISOR, "--comment", "\x07"),
        (2, "case", "fire", "1", "dismiss", "--actor", SUPERVISOR, "--comment", "\x1b[1m"),
        (2, "case", "edit", "1", "--actor", SUPERVISOR, "--title", "\x1bc"),
        (2, "case", "edit", "1", "--actor", SUPERVISOR, "--title", long_title),
        (2, "measure", "add", "1", "--text", "措施\x1b[0m", "--actor", OWNER),
        (2, "unit", "add", "XX", "名称\x1b[0m"),
        (2, "unit", "add", "XX", "名" * 201),
        (2, "actor", "add", "张\x1b[8m三", "--role", "owner"),
        (2, "ledger", "import", str(sheet), "--actor", SUPERVISOR),
        (0, "case", "show", "1", "--json"),
    )  # fmt: skip
    assert after.stdout == before.stdout
    messages = [r.error for r in refusals]
    assert "title: a control character \\x1b at character 1" in messages[0]
    assert "a line break or tab \\n" in messages[2]
    assert "\\u202e" in messages[3]
    assert "title: 501 characters, at most 500" in messages[4]
    assert all("\x1b" not in m and "\x07" not in m for m in messages)
    assert "XX" not in ledger.run("unit", "list").stdout
    # Multi-line fields keep their line breaks.
    ledger.run(*opened, "--title", "t", "--description", "第一行\n第二行\t制表")


def test_text__an_overlong_title_is_a_row_error_of_an_import(ledger: Cli, tmp_path: Path) -> None:
    sheet = tmp_path / "台账.csv"
    sheet.write_text(f"序号,存在问题,责任单位\n1,{'长' * 501},HRB\n2,正常的问题,HRB\n", "utf-8")
    done = ledger.run("ledger", "import", str(sheet), "--actor", SUPERVISOR, "--json", code=2)
    assert "title: 501 characters, at most 500" in done.stdout + done.stderr
    assert ledger.json("case", "list") == []


# --- filters and units ----------------------------------------------------------------------


def test_filters__unknown_state_past_measure_due_blank_units_and_codes_by_case(
    ledger: Cli,
) -> None:
    _, units, before, *_, after, units_after = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER),
        (0, "unit", "list", "--json"),
        (0, "case", "show", "1", "--json"),
        (2, "case", "list", "--state", "bogus"),
        (2, "case", "list", "--state", "Rectify"),
        (2, "measure", "add", "1", "--text", "x", "--actor", OWNER, "--due", "2020-01-01"),
        (2, "measure", "add", "1", "--text", "x", "--actor", OWNER, "--due",
         "2026-03-02T09:00:00+08:00"),
        (2, "unit", "add", "XX", ""),
        (2, "unit", "add", "XX", "   "),
        (2, "unit", "add", "hrb", "哈尔滨市"),
        (2, "unit", "add", "Hrb", "另一个"),
        (0, "case", "show", "1", "--json"),
        (0, "unit", "list", "--json"),
    )  # fmt: skip
    assert after.stdout == before.stdout
    assert units_after.json() == units.json()
    assert "regardless of case" in ledger.fails(2, "unit", "add", "qqhr", "x")
    assert ledger.json("case", "list", "--state", "rectify") == []


# --- evidence -------------------------------------------------------------------------------


def _rectifying(ledger: Cli) -> None:
    ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER),
        (0, "measure", "add", "1", "--text", "梳理事项", "--actor", OWNER),
        (0, "measure", "add", "1", "--text", "压缩时限", "--actor", OWNER),
        (0, "measure", "add", "1", "--text", "公开清单", "--actor", OWNER),
    )


def test_evidence__only_regular_files_and_symlinks_resolved(ledger: Cli, tmp_path: Path) -> None:
    _rectifying(ledger)
    fifo = tmp_path / "fifo.pdf"
    os.mkfifo(fifo)
    report = tmp_path / "整改报告.txt"
    report.write_text("审批环节已由7个压缩至3个", "utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(report)
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    done = ("measure", "done", "1", "--actor", OWNER, "--evidence")
    before, *refusals, after = ledger.batch(
        (0, "case", "show", "1", "--json"),
        (2, *done, str(fifo)),
        (2, *done, str(tmp_path)),
        (2, *done, "/dev/zero"),
        (2, *done, str(loop)),
        (0, "case", "show", "1", "--json"),
    )
    assert all("regular file" in r.error or "cannot read" in r.error for r in refusals)
    assert after.stdout == before.stdout
    ledger.run(*done, str(link))
    measure = ledger.json("case", "show", "1")["measures"][0]
    assert measure["evidence_path"] == str(report.resolve())


def test_evidence__verify_rehashes_and_reports_a_change(ledger: Cli, tmp_path: Path) -> None:
    _rectifying(ledger)
    report = tmp_path / "整改报告.txt"
    report.write_text("审批环节已由7个压缩至3个", "utf-8")
    ledger.run("measure", "done", "1", "--actor", OWNER, "--evidence", str(report))
    ledger.run("measure", "done", "2", "--actor", OWNER)
    assert "intact" in ledger.run("measure", "verify-evidence", "1").stdout
    report.write_text("审批环节已由7个压缩至5个", "utf-8")
    changed = ledger.fails(7, "measure", "verify-evidence", "1")
    assert "evidence of measure 1 (case 1) changed" in changed
    report.unlink()
    assert "no evidence file" in ledger.fails(3, "measure", "verify-evidence", "1")
    assert "has no evidence" in ledger.fails(2, "measure", "verify-evidence", "2")
    assert "no measure 99" in ledger.fails(3, "measure", "verify-evidence", "99")
