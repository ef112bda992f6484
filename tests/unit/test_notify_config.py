"""The delivery config: channels, env secrets, retry, digest, routing, templates, masking.

Every refusal names the file, the line and the key; line numbers in the expected messages
refer to the texts below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import string
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rectiflow.engine.errors import NotFound, ValidationError
from rectiflow.notify.config import (
    DEFAULT_RETRY,
    ChannelConfig,
    NotifyConfig,
    check_config,
    load_config,
    mask,
)
from rectiflow.notify.message import Event, Recipient
from rectiflow.notify.templates import SAMPLE_EVENTS, render

FULL = """\
channels:
  - name: ops
    type: webhook
    url: https://ops.example.internal/hooks/rectiflow
    secret: env:RECTIFLOW_OPS_SECRET
    levels: [supervise, notify_public, accountability]
    timeout: 5s
  - name: group
    type: dingtalk
    url: env:DINGTALK_ROBOT_URL
    secret: env:DINGTALK_ROBOT_SECRET
    digest: "08:30"
    mention_all: true
  - name: wx
    type: wecom
    key: env:WECOM_KEY
    events: [escalation, dispatch]
    rate_per_minute: 18
  - name: mail
    type: smtp
    host: smtp.example.internal
    port: 587
    security: starttls
    username: rectiflow
    password: env:SMTP_PASSWORD
    from: 督办系统 <rectiflow@example.internal>
retry: [1m, 5m, 30m, 2h, 12h]
"""

ENV = {
    "RECTIFLOW_OPS_SECRET": "ops-signing-secret",
    "DINGTALK_ROBOT_URL": "https://oapi.dingtalk.com/robot/send?access_token=tok3n-dingtalk",
    "DINGTALK_ROBOT_SECRET": "SECdingtalk-secret",
    "WECOM_KEY": "wecom-key-1234",
    "SMTP_PASSWORD": "p@ss word+1",
}

SH = ZoneInfo("Asia/Shanghai")
ZHANG = Recipient(name="张伟", role="owner", email="zhangwei@example.internal")


def load(text: str, env: dict[str, str] | None = None) -> NotifyConfig:
    return load_config(text, "notify.yaml", ENV if env is None else env)


def refusal(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        load(text, env)
    return str(info.value)


def event(**changes: object) -> Event:
    return dataclasses.replace(SAMPLE_EVENTS[0], **changes)  # type: ignore[arg-type]


# --- channels ------------------------------------------------------------------------------


def test_a_full_config_of_each_channel_type_parses() -> None:
    config = load(FULL)
    assert config.path == "notify.yaml"
    assert [(c.name, c.type, c.line) for c in config.channels] == [
        ("ops", "webhook", 2),
        ("group", "dingtalk", 8),
        ("wx", "wecom", 14),
        ("mail", "smtp", 19),
    ]
    ops, group, wx, mail = config.channels
    assert ops.options == {
        "url": "https://ops.example.internal/hooks/rectiflow",
        "secret": "ops-signing-secret",
        "timeout": 5.0,
    }
    assert ops.levels == {"supervise", "notify_public", "accountability"}
    assert ops.events is None
    assert ops.digest is None
    assert group.options["url"] == ENV["DINGTALK_ROBOT_URL"]
    assert group.options["secret"] == "SECdingtalk-secret"
    assert group.options["mention_all"] is True
    assert group.options["rate_per_minute"] == 20  # DingTalk's limit per robot
    assert group.digest == dt.time(8, 30)
    assert group.levels is None
    assert wx.options["url"] == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-1234"
    )
    assert wx.options["rate_per_minute"] == 18
    assert wx.events == {"escalation", "dispatch"}
    assert mail.options == {
        "host": "smtp.example.internal",
        "port": 587,
        "security": "starttls",
        "username": "rectiflow",
        "password": "p@ss word+1",
        "from": "督办系统 <rectiflow@example.internal>",
        "timeout": 10.0,
    }
    assert config.retry == (60.0, 300.0, 1800.0, 7200.0, 43200.0)
    assert config.templates == {}
    assert config.channel("mail") is mail
    with pytest.raises(NotFound):
        config.channel("fax")


def test_smtp_defaults_follow_the_security() -> None:
    text = """\
