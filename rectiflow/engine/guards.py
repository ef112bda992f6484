"""Guards named in workflow YAML, resolved from this registry.

A guard returns ``None`` when the transition may go ahead, else the reason it may not
(``"measure 3 is not done"``), which becomes the message of TransitionRejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rectiflow.engine.types import Case, Measure


@dataclass
class GuardContext:
    """What a guard may look at. Measures are loaded only when a guard asks for them."""

    case: Case
    load_measures: Callable[[], Sequence[Measure]]
    comment: str | None = None
    refusal: str | None = None
    _measures: Sequence[Measure] | None = field(default=None, repr=False)

    @property
    def measures(self) -> Sequence[Measure]:
        if self._measures is None:
            self._measures = self.load_measures()
        return self._measures


Guard = Callable[[GuardContext], str | None]
REGISTRY: dict[str, Guard] = {}


def guard(name: str) -> Callable[[Guard], Guard]:
    """Register a guard under the name that workflow YAML uses."""

    def register(func: Guard) -> Guard:
        REGISTRY[name] = func
        return func

    return register


@guard("has_measures")
def has_measures(ctx: GuardContext) -> str | None:
    return None if ctx.measures else "the plan has no measure"


@guard("all_measures_done")
def all_measures_done(ctx: GuardContext) -> str | None:
    if not ctx.measures:
        return "the case has no measure"
    for measure in ctx.measures:
        if not measure.done:
            return f"measure {measure.id} is not done"
    return None
