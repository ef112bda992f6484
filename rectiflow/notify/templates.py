"""Message templates: Chinese subjects and bodies rendered from outbox events with Jinja2.

Templates run in Jinja2's sandbox (a config file's template reaches no Python internals),
without autoescaping (the text is plain or Markdown, never HTML), and with undefined names
refused (a misspelt variable is an error, not an empty string).

What a template sees:

- ``recipient``: the :class:`~rectiflow.notify.message.Recipient` (``recipient.name`` ...);
- ``events``: the events of the message (one, or a digest's several);
- ``event``: the one event (``subject`` and ``body`` only, not the digest templates);
- filters ``tag`` (the label in 【】: 提醒/预警/督办/通报/问责, 月度调度, 回头看, 测试),
  ``local_time`` (``2026年03月20日 18:00``; ``未设定`` for none) and ``oneline`` (the
  one-line summary a digest lists).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from rectiflow.engine.errors import ValidationError
from rectiflow.notify.message import Event, Recipient

#: The templates a config may override.
TEMPLATE_NAMES = ("subject", "body", "digest_subject", "digest_body")

LEVEL_LABELS: Mapping[str, str] = {
    "remind": "提醒",
    "warn": "预警",
    "supervise": "督办",
    "notify_public": "通报",
    "accountability": "问责",
}
EVENT_TAGS: Mapping[str, str] = {"dispatch": "月度调度", "lookback": "回头看", "test": "测试"}

_FOOTER = "（督办系统自动发送，请勿直接回复）"

DEFAULTS: Mapping[str, str] = {
    "subject": "【{{ event | tag }}】{{ event.unit_name }}：{{ event.title }}"
    "（案件{{ event.case_id }}）",
    "body": """\
{{ recipient.name }}同志：

{% if event.event == "escalation" %}
贵单位承办的整改事项已进入“{{ event | tag }}”，请抓紧办理。
{% elif event.event == "dispatch" %}
本月调度：请报送以下整改事项的进展。
{% elif event.event == "lookback" %}
回头看：请核实以下事项的整改成效是否巩固。
{% elif event.event == "test" %}
这是一条测试消息，无需办理。
{% else %}
以下整改事项需要您关注。
{% endif %}

{% if event.level_label %}
- 级别：{{ event.level_label }}
{% else %}
- 事项：{{ event | tag }}
{% endif %}
- 责任单位：{{ event.unit_name }}
- 案件：{{ event.case_id }} {{ event.title }}
- 当前环节：{{ event.state_label }}
- 办理时限：{{ event.due_at | local_time }}
{% if event.overdue_workdays > 0 %}
- 已逾期{{ event.overdue_workdays }}个工作日
{% endif %}
- 下一步：{{ event.next_step }}

"""
    + _FOOTER,
    "digest_subject": "【督办提醒】今日待办{{ events | length }}项",
    "digest_body": """\
{{ recipient.name }}同志：

今日待办{{ events | length }}项：
{% for e in events %}
{{ loop.index }}. {{ e | oneline }}
{% endfor %}

"""
    + _FOOTER,
}


def tag(event: Event) -> str:
    """The label in 【】: the level's (督办) for an escalation, else the event's (月度调度)."""
    if event.event in EVENT_TAGS:
        return EVENT_TAGS[event.event]
    if event.level_label:
        return event.level_label
    if event.level is not None:
        return LEVEL_LABELS.get(event.level, event.level)
    return "通知"


def local_time(value: dt.datetime | None) -> str:
    """``YYYY年MM月DD日 HH:MM`` of ``value`` as given: ``Event.due_at`` is already in the
    ledger's local time zone, so it is formatted as it is, not converted."""
    if value is None:
        return "未设定"
    return f"{value.year:04d}年{value.month:02d}月{value.day:02d}日 {value:%H:%M}"


def oneline(event: Event) -> str:
    """One line about the event, as a digest lists it."""
    text = f"【{tag(event)}】{event.unit_name}：{event.title}（案件{event.case_id}），"
    text += f"{event.state_label}，时限{local_time(event.due_at)}"
    if event.overdue_workdays > 0:
        text += f"，已逾期{event.overdue_workdays}个工作日"
    return text


