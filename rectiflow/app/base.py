"""What every concern of the Engine shares: the state that ``Engine.__init__`` sets, and
the one way a passed ``now`` becomes an aware UTC time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.history import ChainKey
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.storage import Store
from rectiflow.engine.types import Case

TransitionHook = Callable[[Case, str, str], None]  # (case after, trigger, source state)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EngineBase:
    """The shared state, declared once so that each concern type-checks on its own."""

    url: str
    store: Store
    tz: ZoneInfo
    clock: Callable[[], dt.datetime]
    _specs: dict[tuple[str, int], WorkflowSpec]  # parsed workflow versions, by (name, version)
    _rules: TimeRules | None  # built from the loaded calendar on first use
    _calendar_read_at: float  # time.monotonic() of the last calendar read
    _hooks: list[TransitionHook]
    audit_key: ChainKey | None  # signs new history entries (None: plain SHA-256)
    audit_keys: tuple[ChainKey, ...]  # every key an audit checks with: former ones, current

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        """``now`` (default: the clock) as an aware UTC time; a naive time is local time."""
        if now is None:
            now = self.clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=self.tz)
        return now.astimezone(dt.UTC)