channels:
  - name: mail
    type: smtp
    host: smtp.example.internal
    security: ssl
    from: rectiflow@example.internal
"""
    (mail,) = load(text).channels
    assert (mail.options["security"], mail.options["port"]) == ("ssl", 465)
    assert "username" not in mail.options
    (plain,) = load(text.replace("ssl", "none")).channels
    assert plain.options["port"] == 25


def test_defaults_when_retry_and_templates_are_left_out() -> None:
    config = load("channels: []\n")
    assert config.channels == ()
    assert config.retry == DEFAULT_RETRY == (60, 300, 1800, 7200, 43200)


def test_routing_by_level_and_event() -> None:
    ops, group, wx, _ = load(FULL).channels
    supervise = event()
    remind = event(level="remind", level_label="提醒")
    dispatch = event(event="dispatch", level=None, level_label=None)
    lookback = event(event="lookback", level=None, level_label=None)
    assert ops.accepts(supervise)
    assert not ops.accepts(remind)
    assert not ops.accepts(dispatch)  # levels given, events not: escalations only
    assert group.accepts(supervise)
    assert group.accepts(remind)
    assert group.accepts(lookback)
    assert wx.accepts(dispatch)
    assert wx.accepts(remind)
    assert not wx.accepts(lookback)
    both = dataclasses.replace(ops, events=frozenset({"escalation", "dispatch"}))
    assert both.accepts(dispatch)
    assert both.accepts(supervise)
    assert not both.accepts(remind)


# --- secrets -----------------------------------------------------------------------------


def test_env_secrets_are_resolved_from_the_given_environment() -> None:
    env = dict(ENV, RECTIFLOW_OPS_SECRET="another")
    assert load(FULL, env).channels[0].options["secret"] == "another"


def test_a_missing_env_secret_is_reported_with_file_line_and_key() -> None:
    env = {k: v for k, v in ENV.items() if k != "SMTP_PASSWORD"}
    assert refusal(FULL, env) == (
        "notify.yaml:25: channels[3].password: environment variable SMTP_PASSWORD is not set"
    )
    env["SMTP_PASSWORD"] = ""
    assert "SMTP_PASSWORD is empty" in refusal(FULL, env)


def test_unresolved_references_stay_as_written_when_not_resolving() -> None:
    config = load_config(FULL, "notify.yaml", {}, resolve_secrets=False)
    assert config.channels[0].options["secret"] == "env:RECTIFLOW_OPS_SECRET"
    assert config.channels[1].options["url"] == "env:DINGTALK_ROBOT_URL"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "secret: env:RECTIFLOW_OPS_SECRET",
            "secret: hunter2",
            "notify.yaml:5: channels[0].secret",
        ),
        ("password: env:SMTP_PASSWORD", "password: 12345", "notify.yaml:25: channels[3].password"),
        ("key: env:WECOM_KEY", "key: abcdef", "notify.yaml:16: channels[2].key"),
    ],
)
def test_a_literal_secret_is_refused(old: str, new: str, where: str) -> None:
    message = refusal(FULL.replace(old, new))
    assert message.startswith(f"{where}: ")
    assert "secrets live in the environment, not in the file" in message
    assert new.split(": ")[1] not in message  # the refusal does not repeat the secret


def test_a_malformed_env_reference_is_refused() -> None:
    message = refusal(FULL.replace("env:SMTP_PASSWORD", "env:SMTP PASSWORD"))
    assert message.startswith("notify.yaml:25: channels[3].password: expected env:NAME")


def test_mask_hides_every_secret() -> None:
    config = load(FULL)
    text = (
        "POST https://oapi.dingtalk.com/robot/send?access_token=tok3n-dingtalk failed; "
        "secret ops-signing-secret, SECdingtalk-secret; login p@ss word+1 (p%40ss+word%2B1); "
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-1234; "
        "https://other.example/x?token=abc&sign=def&page=2"
    )
    masked = mask(text, config)
    for secret in (*ENV.values(), "tok3n", "p%40ss", "abc", "def"):
        assert secret not in masked
    assert "page=2" in masked
    assert masked.startswith("POST *** failed")  # a url from the environment: all of it
    assert "key=***" in masked
    assert mask("nothing secret here", config) == "nothing secret here"
    assert "ops-signing-secret" not in mask("ops-signing-secret", config.channels[0])
    assert "ops-signing-secret" not in repr(config)
    assert "tok3n-dingtalk" not in repr(config.channels[1])


# --- unknown keys, values -------------------------------------------------------------------


def test_an_unknown_key_is_reported_with_its_line() -> None:
    text = FULL.replace("    mention_all: true\n", "    mention_al: true\n")
    assert refusal(text).startswith("notify.yaml:13: channels[1].mention_al: unknown key")
    assert refusal(FULL + "retries: [1m]\n").startswith("notify.yaml:28: retries: unknown key")


def test_a_key_of_another_channel_type_is_refused() -> None:
    text = FULL.replace(
        "    key: env:WECOM_KEY\n", "    url: https://x.example\n    secret: env:X\n"
    )
    message = refusal(text, dict(ENV, X="x"))
    assert message.startswith("notify.yaml:17: channels[2].secret: key 'secret' does not apply")
    assert "the key is in the url" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("timeout: 5s", "timeout: 5wd", "notify.yaml:7: channels[0].timeout: '5wd': working days"),
        ("timeout: 5s", "timeout: 0", "notify.yaml:7: channels[0].timeout: expected a positive"),
        ('digest: "08:30"', 'digest: "24:00"', "notify.yaml:12: channels[1].digest: expected"),
        ('digest: "08:30"', "digest: 8:30", "notify.yaml:12: channels[1].digest: expected"),
        ("levels: [supervise,", "levels: [supervize,", "notify.yaml:6: channels[0].levels[0]: "),
        ("events: [escalation,", "events: [escalaton,", "notify.yaml:17: channels[2].events[0]:"),
        ("type: wecom", "type: fax", "notify.yaml:15: channels[2].type: unknown channel type"),
        ("name: wx", "name: ops", "notify.yaml:14: channels[2].name: channel 'ops' given twice"),
        ("    host: smtp.example.internal\n", "", "notify.yaml:19: channels[3]: missing required"),
        ("security: starttls", "security: tls", "notify.yaml:23: channels[3].security: expected"),
        ("port: 587", "port: 70000", "notify.yaml:22: channels[3].port: expected a port"),
        ("rate_per_minute: 18", "rate_per_minute: 0", "notify.yaml:18: channels[2].rate_per_"),
        (
            "from: 督办系统 <rectiflow@example.internal>",
            "from: 督办系统",
            "notify.yaml:26: channels[3].from: expected",
        ),
        ("mention_all: true", "mention_all: yes please", "notify.yaml:13: channels[1].mention_"),
        (
            "url: https://ops.example.internal/hooks/rectiflow",
            "url: ftp://ops.example.internal/x",
            "notify.yaml:4: channels[0].url: expected an http:// or https:// url",
        ),
    ],
)
def test_bad_values_are_refused_with_file_line_and_key(old: str, new: str, expected: str) -> None:
    assert old in FULL
    assert refusal(FULL.replace(old, new)).startswith(expected)


def test_an_unquoted_digest_time_gets_a_hint() -> None:
    message = refusal(FULL.replace('digest: "08:30"', "digest: 8:30"))
    assert "got 510" in message
    assert "unquoted 8:30" in message


def test_a_url_from_the_environment_is_checked_once_resolved() -> None:
    message = refusal(FULL, dict(ENV, DINGTALK_ROBOT_URL="oapi.dingtalk.com/robot/send"))
    assert message.startswith("notify.yaml:10: channels[1].url: expected an http")


def test_a_webhook_needs_a_secret_to_sign_with() -> None:
    text = FULL.replace("    secret: env:RECTIFLOW_OPS_SECRET\n", "")
    assert refusal(text).startswith("notify.yaml:2: channels[0]: missing required key 'secret'")


# --- retry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("[1m, 5m, 30m, 2h, 12h]", (60, 300, 1800, 7200, 43200)),
        ("[0.1, 0.5, 2]", (0.1, 0.5, 2)),
        ("[30s, 1d]", (30, 86400)),
        ("[]", ()),
    ],
)
def test_retry_durations(written: str, seconds: tuple[float, ...]) -> None:
    config = load(f"channels: []\nretry: {written}\n")
    assert config.retry == seconds
    assert all(isinstance(value, float) for value in config.retry)


@pytest.mark.parametrize("written", ["[1x]", "[-5]", "[.nan]", "[true]", "[2wd]", "5m"])
def test_bad_retry_durations_are_refused(written: str) -> None:
    message = refusal(f"channels: []\nretry: {written}\n")
    assert message.startswith("notify.yaml:2: retry")


# --- check_config ----------------------------------------------------------------------------


def test_check_config_lists_every_problem_in_file_order() -> None:
    text = FULL.replace("timeout: 5s", "timeout: 5x").replace('"08:30"', '"8:61"')
    text = text.replace("[escalation, dispatch]", "[escalation, dispatsh]")
    text = text.replace("secret: env:RECTIFLOW_OPS_SECRET", "secret: plain")
    text = text.replace("    host: smtp.example.internal\n", "    hots: smtp.example.internal\n")
    text = text.replace("retry: [1m, 5m, 30m, 2h, 12h]\n", "retry: [1m, soon]\n")
    text += "templates:\n  subject: '{{ event.nope }}'\n  footer: x\n"
    env = {k: v for k, v in ENV.items() if k != "DINGTALK_ROBOT_SECRET"}
    problems = check_config(text, "notify.yaml", env)
    assert [p.split(": ", 2)[:2] for p in problems] == [
        ["notify.yaml:5", "channels[0].secret"],  # written in the file
        ["notify.yaml:7", "channels[0].timeout"],
        ["notify.yaml:11", "channels[1].secret"],  # not set in the environment
        ["notify.yaml:12", "channels[1].digest"],
        ["notify.yaml:17", "channels[2].events[1]"],
        ["notify.yaml:19", "channels[3]"],  # no host
        ["notify.yaml:21", "channels[3].hots"],
        ["notify.yaml:27", "retry[1]"],
        ["notify.yaml:29", "templates.subject"],
        ["notify.yaml:30", "templates.footer"],
    ]
    assert "has no attribute 'nope'" in problems[8]
    assert check_config(FULL, "notify.yaml", ENV) == []


def test_check_config_reports_yaml_errors_and_empty_files() -> None:
    assert check_config("channels: [\n", "n.yaml", {})[0].startswith("n.yaml:2: YAML does not")
    assert check_config("", "n.yaml", {}) == ["n.yaml:1: the file is empty"]
    assert check_config("- a\n", "n.yaml", {})[0].startswith("n.yaml:1: expected a mapping")
    assert check_config("retry: []\n", "n.yaml", {}) == [
        "n.yaml:1: missing required key 'channels'"
    ]


def test_check_config_probes_hosts_only_when_asked() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = listening.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            down = closed.getsockname()[1]  # bound, not listening: refused
            text = f"""\
