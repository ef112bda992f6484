"""The four channel types and :func:`build_channel`, which makes one from a channel's settings.

- ``webhook``: POST of UTF-8 JSON to ``url``, signed with ``secret`` (X-Rectiflow-Delivery,
  X-Rectiflow-Timestamp, X-Rectiflow-Signature: ``sha256=<hex HMAC-SHA256 of
  "<timestamp>.<body>">``); receivers check it with :func:`verify_signature`. The body is
  :func:`webhook_payload`: the event's fields, plus ``"events"`` for a digest.
- ``dingtalk``: a DingTalk custom group robot (``url`` with ``access_token=``, optional
  ``secret`` for the signed URL, ``mention_all``); markdown, @ the recipient's mobile.
- ``wecom``: a WeCom group robot (``key``, or a full ``url``); markdown.
- ``smtp``: ``host``, ``port``, ``security`` (starttls | ssl | none), ``username``,
  ``password``, ``from``; one mail per recipient, a new connection per send.

Every channel takes ``rate_per_minute`` (20 by default for the robots, none for the others:
sends wait for their turn, never dropped) and answers a :class:`SendResult` rather than raise
for a network or server failure; details never carry a secret (:func:`mask_url`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from rectiflow.notify.channels_http import (
    DingTalkChannel,
    HttpChannel,
    RateLimiter,
    WebhookChannel,
    WeComChannel,
    check_http_url,
    dingtalk_sign,
    mask_url,
    parse_retry_after,
    sign_webhook,
    verify_signature,
    webhook_payload,
)
from rectiflow.notify.channels_smtp import SECURITIES, SmtpChannel, message_id, parse_sender
from rectiflow.notify.message import Channel

__all__ = [
    "CHANNEL_TYPES",
    "DEFAULT_RATE_PER_MINUTE",
    "DingTalkChannel",
    "HttpChannel",
    "RateLimiter",
    "SmtpChannel",
    "WeComChannel",
    "WebhookChannel",
    "build_channel",
    "dingtalk_sign",
    "mask_url",
    "message_id",
    "parse_retry_after",
    "sign_webhook",
    "verify_signature",
    "webhook_payload",
]

CHANNEL_TYPES = ("webhook", "dingtalk", "wecom", "smtp")
DEFAULT_RATE_PER_MINUTE: dict[str, float | None] = {
    "webhook": None,
    "dingtalk": 20,
    "wecom": 20,
    "smtp": None,
}
WECOM_SEND_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="


def _text(name: str, options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"channel {name!r}: {key!r} must be a string")
    return value


def _required(name: str, options: Mapping[str, Any], key: str) -> str:
    value = _text(name, options, key)
    if value is None:
        raise ValueError(f"channel {name!r}: {key!r} is required")
    return value


def _rate(name: str, type: str, options: Mapping[str, Any]) -> float | None:
    value = options.get("rate_per_minute", DEFAULT_RATE_PER_MINUTE[type])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"channel {name!r}: rate_per_minute must be a positive number")
    return float(value)


def _port(name: str, options: Mapping[str, Any]) -> int | None:
    value = options.get("port")
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"channel {name!r}: port must be a number from 1 to 65535")
    return value


def build_channel(
    name: str, type: str, options: Mapping[str, Any], *, timeout: float = 10.0
) -> Channel:
    """The channel ``name`` of ``type`` (webhook, dingtalk, wecom, smtp) from ``options``,
    its settings with the secrets already resolved; keys it does not use (levels, digest, …)
    are ignored. ValueError for an unknown type or a missing or malformed setting (the
    message names the setting, never a secret's value)."""
    if type not in CHANNEL_TYPES:
        raise ValueError(
            f"channel {name!r}: unknown type {type!r} (one of {', '.join(CHANNEL_TYPES)})"
        )
    rate = _rate(name, type, options)
    if type == "webhook":
        url = check_http_url(name, _required(name, options, "url"))
        secret = _required(name, options, "secret")
        return WebhookChannel(name, url, secret, timeout=timeout, rate_per_minute=rate)
    if type == "dingtalk":
        url = check_http_url(name, _required(name, options, "url"))
        mention_all = options.get("mention_all", False)
        if not isinstance(mention_all, bool):
            raise ValueError(f"channel {name!r}: mention_all must be true or false")
        return DingTalkChannel(
            name,
            url,
            _text(name, options, "secret"),
            mention_all=mention_all,
            timeout=timeout,
            rate_per_minute=rate,
        )
    if type == "wecom":
        robot = _text(name, options, "url")
        if robot is None:
            key = _text(name, options, "key")
            if key is None:
                raise ValueError(f"channel {name!r}: a wecom channel needs 'key' or 'url'")
            robot = WECOM_SEND_URL + urllib.parse.quote(key, safe="")
        return WeComChannel(
            name, check_http_url(name, robot), timeout=timeout, rate_per_minute=rate
        )
    security = _text(name, options, "security") or "starttls"
    if security not in SECURITIES:
        raise ValueError(
            f"channel {name!r}: security must be one of {', '.join(SECURITIES)}, not {security!r}"
        )
    host = _required(name, options, "host")
    return SmtpChannel(
        name,
        host,
        sender=parse_sender(name, options.get("from")),
        port=_port(name, options),
        security=security,
        username=_text(name, options, "username"),
        password=_text(name, options, "password"),
        timeout=timeout,
        rate_per_minute=rate,
    )
