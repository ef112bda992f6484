"""rectiflow: an engine for problem-list ledgers (问题清单台账).

One ``Engine`` object runs a ledger: cases move through a versioned workflow, deadlines
follow the Chinese working calendar, and an escalation ladder fires when they pass.

The names below load on first use (``from rectiflow import Engine`` works as usual), so
that ``rectiflow --help`` does not pay for SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

from rectiflow.engine.errors import (
    ConflictError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    RectiflowError,
    TransitionRejected,
    UsageError,
    ValidationError,
)

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.engine.spec import WorkflowSpec, parse_workflow
    from rectiflow.engine.types import (
        Actor,
        Case,
        Escalation,
        HistoryEntry,
        Light,
        Measure,
        Note,
        Notification,
        Severity,
        SweepSummary,
        Unit,
    )

# A library configures no logging: the host app (or our CLI and daemon) enables it.
logger.disable("rectiflow")

_LAZY = {
    "Engine": "rectiflow.app",
    "WorkflowSpec": "rectiflow.engine.spec",
    "parse_workflow": "rectiflow.engine.spec",
    **dict.fromkeys(
        ("Actor", "Case", "Escalation", "HistoryEntry", "Light", "Measure", "Note",
         "Notification", "Severity", "SweepSummary", "Unit"),
        "rectiflow.engine.types",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rectiflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Actor",
    "Case",
    "ConflictError",
    "Engine",
    "Escalation",
    "HistoryEntry",
    "IntegrityError",
    "Light",
    "Measure",
    "NotFound",
    "Note",
    "Notification",
    "PermissionDenied",
    "RectiflowError",
    "Severity",
    "SweepSummary",
    "TransitionRejected",
    "Unit",
    "UsageError",
    "ValidationError",
    "WorkflowSpec",
    "parse_workflow",
]
