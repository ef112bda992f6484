"""The Engine: the one object that host apps, the CLI and the daemon hold.

It is assembled from one class per concern, each in its own module and each built on the
concerns it uses (Cases on Calendar on Registry), so every call between them is checked:

    Registry   units, actors, workflows, diagrams          app/registry.py
    Calendar   time rules, calendar table, provisional     app/calendar.py
    Cases      open, fire, triggers, pause, resume, notes  app/cases.py
    Measures   measures and their evidence                 app/measures.py
    Deadlines  the sweep, monthly dispatch, health         app/deadlines.py
    Corrections  edit: a case corrected, old → new           app/corrections.py
    Lookback   回头看: held or relapsed after closing        app/lookback.py
    Extensions 申请延期: requests, approval, rejection        app/extensions.py
    Exemptions 容错免责: exempt, unexempt (the sweep ends)    app/exemptions.py
    Ledger     ledger files in (import) and out (export)   app/ledger.py
    Reports    progress, snapshots, ranking, light history app/reports.py
    Views      case_view, light, lists                     app/views.py

This module adds what belongs to the whole: construction, ``init``, the clock, closing,
and the embedded scheduler (which is handed the whole Engine). Every time-dependent call
takes ``now`` (aware datetime; default: the clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rectiflow.app.base import utcnow
from rectiflow.app.calendar import CALENDAR_RECHECK_SECONDS, Calendar
from rectiflow.app.cases import Cases
from rectiflow.app.deadlines import Deadlines
from rectiflow.app.exemptions import Exemptions
from rectiflow.app.extensions import Extensions
from rectiflow.app.ledger import Ledger
from rectiflow.app.lookback import Lookback
from rectiflow.app.measures import Measures
from rectiflow.app.registry import Registry
from rectiflow.app.reports import Reports
from rectiflow.app.views import Views
from rectiflow.engine import history
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.spec import parse_workflow
from rectiflow.engine.storage import Store
from rectiflow.engine.types import WorkflowRecord
from rectiflow.store import open_store

if TYPE_CHECKING:
    from rectiflow.scheduler import Scheduler

DEFAULT_URL = "sqlite:///rectiflow.db"
DEFAULT_TZ = "Asia/Shanghai"
SHIPPED_WORKFLOWS = ("rectification.yaml", "rectification-v2.yaml")


class Engine(
    Views, Measures, Ledger, Lookback, Extensions, Exemptions, Cases, Deadlines, Reports,
    Calendar, Registry,
):  # fmt: skip
    """Runs a problem-list ledger. Instantiate one per database and use it as a context
    manager::

        with Engine("sqlite:///ledger.db") as engine:
            engine.init()
            case = engine.open_case("alice", unit="HRB", title="...")

    ``tz`` is the local time zone deadlines are counted in (default Asia/Shanghai; the
    library reads no environment variable, the CLI passes ``RECTIFLOW_TZ``).

    ``audit_key`` signs every new history entry with HMAC-SHA256 (the CLI and the daemon
    pass ``RECTIFLOW_AUDIT_KEY`` or the last key of ``RECTIFLOW_AUDIT_KEY_FILE``);
    ``former_audit_keys`` are the keys used before a rotation, which an audit needs to
    check the entries they signed.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        tz: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        store: Store | None = None,
        audit_key: str | bytes | None = None,
        former_audit_keys: Sequence[str | bytes] = (),
    ) -> None:
        self.url = url
        self.audit_key = history.ChainKey.of(audit_key) if audit_key is not None else None
        self.audit_keys = (
            *(history.ChainKey.of(k) for k in former_audit_keys),
            *([self.audit_key] if self.audit_key is not None else []),
        )
        self.tz = _zone(tz or DEFAULT_TZ)
        self.store = store if store is not None else open_store(url)
        self.clock = clock
        self._specs = {}
        self._rules = None
        self._calendar_read_at = -CALENDAR_RECHECK_SECONDS
        self._hooks = []
        self._scheduler: Scheduler | None = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_scheduler()
        self.store.close()

    def init(self, *, force: bool = False) -> list[WorkflowRecord]:
        """Create (or upgrade) the schema and register the shipped workflows. Idempotent.
        A database holding another program's tables is refused unless ``force``."""
        self.store.create_schema(force=force)
        registered = []
        for filename in SHIPPED_WORKFLOWS:
            text = resources.files("rectiflow.workflows").joinpath(filename).read_text("utf-8")
            spec = self._register_spec(parse_workflow(text, filename))  # shipped: no admin
            registered.append(self._record(spec))
        return registered

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's schema revision or None, the newest revision this code knows)."""
        return self.store.schema_revision()

    def now(self) -> dt.datetime:
        """The engine's clock, as an aware UTC time."""
        return self._now(None)

    def start_scheduler(self, **options: Any) -> Scheduler:
        """Run the sweep and the cron jobs in a background thread of this process."""
        from rectiflow.scheduler import Scheduler

        if self._scheduler is None:
            self._scheduler = Scheduler(self, **options)
            self._scheduler.start_background()
        return self._scheduler

    def stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None


def _zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; an unknown one is a ValidationError."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        pass
    raise ValidationError(
        f"unknown time zone {name!r} (RECTIFLOW_TZ): use an IANA name such as Asia/Shanghai"
    )
