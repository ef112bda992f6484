"""rectiflow: an engine for problem-list ledgers (问题清单台账).

One ``Engine`` object runs a ledger: cases move through a versioned workflow, deadlines
follow the Chinese working calendar, and an escalation ladder fires when they pass.
"""

from loguru import logger

from rectiflow.app import Engine
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
