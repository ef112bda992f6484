"""The channels against real local servers: a standard-library HTTP server in a thread that
records what it receives and answers as told (as a webhook receiver, a DingTalk robot, a
WeCom robot), and aiosmtpd's SMTP server receiving the mail."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest
from notify_servers import (
    Answer,
    Mailbox,
    Recorder,
    closed_port,
    serving,
    smtp_server,
)

from rectiflow.notify.channels import (
    WeComChannel,
    build_channel,
    mask_url,
    message_id,
    parse_retry_after,
    verify_signature,
)
from rectiflow.notify.message import Channel, Event, Message, Recipient

CST = dt.timezone(dt.timedelta(hours=8))
SECRET = "whsec-0123456789abcdef"
TOKEN = "dt-token-5f3c9e0a7b"
DING_SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f9"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


# -- messages -----------------------------------------------------------------------------------


def event(case_id: int = 7, level: str = "supervise", **changes: Any) -> Event:
    values: dict[str, Any] = {
        "event": "escalation",
        "level": level,
        "level_label": "督办",
        "case_id": case_id,
        "title": "河道垃圾清理不及时",
        "unit": "CITY1",
        "unit_name": "一市",
        "state": "rectifying",
        "state_label": "整改中",
        "due_at": dt.datetime(2025, 3, 14, 18, 0, tzinfo=CST),
        "light": "red",
        "overdue_workdays": 3,
        "next_step": "请于三个工作日内报送整改情况",
        "at": dt.datetime(2025, 3, 19, 9, 0, tzinfo=CST),
    }
    values.update(changes)
    return Event(**values)


def message(
    key: str = "outbox-41:ops",
    recipient: Recipient | None = None,
    events: tuple[Event, ...] | None = None,
) -> Message:
    return Message(
        key=key,
        channel="ops",
        recipient=recipient or Recipient("张三", "supervisor", email="zhang@example.test"),
        events=events or (event(),),
        subject="【督办】一市：河道垃圾清理不及时",
        body="**督办** 案件 7：河道垃圾清理不及时\n\n已超期 3 个工作日。",
        at=dt.datetime(2025, 3, 19, 9, 0, 5, tzinfo=CST),
    )


# -- a local HTTP server ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Recorder]:
    with serving(Recorder()) as recorder:
        yield recorder


@pytest.fixture
def channels() -> Iterator[list[Channel]]:
    """Channels built in a test, closed after it."""
    made: list[Channel] = []
    yield made
    for channel in made:
        channel.close()


def make(made: list[Channel], type: str, timeout: float = 5.0, **options: Any) -> Channel:
    channel = build_channel(type, type, options, timeout=timeout)
    made.append(channel)
    return channel


# -- webhook ------------------------------------------------------------------------------------


def test_webhook__delivered_once_signed_exact_body(
    server: Recorder, channels: list[Channel]
) -> None:
    channel = make(channels, "webhook", url=server.url + "/hooks/rectiflow", secret=SECRET)
    result = channel.send(message())
    assert (result.outcome, result.code) == ("delivered", "200")
    [got] = server.received
    assert got.path == "/hooks/rectiflow"
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.headers["x-rectiflow-delivery"] == "outbox-41:ops"
    timestamp = got.headers["x-rectiflow-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signature = got.headers["x-rectiflow-signature"]
    assert verify_signature(SECRET, timestamp, got.body, signature, max_age=300)
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + got.body, "sha256")
    assert signature == "sha256=" + expected.hexdigest()
    assert "河道垃圾清理不及时".encode() in got.body  # UTF-8, not \u escapes
    assert got.json() == {
        "id": "outbox-41:ops",
        "event": "escalation",
        "level": "supervise",
        "case": {
            "id": 7,
            "title": "河道垃圾清理不及时",
            "unit": "CITY1",
            "state": "rectifying",
            "due_at": "2025-03-14T18:00:00+08:00",
            "light": "red",
        },
        "recipient": {"name": "张三", "role": "supervisor"},
        "at": "2025-03-19T09:00:05+08:00",
    }


def test_webhook__signature_rejects_tampering(server: Recorder, channels: list[Channel]) -> None:
    make(channels, "webhook", url=server.url, secret=SECRET).send(message())
    [got] = server.received
    stamp, signature = got.headers["x-rectiflow-timestamp"], got.headers["x-rectiflow-signature"]
    assert verify_signature(SECRET, int(stamp), got.body, signature)
    assert not verify_signature(SECRET, stamp, got.body + b" ", signature)
    assert not verify_signature("another-secret", stamp, got.body, signature)
    assert not verify_signature(SECRET, str(int(stamp) + 1), got.body, signature)
    assert not verify_signature(SECRET, stamp, got.body, signature.removeprefix("sha256="))
    assert not verify_signature(SECRET, stamp, got.body, None)
    assert not verify_signature(SECRET, "abc", got.body, signature)
    assert not verify_signature(
        SECRET, stamp, got.body, signature, max_age=60, now=time.time() + 600
    )


def test_webhook__digest_lists_every_event(server: Recorder, channels: list[Channel]) -> None:
    events = (event(7), event(8, level="warn", due_at=None, light=None))
    make(channels, "webhook", url=server.url, secret=SECRET).send(message(events=events))
    body = server.received[0].json()
    assert body["case"]["id"] == 7
    assert body["level"] == "supervise"
    assert [(e["level"], e["case"]["id"], e["case"]["due_at"]) for e in body["events"]] == [
        ("supervise", 7, "2025-03-14T18:00:00+08:00"),
        ("warn", 8, None),
    ]


def test_webhook__one_connection_kept_alive(server: Recorder, channels: list[Channel]) -> None:
    channel = make(channels, "webhook", url=server.url, secret=SECRET)
    for n in range(3):
        assert channel.send(message(key=f"k{n}")).outcome == "delivered"
    assert len({got.client_port for got in server.received}) == 1


@pytest.mark.parametrize(
    ("answer", "outcome", "code"),
    [
        (Answer(500, b"boom"), "retry", "500"),
        (Answer(502), "retry", "502"),
        (Answer(400, b"bad request"), "dead", "400"),
        (Answer(404), "dead", "404"),
        (Answer(301, headers={"Location": "http://127.0.0.1:1/"}), "dead", "301"),
        (Answer(204, b""), "delivered", "204"),
    ],
)
def test_webhook__http_status_outcomes(
    server: Recorder, channels: list[Channel], answer: Answer, outcome: str, code: str
) -> None:
    server.script(answer)
    result = make(channels, "webhook", url=server.url, secret=SECRET).send(message())
    assert (result.outcome, result.code) == (outcome, code)
    assert parse_retry_after(result.detail) is None
    assert SECRET not in result.detail


@pytest.mark.parametrize("status", [429, 503])
def test_webhook__retry_after_in_detail(
    server: Recorder, channels: list[Channel], status: int
) -> None:
    server.script(Answer(status, b"slow down", {"Retry-After": "7"}))
    result = make(channels, "webhook", url=server.url, secret=SECRET).send(message())
    assert (result.outcome, result.code) == ("retry", str(status))
    assert result.detail.startswith("retry-after=7; ")
    assert parse_retry_after(result.detail) == 7.0


def test_webhook__500_500_200(server: Recorder, channels: list[Channel]) -> None:
    server.script(Answer(500), Answer(500), Answer(200))
    channel = make(channels, "webhook", url=server.url, secret=SECRET)
    outcomes = [channel.send(message()).outcome for _ in range(3)]
    assert outcomes == ["retry", "retry", "delivered"]
    assert {got.headers["x-rectiflow-delivery"] for got in server.received} == {"outbox-41:ops"}


def test_webhook__slow_answer_times_out_as_retry(server: Recorder, channels: list[Channel]) -> None:
    server.script(Answer(200, delay=1.5))
    channel = make(channels, "webhook", timeout=0.3, url=server.url, secret=SECRET)
    started = time.monotonic()
    result = channel.send(message())
    assert time.monotonic() - started < 1.4
    assert (result.outcome, result.code) == ("retry", None)
    assert "timeout" in result.detail


def test_webhook__endpoint_down_is_retry(channels: list[Channel]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook?token=abc123secret"
    result = make(channels, "webhook", url=url, secret=SECRET).send(message())
    assert (result.outcome, result.code) == ("retry", None)
    assert "connection error" in result.detail
    assert "abc123secret" not in result.detail
    assert "token=***" in result.detail


def test_rate_limit__sends_wait_their_turn(server: Recorder, channels: list[Channel]) -> None:
    channel = make(channels, "webhook", url=server.url, secret=SECRET, rate_per_minute=120)
    started = time.monotonic()
    results = [channel.send(message(key=f"k{n}")) for n in range(4)]
    elapsed = time.monotonic() - started
    assert [r.outcome for r in results] == ["delivered"] * 4
    assert len(server.received) == 4  # waited, dropped none
    assert elapsed >= 3 * 0.5 - 0.05  # 120 a minute: one every half second


def test_rate_limit__defaults() -> None:
    made: list[Any] = [
        build_channel(
            "d", "dingtalk", {"url": "https://oapi.dingtalk.com/robot/send?access_token=x"}
        ),
        build_channel("w", "wecom", {"key": "k"}),
        build_channel("h", "webhook", {"url": "https://h.example/", "secret": "s"}),
        build_channel("m", "smtp", {"host": "localhost", "from": "a@b.example"}),
        build_channel("d2", "dingtalk", {"url": "https://x.example/", "rate_per_minute": 5}),
    ]
    try:
        assert [c.rate_per_minute for c in made] == [20, 20, None, None, 5]
    finally:
        for channel in made:
            channel.close()


# -- DingTalk -----------------------------------------------------------------------------------


def test_dingtalk__signed_markdown_at_mobile(server: Recorder, channels: list[Channel]) -> None:
    server.script(Answer(200, {"errcode": 0, "errmsg": "ok"}))
    url = f"{server.url}/robot/send?access_token={TOKEN}"
    channel = make(channels, "dingtalk", url=url, secret=DING_SECRET)
    who = Recipient("李四", "unit_head", mobile="13800138000")
    result = channel.send(message(recipient=who))
    assert (result.outcome, result.code) == ("delivered", "0")
    [got] = server.received
    assert got.path == "/robot/send"
    assert got.query["access_token"] == TOKEN
    # The sign recomputed as DingTalk's documentation does it, on the server side.
    stamp = got.query["timestamp"]
    assert abs(int(stamp) / 1000 - time.time()) < 60
    mac = hmac.new(DING_SECRET.encode(), f"{stamp}\n{DING_SECRET}".encode(), hashlib.sha256)
    assert got.query["sign"] == base64.b64encode(mac.digest()).decode()
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.json() == {
        "msgtype": "markdown",
        "markdown": {
            "title": "【督办】一市：河道垃圾清理不及时",
            "text": "**督办** 案件 7：河道垃圾清理不及时\n\n已超期 3 个工作日。\n\n@13800138000",
        },
        "at": {"atMobiles": ["13800138000"], "isAtAll": False},
    }
    for secret in (TOKEN, DING_SECRET, got.query["sign"]):
        assert secret not in result.detail
    assert "access_token=***" in result.detail


def test_dingtalk__without_mobile_or_secret(server: Recorder, channels: list[Channel]) -> None:
    server.script(Answer(200, {"errcode": 0, "errmsg": "ok"}))
    channel = make(channels, "dingtalk", url=f"{server.url}/robot/send?access_token={TOKEN}")
    assert channel.send(message(recipient=Recipient("王五", "staff"))).outcome == "delivered"
    [got] = server.received
    assert set(got.query) == {"access_token"}
    body = got.json()
    assert body["at"] == {"atMobiles": [], "isAtAll": False}
    assert not body["markdown"]["text"].endswith("@")


@pytest.mark.parametrize(
    ("answer", "outcome", "code"),
    [
        (Answer(200, {"errcode": 310000, "errmsg": "sign not match"}), "dead", "310000"),
        (Answer(200, {"errcode": 130101, "errmsg": "send too fast"}), "retry", "130101"),
        (Answer(200, {"errcode": -1, "errmsg": "系统繁忙"}), "retry", "-1"),
        (Answer(200, {"errcode": 300001, "errmsg": "token is not exist"}), "dead", "300001"),
        (Answer(200, b"<html>portal</html>"), "dead", "200"),
        (Answer(500), "retry", "500"),
        (Answer(429, headers={"Retry-After": "30"}), "retry", "429"),
        (Answer(403), "dead", "403"),
    ],
)
def test_dingtalk__answers(
    server: Recorder, channels: list[Channel], answer: Answer, outcome: str, code: str
) -> None:
    server.script(answer)
    url = f"{server.url}/robot/send?access_token={TOKEN}"
    result = make(channels, "dingtalk", url=url, secret=DING_SECRET).send(message())
    assert (result.outcome, result.code) == (outcome, code)
    assert TOKEN not in result.detail
    assert DING_SECRET not in result.detail
    assert "sign=" not in result.detail or "sign=***" in result.detail


# -- WeCom --------------------------------------------------------------------------------------


def test_wecom__markdown_delivered(server: Recorder, channels: list[Channel]) -> None:
    server.script(Answer(200, {"errcode": 0, "errmsg": "ok"}))
    channel = make(channels, "wecom", url=f"{server.url}/cgi-bin/webhook/send?key={WECOM_KEY}")
    result = channel.send(message(recipient=Recipient("赵六", "staff", wecom_id="ZhaoLiu")))
    assert (result.outcome, result.code) == ("delivered", "0")
    [got] = server.received
    assert got.query == {"key": WECOM_KEY}
    assert got.json() == {
        "msgtype": "markdown",
        "markdown": {
            "content": "**督办** 案件 7：河道垃圾清理不及时\n\n已超期 3 个工作日。\n<@ZhaoLiu>"
        },
    }
    assert WECOM_KEY not in result.detail
    assert "key=***" in result.detail


@pytest.mark.parametrize(
    ("answer", "outcome", "code"),
    [
        (Answer(200, {"errcode": 45009, "errmsg": "api freq out of limit"}), "retry", "45009"),
        (Answer(200, {"errcode": -1, "errmsg": "system busy"}), "retry", "-1"),
        (Answer(200, {"errcode": 93000, "errmsg": "invalid webhook url"}), "dead", "93000"),
        (Answer(502), "retry", "502"),
    ],
)
def test_wecom__answers(
    server: Recorder, channels: list[Channel], answer: Answer, outcome: str, code: str
) -> None:
    server.script(answer)
    url = f"{server.url}/cgi-bin/webhook/send?key={WECOM_KEY}"
    result = make(channels, "wecom", url=url).send(message())
    assert (result.outcome, result.code) == (outcome, code)
    assert WECOM_KEY not in result.detail


def test_wecom__key_builds_the_robot_url(channels: list[Channel]) -> None:
    channel = make(channels, "wecom", key=WECOM_KEY)
    assert isinstance(channel, WeComChannel)
    assert channel.url == f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"


# -- masking and building -----------------------------------------------------------------------


def test_mask_url() -> None:
    assert (
        mask_url("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=x%2B")
        == "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***"
    )
    assert (
        mask_url(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}")
        == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    )
    assert mask_url("https://user:pw@h.example:8443/p#frag") == "https://***@h.example:8443/p#***"
    assert mask_url("https://h.example/hooks") == "https://h.example/hooks"


def test_build_channel__refusals() -> None:
    with pytest.raises(ValueError, match="unknown type 'pager'"):
        build_channel("x", "pager", {})
    with pytest.raises(ValueError, match="'url' is required"):
        build_channel("x", "webhook", {"secret": "s"})
    with pytest.raises(ValueError, match="'secret' is required"):
        build_channel("x", "webhook", {"url": "https://h.example/"})
    with pytest.raises(ValueError, match="not an http") as raised:
        build_channel("x", "dingtalk", {"url": f"ftp://h.example/?access_token={TOKEN}"})
    assert TOKEN not in str(raised.value)
    with pytest.raises(ValueError, match="'key' or 'url'"):
        build_channel("x", "wecom", {})
    with pytest.raises(ValueError, match="security"):
        build_channel("x", "smtp", {"host": "h", "from": "a@b.c", "security": "tls"})
    with pytest.raises(ValueError, match="'from'"):
        build_channel("x", "smtp", {"host": "h", "password": "pw"})
    with pytest.raises(ValueError, match="rate_per_minute"):
        build_channel("x", "webhook", {"url": "https://h/", "secret": "s", "rate_per_minute": 0})


# -- SMTP ---------------------------------------------------------------------------------------


@pytest.fixture
def smtpd() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as running:
        yield running


def smtp_channel(made: list[Channel], port: int, **options: Any) -> Channel:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "督办系统 <rectiflow@example.internal>",
        **options,
    }
    return make(made, "smtp", **settings)


def test_smtp__utf8_mail_per_recipient(smtpd: tuple[Mailbox, int], channels: list[Channel]) -> None:
    mailbox, port = smtpd
    channel = smtp_channel(channels, port)
    zhang = Recipient("张三", "supervisor", email="zhang@example.test")
    li = Recipient("李四", "unit_head", email="li@example.test")
    first = channel.send(message(key="k-1", recipient=zhang))
    assert (first.outcome, first.code) == ("delivered", "250")
    assert channel.send(message(key="k-2", recipient=li)).outcome == "delivered"
    assert channel.send(message(key="k-1", recipient=zhang)).outcome == "delivered"  # a resend
    assert [(frm, tos) for frm, tos, _ in mailbox.mails] == [
        ("rectiflow@example.internal", ["zhang@example.test"]),
        ("rectiflow@example.internal", ["li@example.test"]),
        ("rectiflow@example.internal", ["zhang@example.test"]),
    ]
    raw = mailbox.mails[0][2]
    assert raw.isascii()  # headers encoded, body transfer-encoded
    mail = mailbox.parsed(0)
    assert mail["Subject"] == "【督办】一市：河道垃圾清理不及时"
    assert mail["From"].addresses[0].display_name == "督办系统"
    assert mail["From"].addresses[0].addr_spec == "rectiflow@example.internal"
    assert mail["To"].addresses[0].display_name == "张三"
    assert mail["X-Rectiflow-Delivery"] == "k-1"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == message().body
    assert email.utils.parsedate_to_datetime(mail["Date"]) == message().at
    ids = [mailbox.parsed(n)["Message-ID"] for n in range(3)]
    assert ids[0] == ids[2] != ids[1]
    assert ids[0] == message_id("k-1", "example.internal")
    assert ids[0].endswith("@example.internal>")


def test_smtp__no_email_is_dead(smtpd: tuple[Mailbox, int], channels: list[Channel]) -> None:
    mailbox, port = smtpd
    result = smtp_channel(channels, port).send(message(recipient=Recipient("王五", "staff")))
    assert (result.outcome, result.code, result.detail) == (
        "dead",
        None,
        "no email address for 王五",
    )
    assert mailbox.mails == []


@pytest.mark.parametrize(
    ("address", "outcome", "code"),
    [("busy@example.test", "retry", "450"), ("nobody@example.test", "dead", "550")],
)
def test_smtp__reply_codes(
    smtpd: tuple[Mailbox, int], channels: list[Channel], address: str, outcome: str, code: str
) -> None:
    mailbox, port = smtpd
    who = Recipient("张三", "staff", email=address)
    result = smtp_channel(channels, port).send(message(recipient=who))
    assert (result.outcome, result.code) == (outcome, code)
    assert code in result.detail
    assert mailbox.mails == []


def test_smtp__login(smtpd: tuple[Mailbox, int], channels: list[Channel]) -> None:
    mailbox, port = smtpd
    good = smtp_channel(channels, port, username="rectiflow", password="s3cret-pass")
    assert good.send(message()).outcome == "delivered"
    assert len(mailbox.mails) == 1
    bad = smtp_channel(channels, port, username="rectiflow", password="wrong-pass-123")
    result = bad.send(message())
    assert (result.outcome, result.code) == ("dead", "535")
    assert "wrong-pass-123" not in result.detail
    assert len(mailbox.mails) == 1


def test_smtp__server_down_is_retry(channels: list[Channel]) -> None:
    channel = smtp_channel(channels, closed_port(), username="u", password="s3cret-pass")
    result = channel.send(message())
    assert (result.outcome, result.code) == ("retry", None)
    assert "connection error" in result.detail
    assert "s3cret-pass" not in result.detail
