"""Lists through the CLI: case list's filters and pages, --json on every list, plain output
when piped, a --help that loads no database code, and the README's CLI example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cli_support import REPORTER, SUPERVISOR, Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _open(title: str, severity: str, source: str, category: str, description: str, at: str):
    return (
        0, "--now", at, "case", "open", "--unit", "HRB", "--title", title, "--actor", REPORTER,
        "--severity", severity, "--source", source, "--category", category,
        "--description", description,
    )  # fmt: skip


def test_case_list__filters_pages_and_plain_output(ledger: Cli) -> None:
    ledger.batch(
        _open("审批效率低", "high", "巡视", "作风", "企业反映 Slow approvals", "2026-03-02T10:00"),
        _open("收费不规范", "low", "自查", "营商环境", "乱收费", "2026-03-05T10:00"),
        _open("窗口服务差", "high", "自查", "作风", "群众排队时间长", "2026-03-10T10:00"),
        (0, "--now", "2026-03-10T11:00", "case", "open", "--unit", "QQHR", "--title", "供暖不足",
         "--actor", SUPERVISOR),
    )  # fmt: skip

    def ids(*args: str) -> list[int]:
        return [case["id"] for case in ledger.json("case", "list", *args)]

    assert ids() == [1, 2, 3, 4]
    assert ids("--severity", "high") == [1, 3]
    assert ids("--source", "自查") == [2, 3]
    assert ids("--category", "作风", "--severity", "high") == [1, 3]
    assert ids("--text", "收费") == [2]  # in the title
    assert ids("--text", "排队") == [3]  # in the description
    assert ids("--text", "slow APPROVALS") == [1]  # any case
    assert ids("--text", "100%") == []  # a % is a character, not a wildcard
    assert ids("--opened-since", "2026-03-05") == [2, 3, 4]  # a date: its local midnight
    assert ids("--opened-before", "2026-03-05") == [1]
    assert ids("--opened-since", "2026-03-05T10:00:01", "--opened-before", "2026-03-10T10:30") == [
        3
    ]
    assert ids("--unit", "HRB", "--limit", "2") == [1, 2]
    assert ids("--unit", "HRB", "--limit", "2", "--offset", "2") == [3]
    assert ids("--light", "green", "--limit", "1", "--offset", "1") == [2]
    assert ids("--limit", "0") == [1, 2, 3, 4]

    # Piped, a table is tab-separated lines: a header, then one line per case.
    plain = ledger.run("case", "list", "--severity", "high").stdout.splitlines()
    assert plain[0].split("\t") == ["case", "unit", "title", "severity", "state", "due", "light"]
    assert [line.split("\t")[:3] for line in plain[1:]] == [
        ["1", "哈尔滨市", "审批效率低"],
        ["3", "哈尔滨市", "窗口服务差"],
    ]
    assert plain[1].split("\t")[4] == "identify 问题识别"
    page = ledger.run("case", "list", "--limit", "3").stdout.splitlines()
    assert len(page) == 5
    assert page[-1] == "… 1 more: --offset 3 for the next page, --limit 0 for all"
    assert ledger.run("case", "list", "--source", "信访").stdout == "no cases\n"

    refused = ledger.batch(
        (2, "case", "list", "--severity", "urgent"),
        (2, "case", "list", "--light", "blue"),
        (2, "case", "list", "--opened-since", "March"),
        (2, "case", "list", "--limit", "-1"),
        (3, "case", "list", "--unit", "XX"),
    )
    assert "'urgent': use high, medium or low" in refused[0].error
    assert "--opened-since: not a date" in refused[2].error
    assert "no unit XX" in refused[4].error


def test_lists__json_everywhere(ledger: Cli) -> None:
    units, actors, workflows, calendar, audit, empty = ledger.batch(
        (0, "unit", "list", "--json"),
        (0, "actor", "list", "--json"),
        (0, "workflow", "list", "--json"),
        (0, "calendar", "show", "2026", "--json"),
        (0, "audit", "verify", "--json"),
        (0, "case", "list"),
    )
    assert {"code": "HRB", "name": "哈尔滨市", "parent": "HLJ", "path": "/HLJ/HRB/"} in (
        units.json()
    )
    by_name = {actor["name"]: actor for actor in actors.json()}
    assert by_name[SUPERVISOR] == {
        "name": SUPERVISOR, "roles": ["supervisor", "reporter"], "units": [],
        "email": None, "mobile": None, "dingtalk_id": None, "wecom_id": None,
    }  # fmt: skip
    assert by_name["李强"]["units"] == ["HRB"]
    shipped = workflows.json()
    assert [(w["name"], w["version"]) for w in shipped] == [
        ("rectification", 1),
        ("rectification", 2),
    ]
    assert all(len(w["sha256"]) == 64 for w in shipped)
    year = calendar.json()
    assert year["year"] == 2026
    assert not year["provisional"]
    national_day = next(day for day in year["days"] if day["date"] == "2026-10-01")
    assert (national_day["weekday"], national_day["day"]) == ("Thu", "holiday")
    assert audit.json() == {
        "intact": True, "case": None, "entries": 0, "cases": 0, "against": None,
        "not_checked": 0, "partly_verified": [], "without_key": 0,
    }  # fmt: skip
    assert empty.stdout == "no cases\n"


def test_help__loads_no_database_code(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom rectiflow.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
        cwd=tmp_path,
    )  # fmt: skip
    loaded = set(done.stderr.split())
    assert "Usage: rectiflow" in done.stdout
    for heavy in ("sqlalchemy", "sqlmodel", "rich", "rectiflow.app", "rectiflow.store"):
        assert heavy not in loaded, heavy


def test_readme__cli_example_runs_when_pasted(tmp_path: Path) -> None:
    section = README.read_text("utf-8").split("## The CLI", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert found is not None, "the CLI section has no example"
    bin_dir = tmp_path / "bin"  # `rectiflow` as the console script would run it
    bin_dir.mkdir()
    shim = bin_dir / "rectiflow"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rectiflow "$@"\n', "utf-8")
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECTIFLOW_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", found.group(1)], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    assert shown["state"] == "closed"
    assert shown["measures"][0]["evidence_path"].endswith("整改报告.txt")
    assert "history intact" in done.stdout
