"""The dispatcher end to end, on a SQLite file and on PostgreSQL, against real local servers:
a webhook receiver that checks signatures, DingTalk- and WeCom-shaped robots, aiosmtpd.
Times are passed as ``now`` so that retries, backoff and digests need no waiting."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import MONDAY, SHANGHAI, open_case, setup_ledger
from loguru import logger
from notify_servers import Answer, Recorder, closed_port, serving, smtp_server

from rectiflow import Engine
from rectiflow.engine.escalation import recipients
from rectiflow.notify.config import NotifyConfig, load_config
from rectiflow.notify.dispatcher import Dispatcher
from rectiflow.store.tables import notification_t

SECRET = "whsec-9f8e7d6c5b4a3210"
TOKEN = "dt-token-77aa88bb99cc"
DING_SECRET = "SEC7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1"
WECOM_KEY = "4f2c1e0a-93bd-4c55-8e71-0b6a2d9c3e18"
SMTP_PASSWORD = "s3cret-pass"
ENV = {
    "OPS_SECRET": SECRET,
    "DING_URL_TOKEN": TOKEN,
    "DING_SECRET": DING_SECRET,
    "WECOM_KEY": WECOM_KEY,
    "SMTP_PASSWORD": SMTP_PASSWORD,
}
SECRETS = (SECRET, TOKEN, DING_SECRET, WECOM_KEY, SMTP_PASSWORD)

#: Thursday 6 March 2025, 09:00 local: the remind level (to the owner) of a case opened on
#: MONDAY is due, nothing else.
THURSDAY = MONDAY + dt.timedelta(days=3)
#: Two months on: every level of such a case is due.
LATER = MONDAY + dt.timedelta(days=60)


@pytest.fixture
def engine(sql_url: str) -> Iterator[Engine]:
    with Engine(sql_url) as opened:
        opened.init()
        setup_ledger(opened)
        yield opened


@pytest.fixture
def server() -> Iterator[Recorder]:
    with serving(Recorder(shape="webhook", secret=SECRET)) as recorder:
        yield recorder


def config(body: str, retry: str = "[1s, 1s]") -> NotifyConfig:
    return load_config(f"channels:\n{body}\nretry: {retry}\n", "notify.yaml", ENV)


def webhook(url: str, *extra: str, name: str = "ops", timeout: str = "2s") -> str:
    lines = [
        f"  - name: {name}",
        "    type: webhook",
        f"    url: {url}",
        "    secret: env:OPS_SECRET",
        f"    timeout: {timeout}",
        *(f"    {line}" for line in extra),
    ]
    return "\n".join(lines)


def dispatcher(engine: Engine, cfg: NotifyConfig, **options: Any) -> Dispatcher:
    return Dispatcher(engine, cfg, rng=lambda: 0.5, **options)  # no jitter: delays as written


def remind(engine: Engine, unit: str = "CITY1") -> int:
    """A case whose remind level (one notification, to the owner) is recorded at THURSDAY."""
    case_id = open_case(engine, unit)
    assert engine.escalate_due(THURSDAY).by_level == {"remind": 1}
    return case_id


def seconds(n: float) -> dt.datetime:
    return THURSDAY + dt.timedelta(seconds=n)


def statuses(engine: Engine) -> list[tuple[str, str, int]]:
    return [(d.recipient, d.status, d.attempts) for d, _ in engine.store.list_deliveries()]


def delivered_at(engine: Engine) -> list[dt.datetime | None]:
    with engine.store._read() as conn:
        rows = conn.execute(sa.select(notification_t.c.delivered_at).order_by(notification_t.c.id))
        return [row[0] for row in rows]


# --- webhook ---------------------------------------------------------------------------------


def test_webhook__delivered_once_signed_with_its_key(engine: Engine, server: Recorder) -> None:
    case_id = remind(engine)
    assert engine.health(THURSDAY).undelivered == 1
    d = dispatcher(engine, config(webhook(server.url + "/hooks")))
    try:
        summary = d.run_once(THURSDAY)
        assert (summary.expanded, summary.delivered) == (1, 1)
        assert d.run_once(seconds(600)).delivered == 0  # nothing sent twice
    finally:
        d.close()
    [got] = server.received
    assert got.verified is True
    body = got.json()
    [(delivery, _note)] = engine.store.list_deliveries()
    assert got.headers["x-rectiflow-delivery"] == body["id"] == delivery.key
    assert body["event"] == "escalation"
    assert body["level"] == "remind"
    assert body["case"]["id"] == case_id
    assert body["recipient"] == {"name": "own", "role": "owner"}
    assert (delivery.status, delivery.attempts, delivery.sent_at) == ("sent", 1, THURSDAY)
    assert delivered_at(engine) == [THURSDAY]
    assert engine.health(THURSDAY).undelivered == 0


def test_webhook__500_500_200_delivered_after_three_attempts(
    engine: Engine, server: Recorder
) -> None:
    remind(engine)
    server.script(Answer(500, b"boom"), Answer(500, b"boom"), Answer(200))
    d = dispatcher(engine, config(webhook(server.url)))
    try:
        assert d.run_once(seconds(0)).retrying == 1
        assert d.run_once(seconds(0.9)).retrying == 0  # not due before its backoff
        assert d.run_once(seconds(1)).retrying == 1
        assert d.run_once(seconds(1.9)).delivered == 0
        assert d.run_once(seconds(2)).delivered == 1
    finally:
        d.close()
    assert len(set(server.keys())) == 1
    assert len(server.keys()) == 3
    [(delivery, _)] = engine.store.list_deliveries()
    found, attempts = engine.store.get_delivery(delivery.id)
    assert (found.status, found.attempts, found.last_error) == ("sent", 3, None)
    assert [(a.outcome, a.code) for a in attempts] == [
        ("retry", "500"),
        ("retry", "500"),
        ("delivered", "200"),
    ]
    assert engine.health(seconds(2)).undelivered == 0


def test_webhook__endpoint_down_backs_off_then_dead_then_retry_delivers(engine: Engine) -> None:
    remind(engine)
    port = closed_port()
    d = dispatcher(engine, config(webhook(f"http://127.0.0.1:{port}/hooks")))
    try:
        assert d.run_once(seconds(0)).retrying == 1
        [(delivery, _)] = engine.store.list_deliveries()
        assert delivery.next_attempt_at == seconds(1)  # the first backoff
        assert d.run_once(seconds(1)).retrying == 1
        assert d.run_once(seconds(2)).dead == 1  # the schedule [1s, 1s] is used up
        found, attempts = engine.store.get_delivery(delivery.id)
        assert (found.status, found.attempts) == ("dead", 3)
        assert [a.outcome for a in attempts] == ["retry", "retry", "dead"]
        assert "connection error" in attempts[0].detail
        assert "gave up after 3 attempts" in (found.last_error or "")
        assert d.run_once(seconds(100)).dead == 0  # dead stays dead
        assert engine.health(seconds(100)).undelivered == 1

        with serving(Recorder(port, shape="webhook", secret=SECRET)) as up:
            assert engine.store.retry_deliveries(None, seconds(200)) == 1  # outbox retry --dead
            assert d.run_once(seconds(200)).delivered == 1
        assert up.keys() == [delivery.key]
    finally:
        d.close()
    assert engine.store.get_delivery(delivery.id)[0].status == "sent"
    assert engine.health(seconds(200)).undelivered == 0


def test_webhook__400_is_dead_at_once(engine: Engine, server: Recorder) -> None:
    remind(engine)
    server.script(Answer(400, b"bad request"))
    d = dispatcher(engine, config(webhook(server.url)))
    try:
        assert d.run_once(seconds(0)).dead == 1
        assert d.run_once(seconds(100)).dead == 0
    finally:
        d.close()
    assert len(server.received) == 1
    assert statuses(engine) == [("own", "dead", 1)]


# --- DingTalk and WeCom ----------------------------------------------------------------------


def dingtalk(url: str, *extra: str) -> str:
    return "\n".join([
        "  - name: group", "    type: dingtalk", f"    url: {url}", "    secret: env:DING_SECRET",
        "    timeout: 2s", "    rate_per_minute: 6000", *(f"    {line}" for line in extra),
    ])  # fmt: skip


def test_dingtalk__signed_at_mobile_errcode_dead_and_130101_retry(engine: Engine) -> None:
    engine.set_contacts("own", mobile="13800138000")
    remind(engine)
    remind(engine, "COUNTY1")  # the owner of CITY1 gets this one too (nearest unit up)
    with serving(Recorder(shape="dingtalk", secret=DING_SECRET)) as robot:
        robot.script(
            Answer(200, {"errcode": 300001, "errmsg": "token is not exist"}),
            Answer(200, {"errcode": 130101, "errmsg": "send too fast"}),
        )
        cfg = config(dingtalk(robot.url + "/robot/send?access_token=" + TOKEN))
        d = dispatcher(engine, cfg)
        try:
            summary = d.run_once(seconds(0))
            assert (summary.dead, summary.retrying) == (1, 1)
            assert d.run_once(seconds(1)).delivered == 1
        finally:
            d.close()
    assert [r.verified for r in robot.received] == [True, True, True]
    assert {r.query["access_token"] for r in robot.received} == {TOKEN}
    body = robot.received[-1].json()
    assert body["msgtype"] == "markdown"
    assert body["at"]["atMobiles"] == ["13800138000"]
    assert "提醒" in body["markdown"]["title"]
    assert sorted(s for _, s, _ in statuses(engine)) == ["dead", "sent"]
    for delivery, _ in engine.store.list_deliveries():
        _, attempts = engine.store.get_delivery(delivery.id)
        for text in (delivery.last_error or "", *(a.detail for a in attempts)):
            assert TOKEN not in text
            assert DING_SECRET not in text
    dead = [d for d, _ in engine.store.list_deliveries(status="dead")]
    assert dead[0].last_code == "300001"


def test_dingtalk__wrong_secret_is_refused_by_the_robot(engine: Engine) -> None:
    remind(engine)
    with serving(Recorder(shape="dingtalk", secret="SEC-another-robot")) as robot:
        d = dispatcher(engine, config(dingtalk(robot.url + "/robot/send?access_token=x")))
        try:
            assert d.run_once(seconds(0)).dead == 1
        finally:
            d.close()
    [(delivery, _)] = engine.store.list_deliveries()
    assert (delivery.status, delivery.last_code) == ("dead", "310000")
    assert DING_SECRET not in (delivery.last_error or "")


def test_wecom__markdown_to_the_robot_errcode_dead(engine: Engine) -> None:
    engine.set_contacts("own", wecom_id="ZhangSan")
    remind(engine)
    remind(engine)
    with serving(Recorder(shape="wecom")) as robot:
        robot.script(Answer(200, {"errcode": 0}), Answer(200, {"errcode": 93000, "errmsg": "bad"}))
        body = "\n".join([
            "  - name: wx", "    type: wecom", f"    url: {robot.url}/cgi-bin/webhook/send",
            "    key: env:WECOM_KEY", "    timeout: 2s", "    rate_per_minute: 6000",
        ])  # fmt: skip
        d = dispatcher(engine, config(body))
        try:
            summary = d.run_once(seconds(0))
        finally:
            d.close()
    assert (summary.delivered, summary.dead) == (1, 1)
    assert [r.query for r in robot.received] == [{"key": WECOM_KEY}] * 2
    content = robot.received[0].json()["markdown"]["content"]
    assert "提醒" in content
    assert content.endswith("<@ZhangSan>")
    for delivery, _ in engine.store.list_deliveries():
        assert WECOM_KEY not in (delivery.last_error or "")


# --- SMTP ------------------------------------------------------------------------------------


def test_smtp__utf8_mail_per_recipient_with_an_email(engine: Engine) -> None:
    engine.set_contacts("own", email="own@example.test")
    engine.set_contacts("sup", email="sup@example.test")  # head has no email
    open_case(engine)
    engine.escalate_due(LATER)  # remind, warn (owner and head), supervise, ... (supervisor)
    with smtp_server() as (mailbox, port):
        body = "\n".join([
            "  - name: mail", "    type: smtp", "    host: 127.0.0.1", f"    port: {port}",
            "    security: none", "    username: rectiflow", "    password: env:SMTP_PASSWORD",
            "    from: 督办系统 <rectiflow@example.internal>", "    levels: [warn, supervise]",
        ])  # fmt: skip
        d = dispatcher(engine, config(body))
        try:
            d.run_once(LATER)
        finally:
            d.close()
    assert sorted(tos[0] for _, tos, _ in mailbox.mails) == [
        "own@example.test",
        "sup@example.test",
    ]
    subjects = {mailbox.parsed(i)["To"].addresses[0].addr_spec: mailbox.parsed(i)["Subject"]
                for i in range(len(mailbox.mails))}  # fmt: skip
    assert subjects["own@example.test"].startswith("【预警】")
    assert subjects["sup@example.test"].startswith("【督办】")
    assert "head" not in [d.recipient for d, _ in engine.store.list_deliveries(status="dead")]
    assert all(raw.isascii() for _, _, raw in mailbox.mails)


# --- digest, recipients, routing -------------------------------------------------------------


def test_digest__a_days_events_to_one_person_in_one_message_at_0830(
    engine: Engine, server: Recorder
) -> None:
    first, second = open_case(engine), open_case(engine)
    engine.escalate_due(THURSDAY)  # two reminds to the owner, Thursday 09:00
    third = open_case(engine, now=MONDAY + dt.timedelta(hours=1))
    afternoon = THURSDAY + dt.timedelta(hours=6)
    engine.escalate_due(afternoon)  # and a third at 15:00
    d = dispatcher(engine, config(webhook(server.url, 'digest: "08:30"')))
    friday_0830 = dt.datetime(2025, 3, 7, 8, 30, tzinfo=SHANGHAI)
    try:
        assert d.run_once(THURSDAY).delivered == 0  # held for the digest
        assert d.run_once(afternoon).delivered == 0
        assert d.run_once(friday_0830 - dt.timedelta(minutes=1)).delivered == 0
        assert d.run_once(friday_0830).delivered == 3
        assert d.run_once(friday_0830 + dt.timedelta(hours=1)).delivered == 0
    finally:
        d.close()
    [got] = server.received
    body = got.json()
    assert body["recipient"]["name"] == "own"
    assert sorted(e["case"]["id"] for e in body["events"]) == sorted([first, second, third])
    assert got.verified
    assert engine.health(friday_0830).undelivered == 0


def test_digest__to_a_chinese_name(engine: Engine, server: Recorder) -> None:
    engine.add_actor("李四", ["owner"], ["CITY2"])
    open_case(engine, "CITY2")
    open_case(engine, "CITY2")
    engine.escalate_due(THURSDAY)
    d = dispatcher(engine, config(webhook(server.url, 'digest: "08:30"')))
    try:
        assert d.run_once(THURSDAY).delivered == 0
        assert d.run_once(THURSDAY + dt.timedelta(days=1)).delivered == 2
    finally:
        d.close()
    [got] = server.received
    assert got.json()["recipient"]["name"] == "李四"
    assert got.headers["x-rectiflow-delivery"] == got.json()["id"]
    assert got.json()["id"].isascii()


def test_recipients__nearest_unit_first_then_unbound() -> None:
    from rectiflow.engine.types import Actor

    def actor(name: str, *paths: str) -> Actor:
        return Actor(name, ("owner",), tuple(p.strip("/").split("/")[-1] for p in paths), paths)

    county, city, free = actor("c", "/P/C1/K1/"), actor("m", "/P/C1/"), actor("f")
    others = [actor("x", "/P/C2/"), Actor("s", ("supervisor",), (), ())]
    people = [county, city, free, *others]
    assert recipients(people, "owner", "/P/C1/K1/") == ["c"]
    assert recipients(people, "owner", "/P/C1/") == ["m"]
    assert recipients(people, "owner", "/P/C1/K2/") == ["m"]  # none in K2: its parent's
    assert recipients(people, "owner", "/P/C3/") == ["f"]  # none up the tree: unbound ones
    assert recipients(people, "supervisor", "/P/C1/") == ["s"]


def test_recipients__owner_of_the_unit_then_parent_then_unbound(
    engine: Engine, server: Recorder
) -> None:
    engine.add_actor("county_owner", ["owner"], ["COUNTY1"])
    engine.add_actor("anywhere_owner", ["owner"])
    for unit in ("COUNTY1", "CITY1", "CITY2"):
        open_case(engine, unit)
    engine.escalate_due(THURSDAY)
    d = dispatcher(engine, config(webhook(server.url)))
    try:
        d.run_once(THURSDAY)
    finally:
        d.close()
    got = {(r.json()["case"]["unit"], r.json()["recipient"]["name"]) for r in server.received}
    assert got == {
        ("COUNTY1", "county_owner"),
        ("CITY1", "own"),
        ("CITY2", "anywhere_owner"),
    }


def test_routing__by_levels(engine: Engine, server: Recorder) -> None:
    open_case(engine)
    engine.escalate_due(LATER)
    cfg = config(
        webhook(server.url + "/all", name="all")
        + "\n"
        + webhook(server.url + "/high", "levels: [supervise, accountability]", name="high")
    )
    d = dispatcher(engine, cfg)
    try:
        d.run_once(LATER)
    finally:
        d.close()
    by_path = Counter((r.path, r.json()["level"]) for r in server.received)
    assert by_path == {
        ("/all", "remind"): 1,
        ("/all", "warn"): 2,  # the owner and the head
        ("/all", "supervise"): 1,
        ("/all", "notify_public"): 1,
        ("/all", "accountability"): 1,
        ("/high", "supervise"): 1,
        ("/high", "accountability"): 1,
    }
    assert engine.health(LATER).undelivered == 0


def test_notification_is_delivered_when_all_its_deliveries_are_sent(
    engine: Engine, server: Recorder
) -> None:
    remind(engine)
    with serving(Recorder(shape="webhook", secret=SECRET)) as other:
        other.script(Answer(503))
        cfg = config(webhook(server.url, name="a") + "\n" + webhook(other.url, name="b"))
        d = dispatcher(engine, cfg)
        try:
            summary = d.run_once(seconds(0))
            assert (summary.delivered, summary.retrying) == (1, 1)
            assert delivered_at(engine) == [None]
            assert engine.health(seconds(0)).undelivered == 1
            assert d.run_once(seconds(1)).delivered == 1
        finally:
            d.close()
    assert delivered_at(engine) == [seconds(1)]
    assert engine.health(seconds(1)).undelivered == 0


def test_routing__a_level_no_channel_carries_is_not_left_undelivered(
    engine: Engine, server: Recorder
) -> None:
    remind(engine)
    d = dispatcher(engine, config(webhook(server.url, "levels: [supervise]")))
    try:
        assert d.run_once(THURSDAY).expanded == 0
    finally:
        d.close()
    assert server.received == []
    assert delivered_at(engine) == [THURSDAY]  # nothing to send, by the config
    assert engine.health(THURSDAY).undelivered == 0


def test_routing__nobody_reachable_stays_undelivered(engine: Engine) -> None:
    remind(engine)  # to the owner, who has no email address
    with smtp_server() as (mailbox, port):
        body = "\n".join([
            "  - name: mail", "    type: smtp", "    host: 127.0.0.1", f"    port: {port}",
            "    security: none", "    from: rectiflow@example.internal",
        ])  # fmt: skip
        d = dispatcher(engine, config(body))
        try:
            d.run_once(THURSDAY)
        finally:
            d.close()
    assert mailbox.mails == []
    assert engine.store.list_deliveries() == []
    assert engine.health(THURSDAY).undelivered == 1  # health shows nobody heard of it


def test_rate_limit__sends_wait_their_turn_none_dropped(engine: Engine) -> None:
    for _ in range(4):
        remind(engine)
    with serving(Recorder(shape="dingtalk", secret=DING_SECRET)) as robot:
        cfg = config(dingtalk(robot.url + "/robot/send?access_token=t").replace("6000", "240"))
        d = dispatcher(engine, cfg)
        started = time.monotonic()
        try:
            assert d.run_once(seconds(0)).delivered == 4
        finally:
            d.close()
        elapsed = time.monotonic() - started
    assert len(robot.received) == 4
    assert elapsed >= 3 * 0.25 - 0.05  # 240 a minute: one every quarter second


def test_lease__a_slow_batch_keeps_its_deliveries(engine: Engine, server: Recorder) -> None:
    for _ in range(5):
        remind(engine)
    server.default = Answer(200, delay=0.4)  # the batch takes 2 s, the lease is 1 s
    cfg = config(webhook(server.url))
    slow = dispatcher(engine, cfg, lease=dt.timedelta(seconds=1))
    other = dispatcher(engine, cfg, lease=dt.timedelta(seconds=1))
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(slow.run_once(seconds(0))))
    try:
        thread.start()
        time.sleep(1.5)  # past the first lease: the slow one renewed it
        assert other.run_once(seconds(1.5)).delivered == 0
        thread.join(10)
    finally:
        slow.close()
        other.close()
    assert done[0].delivered == 5
    assert Counter(Counter(server.keys()).values()) == {1: 5}  # none sent twice


# --- secrets ---------------------------------------------------------------------------------


def test_secrets__never_in_rows_attempts_or_log_lines(engine: Engine) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m) + repr(m.record["extra"])), level="DEBUG")
    logger.enable("rectiflow")
    try:
        remind(engine)
        with serving(Recorder()) as leaky:
            # Servers that echo what they were sent: the URL with its token, the secret.
            leaky.default = Answer(500, f"bad token {TOKEN} key={WECOM_KEY} {SECRET}".encode())
            body = "\n".join([
                webhook(f"{leaky.url}/hook?token={TOKEN}", name="ops"),
                dingtalk(f"{leaky.url}/robot/send?access_token={TOKEN}"),
                "  - name: wx", "    type: wecom", f"    url: {leaky.url}/send",
                "    key: env:WECOM_KEY", "    timeout: 2s", "    rate_per_minute: 6000",
            ])  # fmt: skip
            d = dispatcher(engine, config(body))
            try:
                for n in range(3):
                    d.run_once(seconds(n))
            finally:
                d.close()
        with serving(Recorder()) as refuse:
            refuse.default = Answer(400, f"no such robot {TOKEN}".encode())
            body = dingtalk(f"{refuse.url}/robot/send?access_token={TOKEN}")
            d = dispatcher(engine, config(body))
            try:
                engine.store.retry_deliveries(None, seconds(10))
                d.run_once(seconds(10))
            finally:
                d.close()
    finally:
        logger.remove(sink)
        logger.disable("rectiflow")
    texts = list(lines)
    rows = engine.store.list_deliveries()
    assert len(rows) == 3
    assert all(d.status == "dead" for d, _ in rows)
    for delivery, _ in rows:
        _, attempts = engine.store.get_delivery(delivery.id)
        assert len(attempts) >= 3
        texts += [delivery.last_error or "", delivery.key, *(a.detail for a in attempts)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


# --- two dispatchers -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("sql_url", ["postgres"], indirect=True)
def test_two_dispatchers_on_postgres_deliver_each_once(
    engine: Engine, sql_url: str, server: Recorder
) -> None:
    engine.add_actor("sup2", ["supervisor"])  # a case: 6 notifications, 9 deliveries
    cases = 23  # 207 deliveries
    for n in range(cases):
        open_case(engine, now=MONDAY + dt.timedelta(minutes=n))
    engine.escalate_due(LATER)
    cfg = config(webhook(server.url))
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        with Engine(sql_url) as mine:
            d = dispatcher(mine, cfg, batch_size=10)
            try:
                barrier.wait(30)
                total = 0
                while (summary := d.run_once(LATER)).delivered or summary.expanded:
                    total += summary.delivered
                results.append(total)
            except BaseException as exc:
                results.append(exc)
            finally:
                d.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, int) for r in results), results
    deliveries = engine.store.list_deliveries()
    assert len(deliveries) == cases * 9
    keys = Counter(server.keys())
    assert keys == {d.key: 1 for d, _ in deliveries}  # each exactly once
    assert sum(results) == len(deliveries)
    assert all(r > 0 for r in results)  # both took part
    assert engine.health(LATER).undelivered == 0
