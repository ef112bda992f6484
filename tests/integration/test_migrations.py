"""Migrations: an older database upgrades with every row intact, and the migrations build
exactly the schema the models describe. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from integration_support import init_database, local

from rectiflow import Engine
from rectiflow.engine import history
from rectiflow.engine.spec import parse_workflow
from rectiflow.store.sql import SqlStore
from rectiflow.store.tables import metadata

T0 = local(2026, 3, 2).astimezone(dt.UTC)  # written into the old tables as UTC, as 0001 did


def _fill_first_revision(url: str) -> None:
    """Write a small ledger with the tables as revision 0001 had them."""
    store = SqlStore(url)
    store.create_schema("0001")
    shipped = Path(__file__).resolve().parents[2] / "rectiflow/workflows/rectification.yaml"
    spec = parse_workflow(shipped.read_text("utf-8"), "rectification.yaml")
    old = sa.MetaData()
    stamp = (lambda d: d.isoformat()) if url.startswith("sqlite") else (lambda d: d)
    with store.engine.begin() as conn:
        old.reflect(conn)
        t = old.tables
        conn.execute(t["unit"].insert(), [
            {"code": "HLJ", "name": "黑龙江省", "parent": None, "path": "/HLJ/"},
            {"code": "HRB", "name": "哈尔滨市", "parent": "HLJ", "path": "/HLJ/HRB/"},
        ])  # fmt: skip
        conn.execute(t["actor"].insert(), [{"name": "督办员", "roles": "supervisor"}])
        conn.execute(t["workflow"].insert(), [{
            "name": spec.name, "version": spec.version, "digest": spec.digest,
            "source_text": spec.source_text, "registered_at": stamp(T0),
        }])  # fmt: skip
        first = history.make_entry(
            1, 1, "open", None, "identify", "督办员", T0, None, history.GENESIS
        )
        conn.execute(t["rcase"].insert(), [{
            "id": 1, "workflow": "rectification", "workflow_version": 1, "unit": "HRB",
            "title": "窗口服务推诿扯皮", "description": None, "category": "作风", "source": "暗访",
            "severity": "high", "state": "identify", "version": 1, "created_at": stamp(T0),
            "stage_entered_at": stamp(T0), "due_at": stamp(T0 + dt.timedelta(days=7)),
            "due": None, "history_seq": 1, "last_hash": first.hash,
        }])  # fmt: skip
        conn.execute(t["history"].insert(), [{
            "case_id": 1, "seq": 1, "trigger": "open", "source": None, "dest": "identify",
            "actor": "督办员", "at": stamp(T0), "comment": None, "prev_hash": history.GENESIS,
            "hash": first.hash,
        }])  # fmt: skip
        conn.execute(t["measure"].insert(), [{
            "id": 1, "case_id": 1, "text": "推行首问负责制", "owner": "督办员", "due": None,
            "done_at": None, "evidence_path": None, "evidence_sha256": None,
        }])  # fmt: skip
    store.close()


def test_migrations__upgrade_keeps_every_row(sql_url: str) -> None:
    _fill_first_revision(sql_url)
    with Engine(sql_url) as engine:
        assert engine.schema_revision()[0] == "0001"
        engine.init()
        current, head = engine.schema_revision()
        assert current == head
        case = engine.get_case(1)
        assert (case.title, case.unit, case.state, case.severity) == (
            "窗口服务推诿扯皮",
            "HRB",
            "identify",
            "high",
        )
        assert case.created_at == T0
        assert case.due_at == T0 + dt.timedelta(days=7)
        assert (case.visit, case.next_level, case.pause_credit, case.paused_at) == (1, 0, 0, None)
        assert [m.text for m in engine.measures(1)] == ["推行首问负责制"]
        assert [u.code for u in engine.list_units()] == ["HLJ", "HRB"]
        assert engine.verify_history() == 1
        # the upgraded case goes on living
        moved = engine.fire(1, "confirm", "督办员", now=T0 + dt.timedelta(days=1))
        assert moved.state == "plan"
        assert moved.due_at is not None
        assert engine.verify_history() == 2


def test_migrations__build_the_schema_of_the_models(sql_url: str) -> None:
    store = SqlStore(sql_url)
    store.create_schema()
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    store.close()
    assert diff == []


SHIPPED = [("rectification", 1), ("rectification", 2)]


def test_migrations__init_is_idempotent(sql_url: str) -> None:
    with Engine(sql_url) as engine:
        engine.init()
        engine.init()
        assert engine.schema_revision()[0] == engine.schema_revision()[1]
        assert [(w.name, w.version) for w in engine.list_workflows()] == SHIPPED


@pytest.mark.slow
def test_migrations__concurrent_init_from_several_processes(sql_url: str, tmp_path: Path) -> None:
    # Several daemons' `ExecStartPre=rectiflow init` on one fresh database at once.
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    outs = [tmp_path / f"init{i}.json" for i in range(4)]
    workers = [
        spawn.Process(target=init_database, args=(sql_url, barrier, str(out))) for out in outs
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [json.loads(out.read_text("utf-8"))["error"] for out in outs] == [None] * 4
    with Engine(sql_url) as engine:
        assert engine.schema_revision()[0] == engine.schema_revision()[1]
        assert [(w.name, w.version) for w in engine.list_workflows()] == SHIPPED
