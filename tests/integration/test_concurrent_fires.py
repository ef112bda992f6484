"""Several OS processes fire at the same cases of one database (a SQLite file, PostgreSQL).

Workers are started with the "spawn" method, so each has its own interpreter, engine and
connections, as separate app instances would; they live in integration_support.py.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from integration_support import PINGPONG, SQL_BACKENDS, open_case, race_confirm, stress_fire

from rectiflow import Engine

SPAWN = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 150


def _run(target: Any, arglists: list[tuple[Any, ...]], tmp_path: Path) -> list[dict[str, Any]]:
    """Run one process per argument tuple (each gets an output file last); return their JSON."""
    outs = [tmp_path / f"worker{i}.json" for i in range(len(arglists))]
    procs = [
        SPAWN.Process(target=target, args=(*args, str(out)), daemon=True)
        for args, out in zip(arglists, outs, strict=True)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [p.exitcode for p in procs] == [0] * len(procs), "a worker died or hung"
    return [json.loads(out.read_text("utf-8")) for out in outs]


@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)
def test_two_processes__same_expect_version_one_wins(
    ledger: Engine, db_url: str, tmp_path: Path
) -> None:
    rounds = 10
    ledger.add_actor("sup2", ["supervisor"])
    case_ids = [open_case(ledger) for _ in range(rounds)]

    barrier = SPAWN.Barrier(2)
    left, right = _run(
        race_confirm,
        [(db_url, "sup", case_ids, barrier), (db_url, "sup2", case_ids, barrier)],
        tmp_path,
    )
    for i in range(rounds):
        assert sorted([left["results"][i], right["results"][i]]) == ["conflict", "won"]

    with Engine(db_url) as engine:
        for i, case_id in enumerate(case_ids):
            case = engine.get_case(case_id)
            assert (case.state, case.version, case.history_seq) == ("plan", 2, 2)
            entries = engine.history(case_id)
            assert [(e.seq, e.trigger) for e in entries] == [(1, "open"), (2, "confirm")]
            winner = "sup" if left["results"][i] == "won" else "sup2"
            assert entries[1].actor == winner
        assert engine.verify_history() == 2 * rounds


def _stress(
    ledger: Engine, url: str, tmp_path: Path, processes: int, fires: int, cases: int = 20
) -> None:
    """issue 5's test: every accepted fire has exactly one history row, every refused one got
    ConflictError or TransitionRejected, and the counts add up."""
    ledger.register_workflow(PINGPONG, "pingpong.yaml")
    for i in range(processes):
        ledger.add_actor(f"w{i}", ["mover"])
    case_ids = [
        ledger.open_case("w0", unit="PROV", title=f"c{i}", workflow="pingpong").id
        for i in range(cases)
    ]

    barrier = SPAWN.Barrier(processes)
    results = _run(
        stress_fire, [(url, i, case_ids, fires, barrier) for i in range(processes)], tmp_path
    )
    assert [r["errors"] for r in results] == [[]] * processes
    accepted = [tuple(a) for r in results for a in r["accepted"]]
    refused = sum(r["conflicts"] + r["rejected"] for r in results)
    assert len(accepted) + refused == processes * fires
    assert refused > 0, "the processes never collided: the test did not race"
    assert sum(r["conflicts"] for r in results) > 0

    with Engine(url) as engine:
        assert engine.verify_history() == cases + len(accepted)
        rows = {
            (e.case_id, e.seq): e
            for case_id in case_ids
            for e in engine.history(case_id)
            if e.trigger != "open"
        }
        # One history row per accepted fire, and it is that fire's row (its comment).
        assert len(accepted) == len(rows)
        assert {(c, seq): comment for c, seq, comment in accepted} == {
            key: e.comment for key, e in rows.items()
        }
        per_case = Counter(c for c, _seq, _comment in accepted)
        for case_id in case_ids:
            case = engine.get_case(case_id)
            moves = per_case[case_id]
            assert (case.version, case.history_seq) == (1 + moves, 1 + moves)
            assert case.state == ("a" if moves % 2 == 0 else "b")


@pytest.mark.slow
@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)
def test_stress__8_processes_500_fires_on_20_cases(
    ledger: Engine, db_url: str, tmp_path: Path
) -> None:
    _stress(ledger, db_url, tmp_path, processes=8, fires=500)
