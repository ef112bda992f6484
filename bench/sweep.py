"""Escalations per second: one sweep through the Engine against raw SQL doing the same.

N open cases whose ladder levels are due (1 to 5 levels each) are written straight into the
store's tables; the database is copied; then ``Engine.escalate_due(now)`` sweeps one copy
in a child process (so its peak RSS is its own) and a hand-written raw-SQL sweep does the
same claims and inserts on the other: batches of the same size, BEGIN IMMEDIATE (SQLite)
or FOR UPDATE SKIP LOCKED (PostgreSQL), SELECT the due cases joined with their unit, INSERT
each level ON CONFLICT DO NOTHING (a raising level with the unit above), INSERT one
notification per person (each role's people found nearest first, once per role and unit),
UPDATE the case's next level (and supervising unit), COMMIT; until a batch comes back short.

    python bench/sweep.py [--cases 100000] [--db URL] [--rss-at 20000] [--idle 20]

Also printed: the Engine sweep's peak RSS at ``--rss-at`` cases and at N (it must not grow
with N), and the CPU an idle daemon takes over the N swept cases. The last line is
``ratio <engine/raw>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

# Run as a script: the repository root goes on sys.path (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    Raw,
    RawCalendar,
    copy_database,
    drop_copy,
    fmt_rate,
    is_postgres,
    peak_rss_mb,
    scratch_database,
    seed,
)
from rectiflow import Engine  # noqa: E402
from rectiflow.engine import deadlines, history  # noqa: E402
from rectiflow.engine.durations import Duration, Unit  # noqa: E402
from rectiflow.store.tables import case_t, escalation_t, history_t, notification_t  # noqa: E402

BATCH = 500  # Engine.escalate_due's default batch size
SEVERITIES = ("high", "medium", "low")
# The shipped ladder (rectification@2): (level, offset in working days, roles notified,
# whether it raises the case to the unit above)
LADDER = [
    ("remind", -3, ("owner",), False),
    ("warn", 0, ("owner", "head"), False),
    ("supervise", 5, ("supervisor",), True),
    ("notify_public", 15, ("supervisor",), True),
    ("accountability", 30, ("supervisor",), False),
]
SUPERVISING_ROLES = {"supervisor"}  # found from the unit a case was raised to


# --- the ledger -----------------------------------------------------------------------------


def build(url: str, count: int, now: dt.datetime) -> None:
    """``count`` cases in ``rectify``, their deadlines 2 to 39 working days ago (so 1 to 5
    levels are due at ``now``), with their opening history row; bulk inserts, untimed."""
    with Engine(url) as engine:
        units = seed(engine)
        spec = engine.workflow("rectification")
        rules = engine.rules
        store = engine.store
        chunk = 10_000
        for first in range(1, count + 1, chunk):
            cases, entries = [], []
            for case_id in range(first, min(first + chunk, count + 1)):
                days_late = case_id % 42 - 2  # -2 .. 39 working days past the deadline
                due_at = rules.add(now, Duration(-days_late, Unit.WORKDAYS))[0]
                entered = due_at - dt.timedelta(days=60)
                entry = history.make_entry(
                    case_id, 1, "open", None, "rectify", "sup", entered, None, history.GENESIS
                )
                cases.append({
                    "id": case_id, "workflow": spec.name, "workflow_version": spec.version,
                    "unit": units[case_id % len(units)], "title": f"problem {case_id}",
                    "description": None, "category": None, "source": None,
                    "severity": SEVERITIES[case_id % 3], "state": "rectify", "version": 1,
                    "created_at": entered, "stage_entered_at": entered, "due_at": due_at,
                    "due_provisional": False, "due": None, "visit": 1, "next_level": 0,
                    "next_escalation_at": deadlines.next_escalation(rules, spec, due_at, 0),
                    "paused_at": None, "pause_credit": 0, "history_seq": 1,
                    "last_hash": entry.hash,
                })  # fmt: skip
                entries.append({
                    "case_id": case_id, "seq": 1, "trigger": "open", "source": None,
                    "dest": "rectify", "actor": "sup", "at": entered, "comment": None,
                    "prev_hash": history.GENESIS, "hash": entry.hash,
                })  # fmt: skip
            with store._write() as conn:  # type: ignore[attr-defined]
                conn.execute(case_t.insert(), cases)
                conn.execute(history_t.insert(), entries)
        if is_postgres(url):
            with store._write() as conn:  # type: ignore[attr-defined]
                conn.exec_driver_sql("SELECT setval('rcase_id_seq', (SELECT max(id) FROM rcase))")


def outcome(url: str) -> tuple[int, ...]:
    """(escalation rows, notification rows and those naming a person, sum of next levels,
    raised cases): equal after both sweeps."""
    engine = sa.create_engine(url)
    n = notification_t.c
    try:
        with engine.connect() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(escalation_t)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(notification_t)).scalar_one(),
                conn.execute(sa.select(sa.func.count(n.actor))).scalar_one(),
                int(conn.execute(sa.select(sa.func.sum(case_t.c.next_level))).scalar_one()),
                conn.execute(sa.select(sa.func.count(case_t.c.supervising_unit))).scalar_one(),
            )
    finally:
        engine.dispose()


# --- the Engine's sweep, in a child process -------------------------------------------------


def engine_child(url: str, now: dt.datetime, take_turns: bool) -> None:
    """Run in the child: one sweep, then a JSON line with what it did and its peak RSS.

    Taking turns, it hands over between batches (``should_stop`` is asked there): it writes
    ``turn`` and waits for a line on stdin while the parent runs a raw batch; the time it
    waits is not counted."""
    waited = 0.0

    def hand_over() -> bool:
        nonlocal waited
        if take_turns:
            start = time.perf_counter()
            print("turn", flush=True)
            sys.stdin.readline()
            waited += time.perf_counter() - start
        return False

    with Engine(url) as engine:
        ready_rss = peak_rss_mb()
        start = time.perf_counter()
        summary = engine.escalate_due(now, batch_size=BATCH, should_stop=hand_over)
        seconds = time.perf_counter() - start - waited
    print(json.dumps({
        "cases": summary.cases, "fired": summary.fired, "seconds": seconds,
        "ready_rss_mb": ready_rss, "peak_rss_mb": peak_rss_mb(),
    }))  # fmt: skip


def engine_sweep(url: str, now: dt.datetime, raw: RawSweep | None = None) -> dict[str, float]:
    """The Engine's sweep in a child process; with ``raw``, the two take turns batch by
    batch, so that whatever else the machine does meanwhile weighs on both alike."""
    command = [sys.executable, __file__, "--child", url, "--now", now.isoformat()]
    if raw is not None:
        command.append("--take-turns")
    errors = tempfile.TemporaryFile("w+")
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
    )
    assert child.stdin is not None
    assert child.stdout is not None
    last = ""
    if raw is not None:
        raw.batch()
    for line in child.stdout:
        last = line.strip()
        if last == "turn":
            if raw is not None and not raw.done:
                raw.batch()
            child.stdin.write("go\n")
            child.stdin.flush()
    while raw is not None and not raw.done:
        raw.batch()
    if child.wait() != 0:
        errors.seek(0)
        raise SystemExit(f"the engine sweep failed:\n{errors.read()}")
    errors.close()
    result: dict[str, float] = json.loads(last)
    return result


# --- the raw sweep --------------------------------------------------------------------------

CLAIM = (
    "SELECT rcase.id, rcase.workflow, rcase.workflow_version, rcase.unit, rcase.title, "
    "rcase.description, rcase.category, rcase.source, rcase.severity, rcase.state, "
    "rcase.version, rcase.created_at, rcase.stage_entered_at, rcase.due_at, "
    "rcase.due_provisional, rcase.due, rcase.visit, rcase.next_level, "
    "rcase.next_escalation_at, rcase.paused_at, rcase.pause_credit, rcase.history_seq, "
    "rcase.last_hash, rcase.supervising_unit, unit.path AS unit_path "
    "FROM rcase JOIN unit ON unit.code = rcase.unit "
    "WHERE rcase.next_escalation_at <= ? AND rcase.paused_at IS NULL "
    "ORDER BY rcase.next_escalation_at LIMIT ?"
)
ID, UNIT, STATE, DUE_AT, VISIT, NEXT_LEVEL, SUPERVISING_UNIT = 0, 3, 9, 13, 16, 17, 23
INSERT_ESCALATION = (
    "INSERT INTO escalation (case_id, visit, state, level, due_at, fired_at, raised_to) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_NOTIFICATION = (
    'INSERT INTO notification (case_id, kind, level, role, actor, created_at, "key") '
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
NEXT_LEVEL_SQL = (
    "UPDATE rcase SET next_level=?, next_escalation_at=? WHERE rcase.id = ? AND rcase.visit = ?"
)
RAISED_SQL = (
    "UPDATE rcase SET next_level=?, next_escalation_at=?, supervising_unit=? "
    "WHERE rcase.id = ? AND rcase.visit = ?"
)
UNITS_SQL = "SELECT code, parent FROM unit"
ACTORS_SQL = (
    "SELECT actor.name, actor.roles, actor_unit.unit FROM actor "
    "LEFT JOIN actor_unit ON actor_unit.actor = actor.name"
)
NEXT_DUE = "SELECT min(rcase.next_escalation_at) FROM rcase WHERE rcase.paused_at IS NULL"


class RawSweep:
    """The sweep by hand, one batch per call of ``batch``."""

    def __init__(self, url: str, now: dt.datetime) -> None:
        self.db, self.now = Raw(url), now
        self.calendar = RawCalendar()
        lock = " FOR UPDATE OF rcase SKIP LOCKED" if self.db.postgres else ""
        self.claim = self.db.sql(CLAIM) + lock
        self.insert_escalation = self.db.sql(INSERT_ESCALATION)
        self.insert_notification = self.db.sql(INSERT_NOTIFICATION)
        self.next_level = self.db.sql(NEXT_LEVEL_SQL)
        self.raised = self.db.sql(RAISED_SQL)
        self.parents: dict[str, str | None] = {}
        self.people: dict[tuple[str, str], list[str]] = {}  # (role, unit): nearest holders
        self.fired = 0
        self.seconds = 0.0
        self.done = False

    def directory(self) -> None:
        """The unit tree and who holds which role where, read once per sweep (as the
        Engine does) and resolved nearest first once per (role, unit)."""
        cur = self.db.cursor
        self.parents = dict(cur.execute(UNITS_SQL).fetchall())
        bound: dict[str, set[str]] = {}
        roles_of: dict[str, list[str]] = {}
        for name, roles, unit in cur.execute(ACTORS_SQL).fetchall():
            roles_of[name] = roles.split(",")
            if unit is not None:
                bound.setdefault(name, set()).add(unit)
        for role in {r for roles in roles_of.values() for r in roles}:
            holders = [name for name, roles in roles_of.items() if role in roles]
            for unit in self.parents:
                found: list[str] = []
                at: str | None = unit
                while at is not None and not found:
                    found = [h for h in holders if at in bound.get(h, ())]
                    at = self.parents[at]
                self.people[role, unit] = found or [h for h in holders if h not in bound]

    def batch(self) -> None:
        """Claim and record one batch; after a short one, ask for the next due time."""
        start = time.perf_counter()
        db, cur, now = self.db, self.db.cursor, self.now
        db.begin()
        if not self.parents:
            self.directory()
        rows = cur.execute(self.claim, (db.time(now), BATCH)).fetchall()
        for row in rows:
            case_id, visit, state, unit = row[ID], row[VISIT], row[STATE], row[UNIT]
            supervising = row[SUPERVISING_UNIT]
            due_at = db.parse_time(row[DUE_AT])
            assert due_at is not None  # every claimed case is open
            index, next_at, raised = row[NEXT_LEVEL], None, False
            notes: list[tuple[object, ...]] = []
            while index < len(LADDER):
                level, offset, roles, raises = LADDER[index]
                at = self.calendar.add_workdays(due_at, offset)[0]
                if at > now:
                    next_at = at
                    break
                raised_to = None
                if raises and self.parents.get(supervising or unit) is not None:
                    supervising = raised_to = self.parents[supervising or unit]
                    raised = True
                cur.execute(
                    self.insert_escalation,
                    (case_id, visit, state, level, db.time(at), db.time(now), raised_to),
                )
                self.fired += cur.rowcount
                for role in roles:
                    start_at = (supervising or unit) if role in SUPERVISING_ROLES else unit
                    people: list[str | None] = list(self.people.get((role, start_at), []))
                    for person in people or [None]:
                        key = f"esc:{case_id}:{visit}:{level}:{role}"
                        if person is not None:
                            key += ":" + urllib.parse.quote(person, safe="")
                        notes.append(
                            (case_id, "escalation", level, role, person, db.time(now), key)
                        )
                index += 1
            if notes:
                cur.executemany(self.insert_notification, notes)
            if raised:
                cur.execute(self.raised, (index, db.time(next_at), supervising, case_id, visit))
            else:
                cur.execute(self.next_level, (index, db.time(next_at), case_id, visit))
        db.commit()
        if len(rows) < BATCH:
            cur.execute(NEXT_DUE).fetchone()
            if db.postgres:
                db.commit()
            self.done = True
        self.seconds += time.perf_counter() - start

    def close(self) -> None:
        self.db.close()


# --- the idle daemon ------------------------------------------------------------------------


def idle_daemon_cpu(url: str, seconds: float) -> float:
    """Per cent of one core that ``rectiflow daemon`` takes over the swept ledger, measured
    over ``seconds`` once it has settled."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "rectiflow", "--db", url, "daemon"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Let it start, sweep and catch up on the monthly dispatch first: wait until a
        # two-second window takes under a tenth of a core (at most two minutes).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            before = _cpu_seconds(daemon.pid)
            time.sleep(2)
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}")
            if _cpu_seconds(daemon.pid) - before < 0.2:
                break
        before, start = _cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        used, spent = _cpu_seconds(daemon.pid) - before, time.monotonic() - start
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    return 100 * used / spent


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# --- main -----------------------------------------------------------------------------------


