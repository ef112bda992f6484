"""Issue 12, the closed loop, through the CLI alone: `case lookback`, `case extend`,
`case extension`, `case exempt`/`unexempt`, `case list --supervised-by`, `outbox list` by
person, and `case show --json` with what they record; every refusal one `error:` line with
its exit code and the case unchanged; and the daemon ending an exemption at its date, both
while it runs and when it starts after the date passed.

The ledger is conftest.py's: HLJ > HRB, QQHR; 赵敏 supervises everywhere, 李强 owns HRB,
郑洁 owns QQHR, verifier and reviewer act everywhere. The clock starts at T0, Monday
2 March 2026, 10:00 in Shanghai; `--now` moves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cli_support import OTHER_OWNER, OWNER, REPORTER, REVIEWER, SUPERVISOR, VERIFIER, Cli
from daemon_support import Daemon, rectiflow, wait_until

from rectiflow import Engine

SH = ZoneInfo("Asia/Shanghai")


def at(day: str, time: str = "10:00") -> tuple[str, str]:
    """``--now`` at a local time of a 2026 day given as MM-DD."""
    return ("--now", f"2026-{day}T{time}:00+08:00")


def to_rectify(case: str, measure: str, unit: str = "HRB") -> list[tuple[Any, ...]]:
    """The commands that open case ``case`` (high severity) and bring it to rectify."""
    return [
        (0, "case", "open", "--unit", unit, "--title", f"问题{case}", "--actor", REPORTER,
         "--severity", "high"),
        (0, "case", "fire", case, "confirm", "--actor", SUPERVISOR),
        (0, "measure", "add", case, "--text", "整改措施", "--actor", OWNER),
        (0, "case", "fire", case, "approve_plan", "--actor", REVIEWER),
    ]  # fmt: skip


def to_closed(case: str, measure: str) -> list[tuple[Any, ...]]:
    """The commands that open case ``case`` and close it."""
    return [
        *to_rectify(case, measure),
        (0, "measure", "done", measure, "--actor", OWNER),
        (0, "case", "fire", case, "submit", "--actor", OWNER),
        (0, "case", "fire", case, "accept", "--actor", VERIFIER),
    ]


def show(case: str, *now: str) -> tuple[Any, ...]:
    return (0, *now, "case", "show", case, "--json")


def test_lookback__relapsed_then_held_through_the_cli(ledger: Cli) -> None:
    results = ledger.batch(
        *to_closed("1", "1"),
        show("1"),
        (0, *at("03-10"), "case", "lookback", "1", "--result", "relapsed", "--actor", VERIFIER,
         "--comment", "群众反映问题反弹"),
        show("1", *at("03-10")),
        (0, *at("03-11"), "case", "fire", "1", "submit", "--actor", OWNER),
        (0, *at("03-11"), "case", "fire", "1", "accept", "--actor", VERIFIER),
        show("1", *at("03-11")),
        (0, *at("06-10", "09:00"), "escalate", "--json"),
        (0, *at("06-10", "09:00"), "escalate", "--json"),
        (0, *at("06-10", "09:00"), "outbox", "list", "--level", "lookback", "--json"),
        (0, *at("06-10"), "case", "lookback", "1", "--result", "held", "--actor", VERIFIER),
        show("1", *at("06-10")),
        (0, *at("06-10"), "audit", "verify"),
    )  # fmt: skip
    closed, _, relapsed, _, _, closed_again, swept, again, outbox, _, held, audit = results[7:]

    case = closed.json()
    assert (case["state"], case["workflow_version"], case["relapses"]) == ("closed", 2, 0)
    assert case["lookback"] == {
        "due": "2026-05-31T23:59:59+08:00", "result": None, "at": None, "actor": None,
    }  # fmt: skip
    assert case["supervising_unit"] == "HRB"  # its own unit: never raised
    assert (case["exemption"], case["extensions"]) == (None, [])

    case = relapsed.json()
    assert (case["state"], case["relapses"]) == ("rectify", 1)
    assert case["lookback"]["result"] == "relapsed"
    assert (case["lookback"]["actor"], case["lookback"]["at"]) == (
        VERIFIER, "2026-03-10T10:00:00+08:00",
    )  # fmt: skip
    assert case["due_at"] == "2026-04-08T23:59:59+08:00"  # 20 working days from 10 March
    entry = case["history"][-1]
    assert (entry["trigger"], entry["source"], entry["dest"]) == ("relapse", "closed", "rectify")
    assert entry["comment"] == "群众反映问题反弹"

    case = closed_again.json()
    assert case["state"] == "closed"
    assert case["lookback"] == {
        "due": "2026-06-09T23:59:59+08:00", "result": None, "at": None, "actor": None,
    }  # fmt: skip

    assert swept.json()["by_level"] == {"lookback": 1}
    assert again.json()["fired"] == 0
    rows = outbox.json()
    assert [(r["case"], r["kind"], r["level"], r["role"], r["actor"]) for r in rows] == [
        (1, "lookback", "lookback", "verifier", VERIFIER)
    ]

    case = held.json()
    assert (case["state"], case["relapses"]) == ("closed", 1)
    assert case["lookback"] == {
        "due": "2026-06-09T23:59:59+08:00", "result": "held",
        "at": "2026-06-10T10:00:00+08:00", "actor": VERIFIER,
    }  # fmt: skip
    assert case["history"][-1]["trigger"] == "lookback"
    assert "history intact" in audit.stdout


def test_lookback__workflow_v1_cases_have_none(ledger: Cli) -> None:
    opened, *_, shown = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "旧流程", "--actor", REPORTER,
         "--workflow", "rectification@1", "--json"),
        (0, "case", "fire", "1", "confirm", "--actor", SUPERVISOR),
        (0, "measure", "add", "1", "--text", "整改措施", "--actor", OWNER),
        (0, "case", "fire", "1", "approve_plan", "--actor", REVIEWER),
        (0, "measure", "done", "1", "--actor", OWNER),
        (0, "case", "fire", "1", "submit", "--actor", OWNER),
        (0, "case", "fire", "1", "accept", "--actor", VERIFIER),
        (4, "case", "lookback", "1", "--result", "held", "--actor", VERIFIER),
        (4, "case", "fire", "1", "relapse", "--actor", VERIFIER, "--comment", "x"),
        show("1"),
    )  # fmt: skip
    assert opened.json()["workflow_version"] == 1
    case = shown.json()
    assert (case["state"], case["lookback"], case["relapses"]) == ("closed", None, 0)


def test_extension__requested_approved_and_rejected_through_the_cli(ledger: Cli) -> None:
    results = ledger.batch(
        *to_rectify("1", "1"),
        show("1"),
        (0, "case", "extend", "1", "--until", "2026-04-30", "--reason", "需省级部门协调",
         "--actor", OWNER),
        show("1"),
        (0, *at("03-03"), "case", "extension", "1", "approve", "--actor", SUPERVISOR),
        show("1", *at("03-03")),
        # the old dates have passed (remind 25 March, warn 30 March): nothing is due
        (0, *at("03-31", "09:00"), "escalate", "--json"),
        (0, *at("03-31"), "case", "extend", "1", "--until", "2026-05-29", "--reason", "再延期",
         "--actor", OWNER),
        (0, *at("03-31"), "case", "extension", "1", "reject", "--actor", SUPERVISOR,
         "--comment", "理由不充分"),
        show("1", *at("03-31")),
        (0, *at("03-31"), "audit", "verify"),
    )  # fmt: skip
    before, _, pending, _, approved, swept, _, _, rejected, audit = results[4:]

    assert before.json()["due_at"] == "2026-03-30T23:59:59+08:00"  # 20 working days
    case = pending.json()
    assert case["due_at"] == "2026-03-30T23:59:59+08:00"  # nothing moves before a decision
    assert case["extensions"] == [
        {
            "requested_at": "2026-03-02T10:00:00+08:00", "requested_by": OWNER,
            "until": "2026-04-30T23:59:59+08:00", "reason": "需省级部门协调",
            "status": "pending", "decided_by": None, "decided_at": None, "comment": None,
        }
    ]  # fmt: skip

    case = approved.json()
    assert (case["due_at"], case["due"]) == (
        "2026-04-30T23:59:59+08:00", "2026-04-30T23:59:59+08:00",
    )  # fmt: skip
    assert case["extensions"][0]["status"] == "approved"
    assert case["extensions"][0]["decided_by"] == SUPERVISOR
    assert case["extensions"][0]["decided_at"] == "2026-03-03T10:00:00+08:00"
    assert swept.json()["fired"] == 0

    case = rejected.json()
    assert case["due_at"] == "2026-04-30T23:59:59+08:00"
    assert [(x["status"], x["until"], x["comment"]) for x in case["extensions"]] == [
        ("approved", "2026-04-30T23:59:59+08:00", None),
        ("rejected", "2026-05-29T23:59:59+08:00", "理由不充分"),
    ]
    assert [h["trigger"] for h in case["history"] if h["trigger"].startswith("extension")] == [
        "extension_requested", "extension_approved", "extension_requested", "extension_rejected",
    ]  # fmt: skip
    assert "history intact" in audit.stdout


def test_exempt__and_unexempt_through_the_cli(ledger: Cli) -> None:
    results = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "多头执法", "--actor", REPORTER),
        (0, *at("03-03"), "case", "exempt", "1", "--reason", "上级统一部署", "--until",
         "2026-03-20", "--actor", SUPERVISOR),
        show("1", *at("03-05", "09:00")),
        # the remind of 4 March would be due now: an exempted case records nothing
        (0, *at("03-05", "09:00"), "escalate", "--json"),
        (0, *at("03-05", "09:00"), "report", "progress", "--json"),
        (0, *at("03-05", "15:00"), "case", "unexempt", "1", "--actor", SUPERVISOR),
        show("1", *at("03-05", "15:00")),
        (0, *at("03-05", "15:00"), "audit", "verify"),
    )  # fmt: skip
    _, _, exempted, swept, progress, _, ended, audit = results

    case = exempted.json()
    assert case["exemption"] == {
        "reason": "上级统一部署", "since": "2026-03-03T10:00:00+08:00",
        "until": "2026-03-20T23:59:59+08:00",
    }  # fmt: skip
    assert case["light"] is None
    assert case["due_at"] == "2026-03-09T23:59:59+08:00"
    assert swept.json()["fired"] == 0
    assert progress.json()["categories"]["exempted"] == 1

    case = ended.json()
    assert case["exemption"] is None
    assert case["due_at"] == "2026-03-11T23:59:59+08:00"  # 4 and 5 March given back
    assert [h["trigger"] for h in case["history"]] == ["open", "exempt", "unexempt"]
    assert case["escalations"] == []
    assert "history intact" in audit.stdout


def test_supervised_by_and_the_outbox_by_person(ledger: Cli) -> None:
    results = ledger.batch(
        (0, "case", "open", "--unit", "HRB", "--title", "推诿扯皮", "--actor", REPORTER),
        (0, *at("03-10"), "case", "open", "--unit", "QQHR", "--title", "窗口服务不优",
         "--actor", REPORTER),
        # case 1: remind, warn, supervise (16 March, raised to HLJ); case 2: remind only
        (0, *at("03-17", "09:00"), "escalate", "--json"),
        show("1", *at("03-17", "09:00")),
        (0, *at("03-17", "09:00"), "case", "list", "--supervised-by", "HLJ", "--json"),
        (0, *at("03-17", "09:00"), "case", "list", "--supervised-by", "QQHR", "--json"),
        (0, *at("03-17", "09:00"), "case", "list", "--supervised-by", "HRB", "--json"),
        (0, "outbox", "list", "--json"),
        (0, "outbox", "list", "--actor", OWNER, "--json"),
        (0, "outbox", "list", "--level", "supervise", "--json"),
        (0, "outbox", "list", "--actor", OTHER_OWNER, "--level", "remind", "--json"),
        (0, "outbox", "list"),
    )  # fmt: skip
    _, _, swept, shown, by_hlj, by_qqhr, by_hrb, everyone, owner, supervise, other, table = results
    assert swept.json()["by_level"] == {"remind": 2, "warn": 1, "supervise": 1}

    case = shown.json()
    assert case["supervising_unit"] == "HLJ"
    assert [(e["level"], e["raised_to"]) for e in case["escalations"]] == [
        ("remind", None), ("warn", None), ("supervise", "HLJ"),
    ]  # fmt: skip
    assert [c["id"] for c in by_hlj.json()] == [1]
    assert [c["id"] for c in by_qqhr.json()] == [2]
    assert by_hrb.json() == []

    rows = everyone.json()
    # warn goes to the owner and the heads: this ledger has no head, a row names nobody
    assert sorted((r["case"], r["level"], r["role"], r["actor"]) for r in rows) == [
        (1, "remind", "owner", OWNER), (1, "supervise", "supervisor", SUPERVISOR),
        (1, "warn", "head", None), (1, "warn", "owner", OWNER),
        (2, "remind", "owner", OTHER_OWNER),
    ]  # fmt: skip
    for row in rows:
        assert {"id", "case", "kind", "level", "actor", "role", "created_at", "deliveries"} <= set(
            row
        )
        assert row["kind"] == "escalation"
        assert row["deliveries"] == []  # no channel is configured
    assert row["created_at"].endswith("+08:00")
    assert {(r["case"], r["actor"]) for r in owner.json()} == {(1, OWNER)}
    assert len(owner.json()) == 2
    assert [(r["case"], r["role"], r["actor"]) for r in supervise.json()] == [
        (1, "supervisor", SUPERVISOR)
    ]
    assert [(r["case"], r["level"]) for r in other.json()] == [(2, "remind")]
    assert OWNER in table.stdout
    assert SUPERVISOR in table.stdout


def test_refusals__one_error_line_each_and_the_cases_unchanged(ledger: Cli) -> None:
    cases = ("1", "2", "3", "4", "5")
    setup = ledger.batch(
        *to_rectify("1", "1"),  # 1: rectify, with an extension pending
        (0, "case", "extend", "1", "--until", "2026-04-30", "--reason", "r", "--actor", OWNER),
        *to_closed("2", "2"),  # 2: closed
        (0, "case", "open", "--unit", "HRB", "--title", "问题3", "--actor", REPORTER),
        (0, "case", "exempt", "3", "--reason", "统一部署", "--until", "2026-04-30",
         "--actor", SUPERVISOR),  # 3: exempted
        (0, "case", "open", "--unit", "HRB", "--title", "问题4", "--actor", REPORTER),
        (0, "case", "pause", "4", "--actor", SUPERVISOR, "--comment", "等待"),  # 4: paused
        (0, "case", "open", "--unit", "HRB", "--title", "问题5", "--actor", REPORTER),  # 5
        *(show(case) for case in cases),
    )  # fmt: skip
    before = [r.json() for r in setup[-len(cases) :]]
    assert [c["state"] for c in before] == ["rectify", "closed", "identify", "identify", "identify"]

    refusals = ledger.batch(
        # 1: rectify, a request pending
        (4, "case", "extend", "1", "--until", "2026-05-29", "--reason", "r", "--actor", OWNER),
        (6, "case", "extension", "1", "approve", "--actor", OWNER),
        (4, "case", "extension", "1", "reject", "--actor", SUPERVISOR),
        (2, "case", "extension", "1", "maybe", "--actor", SUPERVISOR),
        (4, "case", "lookback", "1", "--result", "held", "--actor", VERIFIER),
        # 2: closed
        (6, "case", "lookback", "2", "--result", "held", "--actor", OWNER),
        (6, "case", "lookback", "2", "--result", "held", "--actor", "nobody"),
        (4, "case", "lookback", "2", "--result", "relapsed", "--actor", VERIFIER),
        (2, "case", "lookback", "2", "--result", "maybe", "--actor", VERIFIER),
        (4, "case", "extend", "2", "--until", "2026-06-30", "--reason", "r", "--actor", OWNER),
        (4, "case", "exempt", "2", "--reason", "r", "--until", "2026-04-30", "--actor",
         SUPERVISOR),
        # 3: exempted
        (4, "case", "exempt", "3", "--reason", "r", "--until", "2026-05-29", "--actor",
         SUPERVISOR),
        (4, "case", "pause", "3", "--actor", SUPERVISOR, "--comment", "c"),
        (6, "case", "unexempt", "3", "--actor", OWNER),
        # 4: paused
        (4, "case", "exempt", "4", "--reason", "r", "--until", "2026-04-30", "--actor",
         SUPERVISOR),
        # 5: identify, due 9 March, nothing pending
        (4, "case", "extension", "5", "approve", "--actor", SUPERVISOR),
        (4, "case", "extend", "5", "--until", "2026-03-09", "--reason", "r", "--actor", OWNER),
        (2, "case", "extend", "5", "--until", "2026-04-30", "--reason", "", "--actor", OWNER),
        (2, "case", "extend", "5", "--until", "2026-13-01", "--reason", "r", "--actor", OWNER),
        (6, "case", "extend", "5", "--until", "2026-04-30", "--reason", "r", "--actor",
         VERIFIER),
        (6, "case", "extend", "5", "--until", "2026-04-30", "--reason", "r", "--actor",
         OTHER_OWNER),
        (4, "case", "unexempt", "5", "--actor", SUPERVISOR),
        (6, "case", "exempt", "5", "--reason", "r", "--until", "2026-04-30", "--actor", OWNER),
        (4, "case", "exempt", "5", "--reason", "r", "--until", "2026-03-01", "--actor",
         SUPERVISOR),
        # no such case
        (3, "case", "lookback", "99", "--result", "held", "--actor", VERIFIER),
        (3, "case", "extend", "99", "--until", "2026-04-30", "--reason", "r", "--actor", OWNER),
        (3, "case", "extension", "99", "approve", "--actor", SUPERVISOR),
        (3, "case", "exempt", "99", "--reason", "r", "--until", "2026-04-30", "--actor",
         SUPERVISOR),
        (3, "case", "unexempt", "99", "--actor", SUPERVISOR),
        *(show(case) for case in cases),
    )  # fmt: skip
    for result in refusals[: -len(cases)]:
        assert result.stdout == ""
        assert result.error  # exactly one `error: ...` line
    after = [r.json() for r in refusals[-len(cases) :]]
    assert after == before
    pending, reject_without, not_closed = refusals[0], refusals[2], refusals[4]
    assert "pending" in pending.error
    assert "comment" in reject_without.error
    assert "closed" in not_closed.error


def test_workflow_validate__the_closed_loop_keys(ledger: Cli, tmp_path: Path) -> None:
    base = (
        "name: loop\nversion: 1\ntitle: {en: Loop, zh: 闭环}\ninitial: fix\n"
        "roles: [owner, verifier, supervisor]\n"
        "states:\n"
        "  fix: {en: Fix, zh: 整改, sla: 5wd}\n"
        "  closed: {en: Closed, zh: 已销号, final: true}\n"
        "transitions:\n"
        "  - {trigger: finish, source: fix, dest: closed, roles: [verifier]}\n"
        "  - {trigger: relapse, source: closed, dest: fix, roles: [verifier], "
        "requires: [comment]}\n"
        "lookback:\n"
        "  after: 90d\n"
        "  notify: [verifier]\n"
        "escalation:\n"
        "  - {level: supervise, offset: 0, notify: [supervisor], raise: true}\n"
    )  # lines 12-14: lookback; 16: the level
    broken = {
        "after": (base.replace("after: 90d", "after: 90x"), 13, "lookback.after"),
        "role": (base.replace("notify: [verifier]", "notify: [auditor]"), 14,
                 "lookback.notify[0]"),
        "raise": (base.replace("raise: true", "raise: up"), 16, "escalation[0].raise"),
        "relapse": (base.replace("  - {trigger: relapse", "  # - {trigger: relapse"), 12,
                    "lookback"),
    }  # fmt: skip
    good = tmp_path / "loop.yaml"
    good.write_text(base, "utf-8")
    files = {}
    for name, (text, _, _) in broken.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text, "utf-8")
    valid, *invalid = ledger.batch(
        (0, "workflow", "validate", str(good)),
        *((2, "workflow", "validate", str(path)) for path in files.values()),
    )
    assert "ok: loop@1" in valid.stdout
    for (name, (_, line, key)), result in zip(broken.items(), invalid, strict=True):
        assert result.error.startswith(f"error: {files[name]}:{line}: {key}: "), result.error


# --- the daemon ends exemptions -------------------------------------------------------------

#: A workflow whose one stage is due an hour after it is entered: paused or exempted time
#: is given back to the second.
HOURLY = """\
name: hourly
version: 1
title: {en: Hourly, zh: 限时办结}
initial: identify
roles: [reporter, owner, supervisor]
states:
  identify: {en: Identify, zh: 问题识别, sla: 1h}
  closed: {en: Closed, zh: 已销号, final: true}
