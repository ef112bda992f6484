"""Report progress and snapshots per second: the Engine against raw SQL doing the same.

A ledger of N cases (default 200,000) is written straight into the store's tables of a
database made with ``Engine.init()``: 60 units in a three-level tree (a province, 6 cities,
53 districts), a mix of states (closed, verify, rectify with measures some done, some past
their own due dates, some all done, some sent back once, plan, identify, dismissed; some
paused, some long-term without a deadline), 0-4 measures a case, the opening-to-now history
chain of each case, and the ladder levels the daemon would have recorded (in the current
stage visit, and in an earlier visit for some cases, which a report must not count).

Then, taking turns on the same database (the Engine in a child process, so that its peak
RSS is its own):

- progress: ``Engine.progress(now=NOW)`` against one hand-written aggregate query (cases
  joined with their unit, their measures counted per case and the levels of their current
  visit) followed by the table of categories written out plainly in Python (the schedule
  rule included, in whole microseconds as the engine counts it; nothing imported from
  ``rectiflow.engine.reports``), the light from the deadline and the first ladder level on
  ``chinesecalendar``, totals and per-city tallies, each case's category and light, and a
  second query for the titles of the overdue cases, as the Engine's result has them;
- snapshot: ``Engine.snapshot(period, now=NOW)`` against the same query and rules, every
  unit's subtree tallied with its figures as JSON, and the snapshot, snapshot_case and
  snapshot_unit rows inserted with ``executemany`` in one transaction, under another
  period key of the same tables.

Both sides must agree: the same totals, categories, lights, levels and per-city rows, the
same category and light case by case, the same frozen rows and unit figures.

    python bench/report.py [--cases 200000] [--rounds 2] [--db URL]

Printed: the best time of each side over the rounds and its rate, the Engine's peak RSS,
and last ``ratio <engine/raw>``: the smaller of the progress and snapshot ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script: the repository root goes on sys.path (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.common import (  # noqa: E402
    ACTORS,
    Raw,
    RawCalendar,
    fmt_rate,
    is_postgres,
    peak_rss_mb,
    scratch_database,
)
from rectiflow import Engine  # noqa: E402
from rectiflow.engine import deadlines, history  # noqa: E402
from rectiflow.store.tables import (  # noqa: E402
    case_t,
    escalation_t,
    history_t,
    measure_t,
)

# The engine's clock for the whole run: 10:00 in Beijing on a Wednesday.
NOW = dt.datetime(2026, 6, 10, 2, 0, tzinfo=dt.UTC)
SEVERITIES = ("high", "medium", "low")
CHUNK = 10_000  # cases written per transaction while building

# --- the unit tree --------------------------------------------------------------------------

ROOT = ("HLJ", "黑龙江省")
CITIES = [
    ("HRB", "哈尔滨市"), ("QQHR", "齐齐哈尔市"), ("MDJ", "牡丹江市"), ("JMS", "佳木斯市"),
    ("DQ", "大庆市"), ("SH", "绥化市"),
]  # fmt: skip
DISTRICTS_PER_CITY = (9, 9, 9, 9, 9, 8)  # 53 districts: 60 units with the cities and root


def unit_tree() -> list[tuple[str, str, str | None]]:
    """(code, name, parent) of the 60 units, parents first."""
    units: list[tuple[str, str, str | None]] = [(ROOT[0], ROOT[1], None)]
    for (code, name), count in zip(CITIES, DISTRICTS_PER_CITY, strict=True):
        units.append((code, name, ROOT[0]))
        units += [(f"{code}{i:02d}", f"{name[:-1]}第{i}区", code) for i in range(1, count + 1)]
    return units


# --- the ledger -----------------------------------------------------------------------------

Step = tuple[str, str | None, str, str, str | None]  # trigger, source, dest, actor, comment
OPEN: Step = ("open", None, "identify", "sup", None)
CONFIRM = ("confirm", "identify", "plan", "sup", None)
DISMISS = ("dismiss", "identify", "dismissed", "sup", "不属于本轮反馈问题范围")
APPROVE = ("approve_plan", "plan", "rectify", "rev", None)
SUBMIT = ("submit", "rectify", "verify", "own", None)
REJECT = ("reject", "verify", "rectify", "ver", "整改不到位，退回继续整改")
ACCEPT = ("accept", "verify", "closed", "ver", None)
PATHS: dict[
    str, list[Step]
] = {  # how a case of each kind got where it is, transition by transition
    "identify": [OPEN],
    "dismissed": [OPEN, DISMISS],
    "plan": [OPEN, CONFIRM],
    "rectify": [OPEN, CONFIRM, APPROVE],
    "rectify_again": [OPEN, CONFIRM, APPROVE, SUBMIT, REJECT],
    "long_term": [OPEN, CONFIRM, APPROVE],
    "verify": [OPEN, CONFIRM, APPROVE, SUBMIT],
    "closed": [OPEN, CONFIRM, APPROVE, SUBMIT, ACCEPT],
}
# (kind, share of the ledger, days since its current stage was entered)
MIX: list[tuple[str, float, tuple[float, float]]] = [
    ("closed", 0.33, (1, 200)), ("verify", 0.09, (0.5, 20)), ("rectify", 0.34, (1, 120)),
    ("rectify_again", 0.04, (1, 60)), ("long_term", 0.04, (5, 200)), ("plan", 0.08, (0.5, 20)),
    ("identify", 0.05, (0.1, 10)), ("dismissed", 0.03, (1, 200)),
]  # fmt: skip
PAUSED = 0.03  # of the open cases in plan or rectify
MEASURE_TEXTS = [
    "开展专项排查，逐项建立问题清单", "制定整改方案，明确责任分工和完成时限",
    "完善相关管理制度，堵塞制度漏洞", "加强监督检查，对整改情况定期通报",
    "组织专题培训，提升业务人员能力", "建立长效机制，防止问题反弹回潮",
]  # fmt: skip


class Builder:
    """Rows as the engine would have written them for each case's path through the
    workflow; deadlines and ladder times from the engine's own time rules (memoized)."""

    def __init__(self, engine: Engine, seed: int = 20260610) -> None:
        self.spec = engine.workflow("rectification")
        self.rules = engine.rules
        self.rng = random.Random(seed)
        units = unit_tree()
        self.root = [units[0][0]]
        self.cities = [u[0] for u in units if u[2] == ROOT[0]]
        self.districts = [u[0] for u in units if u[2] not in (None, ROOT[0])]
        self._deadlines: dict[tuple[dt.date, str, str], tuple[dt.datetime, bool]] = {}
        self._ladders: dict[dt.datetime, list[dt.datetime]] = {}
        self.kinds = [k for k, _, _ in MIX]
        self.weights = [w for _, w, _ in MIX]
        self.ages = {k: a for k, _, a in MIX}

    def deadline(self, state: str, severity: str, entered: dt.datetime) -> tuple[dt.datetime, bool]:
        key = (self.rules.local_date(entered), state, severity)
        found = self._deadlines.get(key)
        if found is None:
            sla = self.spec.states[state].sla_for(severity)
            assert sla is not None
            found = self._deadlines[key] = self.rules.add(entered, sla)
        return found

    def ladder(self, due_at: dt.datetime) -> list[dt.datetime]:
        found = self._ladders.get(due_at)
        if found is None:
            found = self._ladders[due_at] = [
                deadlines.level_time(self.rules, self.spec, due_at, i)
                for i in range(len(self.spec.ladder))
            ]
        return found

    def days(self, low: float, high: float) -> dt.timedelta:
        return dt.timedelta(seconds=self.rng.uniform(low, high) * 86_400)

    def case(self, case_id: int) -> tuple[dict[str, Any], list[Any], list[Any], list[Any]]:
        """One case: its row, history entries, measures and escalation rows."""
        rng, spec = self.rng, self.spec
        kind = rng.choices(self.kinds, self.weights)[0]
        path = PATHS[kind]
        r = rng.random()
        unit = rng.choice(self.root if r < 0.02 else self.cities if r < 0.12 else self.districts)
        severity = rng.choice(SEVERITIES)
        # the times of the path's transitions, back from when its current stage was entered
        times = [NOW - self.days(*self.ages[kind])]
        for _ in path[1:]:
            times.insert(0, times[0] - self.days(1, 15))
        entered, state = times[-1], path[-1][2]
        paused_at = None
        if kind in ("plan", "rectify", "rectify_again") and rng.random() < PAUSED:
            paused_at = entered + (NOW - entered) * rng.uniform(0.2, 0.95)
        due_at, provisional = None, False
        if not spec.states[state].final and kind != "long_term":
            due_at, provisional = self.deadline(state, severity, entered)

        # history: the path, and a pause marker
        steps = [(*step, at) for step, at in zip(path, times, strict=True)]
        if paused_at is not None:
            steps.append(("pause", state, state, "sup", "等待上级批复", paused_at))
        entries, prev = [], history.GENESIS
        for seq, (trigger, source, dest, actor, comment, at) in enumerate(steps, 1):
            entry = history.make_entry(
                case_id, seq, trigger, source, dest, actor, at, comment, prev
            )
            entries.append(entry)
            prev = entry.hash

        # measures: none before the plan; all done once submitted; a mix in rectify
        measures = []
        if kind in ("plan", "rectify", "rectify_again", "long_term", "verify", "closed"):
            count = rng.choice((0, 1, 2, 3)) if kind == "plan" else rng.choice((1, 2, 2, 3, 3, 4))
            rectify_at = times[2] if len(times) > 2 else entered
            submitted = times[3] if kind in ("verify", "closed") else None
            all_done = kind == "rectify" and rng.random() < 0.1
            end = due_at or NOW + dt.timedelta(days=90)
            for _ in range(count):
                due = None
                if rng.random() < 0.85:
                    due = rectify_at + (end - rectify_at) * rng.uniform(0.2, 1.0)
                    if kind == "plan":
                        due = NOW + self.days(20, 120)
                done_at = None
                if submitted is not None:
                    done_at = rectify_at + (submitted - rectify_at) * rng.uniform(0.1, 0.99)
                elif kind != "plan" and (all_done or rng.random() < 0.4):
                    done_at = rectify_at + (NOW - rectify_at) * rng.uniform(0.05, 0.99)
                measures.append({
                    "case_id": case_id, "text": rng.choice(MEASURE_TEXTS), "owner": "own",
                    "due": due, "done_at": done_at, "evidence_path": None,
                    "evidence_sha256": None,
                })  # fmt: skip

        # the ladder levels the daemon recorded: this visit's (until now or the pause),
        # and a finished earlier visit's for some cases sent back or closed
        visit, escalations, next_level = len(path), [], 0
        if due_at is not None:
            until = paused_at or NOW
            for i, at in enumerate(self.ladder(due_at)):
                if at > until:
                    break
                escalations.append(_escalation(case_id, visit, state, spec.ladder[i].level, at))
                next_level = i + 1
        if kind == "rectify_again" or (kind == "closed" and rng.random() < 0.3):
            earlier, _ = self.deadline("rectify", severity, times[2])
            for i, at in enumerate(self.ladder(earlier)[:2]):
                if at < times[3]:
                    escalations.append(_escalation(case_id, 3, "rectify", spec.ladder[i].level, at))

        row = {
            "id": case_id, "workflow": spec.name, "workflow_version": spec.version,
            "unit": unit, "title": f"问题{case_id}：专项资金使用管理不严格", "description": None,
            "category": rng.choice(("作风建设", "资金管理", "生态环境", "安全生产")),
            "source": "2026年巡视反馈", "severity": severity, "state": state,
            "version": len(entries), "created_at": times[0], "stage_entered_at": entered,
            "due_at": due_at, "due_provisional": provisional, "due": None, "visit": visit,
            "next_level": next_level,
            "next_escalation_at": deadlines.next_escalation(self.rules, spec, due_at, next_level),
            "paused_at": paused_at, "pause_credit": 0, "history_seq": len(entries),
            "last_hash": prev, "ref": None, "ref_key": None, "target": None,
            "responsible": None, "long_term": kind == "long_term",
        }  # fmt: skip
        return row, entries, measures, escalations


