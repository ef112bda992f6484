"""The operators' commands of delivery, as subprocesses against a ledger file and a local
webhook server: actor contacts, outbox list/show/retry, notify check and notify test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import OWNER, Cli
from notify_servers import Answer, Recorder, serving

from rectiflow import Engine
from rectiflow.notify.config import load_config
from rectiflow.notify.dispatcher import Dispatcher

SECRET = "whsec-cli-0a9b8c7d6e"
ENV = {"OPS_SECRET": SECRET}


@pytest.fixture
def server() -> Iterator[Recorder]:
    with serving(Recorder(shape="webhook", secret=SECRET)) as recorder:
        yield recorder


def config_file(folder: Path, url: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(
        "channels:\n"
        "  - name: ops\n"
        "    type: webhook\n"
        f"    url: {url}\n"
        "    secret: env:OPS_SECRET\n"
        "    timeout: 2s\n"
        "retry: [1s]\n",
        "utf-8",
    )
    return path


def test_actor__add_and_edit_contacts(ledger: Cli) -> None:
    done = ledger.run(
        "actor", "add", "王芳", "--role", "owner", "--unit", "HRB",
        "--email", "wangfang@example.cn", "--mobile", "13900000000",
    )  # fmt: skip
    assert "王芳" in done.stdout
    done = ledger.run("actor", "edit", "王芳", "--dingtalk-id", "wangf", "--email", "")
    assert "dingtalk-id wangf" in done.stdout
    assert "wangfang@example.cn" not in done.stdout  # '' cleared it
    [found] = [a for a in ledger.json("actor", "list") if a["name"] == "王芳"]
    assert found["email"] is None
    assert (found["mobile"], found["dingtalk_id"], found["units"]) == (
        "13900000000",
        "wangf",
        ["HRB"],
    )
    assert "error" in ledger.run("actor", "edit", "nobody", "--email", "x@y.cn", code=3).stderr


def test_outbox__list_show_retry(ledger: Cli, server: Recorder, tmp_path: Path) -> None:
    url = f"sqlite:///{ledger.db}"
    moment = dt.datetime.fromisoformat("2026-03-02T10:00:00+08:00")
    later = moment + dt.timedelta(days=60)
    server.script(Answer(400, b"no such hook"))  # the first send is refused: dead at once
    with Engine(url) as engine:
        case = engine.open_case("赵敏", unit="HRB", title="路灯不亮", now=moment)
        engine.escalate_due(moment + dt.timedelta(days=4))  # the remind, to the owner
        cfg = load_config(config_file(tmp_path, server.url).read_text(), "notify.yaml", ENV)
        dispatcher = Dispatcher(engine, cfg)
        try:
            assert dispatcher.run_once(moment + dt.timedelta(days=4)).dead == 1
        finally:
            dispatcher.close()

    [row] = ledger.json("outbox", "list", "--status", "dead")
    assert (row["case"], row["level"], row["actor"], row["role"]) == (
        case.id,
        "remind",
        OWNER,
        "owner",
    )
    [dead] = row["deliveries"]
    assert (dead["recipient"], dead["channel"], dead["status"]) == (OWNER, "ops", "dead")
    assert dead["attempts_made"] == 1
    assert ledger.json("outbox", "list", "--status", "sent") == []
    assert ledger.json("outbox", "list", "--actor", OWNER, "--level", "remind") == [row]
    assert ledger.json("outbox", "list", "--actor", "nobody") == []
    shown = ledger.json("outbox", "show", str(dead["id"]))
    assert [(a["outcome"], a["code"]) for a in shown["attempts"]] == [("dead", "400")]
    assert "no such hook" in shown["attempts"][0]["detail"]
    assert SECRET not in str(shown)

    assert "1 deliveries due again" in ledger.run("outbox", "retry", str(dead["id"])).stdout
    [[again]] = [r["deliveries"] for r in ledger.json("outbox", "list")]
    assert (again["status"], again["attempts_made"]) == ("pending", 0)
    with Engine(url) as engine:  # refused once more: dead again
        server.script(Answer(400))
        dispatcher = Dispatcher(engine, cfg)
        try:
            assert dispatcher.run_once(later).dead == 1
        finally:
            dispatcher.close()
    assert "1 deliveries due again" in ledger.run("outbox", "retry", "--dead").stdout
    with Engine(url) as engine:  # now the endpoint takes it
        dispatcher = Dispatcher(engine, cfg)
        try:
            assert dispatcher.run_once(later).delivered == 1
        finally:
            dispatcher.close()
    [[sent]] = [r["deliveries"] for r in ledger.json("outbox", "list", "--status", "sent")]
    assert len(ledger.json("outbox", "show", str(sent["id"]))["attempts"]) == 3
    assert len(set(server.keys())) == 1
    ledger.run("outbox", "retry", str(sent["id"]), code=3)  # a sent delivery is not retried
    ledger.run("outbox", "retry", code=2)  # neither an ID nor --dead


def test_notify_check__each_problem_with_file_and_line(ledger: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "channels:\n"
        "  - name: ops\n"
        "    type: webhook\n"
        "    url: https://ops.example.internal/hooks\n"
        "    secret: env:RECTIFLOW_TEST_UNSET_SECRET\n"
        "    colour: red\n",
        "utf-8",
    )
    done = ledger.run("notify", "check", "--notify-config", str(path), code=2)
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"{path}:5: ")
    assert "RECTIFLOW_TEST_UNSET_SECRET is not set" in lines[0]
    assert lines[1].startswith(f"{path}:6: ")
    assert "unknown key 'colour'" in lines[1]
    good = config_file(tmp_path, "https://ops.example.internal/hooks")
    done = ledger.run("notify", "check", "--notify-config", str(good), env=ENV)
    assert done.stdout.strip().endswith(": ok")


def test_notify_test__sends_one_message(ledger: Cli, server: Recorder, tmp_path: Path) -> None:
    path = config_file(tmp_path, server.url + "/hooks")
    done = ledger.run("notify", "test", "ops", "--to", OWNER, "--notify-config", str(path), env=ENV)
    assert done.stdout.startswith("ops: delivered 200")
    [got] = server.received
    assert got.verified
    assert got.json()["event"] == "test"
    assert got.json()["recipient"]["name"] == OWNER
    assert SECRET not in done.stdout + done.stderr
    server.script(Answer(500))
    done = ledger.run(
        "notify", "test", "ops", "--to", OWNER, "--notify-config", str(path), env=ENV, code=1
    )
    assert "retry 500" in done.stdout
