"""A case from identify to closed, and the other ways a case moves, through the CLI alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cli_support import OTHER_OWNER, OWNER, REPORTER, REVIEWER, SUPERVISOR, VERIFIER, Cli


def test_lifecycle__identify_to_closed_with_a_rejection(ledger: Cli, tmp_path: Path) -> None:
    # One process per command, as a person at a shell would run them.
    case = ledger.json(
        "case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", REPORTER,
        "--severity", "high", "--category", "作风不优", "--source", "自检自查",
    )  # fmt: skip
    assert (case["state"], case["version"], case["unit"]) == ("identify", 1, "HRB")
    assert (case["title"], case["light"]) == ("审批效率低", "green")
    assert case["due_at"] == "2026-03-09T23:59:59+08:00"  # 5 working days
    assert [h["trigger"] for h in case["history"]] == ["open"]
    cid = str(case["id"])

    triggers = ledger.json("case", "triggers", cid, "--actor", SUPERVISOR)
    assert {t["trigger"] for t in triggers} == {"confirm", "dismiss"}
    assert "may not confirm" in ledger.fails(6, "case", "fire", cid, "confirm", "--actor", OWNER)
    case = ledger.json("case", "fire", cid, "confirm", "--actor", SUPERVISOR)
    assert case["state"] == "plan"

    measure_id = ledger.run("measure", "add", cid, "--text", "压缩审批时限", "--actor", OWNER)
    measure_id = measure_id.stdout.strip()
    assert measure_id.isdigit()
    out = ledger.run("case", "fire", cid, "approve_plan", "--actor", REVIEWER).stdout
    assert "plan → rectify" in out
    assert ledger.fails(4, "case", "fire", cid, "submit", "--actor", OWNER) == (
        f"error: cannot submit case {cid} in state rectify: measure {measure_id} is not done"
    )

    evidence = tmp_path / "整改报告.txt"
    evidence.write_text("已压缩审批时限至5个工作日", encoding="utf-8")
    done = ledger.run("measure", "done", measure_id, "--actor", OWNER, "--evidence", str(evidence))
    digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert digest in done.stdout

    ledger.run("case", "fire", cid, "submit", "--actor", OWNER)
    case = ledger.json(
        "case", "fire", cid, "reject", "--actor", VERIFIER, "--comment", "佐证材料不充分"
    )
    assert case["state"] == "rectify"
    stale = str(case["version"] - 1)
    message = ledger.fails(
        5, "case", "fire", cid, "submit", "--actor", OWNER, "--expect-version", stale
    )
    assert "changed" in message
    ledger.run(
        "case", "fire", cid, "submit", "--actor", OWNER, "--expect-version", str(case["version"])
    )
    case = ledger.json("case", "fire", cid, "accept", "--actor", VERIFIER)

    assert (case["state"], case["due_at"], case["light"]) == ("closed", None, None)
    assert [(h["trigger"], h["dest"]) for h in case["history"]] == [
        ("open", "identify"), ("confirm", "plan"), ("measure_added", "plan"),
        ("approve_plan", "rectify"), ("measure_done", "rectify"), ("submit", "verify"),
        ("reject", "rectify"), ("submit", "verify"), ("accept", "closed"),
    ]  # fmt: skip
    assert case["history"][6]["comment"] == "佐证材料不充分"
    assert case["measures"][0]["done"] is True
    assert case["measures"][0]["evidence_sha256"] == digest
    assert case["measures"][0]["evidence_path"] == str(evidence.resolve())
    assert all(h["at"].endswith("+08:00") for h in case["history"])
    assert "history intact: 9 entries of 1 cases verified" in ledger.run("audit", "verify").stdout


def test_case__pause_resume_note_show_and_list_filters(ledger: Cli) -> None:
    later = ("--now", "2026-03-31T10:00")
    results = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "窗口服务不优", "--actor", REPORTER),
        (0, "--now", "2026-03-27T10:00", "case", "open", "--unit", "QQHR", "--title", "推诿扯皮",
         "--actor", SUPERVISOR, "--due", "2026-06-30"),
        (0, "case", "pause", "1", "--actor", SUPERVISOR, "--comment", "等待统一部署"),
        (4, "case", "fire", "1", "confirm", "--actor", SUPERVISOR),
        (0, "case", "triggers", "1", "--json"),
        # Resumed five working days later: the deadline moves by five working days.
        (0, "--now", "2026-03-09T10:00", "case", "resume", "1", "--actor", SUPERVISOR),
        (6, "case", "note", "1", "--actor", OTHER_OWNER, "--text", "越权"),
        # time only moves forward: the note is dated after the resume
        (0, "--now", "2026-03-09T10:00", "case", "note", "1", "--actor", SUPERVISOR, "--text",
         "本月已召开协调会"),
        (0, "case", "show", "1", "--json"),
        (0, "case", "show", "1"),
        (0, "case", "list", "--json"),
        (0, "case", "list", "--unit", "QQHR", "--json"),
        (0, "case", "list", "--unit", "HLJ", "--json"),
        (0, "case", "list", "--state", "plan", "--json"),
        (0, *later, "case", "list", "--overdue", "--json"),
        (0, *later, "case", "list", "--light", "green", "--json"),
        (2, "case", "list", "--light", "blue"),
        (3, "case", "list", "--unit", "XX"),
        (0, "case", "list"),
    )  # fmt: skip
    opened, other, _, paused_fire, paused_triggers, resumed, *rest = results
    wrong_unit_note, _, shown, table, listed, in_qqhr, in_hlj, in_plan, late, green, *_ = rest
    assert (opened.stdout.strip(), other.stdout.strip()) == ("1", "2")
    assert "paused" in paused_fire.error
    assert paused_triggers.json() == []
    assert "due 2026-03-16T23:59:59+08:00" in resumed.stdout
    assert "outside" in wrong_unit_note.error
    case = shown.json()
    assert [h["trigger"] for h in case["history"]] == ["open", "pause", "resume", "note"]
    assert case["history"][1]["comment"] == "等待统一部署"
    assert [n["text"] for n in case["notes"]] == ["本月已召开协调会"]
    assert case["paused"] is False
    for text in ("窗口服务不优", "identify 问题识别", "本月已召开协调会", "等待统一部署"):
        assert text in table.stdout
    assert "next: confirm → plan" in table.stdout

    assert [c["id"] for c in listed.json()] == [1, 2]
    assert all("history" not in c for c in listed.json())
    assert [c["id"] for c in in_qqhr.json()] == [2]
    assert [c["id"] for c in in_hlj.json()] == [1, 2]
    assert in_plan.json() == []
    assert [(c["id"], c["light"]) for c in late.json()] == [(1, "red")]
    assert [c["id"] for c in green.json()] == [2]
    assert "● green" in results[-1].stdout
    assert "齐齐哈尔市" in results[-1].stdout


def test_escalate__one_sweep_records_each_level_once(ledger: Cli) -> None:
    # Identify is due 2026-03-09; remind at -3wd, warn at 0, supervise at +5wd.
    later = ("--now", "2026-03-17T09:00")
    _, dry, unchanged, swept, again, shown, table = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "多头执法", "--actor", REPORTER),
        (0, *later, "escalate", "--dry-run", "--json"),
        (0, *later, "case", "show", "1", "--json"),
        (0, *later, "escalate", "--json"),
        (0, *later, "escalate"),
        (0, *later, "case", "show", "1", "--json"),
        (0, *later, "case", "show", "1"),
    )
    assert (dry.json()["dry_run"], dry.json()["fired"]) == (True, 3)
    assert dry.json()["by_level"] == {"remind": 1, "warn": 1, "supervise": 1}
    assert unchanged.json()["escalations"] == []
    assert (swept.json()["fired"], swept.json()["next_due_at"]) == (3, "2026-03-30T23:59:59+08:00")
    assert "recorded 0 escalations" in again.stdout

    case = shown.json()
    assert [e["level"] for e in case["escalations"]] == ["remind", "warn", "supervise"]
    assert case["escalations"][0]["due_at"] == "2026-03-04T23:59:59+08:00"
    assert case["escalations"][0]["at"] == "2026-03-17T09:00:00+08:00"
    assert case["light"] == "red"
    assert "supervise" in table.stdout
    assert "● red" in table.stdout
