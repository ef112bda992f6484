"""Who may do what: roles granted by the workflow, scope given by the unit tree."""

from __future__ import annotations

from collections.abc import Iterable

from rectiflow.engine.errors import PermissionDenied
from rectiflow.engine.types import Actor


def authorize(
    actor: Actor | None, name: str, roles: Iterable[str], unit_path: str, doing: str
) -> Actor:
    """Return the actor if it holds one of ``roles`` and covers the unit; else refuse."""
    if actor is None:
        raise PermissionDenied(name, f"{doing}: no such actor")
    allowed = tuple(roles)
    if not any(role in allowed for role in actor.roles):
        raise PermissionDenied(
            name, f"{doing}: needs role {' or '.join(allowed) or '(none granted)'}, "
            f"has {', '.join(actor.roles) or 'none'}",
        )  # fmt: skip
    if not actor.covers(unit_path):
        unit = unit_path.strip("/").rsplit("/", 1)[-1]
        raise PermissionDenied(
            name, f"{doing}: unit {unit} is outside the actor's units ({', '.join(actor.units)})"
        )
    return actor