@functools.cache
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(tag=tag, local_time=local_time, oneline=oneline)
    return env


@functools.lru_cache(maxsize=128)
def _compile(source: str) -> Any:
    return _environment().from_string(source)


def _render_one(name: str, source: str, context: Mapping[str, Any]) -> str:
    try:
        return str(_compile(source).render(context))
    except Exception as exc:  # a syntax error, an undefined name, a refused attribute, 1/0
        raise template_error(name, exc) from None


def template_error(name: str, exc: BaseException) -> ValidationError:
    """The refusal of template ``name`` for ``exc``, naming the template."""
    from jinja2 import TemplateSyntaxError

    if isinstance(exc, TemplateSyntaxError):
        what = f"syntax error at line {exc.lineno} of the template: {exc.message}"
    else:
        what = f"does not render: {exc}" if str(exc) else f"does not render: {type(exc).__name__}"
    return ValidationError(f"template {name} {what}", key=f"templates.{name}")


_BLANK_LINES = re.compile(r"\n{3,}")


def render(
    events: Sequence[Event],
    recipient: Recipient,
    *,
    digest: bool,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(subject, body) of a message to ``recipient``: about one event, or, with ``digest``,
    a day's digest of several. ``overrides`` (a config's ``templates``) replace the defaults.

    A template that fails raises ValidationError naming it. The subject is one line."""
    overrides = overrides or {}
    if digest:
        names = ("digest_subject", "digest_body")
        context: dict[str, Any] = {"events": list(events), "recipient": recipient}
    else:
        if len(events) != 1:
            raise ValueError(f"a message that is not a digest has one event, not {len(events)}")
        names = ("subject", "body")
        context = {"events": list(events), "event": events[0], "recipient": recipient}
    subject_name, body_name = names
    subject = _render_one(
        subject_name, overrides.get(subject_name, DEFAULTS[subject_name]), context
    )
    body = _render_one(body_name, overrides.get(body_name, DEFAULTS[body_name]), context)
    subject = " ".join(subject.split())  # a mail header and a robot's title take one line
    body = _BLANK_LINES.sub("\n\n", body.strip()) + "\n"
    return subject, body


_SH = ZoneInfo("Asia/Shanghai")

#: What a config's templates are tried on when it loads: an overdue escalation with a
#: deadline, and a monthly dispatch without level or deadline.
SAMPLE_EVENTS = (
    Event(
        event="escalation",
        level="supervise",
        level_label="督办",
        case_id=12,
        title="企业开办审批环节多",
        unit="HRB",
        unit_name="哈尔滨市",
        state="rectifying",
        state_label="整改中",
        due_at=dt.datetime(2026, 3, 20, 18, 0, tzinfo=_SH),
        light="red",
        overdue_workdays=3,
        next_step="请于3个工作日内报送整改进展",
        at=dt.datetime(2026, 3, 25, 9, 0, tzinfo=_SH),
    ),
    Event(
        event="dispatch",
        level=None,
        level_label=None,
        case_id=13,
        title="政务服务热线回访不及时",
        unit="HRB",
        unit_name="哈尔滨市",
        state="rectifying",
        state_label="整改中",
        due_at=None,
        light=None,
        overdue_workdays=0,
        next_step="请报送本月整改进展",
        at=dt.datetime(2026, 4, 1, 9, 0, tzinfo=_SH),
    ),
)
SAMPLE_RECIPIENT = Recipient(name="张伟", role="owner", email="zhangwei@example.internal")


def validate(overrides: Mapping[str, str]) -> None:
    """Render every override on the sample events; raise ValidationError naming the first
    template that does not compile or render."""
    for name in TEMPLATE_NAMES:
        if name not in overrides:
            continue
        digest = name.startswith("digest_")
        batches = [SAMPLE_EVENTS] if digest else [(event,) for event in SAMPLE_EVENTS]
        for batch in batches:
            render(batch, SAMPLE_RECIPIENT, digest=digest, overrides={name: overrides[name]})
