"""Ranking (划档排序): a scheme's weights score each unit's figures, and tiers cut the order.

A scheme is YAML a person writes (``DEFAULT_SCHEME_YAML`` is the shipped one), checked as
strictly as a workflow: every refusal names the file, the line and the key. Equal scores
are ordered by unit code and still get consecutive ranks; tiers are cut by share or by
score. Apart from ``reports.py`` because a scheme has its own file format and checks; what
it ranks is a unit's ``Tally`` (``unit_figures``). Pure rules, like the rest of ``engine/``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from rectiflow.engine.errors import ValidationError
from rectiflow.engine.yaml_source import LocatedChecks

if TYPE_CHECKING:
    from rectiflow.engine.reports import Tally
    from rectiflow.engine.yaml_source import _Located


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


class _SchemeParser(LocatedChecks):
    def __init__(self, loc: _Located) -> None:
        self.loc = loc

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
