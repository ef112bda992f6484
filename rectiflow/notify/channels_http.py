"""The HTTP channels (a signed JSON webhook, a DingTalk group robot, a WeCom group robot), each
on one ``httpx.Client`` kept alive for the channel's life, and the helpers they share with the
SMTP channel, the dispatcher and receivers: the webhook signature, URL masking, the Retry-After
detail, the per-channel rate limit.

Outcomes of the HTTP layer: 2xx delivered (DingTalk and WeCom then look at ``errcode``); 429,
5xx, timeouts and connection errors retry; any other status (another 4xx, a redirect, which is
not followed) is dead. A ``Retry-After`` header on a retried answer leads the detail as
``retry-after=N; …`` (seconds), which :func:`parse_retry_after` reads back.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from rectiflow.notify.message import Event, Message, SendResult

USER_AGENT = "rectiflow"
WECOM_WEBHOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
WECOM_MARKDOWN_LIMIT = 4096  # bytes of UTF-8 a WeCom robot accepts in markdown.content
DINGTALK_RETRY = frozenset({130101, -1})  # send too fast; system busy
WECOM_RETRY = frozenset({45009, -1})  # frequency limit; system busy
_DETAIL_LIMIT = 400
_URL_RE = re.compile(r"""https?://[^\s'"<>]+""")
_RETRY_AFTER_RE = re.compile(r"^retry-after=(\d+(?:\.\d+)?)(?:;|$)")


# -- helpers ------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with every query value, any user:password and any fragment replaced by
    ``***``: ``…/send?access_token=***&timestamp=***&sign=***``, ``…/send?key=***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{name}=***" if sep else "***"
        for name, sep, _ in (part.partition("=") for part in parts.query.split("&") if part)
    )
    fragment = "***" if parts.fragment else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """One line of at most a few hundred characters: URLs masked (:func:`mask_url`), each of
    ``secrets`` (and its URL-encoded form) replaced by ``***``."""
    text = _URL_RE.sub(lambda match: mask_url(match.group(0)), text)
    for secret in secrets:
        if secret:
            for form in {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret)}:
                text = text.replace(form, "***")
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


def parse_retry_after(detail: str) -> float | None:
    """The seconds of a ``retry-after=N; …`` detail (a 429 or 503 that said when to come
    back), or None when the detail carries no such hint."""
    match = _RETRY_AFTER_RE.match(detail)
    return float(match.group(1)) if match else None


def retry_after_seconds(value: str, *, now: float | None = None) -> float | None:
    """An HTTP ``Retry-After`` value (delay seconds or an HTTP date) as seconds from now."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    current = time.time() if now is None else now
    return max(0.0, math.ceil(when.timestamp() - current))


def sign_webhook(secret: str, timestamp: str | int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of b"<timestamp>." + body, keyed with secret>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, "sha256")
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    header: str | None,
    *,
    max_age: float | None = None,
    now: float | None = None,
) -> bool:
    """For a receiver: whether ``header`` (X-Rectiflow-Signature) signs ``timestamp``
    (X-Rectiflow-Timestamp) and the exact ``body`` bytes received with ``secret``; compared
    in constant time. With ``max_age`` (seconds), an older or future-dated timestamp fails
    too (replays)."""
    if not header or not secret:
        return False
    timestamp = str(timestamp).strip()
    if not timestamp.isdigit():
        return False
    if max_age is not None:
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > max_age:
            return False
    expected = sign_webhook(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


def dingtalk_sign(secret: str, timestamp_ms: str | int) -> str:
    """DingTalk's robot signature (before URL-encoding): base64 of HMAC-SHA256 keyed with
    the secret over ``"<timestamp ms>\\n<secret>"``."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


class RateLimiter:
    """At most ``per_minute`` sends a minute, evenly spaced: a sliding window of one send per
    ``60 / per_minute`` seconds on the monotonic clock. :meth:`wait` sleeps until the next
    send may start (callers from several threads queue on a lock), never drops one."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not per_minute > 0:
            raise ValueError(f"rate_per_minute must be positive, not {per_minute!r}")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Sleep until a send may start; answer the seconds slept."""
        with self._lock:
            now = self._clock()
            delay = self._next - now
            if delay > 0:
                self._sleep(delay)
                now = max(self._clock(), self._next)
            self._next = now + self.interval
            return max(delay, 0.0)