def _escalation(case_id: int, visit: int, state: str, level: str, at: dt.datetime) -> Any:
    return {
        "case_id": case_id, "visit": visit, "state": state, "level": level, "due_at": at,
        "fired_at": at, "backfilled": False,
    }  # fmt: skip


def build(url: str, count: int) -> dict[str, int]:
    """The schema, the units, the actors and ``count`` cases; bulk inserts, untimed."""
    rows = {"cases": 0, "measures": 0, "escalations": 0, "history": 0}
    with Engine(url) as engine:
        engine.init()
        for code, name, parent in unit_tree():
            engine.add_unit(code, name, parent)
        for name, (roles, bound) in ACTORS.items():
            engine.add_actor(name, roles, [ROOT[0]] if bound else [])
        builder = Builder(engine)
        store = engine.store
        for first in range(1, count + 1, CHUNK):
            cases, entries, measures, escalations = [], [], [], []
            for case_id in range(first, min(first + CHUNK, count + 1)):
                row, made, measured, fired = builder.case(case_id)
                cases.append(row)
                entries += [_entry(e) for e in made]
                measures += measured
                escalations += fired
            with store._write() as conn:  # type: ignore[attr-defined]
                conn.execute(case_t.insert(), cases)
                conn.execute(history_t.insert(), entries)
                if measures:
                    conn.execute(measure_t.insert(), measures)
                if escalations:
                    conn.execute(escalation_t.insert(), escalations)
            rows["cases"] += len(cases)
            rows["history"] += len(entries)
            rows["measures"] += len(measures)
            rows["escalations"] += len(escalations)
        with store._write() as conn:  # type: ignore[attr-defined]
            if is_postgres(url):
                conn.exec_driver_sql("SELECT setval('rcase_id_seq', (SELECT max(id) FROM rcase))")
            conn.exec_driver_sql("ANALYZE")
    return rows


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "case_id": entry.case_id, "seq": entry.seq, "trigger": entry.trigger,
        "source": entry.source, "dest": entry.dest, "actor": entry.actor, "at": entry.at,
        "comment": entry.comment, "prev_hash": entry.prev_hash, "hash": entry.hash,
    }  # fmt: skip


