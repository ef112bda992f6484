"""How long the ``rectiflow`` command makes a person wait, against the floor its
dependencies set: the wall time of ``python -c "import sqlmodel"``, taken in the same run.

A ledger of N cases (default 10,000) is built in a temporary folder: a few dozen cases go
through the Engine (opened, confirmed, planned with measures, noted, escalated), and the
rest are copies of those made in SQL, untimed. Then each command runs as a new process, as
from a shell, with its output piped (not a terminal), and with the package compiled to
bytecode first, as an installed release is; the rounds interleave the commands
and the floor, so that whatever else the machine does weighs on all alike, and each figure
is the median of its rounds. Budgets, as multiples of the floor:

    rectiflow --help                 0.6
    rectiflow case show 1            1.4
    rectiflow case list              3    (all N cases)
    rectiflow case list --json       3

    python bench/cli.py [--cases 10000] [--rounds 5]

The last line is ``ratio <x>``: the smallest budget/actual over the figures (1.0 or more:
every budget met).
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: the repository root goes on sys.path (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.common import seed  # noqa: E402
from rectiflow import Engine  # noqa: E402

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # a Monday
NOW = T0 + dt.timedelta(days=40)  # some deadlines passed, some levels recorded
TEMPLATES = 40
SEVERITIES = ("high", "medium", "low")
BUDGETS = {"--help": 0.6, "case show 1": 1.4, "case list": 3.0, "case list --json": 3.0}

# Columns copied from a template case; the id is new, the title gets its number.
_CASE_COLUMNS = (
    "workflow, workflow_version, unit, description, category, source, severity, state, "
    "version, created_at, stage_entered_at, due_at, due_provisional, due, visit, next_level, "
    "next_escalation_at, paused_at, pause_credit, history_seq, last_hash"
)
_CHILDREN = {  # table: columns copied from the template's rows
    "measure": "text, owner, due, done_at, evidence_path, evidence_sha256",
    "note": "actor, at, text",
    "escalation": "visit, state, level, due_at, fired_at",
    "history": "seq, trigger, source, dest, actor, at, comment, prev_hash, hash",
}


def build(path: Path, count: int) -> None:
    """The ledger: templates through the Engine, then copies in SQL up to ``count``."""
    with Engine(f"sqlite:///{path}") as engine:
        units = seed(engine)
        for i in range(min(TEMPLATES, count)):
            at = T0 + dt.timedelta(hours=i)
            case = engine.open_case(
                "sup", unit=units[i % len(units)], title=f"模板问题 {i} 审批环节多、时限长",
                severity=SEVERITIES[i % 3], category=("作风", "营商环境")[i % 2],
                source=("自查", "巡视", "群众反映")[i % 3], description="企业反映办理时间过长",
                now=at,
            )  # fmt: skip
            if i % 4 == 0:
                continue  # stays in identify
            engine.fire(case.id, "confirm", "sup", now=at)
            if i % 4 == 1:
                continue  # plan
            measure = engine.add_measure(case.id, "own", "压缩审批环节", now=at)
            engine.add_measure(case.id, "own", "公开办理时限", now=at)
            engine.fire(case.id, "approve_plan", "rev", now=at)
            engine.note(case.id, "own", "已完成第一阶段整改", now=at + dt.timedelta(days=3))
            if i % 4 == 3:
                engine.complete_measure(measure.id, "own", now=at + dt.timedelta(days=5))
        engine.escalate_due(NOW)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        templates = [r[0] for r in conn.execute("SELECT id FROM rcase ORDER BY id")]
        first = max(templates) + 1
        copies = [(first + n, templates[n % len(templates)]) for n in range(count - first + 1)]
        conn.executemany(
            f"INSERT INTO rcase (id, title, {_CASE_COLUMNS}) "
            f"SELECT ?, '问题 ' || ?, {_CASE_COLUMNS} FROM rcase WHERE id = ?",
            [(new, new, old) for new, old in copies],
        )
        for table, columns in _CHILDREN.items():
            conn.executemany(
                f"INSERT INTO {table} (case_id, {columns}) "
                f"SELECT ?, {columns} FROM {table} WHERE case_id = ?",
                copies,
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def rectiflow_command() -> list[str]:
    """The console script a user would type, else ``python -m rectiflow``."""
    script = Path(sys.executable).with_name("rectiflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("rectiflow")
    return [found] if found else [sys.executable, "-m", "rectiflow"]


def wall(argv: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return seconds, done.stdout


def compile_package() -> None:
    """Compile rectiflow's modules to bytecode, as ``pip install`` does for an installed
    package: an editable install (and ``PYTHONDONTWRITEBYTECODE``) would otherwise have every
    timed process compile some fifty modules from source, which no user of a release pays.
    The floor's sqlmodel is compiled already."""
    import rectiflow

    compileall.compile_dir(str(Path(rectiflow.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="rectiflow-bench-cli-"))
    try:
        db = folder / "ledger.db"
        start = time.perf_counter()
        build(db, args.cases)
        print(f"ledger: {args.cases} cases in {time.perf_counter() - start:.1f} s (untimed)")
        compile_package()
        command = rectiflow_command()
        ledger = [*command, "--db", str(db), "--now", NOW.isoformat()]
        runs = {
            "floor": [sys.executable, "-c", "import sqlmodel"],
            "--help": [*command, "--help"],
            "case show 1": [*ledger, "case", "show", "1"],
            "case list": [*ledger, "case", "list"],
            "case list --json": [*ledger, "case", "list", "--json"],
        }
        # Not timed: each command works, and the lists list every case.
        outputs = {name: wall(argv, folder)[1] for name, argv in runs.items()}
        assert len(outputs["case list"].splitlines()) == args.cases + 1, "a header + N rows"
        assert len(json.loads(outputs["case list --json"])) == args.cases
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, argv in runs.items():
                times[name].append(wall(argv, folder)[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    floor = statistics.median(times["floor"])
    print(f"floor (python -c 'import sqlmodel'): {floor:.3f} s")
    ratios = []
    for name, budget in BUDGETS.items():
        took = statistics.median(times[name])
        ratios.append(budget / (took / floor))
        print(
            f"rectiflow {name}: {took:.3f} s = {took / floor:.2f} x floor "
            f"(budget {budget} x: {'met' if took <= budget * floor else 'MISSED'})"
        )
    print(f"ratio {min(ratios):.2f}")


if __name__ == "__main__":
    main()
