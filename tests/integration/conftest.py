"""Backends for the contract suite: the same tests on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from rectiflow import Engine

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = ["memory", *SQL_BACKENDS]


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "memory":
        if importlib.util.find_spec("rectiflow.store.memory") is None:
            pytest.skip("the in-memory store (rectiflow/store/memory.py) does not exist yet")
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=ALL_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database, once per backend."""
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database that other OS processes can open too."""
    return _url(request.param, request, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    with Engine(db_url) as opened:
        opened.init()
        yield opened


@pytest.fixture
def ledger(engine: Engine) -> Engine:
    """An engine with a unit tree and one actor per role.

    PROV ─┬─ CITY1 ── COUNTY1
          ├─ CITY10        (a sibling whose code starts like CITY1's)
          └─ CITY2
    """
    engine.add_unit("PROV", "Province")
    engine.add_unit("CITY1", "City 1", parent="PROV")
    engine.add_unit("COUNTY1", "County 1", parent="CITY1")
    engine.add_unit("CITY10", "City 10", parent="PROV")
    engine.add_unit("CITY2", "City 2", parent="PROV")
    engine.add_actor("sup", ["supervisor"])  # no unit: acts everywhere
    engine.add_actor("rep", ["reporter"], ["CITY1"])
    engine.add_actor("own", ["owner"], ["CITY1"])
    engine.add_actor("head", ["head"], ["CITY1"])
    engine.add_actor("rev", ["reviewer"])
    engine.add_actor("ver", ["verifier"])
    return engine
