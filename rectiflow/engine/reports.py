"""What the office reports: each case's category, the tallies, the ranking, the periods.

Pure rules: the store computes one ``CaseFacts`` per case (one aggregate query) and the
caller passes ``now``; nothing here reads a clock, a file or a database.

- **Categories** are an ordered registry (``CATEGORIES``): a case takes the first category
  whose rule applies. A later condition (an exemption, say) gets its own category by
  inserting a rule (``insert_category``), never by editing a chain of ifs.
- **Tallies** count a scope's cases: every category (all keys, 0 included), lights and the
  escalation levels recorded in the current stage visits of the cases counted.
- **Ranking** scores each unit's figures with a scheme's weights and cuts tiers by share or
  by score; equal scores are ordered by unit code and still get consecutive ranks.
- **Periods** are months (``2026-03``) and quarters (``2026-Q1``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from rectiflow.engine.errors import ValidationError

if TYPE_CHECKING:
    from rectiflow.engine.yaml_source import _Located

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


# --- ranking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    name: str
    share: float | None = None  # by share: this tier's fraction of the units
    min_score: float | None = None  # by score: the lowest score that reaches this tier


@dataclass(frozen=True)
class Scheme:
    """Weights per figure and the tiers; the last tier takes every unit the others leave."""

    name: str
    weights: Mapping[str, float]
    tiers: tuple[Tier, ...]
    by: Literal["share", "score"]


DEFAULT_SCHEME_YAML = """\
# The shipped ranking scheme. A rate is a count divided by the unit's counted cases; an
# escalation level's rate counts the cases whose current stage visit reached that level.
name: 默认方案
by: share
weights:
  completion_rate: 100
  overdue_rate: -40
  behind_schedule_rate: -20
  remind_rate: 0
  warn_rate: -2
  supervise_rate: -5
  notify_public_rate: -10
  accountability_rate: -20
  relapses_rate: -20          # 回头看 found the problem back
  extensions_approved_rate: 0
tiers:                      # by share: the first 30 % of units, the next 50 %, the rest
  - {name: 第一档, share: 0.3}
  - {name: 第二档, share: 0.5}
  - {name: 第三档}
