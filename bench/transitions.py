"""Transitions per second: the Engine against raw SQL doing the same reads and writes.

N cases are driven identify -> plan -> rectify -> verify -> closed through ``Engine.fire``;
N more through a hand-written raw-SQL ``fire`` that does per transition what the store
does: BEGIN IMMEDIATE (SQLite) or a transaction with SELECT ... FOR UPDATE (PostgreSQL);
read the case row joined with its unit; read the actor with its units; read the measures
for the guarded triggers; when the new deadline is provisional (a year without holiday
data), read the calendar table once more, as the engine does; UPDATE the case WHERE id AND
version; INSERT the hash-chained history row; COMMIT. Only the fires are timed; opening
cases and adding and completing measures happen (through the Engine, for both halves)
between the timed phases, and the two sides take turns in chunks of cases.

    python bench/transitions.py [--n 2000] [--db URL] [--processes 1,2,4,8]

The last line is ``ratio <engine/raw>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file's name would shadow the `transitions` package: take its folder off sys.path and
# put the repository root there instead (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.common import (  # noqa: E402
    Raw,
    RawCalendar,
    fmt_rate,
    is_postgres,
    parse_counts,
    scratch_database,
    seed,
)
from rectiflow import Engine  # noqa: E402

# (trigger, actor) in the order a case goes through them
PHASES = [("confirm", "sup"), ("approve_plan", "rev"), ("submit", "own"), ("accept", "ver")]
SEVERITIES = ("high", "medium", "low")
CHUNK = 50  # cases per turn when the engine and raw take turns


# --- the raw side ---------------------------------------------------------------------------

# trigger -> (source, dest, roles, guard)
TRANSITIONS = {
    "confirm": ("identify", "plan", ("supervisor",), None),
    "approve_plan": ("plan", "rectify", ("reviewer",), "has_measures"),
    "submit": ("rectify", "verify", ("owner",), "all_measures_done"),
    "accept": ("verify", "closed", ("verifier",), None),
}
# working-day SLAs of the shipped workflow; first ladder level at -3wd
SLA: dict[str, int | dict[str, int]] = {
    "identify": 5,
    "plan": 10,
    "verify": 10,
    "rectify": {"high": 20, "medium": 40, "low": 60},
}
FIRST_LEVEL = -3

SELECT_CASE = (
    "SELECT rcase.id, rcase.workflow, rcase.workflow_version, rcase.unit, rcase.title, "
    "rcase.description, rcase.category, rcase.source, rcase.severity, rcase.state, "
    "rcase.version, rcase.created_at, rcase.stage_entered_at, rcase.due_at, "
    "rcase.due_provisional, rcase.due, rcase.visit, rcase.next_level, "
    "rcase.next_escalation_at, rcase.paused_at, rcase.pause_credit, rcase.history_seq, "
    "rcase.last_hash, unit.path AS unit_path "
    "FROM rcase JOIN unit ON unit.code = rcase.unit WHERE rcase.id = ?"
)
SEVERITY, STATE, VERSION, VISIT, PAUSED_AT, HISTORY_SEQ, LAST_HASH, UNIT_PATH = (
    8,
    9,
    10,
    16,
    19,
    21,
    22,
    23,
)
SELECT_ACTOR = (
    "SELECT actor.name, actor.roles, unit.code, unit.path FROM actor "
    "LEFT OUTER JOIN actor_unit ON actor_unit.actor = actor.name "
    "LEFT OUTER JOIN unit ON unit.code = actor_unit.unit WHERE actor.name = ?"
)
SELECT_MEASURES = (
    "SELECT measure.id, measure.case_id, measure.text, measure.owner, measure.due, "
    "measure.done_at, measure.evidence_path, measure.evidence_sha256 "
    "FROM measure WHERE measure.case_id = ? ORDER BY measure.id"
)
UPDATE_CASE = (
    "UPDATE rcase SET state=?, stage_entered_at=?, due_at=?, due_provisional=?, visit=?, "
    "next_level=?, next_escalation_at=?, paused_at=?, pause_credit=?, version=?, "
    "history_seq=?, last_hash=? WHERE rcase.id = ? AND rcase.version = ?"
)
SELECT_CALENDAR = (
    "SELECT calendar_day.day, calendar_day.workday FROM calendar_day ORDER BY calendar_day.day"
)
INSERT_HISTORY = (
    'INSERT INTO history (case_id, seq, "trigger", source, dest, actor, at, comment, '
    "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class RawFire:
    """``fire`` written by hand on the DB-API: the same statements, checks and hash chain."""

    def __init__(self, url: str) -> None:
        self.db = Raw(url)
        lock = " FOR UPDATE OF rcase" if self.db.postgres else ""
        self.select_case = self.db.sql(SELECT_CASE + lock)
        self.select_actor = self.db.sql(SELECT_ACTOR)
        self.select_measures = self.db.sql(SELECT_MEASURES)
        self.update_case = self.db.sql(UPDATE_CASE)
        self.insert_history = self.db.sql(INSERT_HISTORY)
        self.calendar = RawCalendar()
        # the engine reads the calendar table outside the transition's transaction
        self.calendar_db = Raw(url)
        if self.calendar_db.postgres:  # a lone read, like the store's (pysqlite: already)
            self.calendar_db.conn.autocommit = True
        self.calendar_rows = self.calendar_db.cursor
        self.select_calendar = SELECT_CALENDAR

    def fire(self, case_id: int, trigger: str, actor: str) -> None:
        db, cur = self.db, self.db.cursor
        now = dt.datetime.now(dt.UTC)
        source, dest, roles, guard = TRANSITIONS[trigger]
        db.begin()
        try:
            case = cur.execute(self.select_case, (case_id,)).fetchone()
            if case is None or case[STATE] != source or case[PAUSED_AT] is not None:
                raise RuntimeError(f"case {case_id}: cannot {trigger}")
            who = cur.execute(self.select_actor, (actor,)).fetchall()
            paths = [r[3] for r in who if r[3] is not None]
            if not who or not set(who[0][1].split(",")) & set(roles):
                raise RuntimeError(f"{actor} may not {trigger}")
            if paths and not any(case[UNIT_PATH].startswith(p) for p in paths):
                raise RuntimeError(f"case {case_id} is outside {actor}'s units")
            if guard is not None:
                measures = cur.execute(self.select_measures, (case_id,)).fetchall()
                if not measures or (
                    guard == "all_measures_done" and any(m[5] is None for m in measures)
                ):
                    raise RuntimeError(f"case {case_id}: guard {guard} refused")
            by_severity = SLA.get(dest)
            sla = by_severity[case[SEVERITY]] if isinstance(by_severity, dict) else by_severity
            due_at = next_at = None
            provisional = False
            if sla is not None:
                due_at, provisional = self.calendar.add_workdays(now, sla)
                next_at = self.calendar.add_workdays(due_at, FIRST_LEVEL)[0]
                if provisional:  # the engine looks for newly loaded calendar data then
                    self.calendar_rows.execute(self.select_calendar).fetchall()
            seq, prev = case[HISTORY_SEQ] + 1, case[LAST_HASH]
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            payload = json.dumps(
                [case_id, seq, trigger, source, dest, actor, stamp, None, prev],
                ensure_ascii=False, separators=(",", ":"),
            )  # fmt: skip
            digest = hashlib.sha256(payload.encode()).hexdigest()
            version = case[VERSION]
            cur.execute(self.update_case, (
                dest, db.time(now), db.time(due_at), provisional, case[VISIT] + 1, 0,
                db.time(next_at), None, 0, version + 1, seq, digest, case_id, version,
            ))  # fmt: skip
            if cur.rowcount != 1:
                raise RuntimeError(f"case {case_id} changed meanwhile")
            cur.execute(self.insert_history, (
                case_id, seq, trigger, source, dest, actor, db.time(now), None, prev, digest,
            ))  # fmt: skip
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def close(self) -> None:
        self.db.close()
        self.calendar_db.close()


# --- driving the cases ----------------------------------------------------------------------


def open_cases(engine: Engine, units: list[str], count: int, offset: int = 0) -> list[int]:
    return [
        engine.open_case(
            "sup", unit=units[i % len(units)], title=f"problem {offset + i}",
            severity=SEVERITIES[i % len(SEVERITIES)],
        ).id
        for i in range(count)
    ]  # fmt: skip


def prepare(engine: Engine, trigger: str, ids: list[int], measures: dict[int, int]) -> None:
    """The untimed work a case needs before ``trigger``: a measure, then the measure done."""
    if trigger == "approve_plan":
        for cid in ids:
            measures[cid] = engine.add_measure(cid, "own", "fix it").id
    elif trigger == "submit":
        for cid in ids:
            engine.complete_measure(measures[cid], "own")


def run_pair(url: str, n: int) -> tuple[float, float]:
    """Engine and raw on one database, phase by phase; returns (engine s, raw s).

    Within a phase the two sides take turns in chunks of CHUNK cases, so that whatever
    else the machine is doing meanwhile weighs on both alike."""
    with Engine(url) as engine:
        units = seed(engine)
        engine_ids = open_cases(engine, units, n)
        raw_ids = open_cases(engine, units, n, n)
        raw = RawFire(url)
        measures: dict[int, int] = {}
        spent = {"engine": 0.0, "raw": 0.0}
        for trigger, actor in PHASES:
            prepare(engine, trigger, engine_ids + raw_ids, measures)
            for turn, at in enumerate(range(0, n, CHUNK)):
                runs: list[tuple[str, list[int], Callable[..., object]]] = [
                    ("engine", engine_ids, engine.fire),
                    ("raw", raw_ids, raw.fire),
                ]
                for side, ids, fire in runs if turn % 2 == 0 else runs[::-1]:
                    start = time.perf_counter()
                    for cid in ids[at : at + CHUNK]:
                        fire(cid, trigger, actor)
                    spent[side] += time.perf_counter() - start
        raw.close()
        check_same_outcome(engine, engine_ids, raw_ids)
    return spent["engine"], spent["raw"]


def check_same_outcome(engine: Engine, engine_ids: list[int], raw_ids: list[int]) -> None:
    """Both halves end closed with the same versions and verifiable history chains."""

    def shape(cid: int) -> tuple[object, ...]:
        c = engine.get_case(cid)
        return (c.state, c.version, c.visit, c.history_seq, c.due_at, c.next_escalation_at)

    for a, b in zip(engine_ids, raw_ids, strict=True):
        if shape(a) != shape(b):
            raise SystemExit(f"engine case {a} and raw case {b} differ: {shape(a)} {shape(b)}")
    engine.verify_history()


# --- several processes ----------------------------------------------------------------------


def _worker(url: str, ids: list[int], barrier: multiprocessing.synchronize.Barrier) -> None:
    with Engine(url) as engine:
        measures: dict[int, int] = {}
        for trigger, actor in PHASES:
            prepare(engine, trigger, ids, measures)
            barrier.wait()
            for cid in ids:
                engine.fire(cid, trigger, actor)
            barrier.wait()


def run_processes(url: str, n: int, processes: int) -> float:
    """Engine transitions/s with ``processes`` processes firing at once, each on its share
    of n fresh cases; only the firing phases are timed (wall clock, all processes)."""
    ctx = multiprocessing.get_context("spawn")
    with Engine(url) as engine:
        units = [u.code for u in engine.list_units() if u.code != "ROOT"]
        ids = open_cases(engine, units, n)
    barrier = ctx.Barrier(processes + 1)
    workers = [
        ctx.Process(target=_worker, args=(url, ids[i::processes], barrier))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    spent = 0.0
    for _ in PHASES:
        barrier.wait()
        start = time.perf_counter()
        barrier.wait()
        spent += time.perf_counter() - start
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise SystemExit(f"a worker failed with exit code {w.exitcode}")
    return len(PHASES) * n / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="cases per side (default 2000)")
    parser.add_argument("--db", help="sqlite:///NEW_FILE or postgresql+psycopg://... server")
    parser.add_argument(
        "--processes", type=parse_counts, help="also: engine transitions/s with P processes"
    )
    args = parser.parse_args()
    transitions = len(PHASES) * args.n
    with scratch_database(args.db, "transitions") as url:
        backend = "PostgreSQL" if is_postgres(url) else "SQLite (WAL, synchronous=NORMAL)"
        print(f"{backend}: {args.n} cases per side, {transitions} transitions each")
        engine_s, raw_s = run_pair(url, args.n)
        print(f"engine  {fmt_rate(transitions, engine_s)}")
        print(f"raw     {fmt_rate(transitions, raw_s)}")
        for processes in args.processes or ():
            rate = run_processes(url, args.n, processes)
            print(f"engine, {processes} processes: {rate:,.0f} transitions/s")
    print(f"ratio {raw_s / engine_s:.2f}")


if __name__ == "__main__":
    main()
