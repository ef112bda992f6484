"""The channels file's checks: its YAML in, a ``NotifyConfig`` and every problem out.

``load_config`` and ``check_config`` (in ``config.py``) hand the text to ``_Checker``,
which reads it key by key and records each problem with the file, the line and the key
path rather than stopping at the first, so ``rectiflow notify check`` lists them all. Apart
from the config itself because these rules (the keys of each channel type, ``env:NAME``
secrets, durations, digest times, urls and SMTP settings) are most of the code, and the
dispatcher and the CLI, which hold a config, never need them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from rectiflow.engine.durations import Unit, parse_duration
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.yaml_source import _composer, _Located
from rectiflow.notify import templates
from rectiflow.notify.config import (
    CHANNEL_TYPES,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    DINGTALK_RATE,
    EVENTS,
    LEVELS,
    SECRET_KEYS,
    SMTP_PORTS,
    WECOM_URL,
    ChannelConfig,
    NotifyConfig,
)

_TOP_KEYS = ("channels", "retry", "templates")
_COMMON_KEYS = ("name", "type", "levels", "events", "digest", "rate_per_minute", "timeout")
_TYPE_KEYS = {
    "webhook": ("url", "secret"),
    "dingtalk": ("url", "secret", "mention_all"),
    "wecom": ("url", "key", "mention_all"),
    "smtp": ("host", "port", "security", "username", "password", "from"),
}
_ALL_KEYS = frozenset(_COMMON_KEYS).union(*_TYPE_KEYS.values())
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_WHY_ENV = "secrets live in the environment, not in the file"


class _Checker:
    """Reads the file, recording every problem instead of stopping at the first."""

    def __init__(self, filename: str, env: Mapping[str, str], resolve_secrets: bool) -> None:
        self.loc = _Located(filename)
        self.env = env
        self.resolve = resolve_secrets
        self.problems: list[ValidationError] = []
        self.targets: list[tuple[str, str, int]] = []  # (key path, host, port) to probe

    def problem(self, path: str, message: str) -> None:
        self.problems.append(self.loc.error(path, message))

    def run(self, text: str) -> NotifyConfig | None:
        import yaml

        filename = self.loc.filename
        try:
            root = yaml.compose(text, Loader=_composer())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.problems.append(
                ValidationError(f"YAML does not parse: {problem}", where=f"{filename}:{line}")
            )
            return None
        if root is None:
            self.problems.append(ValidationError("the file is empty", where=f"{filename}:1"))
            return None
        try:
            data = self.loc.build(root, "")
        except ValidationError as exc:  # a key given twice
            self.problems.append(exc)
            return None
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            # a value YAML cannot construct (a timestamp 2026-13-45, an unknown tag) or an
            # alias that contains itself
            line = root.start_mark.line + 1
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                line = mark.line + 1
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.problems.append(
                ValidationError(f"YAML value not understood: {reason}", where=f"{filename}:{line}")
            )
            return None
        return self.config(data)

    # --- the parts ------------------------------------------------------------------------

    def config(self, data: Any) -> NotifyConfig | None:
        if not isinstance(data, dict):
            self.problem("", "expected a mapping with the keys channels, retry, templates")
            return None
        self.unknown_keys(data, "", _TOP_KEYS)
        channels: list[ChannelConfig] = []
        if "channels" not in data:
            self.problem("", "missing required key 'channels'")
        elif data["channels"] is not None and not isinstance(data["channels"], list):
            self.problem("channels", "expected a list of channels")
        else:
            seen: dict[str, int] = {}
            for i, body in enumerate(data["channels"] or []):
                channel = self.channel(body, f"channels[{i}]", seen)
                if channel is not None:
                    channels.append(channel)
        retry = self.retry(data["retry"]) if "retry" in data else DEFAULT_RETRY
        overrides = self.templates(data["templates"]) if "templates" in data else {}
        return NotifyConfig(tuple(channels), retry, overrides, self.loc.filename)

    def unknown_keys(self, data: dict[str, Any], path: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                child = f"{path}.{key}" if path else key
                self.problem(child, f"unknown key {key!r} (allowed: {', '.join(allowed)})")

    def channel(self, body: Any, path: str, seen: dict[str, int]) -> ChannelConfig | None:
        before = len(self.problems)
        if not isinstance(body, dict):
            self.problem(path, "expected a mapping (name, type, ...)")
            return None
        name = body.get("name")
        if name is None:
            self.problem(path, "missing required key 'name'")
        elif not isinstance(name, str) or not _CHANNEL_NAME.match(name):
            self.problem(f"{path}.name", f"expected a name (letters, digits, _ . -), got {name!r}")
            name = None
        elif name in seen:
            self.problem(
                f"{path}.name", f"channel {name!r} given twice (first at line {seen[name]})"
            )
        else:
            seen[name] = self.loc.line(f"{path}.name")
        kind = body.get("type")
        if kind is None:
            self.problem(path, f"missing required key 'type' ({' | '.join(CHANNEL_TYPES)})")
        elif kind not in CHANNEL_TYPES:
            self.problem(
                f"{path}.type", f"unknown channel type {kind!r} ({' | '.join(CHANNEL_TYPES)})"
            )
            kind = None
        for key in body:
            child = f"{path}.{key}"
            if key not in _ALL_KEYS:
                allowed = _COMMON_KEYS + (_TYPE_KEYS[kind] if kind else ())
                self.problem(child, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
            elif kind is not None and key not in _COMMON_KEYS and key not in _TYPE_KEYS[kind]:
                why = "the key is in the url" if (kind, key) == ("wecom", "secret") else ""
                self.problem(
                    child,
                    f"key {key!r} does not apply to a {kind} channel" + (f": {why}" if why else ""),
                )
        secrets: set[str] = set()
        options: dict[str, Any] = {}
        for key in ("url", "secret", "key", "host", "username", "password", "from"):
            if key in body and (kind is None or key in _TYPE_KEYS[kind]):
                value = self.setting(body[key], f"{path}.{key}", secrets)
                if value is not None:
                    options[key] = value
        levels = self.names(body, "levels", path, LEVELS, "level")
        events = self.names(body, "events", path, EVENTS, "event")
        digest = self.digest(body["digest"], f"{path}.digest") if "digest" in body else None
        options["timeout"] = (
            self.seconds(body["timeout"], f"{path}.timeout", zero=False)
            if "timeout" in body
            else DEFAULT_TIMEOUT
        )
        if "rate_per_minute" in body:
            rate = body["rate_per_minute"]
            if not _is_int(rate) or rate < 1:
                self.problem(
                    f"{path}.rate_per_minute", f"expected a positive whole number, got {rate!r}"
                )
            else:
                options["rate_per_minute"] = rate
        elif kind == "dingtalk":
            options["rate_per_minute"] = DINGTALK_RATE
        if kind in ("dingtalk", "wecom"):
            mention = body.get("mention_all", False)
            if not isinstance(mention, bool):
                self.problem(f"{path}.mention_all", f"expected true or false, got {mention!r}")
            options["mention_all"] = mention is True
        if kind is not None:
            getattr(self, f"check_{kind}")(body, path, options)
        if len(self.problems) > before or name is None or kind is None:
            return None
        return ChannelConfig(
            name=name,
            type=kind,
            options=options,
            levels=levels,
            events=events,
            digest=digest,
            line=self.loc.line(path),
            secrets=frozenset(secrets),
        )

    def setting(self, value: Any, path: str, secrets: set[str]) -> Any:
        """A string setting, an ``env:NAME`` reference resolved; a secret must be one."""
        key = path.rsplit(".", 1)[-1]
        secret = key in SECRET_KEYS
        if isinstance(value, str) and value.startswith("env:"):
            name = value[4:].strip()
            if not _ENV_NAME.match(name):
                self.problem(path, f"expected env:NAME with a variable name, got {value!r}")
                return None
            if not self.resolve:
                return value
            resolved = self.env.get(name)
            if not resolved:
                state = "is empty" if resolved == "" else "is not set"
                self.problem(path, f"environment variable {name} {state}")
                return None
            secrets.add(resolved)
            return resolved
        if secret:
            self.problem(
                path,
                f"a {key} written in the file is refused: {_WHY_ENV} (write env:NAME and set NAME)",
            )
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"expected a string, got {value!r}")
            return None
        return value

    def names(
        self, body: dict[str, Any], key: str, path: str, known: tuple[str, ...], what: str
    ) -> frozenset[str] | None:
        if key not in body:
            return None
        value, path = body[key], f"{path}.{key}"
        items = value if isinstance(value, list) else [value]
        if not items or value is None:
            self.problem(path, f"an empty list routes nothing: leave {key} out for every {what}")
            return None
        result: set[str] = set()
        for i, item in enumerate(items):
            if item not in known:
                item_path = f"{path}[{i}]" if isinstance(value, list) else path
                self.problem(item_path, f"unknown {what} {item!r} ({', '.join(known)})")
            else:
                result.add(item)
        return frozenset(result)

    def digest(self, value: Any, path: str) -> dt.time | None:
        match = _TIME.match(value) if isinstance(value, str) else None
        hour, minute = (int(match[1]), int(match[2])) if match else (-1, -1)
        if 0 <= hour < 24 and 0 <= minute < 60:
            return dt.time(hour, minute)
        hint = ""
        if _is_int(value) and 0 <= value < 24 * 60:
            hint = f" (YAML reads an unquoted {value // 60}:{value % 60:02d} as a number: quote it)"
        self.problem(path, f'expected a local time "HH:MM" such as "08:30", got {value!r}{hint}')
        return None

    def seconds(self, value: Any, path: str, *, zero: bool) -> float:
        """A duration as seconds: a number, or 30s / 5m / 2h / 1d."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            try:
                duration = parse_duration(value)
            except ValueError:
                self.problem(
                    path,
                    f"malformed duration {value!r}, expected a form like '30s', '5m', '2h' "
                    "or '1d', or seconds as a number",
                )
                return 0.0
            if duration.unit is Unit.WORKDAYS:
                self.problem(path, f"{value!r}: working days do not apply here; use s, m, h or d")
                return 0.0
            days = duration.unit is Unit.DAYS
            seconds = float(duration.amount * 86400 if days else duration.seconds)
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
            self.problem(path, f"expected a positive duration, got {value!r}")
            return 0.0
        return seconds

    def retry(self, value: Any) -> tuple[float, ...]:
        if not isinstance(value, list):
            self.problem("retry", "expected a list of durations, e.g. [1m, 5m, 30m, 2h, 12h]")
            return DEFAULT_RETRY
        return tuple(self.seconds(item, f"retry[{i}]", zero=True) for i, item in enumerate(value))

    def templates(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem("templates", f"expected a mapping ({', '.join(templates.TEMPLATE_NAMES)})")
            return {}
        self.unknown_keys(value, "templates", templates.TEMPLATE_NAMES)
        result: dict[str, str] = {}
        for name in templates.TEMPLATE_NAMES:
            if name not in value:
                continue
            source = value[name]
            if not isinstance(source, str):
                self.problem(f"templates.{name}", f"expected the template's text, got {source!r}")
                continue
            try:
                templates.validate({name: source})
            except ValidationError as exc:
                self.problem(f"templates.{name}", str(exc))
                continue
            result[name] = source
        return result

    # --- per type ------------------------------------------------------------------------

    def url(self, options: dict[str, Any], path: str) -> None:
        url = options.get("url")
        if url is None or (not self.resolve and url.startswith("env:")):
            return
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            scheme = parts.scheme if parts is not None else ""
            shown = f", not {scheme}:" if scheme and scheme not in ("http", "https") else ""
            self.problem(path, f"expected an http:// or https:// url with a host{shown}")
            return
        default = 443 if parts.scheme == "https" else 80
        self.targets.append((path, parts.hostname, port or default))

    def check_webhook(self, body: dict[str, Any], path: str, options: dict[str, Any]) -> None:
        if "url" not in body:
            self.problem(path, "missing required key 'url' (where to POST)")
        if "secret" not in body:
            self.problem(path, "missing required key 'secret' (webhooks are signed with it)")
        self.url(options, f"{path}.url")

    def check_dingtalk(self, body: dict[str, Any], path: str, options: dict[str, Any]) -> None:
        if "url" not in body:
            self.problem(path, "missing required key 'url' (the robot's webhook, env:NAME)")
        self.url(options, f"{path}.url")

    def check_wecom(self, body: dict[str, Any], path: str, options: dict[str, Any]) -> None:
        if "url" not in body and "key" not in body:
            self.problem(path, "missing required key 'url' (the robot's webhook) or 'key'")
        key = options.get("key")
        url = options.setdefault("url", WECOM_URL)
        if isinstance(key, str) and not key.startswith("env:") and not url.startswith("env:"):
            # the robot endpoint takes its key in the query string: the url carries it
            if "key" in _query_names(url):
                self.problem(f"{path}.key", "the url carries a key already: give one or the other")
            else:
                options["url"] = f"{url}{'&' if '?' in url else '?'}key={quote(key, safe='')}"
        self.url(options, f"{path}.url" if "url" in body else path)

    def check_smtp(self, body: dict[str, Any], path: str, options: dict[str, Any]) -> None:
        if "host" not in body:
            self.problem(path, "missing required key 'host' (the SMTP server)")
        security = body.get("security", "starttls")
        if security not in SMTP_PORTS:
            self.problem(
                f"{path}.security", f"expected one of {' | '.join(SMTP_PORTS)}, got {security!r}"
            )
            security = "starttls"
        options["security"] = security
        port = body.get("port", SMTP_PORTS[security])
        if not _is_int(port) or not 0 < port < 65536:
            self.problem(f"{path}.port", f"expected a port number 1-65535, got {port!r}")
        options["port"] = port
        if ("username" in body) != ("password" in body):
            given, missing = (
                ("username", "password") if "username" in body else ("password", "username")
            )
            self.problem(
                f"{path}.{given}", f"{given} given without {missing}: give both or neither"
            )
        if "from" not in body:
            self.problem(
                path, "missing required key 'from' (e.g. 督办系统 <rectiflow@example.org>)"
            )
        elif "from" in options and not (
            self.resolve is False and options["from"].startswith("env:")
        ):
            if "@" not in parseaddr(options["from"])[1]:
                self.problem(f"{path}.from", f"expected a mail address, got {options['from']!r}")
        host = options.get("host")
        if isinstance(host, str) and _is_int(port) and not host.startswith("env:"):
            self.targets.append((f"{path}.host", host, port))


def _query_names(url: str) -> set[str]:
    try:
        return {name for name, _ in parse_qsl(urlsplit(url).query)}
    except ValueError:
        return set()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