"""

_SCHEME_KEYS = {"name", "by", "weights", "tiers", "description"}
_TIER_KEYS = {"name", "share", "min_score"}
_FIGURE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_scheme(text: str, filename: str = "<scheme>") -> Scheme:
    """Parse and check a ranking scheme; a refusal names the file, the line and the key."""
    from rectiflow.engine.yaml_source import _Located, compose_yaml

    root = compose_yaml(text, filename)  # no aliases, not too deep, not too big
    if root is None:
        raise ValidationError("the file is empty", where=f"{filename}:1")
    loc = _Located(filename)
    return _SchemeParser(loc).scheme(loc.build(root, ""))


@functools.cache
def default_scheme() -> Scheme:
    """The shipped scheme, ``DEFAULT_SCHEME_YAML`` parsed once."""
    return parse_scheme(DEFAULT_SCHEME_YAML, "default scheme")


class _SchemeParser:
    def __init__(self, loc: _Located) -> None:
        self.loc = loc

    def fail(self, path: str, message: str) -> ValidationError:
        return self.loc.error(path, message)

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else key,
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                )
        return value

    def number(self, value: Any, path: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(path, f"expected a number, got {value!r}")
        return float(value)

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty name, got {value!r}")
        return value.strip()

    def scheme(self, data: Any) -> Scheme:
        data = self.mapping(data, "", _SCHEME_KEYS)
        for key in ("name", "weights", "tiers"):
            if data.get(key) is None:
                raise self.fail("", f"missing required key {key!r}")
        name = self.text(data["name"], "name")
        weights = self.weights(data["weights"])
        tiers, by = self.tiers(data["tiers"], data.get("by"))
        return Scheme(name=name, weights=MappingProxyType(weights), tiers=tiers, by=by)

    def weights(self, value: Any) -> dict[str, float]:
        value = self.mapping(value, "weights", set(value) if isinstance(value, dict) else set())
        if not value:
            raise self.fail("weights", "give at least one figure's weight")
        for figure in value:
            if not _FIGURE.match(figure):
                raise self.fail(f"weights.{figure}", f"{figure!r} is not a figure's name")
        return {figure: self.number(w, f"weights.{figure}") for figure, w in value.items()}

    def tiers(self, value: Any, by: Any) -> tuple[tuple[Tier, ...], Literal["share", "score"]]:
        if not isinstance(value, list) or not value:
            raise self.fail("tiers", "expected a list of tiers")
        items = [self.mapping(item, f"tiers[{i}]", _TIER_KEYS) for i, item in enumerate(value)]
        if by is None:  # said by the tiers themselves
            by = "score" if any("min_score" in item for item in items) else "share"
        if by not in ("share", "score"):
            raise self.fail("by", f"expected share or score, got {by!r}")
        key, other = ("share", "min_score") if by == "share" else ("min_score", "share")
        tiers: list[Tier] = []
        names: set[str] = set()
        for i, item in enumerate(items):
            path = f"tiers[{i}]"
            if item.get("name") is None:
                raise self.fail(path, "missing required key 'name'")
            name = self.text(item["name"], f"{path}.name")
            if name in names:
                raise self.fail(f"{path}.name", f"tier {name!r} given twice")
            names.add(name)
            if other in item:
                raise self.fail(f"{path}.{other}", f"a scheme by {by} gives tiers a {key}")
            last = i == len(items) - 1
            if item.get(key) is None:
                if not last:
                    raise self.fail(path, f"missing {key!r} (only the last tier takes the rest)")
                tiers.append(Tier(name))
            elif by == "share":
                tiers.append(Tier(name, share=self.share(item[key], f"{path}.share")))
            elif last:
                raise self.fail(
                    f"{path}.min_score", "the last tier takes the rest: give it no min_score"
                )
            else:
                tiers.append(Tier(name, min_score=self.number(item[key], f"{path}.min_score")))
        self.check_tiers(tiers, by)
        return tuple(tiers), by

    def share(self, value: Any, path: str) -> float:
        if isinstance(value, str) and value.strip().endswith(("%", "％")):
            try:
                share = float(value.strip()[:-1]) / 100
            except ValueError:
                raise self.fail(path, f"expected a share like 0.3 or 30%, got {value!r}") from None
        else:
            share = self.number(value, path)
        if not 0 < share <= 1:
            raise self.fail(path, f"a share lies in (0, 1] (0.3 or 30%), got {value!r}")
        return share

    def check_tiers(self, tiers: list[Tier], by: str) -> None:
        last = len(tiers) - 1
        if by == "share":
            shares = [t.share for t in tiers if t.share is not None]
            total = math.fsum(shares)
            if total > 1 + 1e-9:
                raise self.fail("tiers", f"the shares add up to {total:g}, more than 1")
            if tiers[last].share is not None and abs(total - 1) > 1e-9:
                raise self.fail(
                    f"tiers[{last}].share",
                    "the last tier takes the rest: leave out its share or make the shares add "
                    "up to 1",
                )
            return
        scores = [t.min_score for t in tiers[:last] if t.min_score is not None]
        for i in range(1, len(scores)):
            if scores[i] >= scores[i - 1]:
                raise self.fail(
                    f"tiers[{i}].min_score", "each tier's min_score must be below the one before"
                )


def score(figures: Mapping[str, float], scheme: Scheme) -> float:
    """sum(weight × figure) over the scheme's weights; a figure not given counts 0, so a
    scheme may weigh figures that later reports add."""
    return math.fsum(w * float(figures.get(figure, 0.0)) for figure, w in scheme.weights.items())


def rank(
    units: Iterable[tuple[str, str, Mapping[str, float]]], scheme: Scheme
) -> list[dict[str, Any]]:
    """Rank (code, name, figures) rows by score, highest first.

    The score is rounded to 4 places, and rows are ordered by that rounded score, then by
    unit code (ascending): equal scores get consecutive ranks in code order, never a shared
    rank. By share, tier k takes the units up to ceil(n × the shares of tiers 1..k); by
    score, a unit takes the first tier whose min_score it reaches. The last tier takes the
    rest either way. A tie at a tier's edge is split by code like any other.
    """
    scored = sorted(
        ((round(score(figures, scheme), 4), code, name, figures) for code, name, figures in units),
        key=lambda row: (-row[0], row[1]),
    )
    n = len(scored)
    if scheme.by == "share":
        bounds, cumulative = [], 0.0
        for tier in scheme.tiers[:-1]:
            cumulative += tier.share or 0.0
            bounds.append(min(n, math.ceil(round(cumulative * n, 9))))
        bounds.append(n)
    rows = []
    for i, (value, code, name, figures) in enumerate(scored):
        if scheme.by == "share":
            tier = next(t for t, bound in zip(scheme.tiers, bounds, strict=True) if i < bound)
        else:
            tier = next(t for t in scheme.tiers if t.min_score is None or value >= t.min_score)
        rows.append(
            {"unit": code, "name": name, "score": value, "rank": i + 1, "tier": tier.name,
             "figures": dict(figures)}
        )  # fmt: skip
    return rows


def unit_figures(tally: Tally) -> dict[str, float]:
    """The figures a scheme weighs, from one unit's tally: ``total``, ``completed``,
    ``completion_rate``, ``<category>_rate`` for each counted category (``overdue_rate``,
    ``behind_schedule_rate``, and any category a later rule adds) and ``<level>_rate`` for
    each escalation level (the cases that reached it); the loop's counts (``relapses``,
    ``lookbacks_due``, ``lookbacks_done``, ``extensions_approved``) and their rates. A rate
    is a count over the counted cases less the exempted ones (容错免责 neither helps nor
    hurts a unit's standing), 0.0 when there is none."""
    base = tally.total - tally.count("exempted")

    def rate(n: int) -> float:
        return n / base if base > 0 else 0.0

    figures: dict[str, float] = {
        "total": tally.total,
        "completed": tally.completed,
        "completion_rate": rate(tally.completed),
    }
    for key, n in tally.loop.items():
        figures[key] = n
        figures[f"{key}_rate"] = rate(n)
    for category in tally.registry:
        if category.counted:
            figures[f"{category.key}_rate"] = rate(tally.count(category.key))
    for level, n in tally.escalations.items():
        figures[f"{level}_rate"] = rate(n)
    return figures


# --- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # "2026-03" or "2026-Q1"
    kind: Literal["month", "quarter"]
    first_day: dt.date
    last_day: dt.date

    @property
    def months(self) -> tuple[str, ...]:
        """The month keys the period covers, in order."""
        first = self.first_day.month
        return tuple(
            f"{self.first_day.year:04d}-{m:02d}" for m in range(first, self.last_day.month + 1)
        )


_MONTH = re.compile(r"(\d{4})-(\d{2})\Z")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])\Z")


