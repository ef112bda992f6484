"""What the office reports: each case's category, the tallies, the ranking, the periods.

Pure rules: the store computes one ``CaseFacts`` per case (one aggregate query) and the
caller passes ``now``; nothing here reads a clock, a file or a database.

- **Categories** are an ordered registry (``CATEGORIES``): a case takes the first category
  whose rule applies. A later condition (an exemption, say) gets its own category by
  inserting a rule (``insert_category``), never by editing a chain of ifs.
- **Tallies** count a scope's cases: every category (all keys, 0 included), lights and the
  escalation levels recorded in the current stage visits of the cases counted.
- **Ranking** scores each unit's figures with a scheme's weights and cuts tiers by share or
  by score; equal scores are ordered by unit code and still get consecutive ranks
  (``ranking.py``, with the schemes' YAML).
- **Periods** are months (``2026-03``) and quarters (``2026-Q1``) (``periods.py``).

The names of those two modules are also importable from here, as they always were.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rectiflow.engine.periods import (
    Period,
    is_quarter_end,
    month_end_moment,
    parse_period,
    periods_between,
    quarter_of,
)
from rectiflow.engine.ranking import (
    DEFAULT_SCHEME_YAML,
    Scheme,
    Tier,
    default_scheme,
    parse_scheme,
    rank,
    score,
    unit_figures,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_SCHEME_YAML",
    "LIGHTS",
    "CaseFacts",
    "Category",
    "Period",
    "Scheme",
    "Tally",
    "Tier",
    "behind_schedule",
    "categorize",
    "default_scheme",
    "headline",
    "insert_category",
    "is_quarter_end",
    "month_end_moment",
    "parse_period",
    "parse_scheme",
    "periods_between",
    "quarter_of",
    "rank",
    "roll_up",
    "score",
    "unit_figures",
]

LIGHTS = ("green", "yellow", "red")
#: The counts of the loop after the lifecycle that a tally keeps (see CaseFacts).
LOOP_FIGURES = ("relapses", "lookbacks_due", "lookbacks_done", "extensions_approved")


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the store computes per case, as of ``now``, for the rules below."""

    case_id: int
    unit: str
    unit_path: str
    category: str | None  # the case's own 问题类别 (for --by category)
    source: str | None
    severity: str
    state: str
    final: bool  # the state is final in its workflow
    dismissed: bool  # state == "dismissed": final, and not counted in the totals
    in_rectify: bool  # state == the workflow's due_state
    in_verify: bool  # state == "verify"
    paused: bool
    long_term: bool
    due_at: dt.datetime | None  # the current stage deadline
    stage_entered_at: dt.datetime
    measures: int
    measures_done: int
    measures_late: int  # not-done measures whose own due date is before now
    levels: tuple[str, ...]  # ladder levels recorded in the current stage visit, in order
    light: str | None  # "green"/"yellow"/"red"/None, computed by the caller
    exempted: bool = False  # 容错免责: no ladder level fires, no light, no penalty
    relapses: int = 0
    lookback_due: bool = False  # a look-back due by now and not yet recorded
    lookback_done: bool = False  # the latest closing's look-back was recorded
    extensions_approved: int = 0

    @property
    def level(self) -> str | None:
        """The highest level reached this visit (levels are recorded in ladder order)."""
        return self.levels[-1] if self.levels else None


# --- categories ------------------------------------------------------------------------------

Rule = Callable[[CaseFacts, dt.datetime], bool]


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    zh: str
    counted: bool  # counted in the totals (only 不予立项 is not)
    completed: bool  # counts as 已完成整改
    applies: Rule = field(compare=False)

    @property
    def prose(self) -> str:
        """The label inside a sentence: 已完成整改，待验收 → 已完成整改待验收."""
        return self.zh.replace("，", "")


def _overdue(facts: CaseFacts, now: dt.datetime) -> bool:
    return facts.due_at is not None and now > facts.due_at


def behind_schedule(facts: CaseFacts, now: dt.datetime) -> bool:
    """未达序时进度: in rectify, not overdue, and a not-done measure is past its own due
    date, or fewer measures are done than floor(measures × the elapsed share of the rectify
    window [stage_entered_at, due_at]). The share is clamped to [0, 1]; without a deadline
    there is no window, so only late measures make such a case behind."""
    if not facts.in_rectify or _overdue(facts, now):
        return False
    if facts.measures_late > 0:
        return True
    if facts.due_at is None or facts.measures <= 0:
        return False
    window = _micros(facts.due_at - facts.stage_entered_at)
    if window <= 0:
        return facts.measures_done < facts.measures  # an empty window has wholly elapsed
    elapsed = min(max(_micros(now - facts.stage_entered_at), 0), window)
    # integers: floor(3 × 1/3) must be 1, whatever a float would make of the share
    return facts.measures_done < facts.measures * elapsed // window


def _done_not_submitted(facts: CaseFacts, now: dt.datetime) -> bool:
    return facts.in_rectify and facts.measures >= 1 and facts.measures_done >= facts.measures


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


CATEGORIES: tuple[Category, ...] = (
    Category("dismissed", "不予立项", False, False, lambda f, now: f.dismissed),
    Category("closed", "已销号", True, True, lambda f, now: f.final and not f.dismissed),
    Category("exempted", "豁免/容错", True, False, lambda f, now: f.exempted),
    Category("awaiting_acceptance", "已完成整改，待验收", True, True, lambda f, now: f.in_verify),
    Category("done_not_submitted", "已完成整改，未申请验收", True, True, _done_not_submitted),
    Category("paused", "暂停", True, False, lambda f, now: f.paused),
    Category("long_term", "长期坚持", True, False, lambda f, now: f.long_term and f.due_at is None),
    Category("overdue", "逾期未完成", True, False, _overdue),
    Category("behind_schedule", "未达序时进度", True, False, behind_schedule),
    Category("on_schedule", "序时推进", True, False, lambda f, now: True),
)
"""The categories in the order they are checked: a case takes the first that applies."""