transitions:
  - {trigger: close, source: identify, dest: closed, roles: [supervisor]}
"""


def test_daemon__ends_an_exemption_when_until_passes(
    tmp_path: Path, daemons: Callable[[str], Daemon]
) -> None:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    workflow = tmp_path / "hourly.yaml"
    workflow.write_text(HOURLY, "utf-8")
    rectiflow("init", db=url)
    rectiflow("workflow", "add", str(workflow), db=url)
    with Engine(url) as engine:
        engine.add_unit("HRB", "哈尔滨市")
        engine.add_actor(SUPERVISOR, roles=["supervisor"])
    daemon = daemons(url)
    daemon.wait_ready()

    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    until = start + dt.timedelta(seconds=4)
    with Engine(url) as engine:
        exempted, paused = (
            engine.open_case(SUPERVISOR, unit="HRB", title=t, workflow="hourly", now=start).id
            for t in ("豁免", "暂停")
        )
        opened = engine.get_case(exempted)
        engine.exempt(exempted, SUPERVISOR, reason="上级统一部署", until=until, now=start)
        engine.pause(paused, SUPERVISOR, comment="对照", now=start)
        reference = engine.resume(paused, SUPERVISOR, now=until)

    def ended() -> bool:
        with Engine(url) as engine:
            return engine.get_case(exempted).exempted_at is None

    wait_until(ended, 30, "the daemon to end the exemption")
    case = Cli(db, now=None).json("case", "show", str(exempted))
    assert case["exemption"] is None
    assert [h["trigger"] for h in case["history"]] == ["open", "exempt", "exemption_ended"]
    assert opened.due_at is not None
    assert reference.due_at == opened.due_at + dt.timedelta(seconds=4)
    with Engine(url) as engine:
        assert engine.get_case(exempted).due_at == reference.due_at
        engine.verify_history()


def test_daemon__started_after_until_ends_the_exemption_as_of_until(
    ledger: Cli, daemons: Callable[[str], Daemon]
) -> None:
    # Twenty days ago an exemption for a week began; no daemon has run since.
    day = dt.datetime.now(SH).date() - dt.timedelta(days=20)
    start = ("--now", f"{day.isoformat()}T10:00:00+08:00")
    until = day + dt.timedelta(days=7)
    _, _, _, _, _, reference = ledger.batch(
        (0, *start, "case", "open", "--unit", "HRB", "--title", "豁免", "--actor", REPORTER),
        (0, *start, "case", "open", "--unit", "HRB", "--title", "对照", "--actor", REPORTER),
        (0, *start, "case", "exempt", "1", "--reason", "上级统一部署", "--until",
         until.isoformat(), "--actor", SUPERVISOR),
        (0, *start, "case", "pause", "2", "--actor", SUPERVISOR, "--comment", "对照"),
        (0, "--now", f"{until.isoformat()}T23:59:59+08:00", "case", "resume", "2", "--actor",
         SUPERVISOR),
        show("2", "--now", f"{until.isoformat()}T23:59:59+08:00"),
    )  # fmt: skip

    url = f"sqlite:///{ledger.db}"
    daemon = daemons(url)
    daemon.wait_ready()

    def ended() -> bool:
        with Engine(url) as engine:
            return engine.get_case(1).exempted_at is None

    wait_until(ended, 30, "the daemon to end the exemption")
    case = Cli(ledger.db, now=None).json("case", "show", "1")
    assert case["exemption"] is None
    assert "exemption_ended" in [h["trigger"] for h in case["history"]]
    assert case["due_at"] == reference.json()["due_at"]
    assert "history intact" in Cli(ledger.db, now=None).run("audit", "verify").stdout