# --- the raw side ---------------------------------------------------------------------------

LADDER = ("remind", "warn", "supervise", "notify_public", "accountability")
REMIND_OFFSET = -3  # working days from the deadline: the first level, when a light turns yellow
FINAL = ("closed", "dismissed")
# (key, counted in the totals, counts as completed), in the order they are checked
CATEGORY_TABLE = [
    ("dismissed", False, False), ("closed", True, True), ("exempted", True, False),
    ("awaiting_acceptance", True, True),
    ("done_not_submitted", True, True), ("paused", True, False), ("long_term", True, False),
    ("overdue", True, False), ("behind_schedule", True, False), ("on_schedule", True, False),
]  # fmt: skip
COUNTED = {key: counted for key, counted, _ in CATEGORY_TABLE}
LOOP = ("relapses", "lookbacks_due", "lookbacks_done", "extensions_approved")
COMPLETED = {key: completed for key, _, completed in CATEGORY_TABLE}

STANDINGS = """
SELECT c.id, c.unit, u.path, c.state, c.paused_at IS NOT NULL, c.long_term, c.due_at,
       c.stage_entered_at, coalesce(m.n, 0), coalesce(m.done, 0), coalesce(m.late, 0),
       e.levels, c.exempt_until IS NOT NULL, c.relapses, c.lookback_due_at,
       c.lookback_result, coalesce(x.n, 0)
FROM rcase c
JOIN unit u ON u.code = c.unit
LEFT JOIN (
    SELECT case_id, count(*) AS n, count(done_at) AS done,
           sum(CASE WHEN done_at IS NULL AND due < ? THEN 1 ELSE 0 END) AS late
    FROM measure GROUP BY case_id
) m ON m.case_id = c.id
LEFT JOIN (
    SELECT x.case_id, {concat}(x.level, ',') AS levels
    FROM escalation x JOIN rcase v ON v.id = x.case_id AND v.visit = x.visit
    WHERE x.level <> 'lookback'
    GROUP BY x.case_id
) e ON e.case_id = c.id
LEFT JOIN (
    SELECT case_id, count(*) AS n FROM extension WHERE status = 'approved' GROUP BY case_id
) x ON x.case_id = c.id
ORDER BY c.id
"""
OVERDUE = (
    "SELECT c.id, c.title, u.name, c.due_at FROM rcase c JOIN unit u ON u.code = c.unit "
    "WHERE c.due_at IS NOT NULL AND c.paused_at IS NULL AND c.due_at < ? ORDER BY c.id"
)
INSERT_SNAPSHOT = (
    "INSERT INTO snapshot (period, kind, as_of, taken_at, taken_by) VALUES (?, ?, ?, ?, ?)"
)
INSERT_SNAPSHOT_CASE = (
    "INSERT INTO snapshot_case (period, case_id, unit, unit_path, category, light, state, "
    "due_at, level) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_SNAPSHOT_UNIT = "INSERT INTO snapshot_unit (period, unit, figures) VALUES (?, ?, ?)"


class RawTally:
    """One scope's counts, as the bulletin has them."""

    __slots__ = ("categories", "completed", "escalations", "lights", "loop", "total")

    def __init__(self) -> None:
        self.total = self.completed = 0
        self.categories = {key: 0 for key, _, _ in CATEGORY_TABLE}
        self.lights = {"green": 0, "yellow": 0, "red": 0}
        self.escalations = dict.fromkeys(LADDER, 0)
        self.loop = dict.fromkeys(LOOP, 0)

    def add(
        self, category: str, light: str | None, levels: list[str], loop: tuple[int, ...]
    ) -> None:
        self.categories[category] += 1
        if not COUNTED[category]:
            return
        self.total += 1
        self.completed += COMPLETED[category]
        if light is not None:
            self.lights[light] += 1
        for level in levels:
            self.escalations[level] += 1
        for key, n in zip(LOOP, loop, strict=True):
            self.loop[key] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total, "completed": self.completed,
            "completion_rate": round(self.completed / self.total if self.total else 0.0, 4),
            "categories": dict(self.categories), "lights": dict(self.lights),
            "escalations": dict(self.escalations), "loop": dict(self.loop),
        }  # fmt: skip

    def figures(self) -> dict[str, float]:
        base = self.total - self.categories["exempted"]  # exempted: neither help nor hurt

        def rate(n: int) -> float:
            return n / base if base > 0 else 0.0

        figures: dict[str, float] = {
            "total": self.total, "completed": self.completed,
            "completion_rate": rate(self.completed),
        }  # fmt: skip
        for key, n in self.loop.items():
            figures[key] = n
            figures[f"{key}_rate"] = rate(n)
        for key, counted, _ in CATEGORY_TABLE:
            if counted:
                figures[f"{key}_rate"] = rate(self.categories[key])
        for level, n in self.escalations.items():
            figures[f"{level}_rate"] = rate(n)
        return figures