channels:
  - name: up
    type: webhook
    url: http://127.0.0.1:{up}/hook
    secret: env:S
  - name: down
    type: smtp
    host: 127.0.0.1
    port: {down}
    security: none
    from: rectiflow@example.internal
"""
            env = {"S": "s3cret"}
            assert check_config(text, "n.yaml", env) == []
            problems = check_config(text, "n.yaml", env, probe=True)
    assert len(problems) == 1
    assert problems[0].startswith(f"n.yaml:8: channels[1].host: cannot reach 127.0.0.1:{down}")


# --- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "label"),
    [
        ("remind", "提醒"),
        ("warn", "预警"),
        ("supervise", "督办"),
        ("notify_public", "通报"),
        ("accountability", "问责"),
    ],
)
def test_the_default_message_is_chinese_for_each_level(level: str, label: str) -> None:
    subject, body = render([event(level=level, level_label=label)], ZHANG, digest=False)
    assert subject == f"【{label}】哈尔滨市：企业开办审批环节多（案件12）"
    assert body.startswith("张伟同志：\n")
    for part in (
        f"级别：{label}",
        "责任单位：哈尔滨市",
        "12 企业开办审批环节多",
        "当前环节：整改中",
        "办理时限：2026年03月20日 18:00",
        "已逾期3个工作日",
        "下一步：请于3个工作日内报送整改进展",
    ):
        assert part in body


def test_the_deadline_is_formatted_as_given_and_overdue_only_when_past() -> None:
    due = dt.datetime(2026, 1, 5, 9, 7, tzinfo=SH)
    _, body = render([event(due_at=due, overdue_workdays=0)], ZHANG, digest=False)
    assert "办理时限：2026年01月05日 09:07" in body
    assert "逾期" not in body
    _, body = render([event(due_at=None)], ZHANG, digest=False)
    assert "办理时限：未设定" in body


def test_dispatch_and_lookback_have_their_own_tags() -> None:
    dispatch = event(event="dispatch", level=None, level_label=None)
    lookback = event(event="lookback", level=None, level_label=None)
    assert render([dispatch], ZHANG, digest=False)[0].startswith("【月度调度】哈尔滨市：")
    assert render([lookback], ZHANG, digest=False)[0].startswith("【回头看】哈尔滨市：")


def test_a_digest_lists_each_event_on_a_numbered_line() -> None:
    events = [event(), event(case_id=13, title="热线回访不及时", overdue_workdays=0)]
    subject, body = render(events, ZHANG, digest=True)
    assert subject == "【督办提醒】今日待办2项"
    assert body.startswith("张伟同志：\n")
    assert "1. 【督办】哈尔滨市：企业开办审批环节多（案件12），整改中，" in body
    assert "时限2026年03月20日 18:00，已逾期3个工作日\n" in body
    assert "2. 【督办】哈尔滨市：热线回访不及时（案件13）" in body


def test_a_message_that_is_not_a_digest_has_one_event() -> None:
    with pytest.raises(ValueError, match="one event"):
        render(list(SAMPLE_EVENTS), ZHANG, digest=False)


def test_template_overrides_replace_the_defaults() -> None:
    text = """\
