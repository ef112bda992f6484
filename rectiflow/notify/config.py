"""The delivery configuration: channels, retry backoff and templates, from a YAML file.

```yaml
channels:
  - name: ops
    type: webhook                 # webhook | dingtalk | wecom | smtp
    url: https://ops.example.internal/hooks/rectiflow
    secret: env:RECTIFLOW_OPS_SECRET
    levels: [supervise, notify_public, accountability]
  - name: group
    type: dingtalk
    url: env:DINGTALK_ROBOT_URL
    secret: env:DINGTALK_ROBOT_SECRET
    digest: "08:30"
retry: [1m, 5m, 30m, 2h, 12h]
templates: {subject: "..."}
```

Secrets (``secret``, ``password``, ``key``) are ``env:NAME`` references, resolved from the
environment when the file loads; any other string setting may be one too (a DingTalk url
carries its access token). Every refusal names the file, the line and the key, as the
workflow definitions do: ``notify.yaml:7: channels[1].secret: ...``; those checks are
``config_checks.py``. Here: the config itself, loading it, probing its hosts, and masking
its secrets in whatever is shown or logged.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from rectiflow.engine.errors import NotFound, ValidationError
from rectiflow.engine.yaml_source import _Located
from rectiflow.notify.message import Event

CHANNEL_TYPES = ("webhook", "dingtalk", "wecom", "smtp")
LEVELS = ("remind", "warn", "supervise", "notify_public", "accountability")
EVENTS = ("escalation", "dispatch", "lookback", "test")
DEFAULT_RETRY: tuple[float, ...] = (60.0, 300.0, 1800.0, 7200.0, 43200.0)
DEFAULT_TIMEOUT = 10.0  # seconds, for one HTTP request or SMTP session
DINGTALK_RATE = 20  # messages a minute per robot, as DingTalk limits them
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
PROBE_TIMEOUT = 3.0

SECRET_KEYS = ("secret", "password", "key")


@dataclass(frozen=True, repr=False)
class ChannelConfig:
    """One channel of the file, its settings checked and its secrets resolved.

    ``options`` holds the settings given (url, secret, key, host, port, security, username,
    password, from, mention_all, rate_per_minute, timeout) with these filled in: ``timeout``
    (seconds, float; default 10), ``rate_per_minute`` (int; DingTalk 20, else absent),
    ``mention_all`` (bool, DingTalk and WeCom; default false), SMTP ``security``
    (default starttls) and ``port`` (by security: 587, 465, 25); a WeCom ``key`` is put in
    the query string of ``url`` (default: the robot endpoint), so the url is all it needs.
    """

    name: str
    type: str  # webhook | dingtalk | wecom | smtp
    options: Mapping[str, Any]
    levels: frozenset[str] | None  # None: every level and event
    events: frozenset[str] | None  # None: every event (escalation, dispatch, lookback, ...)
    digest: dt.time | None  # one message per recipient per day, at this local time
    line: int  # where it is in the file
    secrets: frozenset[str] = field(default=frozenset(), compare=False)  # what mask() hides

    def accepts(self, event: Event) -> bool:
        """Whether this channel carries ``event`` (see ``takes``)."""
        return self.takes(event.event, event.level)

    def takes(self, kind: str, level: str | None) -> bool:
        """Whether this channel carries an event of ``kind`` at ``level``. With ``levels``,
        it carries the escalations at those levels, and events without a level (dispatch,
        lookback) only when ``events`` names them."""
        if self.events is not None and kind not in self.events:
            return False
        if self.levels is None:
            return True
        if level is None:
            return self.events is not None
        return level in self.levels

    def __repr__(self) -> str:  # never the secrets: a config may end up in a log line
        shown = {
            k: mask(str(v), self) if isinstance(v, str) else v for k, v in self.options.items()
        }
        return (
            f"ChannelConfig(name={self.name!r}, type={self.type!r}, options={shown!r}, "
            f"levels={self.levels!r}, events={self.events!r}, digest={self.digest!r}, "
            f"line={self.line!r})"
        )


@dataclass(frozen=True)
class NotifyConfig:
    channels: tuple[ChannelConfig, ...]
    retry: tuple[float, ...]  # seconds before each retry; then dead
    templates: Mapping[str, str]  # overrides: subject / body / digest_subject / digest_body
    path: str

    def channel(self, name: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise NotFound("channel", name)


# --- loading ---------------------------------------------------------------------------------


def load_config(
    text: str,
    filename: str = "<notify>",
    env: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
) -> NotifyConfig:
    """Parse and check a delivery config; raise ValidationError (``FILE:LINE: key: why``)
    for its first problem. ``env`` (default: ``os.environ``) resolves ``env:NAME``; with
    ``resolve_secrets=False`` references stay as written and unset ones are no error."""
    from rectiflow.notify.config_checks import _Checker  # imports this module: loaded on use

    checker = _Checker(filename, os.environ if env is None else env, resolve_secrets)
    config = checker.run(text)
    if checker.problems:
        raise checker.problems[0]
    assert config is not None
    return config


def load_config_file(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
) -> NotifyConfig:
    """:func:`load_config` of a file (UTF-8, with or without a BOM)."""
    name = os.fspath(path)
    try:
        text = Path(name).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ValidationError(f"cannot read the file: {exc.strerror or exc}", where=name) from None
    except UnicodeDecodeError:
        raise ValidationError("the file is not UTF-8", where=f"{name}:1") from None
    return load_config(text, name, env, resolve_secrets=resolve_secrets)


def check_config(
    text: str,
    filename: str = "<notify>",
    env: Mapping[str, str] | None = None,
    *,
    probe: bool = False,
) -> list[str]:
    """Every problem of a delivery config, as ``FILE:LINE: key: message`` lines in file
    order (empty when it is fine). With ``probe``, also try a TCP connection (3 s) to each
    http(s) and SMTP host and report those that do not answer."""
    from rectiflow.notify.config_checks import _Checker  # imports this module: loaded on use

    checker = _Checker(filename, os.environ if env is None else env, resolve_secrets=True)
    checker.run(text)
    problems = list(checker.problems)
    if probe:
        problems.extend(_probe(checker.targets, checker.loc))
    ordered = sorted(problems, key=lambda problem: _line_of(problem.where))
    return [str(problem) for problem in ordered]


def _line_of(where: str | None) -> int:
    tail = (where or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _probe(targets: list[tuple[str, str, int]], loc: _Located) -> list[ValidationError]:
    def attempt(target: tuple[str, str, int]) -> ValidationError | None:
        path, host, port = target
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
                return None
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            return loc.error(path, f"cannot reach {host}:{port}: {reason}")

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return [problem for problem in pool.map(attempt, targets) if problem is not None]


# --- masking ---------------------------------------------------------------------------------

_QUERY_SECRET = re.compile(
    r"([?&](?:access_token|key|sign|secret|token|password|signature)=)[^&\s\"'#]+", re.I
)


def _secret_values(channel: ChannelConfig) -> set[str]:
    values = set(channel.secrets)
    for key in SECRET_KEYS:
        value = channel.options.get(key)
        if isinstance(value, str) and not value.startswith("env:"):
            values.add(value)
    url = channel.options.get("url")
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
            values.update(v for _, v in parse_qsl(parts.query) if len(v) >= 4)
            if parts.password:
                values.add(parts.password)
        except ValueError:
            pass
    return values


def mask(text: str, config: NotifyConfig | ChannelConfig) -> str:
    """``text`` with every secret of ``config`` (the resolved ``env:`` values, secrets,
    passwords, keys, the parameters of a url's query string), as written or URL-encoded,
    replaced by ``***``; and any access_token/key/sign/secret/token parameter of a url."""
    channels = config.channels if isinstance(config, NotifyConfig) else (config,)
    values: set[str] = set()
    for channel in channels:
        values.update(_secret_values(channel))
    variants = {
        form
        for value in values
        if value
        for form in (value, quote(value, safe=""), quote_plus(value))
    }
    for value in sorted(variants, key=len, reverse=True):  # a longer secret before its parts
        text = text.replace(value, "***")
    return _QUERY_SECRET.sub(r"\1***", text)
