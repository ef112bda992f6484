"""Ledger cell rules: deadline phrases, measures, units, severity, status, formula guard."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rectiflow.engine.ledger_rules import (
    Deadline,
    neutralise_formula,
    parse_deadline,
    parse_severity,
    parse_status,
    split_measures,
    split_units,
    strip_formula_guard,
)

LABELS = {
    "问题识别": "identify",
    "制定方案": "plan",
    "整改落实": "rectify",
    "验收核查": "verify",
    "已销号": "closed",
    "不予立项": "dismissed",
}

#: Ledger-like text: Chinese words, numbers and every separator the rules look at.
LEDGER_TEXT = st.lists(
    st.sampled_from(
        list("0123456789０１２年月日号底末前上下半第季度一二三四五六七八九十是")
        + list("、，,;；。.:：/／-()（）①②⑳⑴⒈ \n\r\t\u3000'=+@")
        + ["立行立改", "长期坚持", "持续推进", "完成", "牵头", "负责", "配合", "省财政厅"]
    ),
    max_size=30,
).map("".join)
ANY_TEXT = st.one_of(st.text(), LEDGER_TEXT)


def day(text: str) -> dt.date | None:
    deadline = parse_deadline(text)
    assert deadline is not None
    assert not deadline.immediate
    assert not deadline.long_term
    return deadline.day


# --- parse_deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "\n\t", "\u3000"])
def test_deadline__blank_is_none(value: str | None) -> None:
    assert parse_deadline(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026年6月底前", dt.date(2026, 6, 30)),
        ("2026年6月前", dt.date(2026, 6, 30)),
        ("2026年6月", dt.date(2026, 6, 30)),
        ("2026年6月末", dt.date(2026, 6, 30)),
        ("2026年2月底前", dt.date(2026, 2, 28)),
        ("2024年2月底前", dt.date(2024, 2, 29)),
        ("2000年2月", dt.date(2000, 2, 29)),
        ("2100年2月", dt.date(2100, 2, 28)),
        ("2026年12月底", dt.date(2026, 12, 31)),
        ("2026年底前", dt.date(2026, 12, 31)),
        ("2026年年底", dt.date(2026, 12, 31)),
        ("2026年年底前", dt.date(2026, 12, 31)),
        ("2026年", dt.date(2026, 12, 31)),
        ("2026年前", dt.date(2026, 12, 31)),
        ("2026年6月30日前", dt.date(2026, 6, 30)),
        ("2026年6月30日", dt.date(2026, 6, 30)),
        ("2026年6月3日", dt.date(2026, 6, 3)),
        ("2026-06-30", dt.date(2026, 6, 30)),
        ("2026.6.30", dt.date(2026, 6, 30)),
        ("2026/6/30", dt.date(2026, 6, 30)),
        ("2026-06-30 00:00:00", dt.date(2026, 6, 30)),
        ("2026年上半年", dt.date(2026, 6, 30)),
        ("2026年下半年", dt.date(2026, 12, 31)),
        ("2026年一季度", dt.date(2026, 3, 31)),
        ("2026年第1季度", dt.date(2026, 3, 31)),
        ("2026年第二季度末", dt.date(2026, 6, 30)),
        ("2026年第三季度", dt.date(2026, 9, 30)),
        ("2026年三季度", dt.date(2026, 9, 30)),
        ("2026年三季度末", dt.date(2026, 9, 30)),
        ("2026年第3季度", dt.date(2026, 9, 30)),
        ("2026年第四季度", dt.date(2026, 12, 31)),
        ("２０２６年６月底前", dt.date(2026, 6, 30)),
        ("２０２６－０６－３０", dt.date(2026, 6, 30)),
        ("2026年 6 月底前", dt.date(2026, 6, 30)),
    ],
)
def test_deadline__phrases(text: str, expected: dt.date) -> None:
    assert day(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026年6月底前完成",
        "2026年6月前完成",
        "2026年6月30日之前",
        "2026年6月底以前",
        "2026年6月底前完成整改",
        "2026年6月底前整改到位",
        "  2026年6月底前。",
        "2026年6月底前；",
    ],
)
def test_deadline__trailing_words(text: str) -> None:
    assert day(text) == dt.date(2026, 6, 30)


def test_deadline__date_cells() -> None:
    assert parse_deadline(dt.date(2026, 6, 30)) == Deadline(dt.date(2026, 6, 30))
    assert parse_deadline(dt.datetime(2026, 6, 30, 17, 30)) == Deadline(dt.date(2026, 6, 30))


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (46203, dt.date(2026, 6, 30)),
        (46203.0, dt.date(2026, 6, 30)),
        (46203.75, dt.date(2026, 6, 30)),  # a time of day is dropped
        (61, dt.date(1900, 3, 1)),
        (45351, dt.date(2024, 2, 29)),
    ],
)
def test_deadline__excel_serial(serial: float, expected: dt.date) -> None:
    assert parse_deadline(serial) == Deadline(expected)


@pytest.mark.parametrize("serial", [0, -1, 0.5, 3_000_000, float("nan"), float("inf"), True])
def test_deadline__bad_serial(serial: float) -> None:
    with pytest.raises(ValueError, match=r"serial|type"):
        parse_deadline(serial)


def test_deadline__immediate_and_long_term() -> None:
    assert parse_deadline("立行立改") == Deadline(None, immediate=True)
    for text in ("长期坚持", "持续推进", "常态化推进", "长期坚持。"):
        assert parse_deadline(text) == Deadline(None, long_term=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("立行立改、长期坚持", Deadline(None, immediate=True, long_term=True)),
        ("立行立改，长期坚持", Deadline(None, immediate=True, long_term=True)),
        ("立行立改 常态化推进", Deadline(None, immediate=True, long_term=True)),
        ("2026年6月底前完成，长期坚持", Deadline(dt.date(2026, 6, 30), long_term=True)),
        ("2026年6月底前完成；持续推进", Deadline(dt.date(2026, 6, 30), long_term=True)),
        ("2026年6月底前完成\n长期坚持", Deadline(dt.date(2026, 6, 30), long_term=True)),
        ("2026年6月底前完成并长期坚持", Deadline(dt.date(2026, 6, 30), long_term=True)),
        ("立行立改，2026年6月底前完成", Deadline(dt.date(2026, 6, 30), immediate=True)),
        ("2026年6月底，2026年6月30日前", Deadline(dt.date(2026, 6, 30))),
    ],
)
def test_deadline__combinations(text: str, expected: Deadline) -> None:
    assert parse_deadline(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("尽快", "unrecognised deadline '尽快'"),
        ("完成", "unrecognised"),
        ("、", "unrecognised"),
        ("2026年13月", "no month 13"),
        ("2026年0月", "no month 0"),
        ("2026-02-30", "no day 2026-02-30"),
        ("2026年6月32日", "no day 2026-06-32"),
        ("2025年2月29日", "no day 2025-02-29"),
        ("0000年", "no year"),
        ("2026年6月3", "unrecognised"),
        ("2026年6月中旬", "unrecognised"),
        ("6月底前", "unrecognised"),
        ("2026-06/30", "unrecognised"),
        ("2026年6月底前，2026年底前", "two different deadlines"),
        ("立行立改，尽快", "unrecognised"),
    ],
)
def test_deadline__rejected(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_deadline(text)


def test_deadline__other_types_rejected() -> None:
    with pytest.raises(ValueError, match="type"):
        parse_deadline(dt.time(12, 0))  # type: ignore[arg-type]


@given(st.dates(min_value=dt.date(1000, 1, 1)))
def test_deadline__every_written_day(value: dt.date) -> None:
    y, m, d = value.year, value.month, value.day
    assert day(f"{y}年{m}月{d}日") == value
    assert day(f"{y}年{m:02d}月{d:02d}日前") == value
    assert day(value.isoformat()) == value
    assert day(f"{y}.{m}.{d}") == value
    assert day(f"{y}/{m}/{d}") == value
    wide = f"{y}年{m}月{d}日".translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert day(wide) == value


@given(st.integers(1000, 9999), st.integers(1, 12))
def test_deadline__month_ends(year: int, month: int) -> None:
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    assert day(f"{year}年{month}月底前") == last
    assert day(f"{year}年{month}月前完成") == last
    quarter = (month - 1) // 3 + 1
    quarter_end = dt.date(year, quarter * 3, calendar.monthrange(year, quarter * 3)[1])
    assert day(f"{year}年第{quarter}季度") == quarter_end


@given(st.dates(min_value=dt.date(1900, 3, 1)))
def test_deadline__serial_of_every_day(value: dt.date) -> None:
    serial = (value - dt.date(1899, 12, 30)).days
    assert parse_deadline(serial) == Deadline(value)
    assert parse_deadline(serial + 0.999) == Deadline(value)


@given(ANY_TEXT)
def test_deadline__any_text_only_value_error(text: str) -> None:
    try:
        result = parse_deadline(text)
    except ValueError:
        return
    assert result is None or isinstance(result, Deadline)
    if result is not None:
        assert result.day is not None or result.immediate or result.long_term


@given(st.one_of(st.integers(), st.floats()))
def test_deadline__any_number_only_value_error(number: float) -> None:
    try:
        result = parse_deadline(number)
    except ValueError:
        return
    assert result is not None
    assert result.day is not None


# --- split_measures ------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "  \n "])
def test_measures__blank(text: str | None) -> None:
    assert split_measures(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "1.加强监管\n2.完善制度\n3.强化督查",
        "1. 加强监管；\n2. 完善制度；\n3. 强化督查。",
        "1、加强监管；2、完善制度；3、强化督查",
        "1．加强监管；2．完善制度；3．强化督查",
        "１．加强监管；２．完善制度；３．强化督查",
        "1)加强监管;2)完善制度;3)强化督查",
        "（1）加强监管（2）完善制度（3）强化督查",
        "(1)加强监管;(2)完善制度;(3)强化督查",
        "⑴加强监管⑵完善制度⑶强化督查",
        "①加强监管②完善制度③强化督查",
        "① 加强监管；\n② 完善制度；\n③ 强化督查",
        "一是加强监管；二是完善制度；三是强化督查",
        "一是加强监管，二是完善制度，三是强化督查",
        "一、加强监管\n二、完善制度\n三、强化督查",
        "（一）加强监管（二）完善制度（三）强化督查",
        "加强监管\n完善制度\n\n强化督查",
        "加强监管；\r\n完善制度；\r\n强化督查",
    ],
)
def test_measures__numbering_styles(text: str) -> None:
    assert [m.rstrip("。") for m in split_measures(text)] == ["加强监管", "完善制度", "强化督查"]


def test_measures__keeps_inner_punctuation_and_final_full_stop() -> None:
    assert split_measures("1.加强监管，压实责任；2.完善制度。") == [
        "加强监管，压实责任",
        "完善制度。",
    ]


def test_measures__one_unnumbered_item() -> None:
    assert split_measures("  压缩审批环节至3个；  ") == ["压缩审批环节至3个"]


@pytest.mark.parametrize(
    "text",
    [
        "产能提高到原来的第1.5倍",
        "2026年1.2亿元资金全部到位",
        "完成3、4号楼改造",
        "标准统一是关键，二是次要",
        "落实2.整改",
    ],
)
def test_measures__numbers_inside_a_sentence_do_not_split(text: str) -> None:
    assert split_measures(text) == [text]


def test_measures__decimal_after_a_sentence_end_does_not_split() -> None:
    text = "1.投入1.2亿元。1.5倍于去年；2.完善制度"
    assert split_measures(text) == ["投入1.2亿元。1.5倍于去年", "完善制度"]


def test_measures__nested_numbering_stays_inside_its_item() -> None:
    text = "1.加强领导。(1)成立小组；(2)建立机制。\n2.完善制度"
    assert split_measures(text) == ["加强领导。(1)成立小组；(2)建立机制。", "完善制度"]


def test_measures__a_heading_is_kept_as_its_own_item() -> None:
    assert split_measures("整改措施：1.加强监管；2.完善制度") == [
        "整改措施：",
        "加强监管",
        "完善制度",
    ]


def test_measures__numbers_out_of_sequence_stay_in_the_text() -> None:
    text = "1.加强监管；3.完善制度；2.强化督查"
    assert split_measures(text) == ["加强监管；3.完善制度", "强化督查"]


def test_measures__empty_items_are_dropped() -> None:
    assert split_measures("1.加强监管\n2.\n3.强化督查") == ["加强监管", "强化督查"]


def test_measures__more_than_ten_items() -> None:
    text = "".join(f"{n}.措施{n}；" for n in range(1, 13))
    assert split_measures(text) == [f"措施{n}" for n in range(1, 13)]
    text = "".join(f"{c}是措施{i}；" for i, c in enumerate("一二三四五六七八九十", 1))
    text += "十一是措施11；十二是措施12"
    assert split_measures(text) == [f"措施{n}" for n in range(1, 13)]


MARKER_CHARS = set("0123456789０１２３４５６７８９.．、)）(（是；;，,")
MARKER_CHARS |= {chr(c) for c in range(ord("①"), ord("⒛") + 1)} | set("一二三四五六七八九十")


@given(ANY_TEXT)
def test_measures__never_loses_or_invents_text(text: str) -> None:
    items = split_measures(text)
    written = Counter(c for c in text if not c.isspace())
    kept = Counter(c for c in "".join(items) if not c.isspace())
    assert not kept - written
    assert set(written - kept) <= MARKER_CHARS
    for item in items:
        assert item
        assert item == item.strip()
        assert item in text
        assert not item.endswith(("；", ";"))


@given(ANY_TEXT)
def test_measures__text_without_numbers_or_newlines_is_one_item(text: str) -> None:
    plain = "".join(c for c in text if c not in MARKER_CHARS and c not in "\r\n①②⑳⑴⒈")
    assert split_measures(plain) == ([plain.strip().rstrip(" \t\u3000、")] if plain.strip() else [])


WORD = st.text(
    alphabet=st.sampled_from(list("加强监管完善制度落实责任整改")), min_size=1, max_size=8
)


@given(st.lists(WORD, min_size=1, max_size=20), st.sampled_from(["{}.", "{}、", "（{}）", "①"]))
def test_measures__numbered_lists_round_trip(words: list[str], style: str) -> None:
    def marker(n: int) -> str:
        return chr(ord("①") + n - 1) if style == "①" else style.format(n)

    text = "；\n".join(f"{marker(n)}{w}" for n, w in enumerate(words, 1))
    assert split_measures(text) == words


# --- split_units ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lead", "co"),
    [
        ("省发展改革委牵头，省财政厅、省人社厅配合", "省发展改革委", ["省财政厅", "省人社厅"]),
        ("哈尔滨市、齐齐哈尔市", "哈尔滨市", ["齐齐哈尔市"]),
        ("哈尔滨市", "哈尔滨市", []),
        ("省财政厅、省人社厅配合，省发展改革委牵头", "省发展改革委", ["省财政厅", "省人社厅"]),
        ("省财政厅配合；省发展改革委负责", "省发展改革委", ["省财政厅"]),
        ("省财政厅协同，省发展改革委牵头，省人社厅参与", "省发展改革委", ["省财政厅", "省人社厅"]),
        ("HLJ/HRB, QQHR", "HLJ", ["HRB", "QQHR"]),
        ("HLJ HRB\nQQHR", "HLJ", ["HRB", "QQHR"]),
        (
            "牵头单位：省发展改革委；配合单位：省财政厅、省人社厅",
            "省发展改革委",
            ["省财政厅", "省人社厅"],
        ),
        ("配合单位：省财政厅；牵头单位：省发展改革委", "省发展改革委", ["省财政厅"]),
        ("省发展改革委（牵头）、省财政厅", "省发展改革委", ["省财政厅"]),
        ("省发展改革委 牵头", "省发展改革委", []),
        ("由省发展改革委牵头", "省发展改革委", []),
        ("省发展改革委负责牵头，省财政厅协同配合", "省发展改革委", ["省财政厅"]),
        ("省财政厅、省发展改革委、省财政厅", "省财政厅", ["省发展改革委"]),
        ("省财政厅配合，省发展改革委牵头，省财政厅", "省发展改革委", ["省财政厅"]),
        ("哈尔滨市、齐齐哈尔市牵头", "哈尔滨市", ["齐齐哈尔市"]),
    ],
)
def test_units__lead_and_co_units(text: str, lead: str, co: list[str]) -> None:
    assert split_units(text) == (lead, co)


@pytest.mark.parametrize("text", [None, "", "  ", "、，", "牵头", "牵头，配合"])
def test_units__none_named(text: str | None) -> None:
    with pytest.raises(ValueError, match=r"^no unit$"):
        split_units(text)


@given(ANY_TEXT)
def test_units__any_text(text: str) -> None:
    try:
        lead, co = split_units(text)
    except ValueError as error:
        reason = str(error)
    else:
        reason = ""
    if reason:
        assert reason == "no unit"
        return
    assert lead
    assert lead in text
    assert lead not in co
    assert len(co) == len(set(co))
    assert all(name and name in text for name in co)


# --- parse_severity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("高", "high"),
        ("重大", "high"),
        ("严重", "high"),
        ("中", "medium"),
        ("较大", "medium"),
        ("低", "low"),
        ("一般", "low"),
        (" 重大 ", "high"),
        ("high", "high"),
        ("HIGH", "high"),
        ("Medium", "medium"),
        ("low", "low"),
        ("ｌｏｗ", "low"),
        (None, "medium"),
        ("", "medium"),
        ("  ", "medium"),
    ],
)
def test_severity__values(text: str | None, expected: str) -> None:
    assert parse_severity(text) == expected


@pytest.mark.parametrize("text", ["特别重大", "urgent", "3", "较低"])
def test_severity__unknown(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown severity {text!r}")):
        parse_severity(text)


@given(ANY_TEXT)
def test_severity__any_text(text: str) -> None:
    try:
        assert parse_severity(text) in ("high", "medium", "low")
    except ValueError:
        pass


# --- parse_status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *(
            (t, "closed")
            for t in ("已完成", "已完成整改", "已整改", "已整改到位", "已销号", "完成")
        ),
        *((t, "verify") for t in ("基本完成", "已完成待验收", "待验收", "申请销号")),
        *(
            (t, "rectify")
            for t in ("正在整改", "整改中", "推进中", "序时推进", "持续推进", "未完成", "进行中")
        ),
        ("未启动", "plan"),
        ("未开始", "plan"),
        (None, "rectify"),
        ("", "rectify"),
        (" \n", "rectify"),
    ],
)
def test_status__phrases(text: str | None, expected: str) -> None:
    assert parse_status(text, LABELS) == expected
    assert parse_status(text, {}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("问题识别", "identify"),
        ("制定方案", "plan"),
        ("验收核查", "verify"),
        ("不予立项", "dismissed"),
        ("不予立项。", "dismissed"),
        ("不予立项：重复问题", "dismissed"),
    ],
)
def test_status__labels(text: str, expected: str) -> None:
    assert parse_status(text, LABELS) == expected


def test_status__a_label_wins_over_a_phrase() -> None:
    assert parse_status("完成", {"完成": "verify"}) == "verify"
    assert parse_status("已完成。2026年5月", {"已完成": "verify"}) == "verify"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" 已完成 ", "closed"),
        ("已完成。", "closed"),
        ("已完成；", "closed"),
        ("已 完成", "closed"),
        ("已完成。2026年5月已验收", "closed"),
        ("已完成，待省级复核", "closed"),
        ("已完成（2026年5月）", "closed"),
        ("已完成 2026年5月已验收", "closed"),
        ("已完成整改。", "closed"),
        ("已完成待验收，材料已报送", "verify"),
        ("整改中；预计6月底完成", "rectify"),
        ("未启动。原因：资金未到位", "plan"),
        ("正在整改，", "rectify"),
        ("已完成\n2026年5月已验收", "closed"),
    ],
)
def test_status__longer_cells(text: str, expected: str) -> None:
    assert parse_status(text, LABELS) == expected


@pytest.mark.parametrize("text", ["已完成大部分", "完成了", "暂缓", "-", "无", "closed"])
def test_status__unknown(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown status {text!r}")):
        parse_status(text, LABELS)


@given(ANY_TEXT, st.dictionaries(ANY_TEXT, st.sampled_from(["plan", "verify"]), max_size=3))
def test_status__any_text(text: str, labels: dict[str, str]) -> None:
    try:
        state = parse_status(text, labels)
    except ValueError:
        return
    assert state in {"closed", "verify", "rectify", "plan", *labels.values()}


# --- formula guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "guarded"),
    [
        ("=1+2", "'=1+2"),
        ("+86 451", "'+86 451"),
        ("-3", "'-3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("省财政厅", "省财政厅"),
        ("a=1", "a=1"),
        (" =1", " =1"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_formula__neutralise_and_strip(text: str, guarded: str) -> None:
    assert neutralise_formula(text) == guarded
    assert strip_formula_guard(guarded) == text


def test_formula__strip_only_a_guard() -> None:
    assert strip_formula_guard("'=1") == "=1"
    assert strip_formula_guard("'abc") == "'abc"
    assert strip_formula_guard("'") == "'"
    assert strip_formula_guard("=1") == "=1"


def test_formula__an_apostrophe_before_a_formula_survives_the_round_trip() -> None:
    assert neutralise_formula("'=1") == "''=1"
    assert strip_formula_guard("''=1") == "'=1"


@given(ANY_TEXT)
def test_formula__round_trip(text: str) -> None:
    guarded = neutralise_formula(text)
    assert strip_formula_guard(guarded) == text
    assert not guarded.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert guarded in (text, "'" + text)