def measure(db: str | None, count: int, now: dt.datetime, name: str) -> dict[str, float]:
    """Build a ledger of ``count`` cases and sweep it with the Engine only."""
    with scratch_database(db, name) as url:
        build(url, count, now)
        return engine_sweep(url, now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="open cases (default 100000)")
    parser.add_argument("--db", help="sqlite:///NEW_FILE or postgresql+psycopg://... server")
    parser.add_argument(
        "--rss-at", type=int, default=20_000, help="also sweep this many cases for the RSS"
    )
    parser.add_argument(
        "--idle", type=float, default=20, help="seconds to watch an idle daemon (0: skip)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--take-turns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine_child(args.child, dt.datetime.fromisoformat(args.now), args.take_turns)
        return

    now = dt.datetime.now(dt.UTC)
    small = None
    if 0 < args.rss_at < args.cases:
        small = measure(args.db, args.rss_at, now, "sweep_small")
    with scratch_database(args.db, "sweep") as url:
        backend = "PostgreSQL" if is_postgres(url) else "SQLite (WAL, synchronous=NORMAL)"
        print(f"{backend}: {args.cases} open cases with due levels, batches of {BATCH}")
        build(url, args.cases, now)
        # Two copies, so that both sides start from a database in the same state.
        engine_url, raw_url = copy_database(url, "engine"), copy_database(url, "raw")
        try:
            raw = RawSweep(raw_url, now)
            result = engine_sweep(engine_url, now, raw)
            raw.close()
            raw_fired, raw_seconds = raw.fired, raw.seconds
            same = outcome(engine_url) == outcome(raw_url)
            if args.idle > 0:
                idle = idle_daemon_cpu(engine_url, args.idle)
        finally:
            drop_copy(engine_url)
            drop_copy(raw_url)
        if not same or raw_fired != result["fired"]:
            raise SystemExit(f"the sweeps differ: engine {result}, raw fired {raw_fired}")
        fired = int(result["fired"])
        print(f"engine  {fmt_rate(fired, result['seconds'])} escalations")
        print(f"raw     {fmt_rate(raw_fired, raw_seconds)} escalations")
        if small is not None:
            print(
                f"engine sweep peak RSS: {small['peak_rss_mb']:.0f} MB at {args.rss_at} cases, "
                f"{result['peak_rss_mb']:.0f} MB at {args.cases} "
                f"(before sweeping: {result['ready_rss_mb']:.0f} MB)"
            )
        else:
            print(f"engine sweep peak RSS: {result['peak_rss_mb']:.0f} MB at {args.cases} cases")
        if args.idle > 0:
            print(f"idle daemon over {args.cases} open cases: {idle:.2f}% of a core")
    print(f"ratio {(fired / result['seconds']) / (raw_fired / raw_seconds):.2f}")


if __name__ == "__main__":
    main()
