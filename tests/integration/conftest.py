"""Backends for the contract suite: the same tests on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import ALL_BACKENDS, SQL_BACKENDS, setup_ledger

from rectiflow import Engine


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
    """An engine with the shared ledger (integration_support.setup_ledger): a unit tree
    PROV > CITY1 > COUNTY1, CITY10, CITY2 and one actor per role. On the SQL backends
    only: ``@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)``."""
    return setup_ledger(engine)