def categorize(
    facts: CaseFacts, now: dt.datetime, categories: Sequence[Category] = CATEGORIES
) -> str:
    """The key of the first category whose rule applies to the case as of ``now``."""
    for category in categories:
        if category.applies(facts, now):
            return category.key
    raise ValueError(f"no category applies to case {facts.case_id} in state {facts.state}")


def insert_category(
    category: Category, *, before: str, categories: Sequence[Category] = CATEGORIES
) -> tuple[Category, ...]:
    """A registry with ``category`` checked just before the one keyed ``before``."""
    keys = [c.key for c in categories]
    if category.key in keys:
        raise ValueError(f"category {category.key!r} is already registered")
    if before not in keys:
        raise ValueError(f"no category {before!r} to insert before")
    at = keys.index(before)
    return (*categories[:at], category, *categories[at:])


# --- tallies ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """The counts of one scope (the whole ledger, a unit's subtree, a 问题类别, ...).

    ``total`` and ``completed`` count the cases of counted categories; ``categories`` has
    every key of the registry in its order, dismissed included; ``lights`` and
    ``escalations`` count the counted cases only. ``escalations[level]`` is the number of
    cases whose current stage visit recorded that level: a case at ``supervise`` counts
    under ``remind``, ``warn`` and ``supervise``. Pass ``ladder`` to list every level, 0
    included, in ladder order; a level outside it is added when first seen.
    """

    total: int = 0
    completed: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    lights: dict[str, int] = field(default_factory=dict)
    escalations: dict[str, int] = field(default_factory=dict)
    # the loop after the lifecycle: relapses, look-backs due and done, extensions granted
    loop: dict[str, int] = field(default_factory=dict)
    registry: Sequence[Category] = field(default=CATEGORIES, kw_only=True, repr=False)
    ladder: Sequence[str] = field(default=(), kw_only=True, repr=False)
    _by_key: dict[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_key = {c.key: c for c in self.registry}
        self.categories = {key: self.categories.get(key, 0) for key in self._by_key}
        self.lights = {light: self.lights.get(light, 0) for light in LIGHTS}
        self.loop = {key: self.loop.get(key, 0) for key in LOOP_FIGURES}
        given = self.escalations
        self.escalations = {level: given.get(level, 0) for level in self.ladder}
        for level, n in given.items():
            self.escalations.setdefault(level, n)

    def add(self, facts: CaseFacts, category: str) -> None:
        """Count one case under ``category`` (a key of the registry)."""
        try:
            kind = self._by_key[category]
        except KeyError:
            raise ValueError(f"unknown category {category!r}") from None
        self.categories[category] += 1
        if not kind.counted:
            return
        self.total += 1
        self.completed += kind.completed
        if facts.light is not None:
            if facts.light not in self.lights:
                raise ValueError(f"case {facts.case_id}: unknown light {facts.light!r}")
            self.lights[facts.light] += 1
        for level in dict.fromkeys(facts.levels):  # a level counts once per case
            self.escalations[level] = self.escalations.get(level, 0) + 1
        self.loop["relapses"] += facts.relapses
        self.loop["lookbacks_due"] += facts.lookback_due
        self.loop["lookbacks_done"] += facts.lookback_done
        self.loop["extensions_approved"] += facts.extensions_approved

    @property
    def completion_rate(self) -> float:
        return self.completed / self.total if self.total else 0.0

    def count(self, key: str) -> int:
        return self.categories.get(key, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "completed": self.completed,
            "completion_rate": round(self.completion_rate, 4),
            "categories": dict(self.categories),
            "lights": dict(self.lights),
            "escalations": dict(self.escalations),
            "loop": dict(self.loop),
        }


def roll_up(unit_path: str, root_path: str, depth: int) -> str | None:
    """The path of the unit ``depth`` levels below ``root_path`` that ``unit_path`` lies
    under ("/HLJ/HRB/DL/" under "/HLJ/" at depth 1 is "/HLJ/HRB/"); None when the unit is
    outside the root or above that depth (the root's own cases at depth 1)."""
    if depth < 0:
        raise ValueError(f"depth must be 0 or more, got {depth}")
    if not unit_path.startswith(root_path):
        return None
    parts = unit_path[len(root_path) :].split("/")[:-1]
    if len(parts) < depth:
        return None
    return root_path + "".join(f"{part}/" for part in parts[:depth])


def headline(scope_name: str, tally: Tally) -> str:
    """The bulletin's first sentence: 全省共建立问题清单52项，已完成整改47项，完成率90.4%，
    其中已销号33项、…；逾期未完成1项，未达序时进度4项。 Categories with no case are left out
    of the two lists; the open ones follow the registry's order."""
    text = f"{scope_name}共建立问题清单{tally.total}项"
    if tally.total == 0:
        return text + "。"
    rate = tally.completion_rate * 100
    text += f"，已完成整改{tally.completed}项，完成率{rate:.1f}%"
    counted = [c for c in tally.registry if c.counted and tally.count(c.key)]
    done = [f"{c.prose}{tally.count(c.key)}项" for c in counted if c.completed]
    still_open = [f"{c.prose}{tally.count(c.key)}项" for c in counted if not c.completed]
    if done:
        text += "，其中" + "、".join(done)
    if still_open:
        text += "；" + "，".join(still_open)
    return text + "。"