class RawReports:
    """Progress and snapshots by hand: one aggregate query and the rules in plain Python."""

    def __init__(self, url: str) -> None:
        self.db = Raw(url)
        concat = "string_agg" if self.db.postgres else "group_concat"
        self.standings = self.db.sql(STANDINGS.format(concat=concat))
        self.calendar = RawCalendar()
        self.units = [
            (code, path)
            for code, path in self.db.cursor.execute("SELECT code, path FROM unit").fetchall()
        ]
        self.db.commit() if self.db.postgres else None

    def standing(self) -> Iterator[tuple[Any, ...]]:
        """Each case: (id, unit, path, state, due_at as stored, category, light, levels,
        highest level)."""
        db, now = self.db, NOW
        rank = {level: i for i, level in enumerate(LADDER)}
        cur = db.cursor
        cur.execute(self.standings, (db.time(now),))
        while rows := cur.fetchmany(5000):
            for case_id, unit, path, state, paused, long_term, due_text, entered_text, n, done, \
                    late, concat, exempted, relapses, lookback_text, lookback_result, \
                    extended in rows:  # fmt: skip
                due = db.parse_time(due_text)
                entered = db.parse_time(entered_text)
                assert entered is not None
                if state == "dismissed":
                    category = "dismissed"
                elif state in FINAL:
                    category = "closed"
                elif exempted:
                    category = "exempted"
                elif state == "verify":
                    category = "awaiting_acceptance"
                elif state == "rectify" and n >= 1 and done >= n:
                    category = "done_not_submitted"
                elif paused:
                    category = "paused"
                elif long_term and due is None:
                    category = "long_term"
                elif due is not None and now > due:
                    category = "overdue"
                elif state == "rectify" and (late > 0 or _behind(n, done, entered, due, now)):
                    category = "behind_schedule"
                else:
                    category = "on_schedule"
                if paused or exempted or state in FINAL:
                    light = None
                elif due is None:
                    light = "green" if long_term else None
                elif now > due:
                    light = "red"
                elif now >= self.calendar.add_workdays(due, REMIND_OFFSET)[0]:
                    light = "yellow"
                else:
                    light = "green"
                levels = sorted(set(concat.split(",")), key=rank.__getitem__) if concat else []
                top = levels[-1] if levels else None
                lookback = db.parse_time(lookback_text) if lookback_text is not None else None
                final = state in FINAL
                loop = (
                    relapses,
                    int(final and lookback_result is None and lookback is not None
                        and lookback <= now),
                    int(final and lookback_result is not None),
                    extended,
                )  # fmt: skip
                yield case_id, unit, path, state, due_text, category, light, levels, top, loop
        if db.postgres:
            db.commit()

    def progress(self) -> dict[str, Any]:
        """The figures of ``Engine.progress``: totals, each city's subtree, each case, and
        the overdue cases."""
        root = next(path for code, path in self.units if path.count("/") == 2)
        cities = {path: code for code, path in self.units if path.count("/") == 3}
        city_of = {path: cities.get(path[: path.index("/", len(root)) + 1]) for _, path in
                   self.units if path != root}  # fmt: skip
        total = RawTally()
        per_city = {code: RawTally() for code in cities.values()}
        cases = []
        late: set[int] = set()  # the overdue category: its cases make the overdue list
        for (
            case_id,
            unit,
            path,
            _state,
            _due,
            category,
            light,
            levels,
            _top,
            loop,
        ) in self.standing():
            if category == "overdue":
                late.add(case_id)
            total.add(category, light, levels, loop)
            city = city_of.get(path)
            if city is not None:
                per_city[city].add(category, light, levels, loop)
            cases.append({"id": case_id, "unit": unit, "category": category, "light": light})
        overdue = []
        for case_id, title, unit_name, due in self.db.cursor.execute(
            self.db.sql(OVERDUE), (self.db.time(NOW),)
        ).fetchall():
            if case_id not in late:  # past its deadline but paused: its category says so
                continue
            due_at = self.db.parse_time(due)
            assert due_at is not None
            overdue.append({
                "id": case_id, "title": title, "unit_name": unit_name,
                "due_at": due_at.astimezone(self.calendar.tz).isoformat(timespec="seconds"),
            })  # fmt: skip
        if self.db.postgres:
            self.db.commit()
        return {
            **total.as_dict(),
            "units": [{"unit": code, **per_city[code].as_dict()} for code in sorted(per_city)],
            "overdue_cases": overdue,
            "cases": cases,
        }

    def snapshot(self, period: str) -> int:
        """Freeze the figures under ``period``: each case, and each unit's subtree."""
        db = self.db
        paths = {path for _, path in self.units}
        tallies = {path: RawTally() for path in paths}
        ancestors: dict[str, list[RawTally]] = {}
        frozen = []
        for case_id, unit, path, state, due, category, light, levels, top, loop in self.standing():
            scopes = ancestors.get(path)
            if scopes is None:
                parts = path.strip("/").split("/")
                above = ("/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1))
                scopes = ancestors[path] = [tallies[p] for p in above if p in paths]
            for tally in scopes:
                tally.add(category, light, levels, loop)
            frozen.append((period, case_id, unit, path, category, light, state, due, top))
        figures = [
            (period, code, json.dumps({**tallies[path].as_dict(),
                                       "figures": tallies[path].figures()}))
            for code, path in self.units
        ]  # fmt: skip
        db.begin()
        try:
            at = db.time(NOW)
            db.cursor.execute(db.sql(INSERT_SNAPSHOT), (period, "month", at, at, "operator"))
            db.cursor.executemany(db.sql(INSERT_SNAPSHOT_CASE), frozen)
            db.cursor.executemany(db.sql(INSERT_SNAPSHOT_UNIT), figures)
        except BaseException:
            db.rollback()
            raise
        db.commit()
        return len(frozen)

    def close(self) -> None:
        self.db.close()


def _behind(n: int, done: int, entered: dt.datetime, due: dt.datetime | None, now: Any) -> bool:
    """Fewer measures done than floor(measures × elapsed share of the rectify window)."""
    if due is None or n <= 0:
        return False
    window = due - entered
    if window <= dt.timedelta(0):
        return done < n
    elapsed = min(max(now - entered, dt.timedelta(0)), window)
    return done < (n * elapsed) // window  # timedelta // timedelta: exact, in microseconds


# --- comparing the two sides ----------------------------------------------------------------


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """What both sides' progress must agree on; each case's category and light as a digest."""
    digest = hashlib.sha256()
    for case in result["cases"]:
        digest.update(f"{case['id']}:{case['unit']}:{case['category']}:{case['light']}\n".encode())
    keys = (
        "total", "completed", "completion_rate", "categories", "lights", "escalations", "loop",
    )  # fmt: skip
    return {
        **{key: result[key] for key in keys},
        "units": [{"unit": row["unit"], **{key: row[key] for key in keys}}
                  for row in result["units"]],
        "overdue_cases": hashlib.sha256(
            json.dumps(result["overdue_cases"], ensure_ascii=False).encode()
        ).hexdigest(),
        "cases": len(result["cases"]),
        "digest": digest.hexdigest(),
    }  # fmt: skip


SNAPSHOT_COLUMNS = "case_id, unit, unit_path, category, light, state, due_at, level"


def same_snapshots(db: Raw, first: str, second: str) -> bool:
    """The two periods froze the same rows, case by case and unit by unit."""
    cur = db.cursor
    for a, b in ((first, second), (second, first)):
        differ = cur.execute(
            db.sql(
                f"SELECT count(*) FROM (SELECT {SNAPSHOT_COLUMNS} FROM snapshot_case "
                f"WHERE period = ? EXCEPT SELECT {SNAPSHOT_COLUMNS} FROM snapshot_case "
                "WHERE period = ?) d"
            ),
            (a, b),
        ).fetchone()[0]
        if differ:
            return False
    units = []
    for period in (first, second):
        rows = cur.execute(
            db.sql("SELECT unit, figures FROM snapshot_unit WHERE period = ? ORDER BY unit"),
            (period,),
        ).fetchall()
        units.append({unit: json.loads(figures) for unit, figures in rows})
    if db.postgres:
        db.commit()
    return units[0] == units[1] and len(units[0]) == len(unit_tree())


# --- the Engine's side, in a child process ----------------------------------------------------


def engine_child(url: str) -> None:
    """Run in the child: one command a line on stdin (``progress``, ``snapshot PERIOD``,
    ``quit``), one JSON line back each; only the Engine call itself is timed."""
    with Engine(url) as engine:
        ready = peak_rss_mb()
        print(json.dumps({"ready_rss_mb": ready}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[0] == "progress":
                start = time.perf_counter()
                result = engine.progress(now=NOW)
                seconds = time.perf_counter() - start
                reply: dict[str, Any] = {"seconds": seconds, "summary": summary(result)}
                del result
            elif command[0] == "snapshot":
                start = time.perf_counter()
                engine.snapshot(command[1], now=NOW)
                reply = {"seconds": time.perf_counter() - start}
            else:
                print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)
                return
            print(json.dumps(reply), flush=True)


class EngineSide:
    def __init__(self, url: str) -> None:
        self.errors = tempfile.TemporaryFile("w+")
        self.child = subprocess.Popen(
            [sys.executable, __file__, "--child", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True,
        )  # fmt: skip
        self.ready = self.read()

    def read(self) -> dict[str, Any]:
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        if not line:
            self.child.wait()
            self.errors.seek(0)
            raise SystemExit(f"the engine side failed:\n{self.errors.read()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, command: str) -> dict[str, Any]:
        assert self.child.stdin is not None
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        return self.read()

    def close(self) -> float:
        peak = float(self.ask("quit")["peak_rss_mb"])
        self.child.wait()
        self.errors.close()
        return peak


# --- main -----------------------------------------------------------------------------------


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200_000, help="cases (default 200000)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each side (default 2)")
    parser.add_argument("--db", help="sqlite:///NEW_FILE or postgresql+psycopg://... server")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine_child(args.child)
        return
    if not 1 <= args.rounds <= 12:
        raise SystemExit("--rounds: 1 to 12")

    with scratch_database(args.db, "report") as url:
        backend = "PostgreSQL" if is_postgres(url) else "SQLite (WAL, synchronous=NORMAL)"
        start = time.perf_counter()
        rows = build(url, args.cases)
        built = time.perf_counter() - start
        print(
            f"{backend}: {rows['cases']} cases, {rows['measures']} measures, "
            f"{rows['escalations']} escalation rows, {rows['history']} history rows, "
            f"{len(unit_tree())} units (built in {built:.0f} s)"
        )
        raw = RawReports(url)
        engine = EngineSide(url)
        times: dict[str, list[float]] = {"engine progress": [], "raw progress": [],
                                         "engine snapshot": [], "raw snapshot": []}  # fmt: skip
        try:
            for turn in range(args.rounds):
                # who goes first changes every round
                order = ("raw", "engine") if turn % 2 == 0 else ("engine", "raw")
                results: dict[str, dict[str, Any]] = {}
                for side in order:
                    if side == "raw":
                        result, seconds = timed(raw.progress)
                        results["raw"] = summary(result)
                        del result
                    else:
                        reply = engine.ask("progress")
                        results["engine"], seconds = reply["summary"], reply["seconds"]
                    times[f"{side} progress"].append(seconds)
                if results["engine"] != results["raw"]:
                    raise SystemExit(
                        "progress differs:\nengine "
                        f"{json.dumps(results['engine'], ensure_ascii=False)}\n"
                        f"raw    {json.dumps(results['raw'], ensure_ascii=False)}"
                    )
                periods = {"engine": f"2030-{turn + 1:02d}", "raw": f"2031-{turn + 1:02d}"}
                for side in order:
                    if side == "raw":
                        _, seconds = timed(raw.snapshot, periods["raw"])
                    else:
                        seconds = engine.ask(f"snapshot {periods['engine']}")["seconds"]
                    times[f"{side} snapshot"].append(seconds)
                if not same_snapshots(raw.db, periods["engine"], periods["raw"]):
                    raise SystemExit(f"the snapshots {periods} differ")
            peak = engine.close()
        finally:
            raw.close()
            if engine.child.poll() is None:
                engine.child.kill()
    headline = results["engine"]
    print(
        f"as of {NOW.isoformat()}: total {headline['total']}, completed {headline['completed']}, "
        + ", ".join(f"{k} {v}" for k, v in headline["categories"].items())
    )
    print(f"lights {headline['lights']}, levels {headline['escalations']}")
    print("both sides agree: totals, categories, lights, levels, per-city rows, every case, "
          "every frozen row")  # fmt: skip
    best = {key: min(values) for key, values in times.items()}
    n = rows["cases"]
    for key in ("engine progress", "raw progress", "engine snapshot", "raw snapshot"):
        print(f"{key:16} {fmt_rate(n, best[key])} cases (best of {args.rounds})")
    print(f"engine peak RSS: {peak:.0f} MB (after opening: {engine.ready['ready_rss_mb']:.0f} MB)")
    ratios = {
        "progress": best["raw progress"] / best["engine progress"],
        "snapshot": best["raw snapshot"] / best["engine snapshot"],
    }
    print(f"ratio progress {ratios['progress']:.2f}, snapshot {ratios['snapshot']:.2f}")
    print(f"ratio {min(ratios.values()):.2f}")


if __name__ == "__main__":
    main()
