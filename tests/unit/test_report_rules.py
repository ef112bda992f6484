"""Report rules: categories, tallies, roll-up, headline, ranking schemes and periods."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rectiflow.engine.errors import ValidationError
from rectiflow.engine.reports import (
    CATEGORIES,
    DEFAULT_SCHEME_YAML,
    CaseFacts,
    Category,
    Scheme,
    Tally,
    Tier,
    behind_schedule,
    categorize,
    default_scheme,
    headline,
    insert_category,
    is_quarter_end,
    month_end_moment,
    parse_period,
    parse_scheme,
    periods_between,
    quarter_of,
    rank,
    roll_up,
    score,
    unit_figures,
)

SH = ZoneInfo("Asia/Shanghai")
ENTERED = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)  # a ten-day rectify window
MID = dt.datetime(2026, 3, 6, tzinfo=dt.UTC)  # half of it elapsed
LADDER = ("remind", "warn", "supervise", "notify_public", "accountability")


def facts(**changes: Any) -> CaseFacts:
    """An open case in rectify, on schedule at MID, with the given fields changed."""
    base = CaseFacts(
        case_id=1, unit="HRB", unit_path="/HLJ/HRB/", category=None, source=None,
        severity="high", state="rectify", final=False, dismissed=False, in_rectify=True,
        in_verify=False, paused=False, long_term=False, due_at=DUE, stage_entered_at=ENTERED,
        measures=2, measures_done=1, measures_late=0, levels=(), light="green",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def state(name: str, **changes: Any) -> CaseFacts:
    """A case in ``name`` as the store would describe it."""
    final = name in ("closed", "dismissed")
    fields: dict[str, Any] = dict(
        state=name, final=final, dismissed=name == "dismissed", in_rectify=name == "rectify",
        in_verify=name == "verify", due_at=None if final else DUE,
        light=None if final else "green",
    )  # fmt: skip
    return facts(**(fields | changes))


# --- categories ------------------------------------------------------------------------------


def test_categories__in_the_issues_order() -> None:
    assert [c.key for c in CATEGORIES] == [
        "dismissed", "closed", "exempted", "awaiting_acceptance", "done_not_submitted",
        "paused", "long_term", "overdue", "behind_schedule", "on_schedule",
    ]  # fmt: skip
    assert [c.key for c in CATEGORIES if c.completed] == [
        "closed",
        "awaiting_acceptance",
        "done_not_submitted",
    ]
    assert [c.key for c in CATEGORIES if not c.counted] == ["dismissed"]


def test_categorize__dismissed_is_not_closed() -> None:
    assert categorize(state("dismissed"), MID) == "dismissed"
    assert categorize(state("closed"), MID) == "closed"


def test_categorize__verify_awaits_acceptance_even_when_overdue() -> None:
    assert categorize(state("verify"), DUE + dt.timedelta(days=30)) == "awaiting_acceptance"


def test_categorize__done_not_submitted_needs_a_measure_and_all_done() -> None:
    assert categorize(facts(measures=3, measures_done=3), MID) == "done_not_submitted"
    assert categorize(facts(measures=3, measures_done=3), DUE + dt.timedelta(1)) == (
        "done_not_submitted"
    )
    assert categorize(facts(measures=0, measures_done=0), MID) == "on_schedule"
    assert categorize(facts(measures=3, measures_done=2), MID) == "on_schedule"
    # all measures done in another state is not this category
    assert categorize(state("plan", measures=1, measures_done=1), MID) == "on_schedule"


def test_categorize__paused_before_overdue() -> None:
    assert categorize(facts(paused=True, light=None), DUE + dt.timedelta(days=3)) == "paused"


def test_categorize__long_term_only_without_a_deadline() -> None:
    assert categorize(facts(long_term=True, due_at=None), MID) == "long_term"
    late = DUE + dt.timedelta(seconds=1)
    assert categorize(facts(long_term=True), late) == "overdue"  # it was given a date


def test_categorize__overdue_strictly_after_the_deadline() -> None:
    assert categorize(state("plan"), DUE) == "on_schedule"
    assert categorize(facts(), DUE + dt.timedelta(microseconds=1)) == "overdue"
    assert categorize(state("plan"), DUE + dt.timedelta(days=1)) == "overdue"  # any stage


def test_categorize__plan_stage_is_never_behind_schedule() -> None:
    assert categorize(state("plan", measures=4, measures_done=0, measures_late=2), MID) == (
        "on_schedule"
    )


def test_behind_schedule__a_late_measure() -> None:
    assert behind_schedule(facts(measures_late=1, measures_done=1), ENTERED)
    assert categorize(facts(measures_late=1), ENTERED) == "behind_schedule"


def test_behind_schedule__done_below_the_elapsed_share() -> None:
    # 4 measures, half the window gone: floor(4 × 0.5) = 2 must be done
    assert behind_schedule(facts(measures=4, measures_done=1), MID)
    assert not behind_schedule(facts(measures=4, measures_done=2), MID)
    # 3 measures, half gone: floor(1.5) = 1
    assert not behind_schedule(facts(measures=3, measures_done=1), MID)
    assert behind_schedule(facts(measures=3, measures_done=0), MID)


def test_behind_schedule__share_is_exact_at_a_third() -> None:
    third = ENTERED + (DUE - ENTERED) / 3
    assert behind_schedule(facts(measures=3, measures_done=0), third)
    assert not behind_schedule(facts(measures=3, measures_done=0), third - dt.timedelta(1e-6))


def test_behind_schedule__share_clamped() -> None:
    before = ENTERED - dt.timedelta(days=5)  # a clock before the stage began: share 0
    assert not behind_schedule(facts(measures=4, measures_done=0), before)
    assert behind_schedule(facts(measures=4, measures_done=3), DUE)  # share 1, not overdue


def test_behind_schedule__not_when_overdue_or_outside_rectify() -> None:
    assert not behind_schedule(facts(measures_late=2), DUE + dt.timedelta(days=1))
    assert not behind_schedule(state("verify", measures_late=2), MID)


def test_behind_schedule__no_deadline_only_late_measures() -> None:
    assert not behind_schedule(facts(due_at=None, measures=4, measures_done=0), MID)
    assert behind_schedule(facts(due_at=None, measures_late=1), MID)


def test_behind_schedule__empty_window_has_elapsed() -> None:
    assert behind_schedule(facts(due_at=ENTERED, measures=2, measures_done=1), ENTERED)


@st.composite
def any_facts(draw: st.DrawFn) -> CaseFacts:
    """A case in any state, paused or not, with any deadline and measures."""
    name = draw(st.sampled_from(["identify", "plan", "rectify", "verify", "closed", "dismissed"]))
    measures = draw(st.integers(0, 6))
    done = draw(st.integers(0, measures))
    days = draw(st.none() | st.integers(-2, 15))
    return state(
        name, paused=draw(st.booleans()) and name not in ("closed", "dismissed"),
        long_term=draw(st.booleans()), measures=measures, measures_done=done,
        measures_late=draw(st.integers(0, measures - done)),
        due_at=None if days is None else ENTERED + dt.timedelta(days=days),
        levels=tuple(LADDER[: draw(st.integers(0, len(LADDER)))]),
    )  # fmt: skip


FACTS = any_facts()
NOWS = st.integers(-3 * 86_400, 20 * 86_400).map(lambda s: ENTERED + dt.timedelta(seconds=s))


@given(FACTS, NOWS)
def test_categorize__first_rule_that_applies(case: CaseFacts, now: dt.datetime) -> None:
    key = categorize(case, now)
    applying = [c.key for c in CATEGORIES if c.applies(case, now)]
    assert applying[0] == key
    assert applying[-1] == "on_schedule"  # the catch-all


@given(FACTS, NOWS, st.integers(0, 86_400 * 20))
def test_behind_schedule__never_undone_by_time(
    case: CaseFacts, now: dt.datetime, later_s: int
) -> None:
    later = now + dt.timedelta(seconds=later_s)
    if behind_schedule(case, now) and (case.due_at is None or later <= case.due_at):
        assert behind_schedule(case, later)


@given(st.integers(1, 8), st.integers(0, 8), NOWS)
def test_behind_schedule__more_done_is_never_more_behind(
    measures: int, done: int, now: dt.datetime
) -> None:
    done = min(done, measures - 1)
    if not behind_schedule(facts(measures=measures, measures_done=done), now):
        assert not behind_schedule(facts(measures=measures, measures_done=done + 1), now)


def test_insert_category__a_new_condition_is_one_inserted_rule() -> None:
    audited = Category("audited", "审计发现", True, False, lambda f, now: f.source == "审计")
    registry = insert_category(audited, before="paused")
    keys = [c.key for c in registry]
    assert keys.index("audited") == keys.index("paused") - 1
    case = facts(source="审计", paused=True)
    assert categorize(case, MID, registry) == "audited"
    assert categorize(case, MID) == "paused"  # the shipped registry is untouched
    tally = Tally(registry=registry)
    tally.add(case, "audited")
    assert list(tally.categories)[5] == "audited"
    assert tally.total == 1
    with pytest.raises(ValueError, match="already registered"):
        insert_category(audited, before="paused", categories=registry)


def test_categories__an_exempted_case_is_its_own_category() -> None:
    late = facts(due_at=ENTERED + dt.timedelta(days=1), exempted=True, light=None)
    assert categorize(late, MID) == "exempted"  # not overdue: 容错免责
    assert categorize(state("verify", exempted=True), MID) == "exempted"
    assert categorize(state("closed", exempted=False), MID) == "closed"
    again = Category("exempted", "豁免", True, False, lambda f, now: False)
    with pytest.raises(ValueError, match="already registered"):
        insert_category(again, before="closed")
    with pytest.raises(ValueError, match="no category 'nope'"):
        insert_category(dataclasses.replace(again, key="other"), before="nope")


def test_categorize__no_rule_applies() -> None:
    with pytest.raises(ValueError, match="no category applies to case 1"):
        categorize(facts(), MID, CATEGORIES[:1])


# --- tallies ---------------------------------------------------------------------------------


def provincial_ledger() -> list[CaseFacts]:
    """52 items as in the provincial year-end report, plus two dismissed ones."""
    cases = (
        [state("closed")] * 33
        + [state("verify")] * 10
        + [facts(measures=2, measures_done=2)] * 4
        + [facts(due_at=ENTERED + dt.timedelta(days=1), light="red", levels=LADDER[:3])]
        + [facts(measures=4, measures_done=0, light="yellow", levels=LADDER[:1])] * 4
        + [state("dismissed")] * 2
    )
    return [dataclasses.replace(c, case_id=i + 1) for i, c in enumerate(cases)]


def test_tally__the_issues_breakdown() -> None:
    tally = Tally(ladder=LADDER)
    for case in provincial_ledger():
        tally.add(case, categorize(case, MID))
    assert tally.categories == {
        "dismissed": 2, "closed": 33, "exempted": 0, "awaiting_acceptance": 10,
        "done_not_submitted": 4, "paused": 0, "long_term": 0, "overdue": 1,
        "behind_schedule": 4, "on_schedule": 0,
    }  # fmt: skip
    assert (tally.total, tally.completed) == (52, 47)
    assert tally.completion_rate == 47 / 52
    assert tally.as_dict()["completion_rate"] == 0.9038
    assert tally.escalations == {
        "remind": 5, "warn": 1, "supervise": 1, "notify_public": 0, "accountability": 0
    }  # fmt: skip
    assert headline("全省", tally) == (
        "全省共建立问题清单52项，已完成整改47项，完成率90.4%，其中已销号33项、"
        "已完成整改待验收10项、已完成整改未申请验收4项；逾期未完成1项，未达序时进度4项。"
    )


def test_tally__empty_has_every_key() -> None:
    tally = Tally()
    assert tally.as_dict() == {
        "total": 0, "completed": 0, "completion_rate": 0.0,
        "categories": {c.key: 0 for c in CATEGORIES},
        "lights": {"green": 0, "yellow": 0, "red": 0}, "escalations": {},
        "loop": {"relapses": 0, "lookbacks_due": 0, "lookbacks_done": 0,
                 "extensions_approved": 0},
    }  # fmt: skip
    assert list(Tally(ladder=LADDER).escalations) == list(LADDER)


def test_tally__dismissed_counts_nothing_else() -> None:
    tally = Tally()
    tally.add(state("dismissed", levels=("remind",), light="red"), "dismissed")
    assert tally.categories["dismissed"] == 1
    assert (tally.total, tally.completed, tally.lights["red"], tally.escalations) == (0, 0, 0, {})


def test_tally__lights_and_levels() -> None:
    tally = Tally()
    tally.add(facts(light="red", levels=("remind", "warn", "remind")), "overdue")
    tally.add(facts(light=None), "paused")
    assert tally.lights == {"green": 0, "yellow": 0, "red": 1}
    assert tally.escalations == {"remind": 1, "warn": 1}  # once per case
    with pytest.raises(ValueError, match="unknown category"):
        tally.add(facts(), "nope")
    with pytest.raises(ValueError, match="unknown light"):
        tally.add(facts(light="blue"), "on_schedule")


def test_case_facts__level_is_the_last_recorded() -> None:
    assert facts().level is None
    assert facts(levels=("remind", "warn")).level == "warn"


@given(st.lists(st.tuples(FACTS, NOWS), max_size=30))
def test_tally__adds_up(cases: list[tuple[CaseFacts, dt.datetime]]) -> None:
    tally = Tally()
    for case, now in cases:
        tally.add(case, categorize(case, now))
    counted = {c.key for c in CATEGORIES if c.counted}
    completed = {c.key for c in CATEGORIES if c.completed}
    assert sum(n for k, n in tally.categories.items() if k in counted) == tally.total
    assert sum(n for k, n in tally.categories.items() if k in completed) == tally.completed
    assert sum(tally.categories.values()) == len(cases)
    assert 0.0 <= tally.completion_rate <= 1.0


def test_headline__zero_and_nothing_open() -> None:
    assert headline("全省", Tally()) == "全省共建立问题清单0项。"
    tally = Tally()
    tally.add(state("closed"), "closed")
    tally.add(facts(long_term=True, due_at=None), "long_term")
    assert headline("哈尔滨市", tally) == (
        "哈尔滨市共建立问题清单2项，已完成整改1项，完成率50.0%，其中已销号1项；长期坚持1项。"
    )
    open_only = Tally()
    open_only.add(facts(), "on_schedule")
    assert headline("全省", open_only) == (
        "全省共建立问题清单1项，已完成整改0项，完成率0.0%；序时推进1项。"
    )


# --- roll-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root", "depth", "expected"),
    [
        ("/HLJ/HRB/DL/", "/HLJ/", 1, "/HLJ/HRB/"),
        ("/HLJ/HRB/DL/", "/HLJ/", 2, "/HLJ/HRB/DL/"),
        ("/HLJ/HRB/DL/", "/HLJ/", 3, None),  # above the depth
        ("/HLJ/HRB/", "/HLJ/", 1, "/HLJ/HRB/"),
        ("/HLJ/", "/HLJ/", 1, None),  # the root's own cases
        ("/HLJ/", "/HLJ/", 0, "/HLJ/"),
        ("/HLJX/A/", "/HLJ/", 1, None),  # a code that only starts like the root's
        ("/JL/CC/", "/HLJ/", 1, None),
        ("/HLJ/HRB/DL/", "/HLJ/HRB/", 1, "/HLJ/HRB/DL/"),
    ],
)
def test_roll_up(path: str, root: str, depth: int, expected: str | None) -> None:
    assert roll_up(path, root, depth) == expected


def test_roll_up__negative_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        roll_up("/A/", "/A/", -1)


CODES = st.lists(st.sampled_from(["A", "B", "AB", "C1"]), max_size=5)


@given(CODES, CODES, st.integers(0, 6))
def test_roll_up__an_ancestor_at_that_depth(root: list[str], below: list[str], depth: int) -> None:
    root_path = "/" + "".join(f"{c}/" for c in root)
    path = root_path + "".join(f"{c}/" for c in below)
    got = roll_up(path, root_path, depth)
    if depth > len(below):
        assert got is None
    else:
        assert got is not None
        assert path.startswith(got)
        assert got.count("/") == root_path.count("/") + depth


# --- ranking ---------------------------------------------------------------------------------


def test_default_scheme__the_shipped_weights_and_tiers() -> None:
    scheme = default_scheme()
    assert scheme.name == "默认方案"
    assert scheme.by == "share"
    assert dict(scheme.weights) == {
        "completion_rate": 100, "overdue_rate": -40, "behind_schedule_rate": -20,
        "remind_rate": 0, "warn_rate": -2, "supervise_rate": -5, "notify_public_rate": -10,
        "accountability_rate": -20, "relapses_rate": -20, "extensions_approved_rate": 0,
    }  # fmt: skip
    assert scheme.tiers == (Tier("第一档", share=0.3), Tier("第二档", share=0.5), Tier("第三档"))
    assert parse_scheme(DEFAULT_SCHEME_YAML) == scheme


def test_unit_figures__rates_over_the_units_total() -> None:
    tally = Tally(ladder=LADDER)
    for case in provincial_ledger():
        tally.add(case, categorize(case, MID))
    figures = unit_figures(tally)
    assert set(figures) == {
        "total", "completed", "completion_rate", "closed_rate", "awaiting_acceptance_rate",
        "done_not_submitted_rate", "paused_rate", "long_term_rate", "overdue_rate",
        "behind_schedule_rate", "on_schedule_rate", *(f"{level}_rate" for level in LADDER),
        "exempted_rate", "relapses", "relapses_rate", "lookbacks_due", "lookbacks_due_rate",
        "lookbacks_done", "lookbacks_done_rate", "extensions_approved",
        "extensions_approved_rate",
    }  # fmt: skip
    assert figures["total"] == 52
    assert figures["completed"] == 47
    assert figures["completion_rate"] == 47 / 52
    assert figures["overdue_rate"] == 1 / 52
    assert figures["behind_schedule_rate"] == 4 / 52
    assert figures["remind_rate"] == 5 / 52
    assert figures["accountability_rate"] == 0.0
    assert unit_figures(Tally())["completion_rate"] == 0.0
    expected = 100 * 47 / 52 - 40 / 52 - 20 * 4 / 52 - 2 / 52 - 5 / 52
    assert score(figures, default_scheme()) == pytest.approx(expected)


def test_unit_figures__exempted_cases_carry_no_penalty_and_relapses_weigh() -> None:
    tally = Tally(ladder=LADDER)
    cases = [
        facts(due_at=ENTERED + dt.timedelta(days=1), light="red"),  # overdue
        facts(due_at=ENTERED + dt.timedelta(days=1), exempted=True, light=None),
        state("closed", relapses=2, lookback_done=True),
        state("closed", lookback_due=True, extensions_approved=1),
    ]
    for case in cases:
        tally.add(case, categorize(case, MID))
    figures = unit_figures(tally)
    # 3 cases count: the exempted one neither helps nor hurts
    assert (figures["total"], figures["overdue_rate"]) == (4, 1 / 3)
    assert figures["completion_rate"] == 2 / 3
    assert (figures["relapses"], figures["relapses_rate"]) == (2, 2 / 3)
    assert (figures["lookbacks_due"], figures["lookbacks_done"]) == (1, 1)
    assert figures["extensions_approved"] == 1
    without_exempted = Tally(ladder=LADDER)
    for case in cases[:1] + cases[2:]:
        without_exempted.add(case, categorize(case, MID))
    assert unit_figures(without_exempted)["overdue_rate"] == figures["overdue_rate"]


def test_score__missing_figures_count_zero() -> None:
    scheme = Scheme("s", {"completion_rate": 100, "relapse_rate": -50}, (Tier("all"),), "share")
    assert score({"completion_rate": 0.5}, scheme) == 50
    assert score({"completion_rate": 0.5, "relapse_rate": 0.2, "other": 9}, scheme) == 40


def by_rate(*rates: float) -> list[tuple[str, str, dict[str, float]]]:
    return [(f"U{i:02d}", f"单位{i}", {"completion_rate": r}) for i, r in enumerate(rates)]


def test_rank__share_tiers_30_50_rest() -> None:
    rows = rank(by_rate(*[i / 10 for i in range(10)]), default_scheme())
    assert [r["rank"] for r in rows] == list(range(1, 11))
    assert [r["unit"] for r in rows] == [f"U{i:02d}" for i in range(9, -1, -1)]
    assert [r["tier"] for r in rows] == ["第一档"] * 3 + ["第二档"] * 5 + ["第三档"] * 2
    assert rows[0] == {
        "unit": "U09", "name": "单位9", "score": 90.0, "rank": 1, "tier": "第一档",
        "figures": {"completion_rate": 0.9},
    }  # fmt: skip


def test_rank__share_tiers_round_up() -> None:
    rows = rank(by_rate(*range(7)), default_scheme())  # 2.1 → 3, 5.6 → 6, the rest 1
    assert [r["tier"] for r in rows] == ["第一档"] * 3 + ["第二档"] * 3 + ["第三档"]
    assert rank([], default_scheme()) == []


def test_rank__ties_by_unit_code_with_consecutive_ranks() -> None:
    units = [("C", "丙", {"completion_rate": 0.5}), ("A", "甲", {"completion_rate": 0.5}),
             ("B", "乙", {"completion_rate": 0.9})]  # fmt: skip
    rows = rank(units, default_scheme())
    assert [(r["unit"], r["rank"]) for r in rows] == [("B", 1), ("A", 2), ("C", 3)]


def test_rank__scores_equal_to_four_places_tie() -> None:
    scheme = Scheme("s", {"a": 1.0, "b": 1.0}, (Tier("all"),), "share")
    units = [("Z", "z", {"a": 0.1, "b": 0.2}), ("Y", "y", {"a": 0.3, "b": 0.0})]
    assert [r["unit"] for r in rank(units, scheme)] == ["Y", "Z"]


def test_rank__by_score() -> None:
    scheme = parse_scheme(
        "name: 按分数\nweights: {completion_rate: 100}\n"
        "tiers:\n  - {name: 好, min_score: 90}\n  - {name: 中, min_score: 60}\n  - {name: 差}\n"
    )
    assert scheme.by == "score"
    rows = rank(by_rate(0.95, 0.9, 0.6, 0.59, 0.0), scheme)
    assert [r["tier"] for r in rows] == ["好", "好", "中", "差", "差"]


@given(st.lists(st.floats(0, 1), max_size=40))
def test_rank__sorted_and_tiers_in_order(rates: list[float]) -> None:
    rows = rank(by_rate(*rates), default_scheme())
    n = len(rates)
    assert [r["rank"] for r in rows] == list(range(1, n + 1))
    keys = [(-r["score"], r["unit"]) for r in rows]
    assert keys == sorted(keys)
    tiers = [r["tier"] for r in rows]
    assert tiers == sorted(tiers, key=["第一档", "第二档", "第三档"].index)
    assert tiers.count("第一档") == math.ceil(round(0.3 * n, 9))
    assert tiers.count("第一档") + tiers.count("第二档") == math.ceil(round(0.8 * n, 9))


def test_parse_scheme__percent_shares_and_the_rest() -> None:
    scheme = parse_scheme(
        "name: s\nby: share\nweights: {completion_rate: 1}\n"
        "tiers: [{name: A, share: 20%}, {name: B, share: 0.8}]\n"
    )
    assert scheme.tiers == (Tier("A", share=0.2), Tier("B", share=0.8))


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", "x.yaml:1", "empty"),
        ("name: [", "x.yaml:2", "does not parse"),
        ("name: s\nweights: {a: 1}\n", "x.yaml:1", "missing required key 'tiers'"),
        ("name: s\nweights: {a: 1}\ntiers: [{name: A}]\ncolour: red\n", "x.yaml:4", "colour"),
        ("name: s\nweights:\n  a: heavy\ntiers: [{name: A}]\n", "x.yaml:3", "weights.a"),
        ("name: s\nweights:\n  a: true\ntiers: [{name: A}]\n", "x.yaml:3", "a number"),
        ("name: s\nweights: {}\ntiers: [{name: A}]\n", "x.yaml:2", "at least one"),
        ("name: s\nweights: {a b: 1}\ntiers: [{name: A}]\n", "x.yaml:2", "figure's name"),
        ("name: s\nweights: {a: 1}\ntiers: []\n", "x.yaml:3", "list of tiers"),
        ("name: s\nweights: {a: 1}\nby: rank\ntiers: [{name: A}]\n", "x.yaml:3", "by: expected"),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A}\n  - {name: B}\n",
            "x.yaml:4", "missing 'share'",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, share: 30}\n  - {name: B}\n",
            "x.yaml:4", "tiers[0].share",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, share: 0.7}\n"
            "  - {name: B, share: 0.7}\n  - {name: C}\n",
            "x.yaml:3", "more than 1",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, share: 0.3}\n"
            "  - {name: B, share: 0.3}\n",
            "x.yaml:5", "takes the rest",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, share: 0.3}\n  - {name: A}\n",
            "x.yaml:5", "given twice",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, min_score: 50}\n"
            "  - {name: B, min_score: 60}\n  - {name: C}\n",
            "x.yaml:5", "below the one before",
        ),
        (
            "name: s\nweights: {a: 1}\ntiers:\n  - {name: A, min_score: 50}\n"
            "  - {name: B, min_score: 10}\n",
            "x.yaml:5", "give it no min_score",
        ),
        (
            "name: s\nby: share\nweights: {a: 1}\ntiers:\n  - {name: A, min_score: 5}\n"
            "  - {name: B}\n",
            "x.yaml:5", "tiers[0].min_score",
        ),
    ],
)  # fmt: skip
def test_parse_scheme__refusals_name_file_line_and_key(text: str, where: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_scheme(text, "x.yaml")
    assert raised.value.where == where
    assert message in str(raised.value)


# --- periods ---------------------------------------------------------------------------------


def test_parse_period__month_and_quarter() -> None:
    march = parse_period("2026-03")
    assert (march.key, march.kind, march.first_day, march.last_day) == (
        "2026-03", "month", dt.date(2026, 3, 1), dt.date(2026, 3, 31)
    )  # fmt: skip
    q1 = parse_period(" 2026-q1 ")
    assert (q1.key, q1.kind, q1.first_day, q1.last_day) == (
        "2026-Q1", "quarter", dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    )  # fmt: skip
    assert q1.months == ("2026-01", "2026-02", "2026-03")
    assert parse_period("2028-02").last_day == dt.date(2028, 2, 29)
    assert parse_period("2026-Q4").last_day == dt.date(2026, 12, 31)


@pytest.mark.parametrize("text", ["", "2026", "2026-13", "2026-00", "2026-3", "2026-Q5", "Q1"])
def test_parse_period__bad_text(text: str) -> None:
    with pytest.raises(ValidationError, match="expected a month like 2026-03 or a quarter"):
        parse_period(text)


def test_month_end_moment__23_59_local_on_the_last_day() -> None:
    moment = month_end_moment(2026, 2, SH)
    assert moment == dt.datetime(2026, 2, 28, 23, 59, tzinfo=SH)
    assert moment.astimezone(dt.UTC) == dt.datetime(2026, 2, 28, 15, 59, tzinfo=dt.UTC)
    assert month_end_moment(2026, 12, SH).date() == dt.date(2026, 12, 31)


def test_periods_between() -> None:
    assert periods_between("2026-01", "2026-06") == [f"2026-0{m}" for m in range(1, 7)]
    assert periods_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert periods_between("2026-Q1", "2026-Q1") == ["2026-01", "2026-02", "2026-03"]
    assert periods_between("2026-03", "2026-03") == ["2026-03"]
    with pytest.raises(ValidationError, match="comes after"):
        periods_between("2026-06", "2026-01")


def test_quarters_of_months() -> None:
    assert [quarter_of(f"2026-{m:02d}") for m in (1, 3, 4, 9, 10, 12)] == [
        "2026-Q1", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2026-Q4"
    ]  # fmt: skip
    assert [m for m in range(1, 13) if is_quarter_end(f"2026-{m:02d}")] == [3, 6, 9, 12]
    with pytest.raises(ValidationError, match="expected a month"):
        quarter_of("2026-Q1")


@given(st.integers(1, 9999), st.integers(1, 12))
def test_periods__a_month_lies_in_its_quarter(year: int, month: int) -> None:
    key = f"{year:04d}-{month:02d}"
    quarter = parse_period(quarter_of(key))
    assert key in quarter.months
    assert is_quarter_end(key) == (quarter.months[-1] == key)
    assert parse_period(key).key == key