channels: []
templates:
  subject: "[{{ event | tag }}] {{ event.title }}\\n"
  body: |
    {{ recipient.name }}：{{ event.unit_name }}，{{ event.due_at | local_time }}
  digest_subject: "{{ events | length }} items for {{ recipient.name }}"
"""
    config = load(text)
    subject, body = render([event()], ZHANG, digest=False, overrides=config.templates)
    assert subject == "[督办] 企业开办审批环节多"  # one line
    assert body == "张伟：哈尔滨市，2026年03月20日 18:00\n"
    subject, body = render([event()], ZHANG, digest=True, overrides=config.templates)
    assert subject == "1 items for 张伟"
    assert body.startswith("张伟同志：\n\n今日待办1项")  # the default digest body


@pytest.mark.parametrize(
    ("name", "source", "why"),
    [
        ("subject", "{{ event.title", "syntax error at line 1 of the template"),
        ("body", "{{ event.titel }}", "does not render"),
        ("body", "{{ event.due_at.year }}", "does not render"),  # no deadline: a dispatch
        ("digest_body", "{{ event.title }}", "'event' is undefined"),
        ("subject", "{{ event.__class__ }}", "does not render"),
        ("body", "{{ 1 / 0 }}", "does not render"),
    ],
)
def test_a_bad_override_is_refused_when_the_config_loads(name: str, source: str, why: str) -> None:
    text = f"channels: []\ntemplates:\n  {name}: '{source}'\n"
    message = refusal(text)
    assert message.startswith(f"notify.yaml:3: templates.{name}: template {name} ")
    assert why in message


# --- anything else ---------------------------------------------------------------------------

_yaml_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=string.printable + "：督办-[]{}&*!|>'\"%@`", max_size=200),
    st.builds(
        lambda body, key: FULL.replace(key, body),
        st.text(alphabet=string.printable, max_size=30),
        st.sampled_from(["ops", "5s", "08:30", "587", "smtp", "1m", "supervise", "env:", "- "]),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yaml_text)
def test_arbitrary_text_raises_nothing_but_validation_error(text: str) -> None:
    error: ValidationError | None = None
    try:
        config = load_config(text, "f.yaml", ENV)
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("f.yaml:")
    else:
        assert isinstance(config, NotifyConfig)
        assert all(isinstance(c, ChannelConfig) for c in config.channels)
    for problem in check_config(text, "f.yaml", ENV):
        assert problem.startswith("f.yaml:")