# -- payloads -----------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _case(event: Event) -> dict[str, Any]:
    return {
        "id": event.case_id,
        "title": event.title,
        "unit": event.unit,
        "state": event.state,
        "due_at": _iso(event.due_at),
        "light": event.light,
    }


def webhook_payload(message: Message) -> dict[str, Any]:
    """The webhook's JSON: ``{"id": key, "event", "level", "case": {id, title, unit, state,
    due_at, light}, "recipient": {name, role}, "at"}`` from the (first) event; a digest (more
    than one event) adds ``"events": [{"event", "level", "case"}, …]`` with all of them."""
    first = message.events[0] if message.events else None
    payload: dict[str, Any] = {
        "id": message.key,
        "event": first.event if first else None,
        "level": first.level if first else None,
        "case": _case(first) if first else None,
        "recipient": {"name": message.recipient.name, "role": message.recipient.role},
        "at": _iso(message.at),
    }
    if len(message.events) > 1:
        payload["events"] = [
            {"event": event.event, "level": event.level, "case": _case(event)}
            for event in message.events
        ]
    return payload


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON, Chinese left as is (``ensure_ascii=False``)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode("utf-8", "ignore") + "…"


# -- channels -----------------------------------------------------------------------------------


def check_http_url(name: str, url: object) -> str:
    """``url`` when it is an http(s) URL with a host; ValueError (URL masked) otherwise."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"channel {name!r}: url is required")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"channel {name!r}: not an http(s) URL: {mask_url(url)}")
    return url


class HttpChannel:
    """What the HTTP channels share: the kept-alive client, the rate limit, the outcome of
    the HTTP layer, masking."""

    type: str = "http"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        rate_per_minute: float | None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self.rate_per_minute = rate_per_minute
        self._limiter = RateLimiter(rate_per_minute) if rate_per_minute else None
        # Query values (access_token=, key=) are masked wherever a URL is; scrubbed from free
        # text too when long enough to be a token rather than a flag like ?v=1.
        query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)
        tokens = [value for _, value in query if len(value) >= 8]
        self._secrets = tuple(s for s in (*secrets, *tokens) if s)
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        self._client.close()

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response | SendResult:
        if self._limiter is not None:
            self._limiter.wait()
        where = mask_url(self.url)
        try:
            return self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            text = f"timeout after {self.timeout:g}s ({type(exc).__name__}) posting to {where}"
            return SendResult("retry", None, self._scrub(text))
        except httpx.RequestError as exc:
            text = f"connection error posting to {where}: {type(exc).__name__}: {exc}"
            return SendResult("retry", None, self._scrub(text))

    def _http_failure(self, response: httpx.Response) -> SendResult | None:
        """None for a 2xx; otherwise the retry or dead result for the status."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        text = f"HTTP {status} {response.reason_phrase} from {mask_url(self.url)}"
        snippet = response.text[:200].strip() if response.content else ""
        if snippet:
            text += f": {snippet}"
        if status == 429 or status >= 500:
            header = response.headers.get("Retry-After")
            seconds = retry_after_seconds(header) if header else None
            if seconds is not None:
                text = f"retry-after={seconds:g}; {text}"
            return SendResult("retry", str(status), self._scrub(text))
        if 300 <= status < 400:
            text += " (redirects are not followed)"
        return SendResult("dead", str(status), self._scrub(text))

    def _errcode_result(self, response: httpx.Response, retry: frozenset[int]) -> SendResult:
        """A robot's 2xx answer: ``errcode`` 0 delivered, one of ``retry`` retried, any
        other (or no readable errcode) dead."""
        where = mask_url(self.url)
        try:
            data = response.json()
        except ValueError:
            snippet = response.text[:200]
            text = f"HTTP {response.status_code} from {where} but not JSON: {snippet}"
            return SendResult("dead", str(response.status_code), self._scrub(text))
        errcode = data.get("errcode") if isinstance(data, dict) else None
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            text = f"HTTP {response.status_code} from {where} without an errcode: {data!r}"
            return SendResult("dead", str(response.status_code), self._scrub(text))
        errmsg = str(data.get("errmsg", ""))
        text = f"errcode {errcode} ({errmsg}) from {where}"
        if errcode == 0:
            return SendResult("delivered", "0", self._scrub(text))
        if errcode in retry:
            return SendResult("retry", str(errcode), self._scrub(text))
        return SendResult("dead", str(errcode), self._scrub(text))