def parse_period(text: str) -> Period:
    """A month ``2026-03`` or a quarter ``2026-Q1``."""
    value = text.strip()
    if match := _MONTH.match(value):
        year, month = int(match[1]), int(match[2])
        if 1 <= year and 1 <= month <= 12:
            last = calendar.monthrange(year, month)[1]
            return Period(
                f"{year:04d}-{month:02d}", "month", dt.date(year, month, 1),
                dt.date(year, month, last),
            )  # fmt: skip
    elif match := _QUARTER.match(value):
        year, quarter = int(match[1]), int(match[2])
        if year >= 1:
            end = quarter * 3
            return Period(
                f"{year:04d}-Q{quarter}", "quarter", dt.date(year, end - 2, 1),
                dt.date(year, end, calendar.monthrange(year, end)[1]),
            )  # fmt: skip
    raise ValidationError(
        f"bad period {text!r}: expected a month like 2026-03 or a quarter like 2026-Q1",
        key="period",
    )


def month_end_moment(year: int, month: int, tz: dt.tzinfo) -> dt.datetime:
    """23:59 local time on the month's last day: when the month's snapshot is taken."""
    last = calendar.monthrange(year, month)[1]
    return dt.datetime(year, month, last, 23, 59, tzinfo=tz)


def periods_between(first: str, last: str) -> list[str]:
    """The month keys from ``first`` to ``last``, both included; a quarter stands for its
    months ("2026-Q1" to "2026-Q2" is six months)."""
    start, end = parse_period(first), parse_period(last)
    if start.first_day > end.last_day:
        raise ValidationError(f"the period {first} comes after {last}", key="period")
    months = []
    year, month = start.first_day.year, start.first_day.month
    while (year, month) <= (end.last_day.year, end.last_day.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _month(month_key: str) -> Period:
    period = parse_period(month_key)
    if period.kind != "month":
        raise ValidationError(f"expected a month like 2026-03, got {month_key!r}", key="period")
    return period


def quarter_of(month_key: str) -> str:
    """The quarter a month lies in: "2026-03" → "2026-Q1"."""
    day = _month(month_key).first_day
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def is_quarter_end(month_key: str) -> bool:
    """True for March, June, September and December: the quarter's figures are frozen then."""
    return _month(month_key).first_day.month % 3 == 0
