"""What a channel is handed and what it answers: plain values, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["delivered", "retry", "dead"]


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person the message is for, with the contacts a channel may use."""

    name: str
    role: str
    email: str | None = None
    mobile: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox event about one case, as the message templates see it."""

    event: str  # "escalation", "dispatch", "test", ...
    level: str | None  # remind, warn, supervise, notify_public, accountability
    level_label: str | None  # 提醒, 预警, 督办, 通报, 问责
    case_id: int
    title: str
    unit: str
    unit_name: str
    state: str
    state_label: str
    due_at: dt.datetime | None
    light: str | None
    overdue_workdays: int  # working days past the stage deadline (0 when not past)
    next_step: str  # what to do next, in Chinese
    at: dt.datetime  # when the event was written to the outbox


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient on one channel: an event, or a day's digest of them."""

    key: str  # the idempotency key: the same delivery always carries the same key
    channel: str
    recipient: Recipient
    events: tuple[Event, ...]  # one, or a digest's several
    subject: str  # rendered from the templates, UTF-8
    body: str  # rendered (Markdown for DingTalk and WeCom, plain text for mail)
    at: dt.datetime  # when it is sent
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt came to: delivered; retry later (429, 5xx, a timeout, a connection
    refused); or dead (another 4xx, an errcode that will not change)."""

    outcome: Outcome
    code: str | None  # HTTP status, SMTP reply code, DingTalk/WeCom errcode
    detail: str  # one line, secrets masked


class Channel(Protocol):
    """A configured channel that can send one message."""

    name: str
    type: str

    def send(self, message: Message) -> SendResult:
        """Send ``message`` once; never raise for a network or server failure (answer
        ``retry`` or ``dead`` with the reason instead)."""
        ...

    def close(self) -> None:
        """Release connections (an HTTP client kept alive, an SMTP session)."""
        ...