class WebhookChannel(HttpChannel):
    """POSTs :func:`webhook_payload` as UTF-8 JSON, signed with the channel's secret."""

    type = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        rate_per_minute: float | None = None,
    ) -> None:
        super().__init__(
            name, url, timeout=timeout, rate_per_minute=rate_per_minute, secrets=[secret]
        )
        self._secret = secret

    def send(self, message: Message) -> SendResult:
        body = encode_json(webhook_payload(message))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Rectiflow-Delivery": message.key,
            "X-Rectiflow-Timestamp": timestamp,
            "X-Rectiflow-Signature": sign_webhook(self._secret, timestamp, body),
        }
        response = self._post(self.url, body, headers)
        if isinstance(response, SendResult):
            return response
        failure = self._http_failure(response)
        if failure is not None:
            return failure
        text = f"HTTP {response.status_code} {response.reason_phrase} from {mask_url(self.url)}"
        return SendResult("delivered", str(response.status_code), self._scrub(text))


class DingTalkChannel(HttpChannel):
    """A DingTalk custom group robot: a markdown message that @-mentions the recipient by
    mobile (and DingTalk user id when known), the URL signed when the robot has a secret."""

    type = "dingtalk"

    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None = None,
        *,
        mention_all: bool = False,
        timeout: float = 10.0,
        rate_per_minute: float | None = 20,
    ) -> None:
        super().__init__(
            name, url, timeout=timeout, rate_per_minute=rate_per_minute, secrets=[secret]
        )
        self._secret = secret
        self.mention_all = mention_all

    def signed_url(self, timestamp_ms: int | None = None) -> str:
        """The robot URL with ``&timestamp=<ms>&sign=<urlencoded signature>`` appended (the
        URL as configured when the robot has no secret)."""
        if not self._secret:
            return self.url
        stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        sign = urllib.parse.quote_plus(dingtalk_sign(self._secret, stamp))
        joint = "&" if urllib.parse.urlsplit(self.url).query else "?"
        return f"{self.url}{joint}timestamp={stamp}&sign={sign}"

    def payload(self, message: Message) -> dict[str, Any]:
        recipient = message.recipient
        mentions = [f"@{who}" for who in (recipient.mobile, recipient.dingtalk_id) if who]
        text = message.body + ("\n\n" + " ".join(mentions) if mentions else "")
        at: dict[str, Any] = {
            "atMobiles": [recipient.mobile] if recipient.mobile else [],
            "isAtAll": self.mention_all,
        }
        if recipient.dingtalk_id:
            at["atUserIds"] = [recipient.dingtalk_id]
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.subject, "text": text},
            "at": at,
        }

    def send(self, message: Message) -> SendResult:
        body = encode_json(self.payload(message))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        response = self._post(self.signed_url(), body, headers)
        if isinstance(response, SendResult):
            return response
        return self._http_failure(response) or self._errcode_result(response, DINGTALK_RETRY)


class WeComChannel(HttpChannel):
    """A WeCom (企业微信) group robot: a markdown message, ``<@userid>`` when the recipient's
    WeCom id is known; the content cut to WeCom's 4096 bytes."""

    type = "wecom"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 10.0,
        rate_per_minute: float | None = 20,
    ) -> None:
        super().__init__(name, url, timeout=timeout, rate_per_minute=rate_per_minute)

    def payload(self, message: Message) -> dict[str, Any]:
        wecom_id = message.recipient.wecom_id
        mention = f"\n<@{wecom_id}>" if wecom_id else ""
        limit = WECOM_MARKDOWN_LIMIT - len(mention.encode("utf-8"))
        content = _truncate_utf8(message.body, limit) + mention
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def send(self, message: Message) -> SendResult:
        body = encode_json(self.payload(message))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        response = self._post(self.url, body, headers)
        if isinstance(response, SendResult):
            return response
        return self._http_failure(response) or self._errcode_result(response, WECOM_RETRY)
