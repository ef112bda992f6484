"""Ledger rows per second in and out: the Engine against raw SQL doing the same work.

A ledger of N rows (问题清单台账: a title row, Chinese headings, a 20-60 character problem,
three numbered measures in one cell, a deadline phrase, a lead and a co-unit out of 15, a
status phrase, a severity) is generated as CSV and as XLSX (XlsxWriter, constant memory).
For each file, on two copies of one freshly seeded database:

- import: ``Engine.import_ledger(file, actor, source=...)`` in a child process (so its peak
  RSS is its own) against a hand-written import: the same ``read_ledger``, the cells
  parsed with ``ledger_rules`` (severity, status, deadline phrase, units looked up by name,
  measures split), deadlines and backfilled ladder levels counted on the calendar, history
  hashes made with ``history.make_entry``, the existing external keys looked up, then ids
  reserved and every table filled with one ``executemany`` in one transaction;
- export: ``Engine.export_ledger`` into a file of the same format against a raw ``SELECT``
  (cases joined with their unit's name, measures, co-units and ladder levels read in case
  order and grouped per case) feeding the same ``write_ledger``.

The two sides take turns (raw import, engine import, raw export, engine export), the two
databases must end up with the same rows, and the two exports must read back the same.

    python bench/ledger.py [--rows 50000] [--format csv|xlsx|both] [--db URL]

Printed: import and export rates of each side, the Engine's peak RSS, and last
``ratio <engine/raw>``: the smallest of the import and export ratios.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script: the repository root goes on sys.path (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import sqlalchemy as sa  # noqa: E402
import xlsxwriter  # noqa: E402

from bench.common import (  # noqa: E402
    Raw,
    RawCalendar,
    copy_database,
    drop_copy,
    fmt_rate,
    is_postgres,
    peak_rss_mb,
    scratch_database,
)
from rectiflow import Engine  # noqa: E402
from rectiflow.engine import history, ledger_rules  # noqa: E402
from rectiflow.formats import read_ledger, write_ledger  # noqa: E402

ACTOR = "importer"
SOURCE = "2026年巡视反馈"
TITLE = "问题整改台账（基准）"
DONE_MARK = "（已完成）"

# --- the generated ledger ---------------------------------------------------------------------

UNITS = [
    ("HRB", "哈尔滨市"), ("QQHR", "齐齐哈尔市"), ("MDJ", "牡丹江市"), ("JMS", "佳木斯市"),
    ("DQ", "大庆市"), ("JX", "鸡西市"), ("SYS", "双鸭山市"), ("YC", "伊春市"),
    ("QTH", "七台河市"), ("HG", "鹤岗市"), ("HH", "黑河市"), ("SH", "绥化市"),
    ("DXAL", "大兴安岭地区"), ("FGW", "省发展改革委"), ("CZT", "省财政厅"),
]  # fmt: skip
SUBJECTS = [
    "部分县区", "个别乡镇", "市直部门", "有的单位", "一些国有企业", "部分街道社区", "基层站所",
    "少数审批窗口", "有关主管部门", "部分开发区",
]  # fmt: skip
PROBLEMS = [
    "落实中央八项规定精神不到位", "违规发放津贴补贴问题仍有发生", "政府采购程序不规范",
    "专项资金使用管理不严格", "形式主义官僚主义问题依然存在", "营商环境优化措施落实不力",
    "生态环境问题整改进度滞后", "基层减负工作成效不明显", "安全生产隐患排查不彻底",
    "工程项目招投标管理存在漏洞", "惠民惠农政策执行打折扣", "债务风险防控措施不够有力",
]  # fmt: skip
DETAILS = [
    "，群众反映强烈", "，台账记录不完整", "，督促检查流于形式", "，问题屡查屡犯",
    "，整改责任压得不实", "，制度执行存在偏差", "，监督管理存在盲区", "，资金拨付不及时",
    "，部分项目长期停滞", "，考核结果运用不充分",
]  # fmt: skip
MEASURES = [
    "开展专项排查，逐项建立问题清单", "制定整改方案，明确责任分工和完成时限",
    "完善相关管理制度，堵塞制度漏洞", "加强监督检查，对整改情况定期通报",
    "组织专题培训，提升业务人员能力", "严肃追责问责，对典型问题点名道姓通报",
    "建立长效机制，防止问题反弹回潮", "对已发现问题逐一销号，做到整改到位",
]  # fmt: skip
DEADLINES = [
    "2026年6月底前", "2026年第三季度", "立行立改", "长期坚持", "2027年6月底前",
    "2026年底前", "2027年上半年", "2027年3月31日前", "立行立改、长期坚持",
    "2027年6月底前完成，长期坚持", "2027年第一季度", "2026年12月",
]  # fmt: skip
STATUSES = ["正在整改", "整改中", "序时推进", "已完成", "基本完成", "未启动", "已完成待验收", ""]
SEVERITIES = ["高", "中", "低", "一般", "较大", "重大", ""]
CATEGORIES = ["作风建设", "资金管理", "生态环境", "安全生产", "营商环境", "民生保障"]
TARGETS = ["问题全部整改到位", "建立长效机制", "群众满意度明显提升", "资金全部追回"]
PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏"]
HEADINGS = [
    "序号", "编号", "问题类别", "存在问题", "整改目标", "整改措施", "责任单位", "责任人",
    "整改时限", "严重程度", "整改进展",
]  # fmt: skip


def ledger_rows(count: int, seed: int = 20260) -> Iterator[list[object]]:
    rng = random.Random(seed)
    for n in range(1, count + 1):
        title = rng.choice(SUBJECTS) + rng.choice(PROBLEMS)
        while len(title) < 20 or rng.random() < 0.4:
            title += rng.choice(DETAILS)
        title = title[: rng.randint(max(20, min(len(title), 40)), 60)]
        measures = "\n".join(f"{i}.{m}" for i, m in enumerate(rng.sample(MEASURES, 3), 1))
        lead, co = rng.sample(UNITS, 2)
        yield [
            n, f"XF-{n:06d}", rng.choice(CATEGORIES), title, rng.choice(TARGETS), measures,
            f"{lead[1]}牵头，{co[1]}配合", rng.choice(PEOPLE), rng.choice(DEADLINES),
            rng.choice(SEVERITIES), rng.choice(STATUSES),
        ]  # fmt: skip


def write_csv(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(["2026年巡视反馈问题整改台账"])
        out.writerow(["填报单位：省委巡视办　填报时间：2026年11月"])
        out.writerow(HEADINGS)
        out.writerows(ledger_rows(count))


def write_xlsx(path: Path, count: int) -> None:
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    sheet = book.add_worksheet("台账")
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    sheet.merge_range(0, 0, 0, len(HEADINGS) - 1, "", book.add_format({"bold": True}))
    sheet.write_string(0, 0, "2026年巡视反馈问题整改台账")
    sheet.write_string(1, 0, "填报单位：省委巡视办　填报时间：2026年11月")
    for col, heading in enumerate(HEADINGS):
        sheet.write_string(2, col, heading)
    for row, values in enumerate(ledger_rows(count), start=3):
        for col, value in enumerate(values):
            if isinstance(value, int):
                sheet.write_number(row, col, value)
            else:
                sheet.write_string(row, col, str(value), wrap)
    book.close()


def seed(url: str) -> None:
    with Engine(url) as engine:
        engine.init()
        engine.add_unit("HLJ", "黑龙江省")
        for code, name in UNITS:
            engine.add_unit(code, name, "HLJ")
        engine.add_actor(ACTOR, ["supervisor", "reporter"], ["HLJ"])


# --- the shipped workflow, written out for the raw side -----------------------------------------

INITIAL, DUE_STATE, FINAL = "identify", "rectify", ("closed", "dismissed")
SLA = {
    "identify": {"high": 5, "medium": 5, "low": 5},
    "plan": {"high": 10, "medium": 10, "low": 10},
    "rectify": {"high": 20, "medium": 40, "low": 60},
    "verify": {"high": 10, "medium": 10, "low": 10},
}
LABELS = {
    "identify": "问题识别", "plan": "制定方案", "rectify": "整改落实", "verify": "验收核查",
    "closed": "已销号", "dismissed": "不予立项",
}  # fmt: skip
WORKFLOW_VERSION = 2  # the newest shipped version of rectification: an import takes it
LADDER = [("remind", -3), ("warn", 0), ("supervise", 5), ("notify_public", 15),
          ("accountability", 30)]  # fmt: skip
LEVEL_ZH = {"remind": "提醒", "warn": "预警", "supervise": "督办", "notify_public": "通报",
            "accountability": "问责"}  # fmt: skip
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}

CASE_COLUMNS = [
    "id", "workflow", "workflow_version", "unit", "title", "description", "category",
    "source", "severity", "state", "version", "created_at", "stage_entered_at", "due_at",
    "due_provisional", "due", "visit", "next_level", "next_escalation_at", "paused_at",
    "pause_credit", "history_seq", "last_hash", "ref", "ref_key", "target", "responsible",
    "long_term",
]  # fmt: skip
INSERT_CASE = (
    f"INSERT INTO rcase ({', '.join(CASE_COLUMNS)}) VALUES ({', '.join('?' * len(CASE_COLUMNS))})"
)
INSERT_HISTORY = (
    'INSERT INTO history (case_id, seq, "trigger", source, dest, actor, at, comment, '
    "prev_hash, hash, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RESERVE_IDS_PG = (
    "SELECT nextval(pg_get_serial_sequence('rcase', 'id')) "
    "FROM generate_series(1, %s)"  # psycopg's own placeholder
)
INSERT_MEASURE = "INSERT INTO measure (case_id, text, owner, due, done_at) VALUES (?, ?, ?, ?, ?)"
INSERT_CO_UNIT = "INSERT INTO case_co_unit (case_id, unit) VALUES (?, ?)"
INSERT_ESCALATION = (
    "INSERT INTO escalation (case_id, visit, state, level, due_at, fired_at, backfilled) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _text(cells: dict[str, tuple[str, object]], name: str) -> str | None:
    value = cells.get(name, ("", None))[1]
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


class RawImport:
    """The import by hand: the same file read, the same cell rules, plain SQL."""

    def __init__(self, url: str, now: dt.datetime) -> None:
        self.db, self.now = Raw(url), now
        self.calendar = RawCalendar()
        cur = self.db.cursor
        cur.execute("SELECT code, name, path FROM unit")
        units = cur.fetchall()
        self.by_code = {code: path for code, _name, path in units}
        self.by_name = {name: code for code, name, _path in units}
        cur.execute(self.db.sql("SELECT unit FROM actor_unit WHERE actor = ?"), (ACTOR,))
        self.actor_paths = [self.by_code[u] for (u,) in cur.fetchall()]
        if self.db.postgres:
            self.db.commit()
        self.labels = {label: state for state, label in LABELS.items()}

    def end_of_day(self, day: dt.date) -> dt.datetime:
        end = dt.datetime.combine(day, dt.time(23, 59, 59), self.calendar.tz)
        return end.astimezone(dt.UTC)

    def run(self, path: Path) -> int:
        db, now, cal, t = self.db, self.now, self.calendar, self.db.time
        sheet = read_ledger(path)
        parsed: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for row in sheet.rows:
            cells = row.cells
            title = _text(cells, "title")
            ref = _text(cells, "ref")
            assert title is not None
            assert ref is not None
            severity = ledger_rules.parse_severity(_text(cells, "severity"))
            status = _text(cells, "status")
            state = ledger_rules.parse_status(status, self.labels)
            deadline = ledger_rules.parse_deadline(cells["deadline"][1])  # type: ignore[arg-type]
            due, immediate, long_term = None, False, False
            if deadline is not None:
                immediate, long_term = deadline.immediate, deadline.long_term
                if deadline.day is not None:
                    due = self.end_of_day(deadline.day)
            lead, co = ledger_rules.split_units(_text(cells, "unit"))
            codes: list[str] = []
            for name in (lead, *co):
                code = name if name in self.by_code else self.by_name[name]
                if code not in codes:
                    codes.append(code)
            path_ = self.by_code[codes[0]]
            if self.actor_paths and not any(path_.startswith(p) for p in self.actor_paths):
                raise SystemExit(f"row {row.number}: {ACTOR} may not open cases in {codes[0]}")
            measures = []
            for item in ledger_rules.split_measures(_text(cells, "measures")):
                done = item.endswith(DONE_MARK)
                measures.append((item.removesuffix(DONE_MARK).strip(), done))
            key = f"{SOURCE}\x1f{ref}"
            if key in seen:
                raise SystemExit(f"row {row.number}: ref {ref} twice")
            seen.add(key)
            parsed.append((
                key, ref, title, _text(cells, "category"), _text(cells, "target"),
                _text(cells, "responsible"), severity, status, state, due, immediate, long_term,
                codes, measures,
            ))  # fmt: skip
        keys = [p[0] for p in parsed]
        existing: set[str] = set()
        cur = db.cursor
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            marks = ", ".join("?" * len(chunk))
            cur.execute(db.sql(f"SELECT ref_key FROM rcase WHERE ref_key IN ({marks})"), chunk)
            existing.update(k for (k,) in cur.fetchall())
        if db.postgres:
            db.commit()
        fresh = [p for p in parsed if p[0] not in existing]

        db.begin()
        if db.postgres:
            cur.execute(RESERVE_IDS_PG, (len(fresh),))
            ids = [int(r[0]) for r in cur.fetchall()]
        else:
            cur.execute("SELECT coalesce(max(id), 0) FROM rcase")
            first = int(cur.fetchone()[0]) + 1
            ids = list(range(first, first + len(fresh)))
        cases: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        measure_rows: list[tuple[Any, ...]] = []
        co_rows: list[tuple[Any, ...]] = []
        escalations: list[tuple[Any, ...]] = []
        at_now = t(now)
        for case_id, p in zip(ids, fresh, strict=True):
            (key, ref, title, category, target, responsible, severity, status, state, due,
             immediate, long_term, codes, measures) = p  # fmt: skip
            if immediate and due is None:
                due = cal.add_workdays(now, 5)[0]
            due_at, provisional = None, False
            if state in FINAL:
                pass
            elif state == DUE_STATE and due is not None:
                due_at = due
            elif not (long_term and state == DUE_STATE):
                due_at, provisional = cal.add_workdays(now, SLA[state][severity])
            level, next_at = len(LADDER), None
            if due_at is not None:
                level = 0
                while level < len(LADDER):
                    name, offset = LADDER[level]
                    at = cal.add_workdays(due_at, offset)[0]
                    if at > now:
                        next_at = at
                        break
                    escalations.append((case_id, 1, state, name, t(at), at_now, True))
                    level += 1
            all_done = state in ("verify", "closed") or state in FINAL
            # The entry records the fields and measures the case starts with (an audit
            # replays from them), as the canonical JSON its hash covers.
            data = {
                "fields": {
                    "title": title, "description": None, "unit": codes[0],
                    "severity": severity, "due": history.value(due), "category": category,
                    "source": SOURCE, "ref": ref, "target": target, "responsible": responsible,
                    "long_term": long_term, "co_units": list(codes[1:]),
                },
                "measures": [
                    [text, history.value(now) if (all_done or done) else None]
                    for text, done in measures
                ],
            }  # fmt: skip
            entry = history.make_entry(
                case_id, 1, "import", None, state, ACTOR, now, status, history.GENESIS, data
            )
            entries.append((
                case_id, 1, "import", None, state, ACTOR, at_now, status, history.GENESIS,
                entry.hash,
                json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
            ))  # fmt: skip
            cases.append((
                case_id, "rectification", WORKFLOW_VERSION, codes[0], title, None, category, SOURCE,
                severity, state, 1, at_now, at_now, t(due_at), provisional, t(due), 1, level,
                t(next_at), None, 0, 1, entry.hash, ref, key, target, responsible, long_term,
            ))  # fmt: skip
            measure_rows.extend(
                (case_id, text, ACTOR, None, at_now if (all_done or done) else None)
                for text, done in measures
            )
            co_rows.extend((case_id, code) for code in codes[1:])
        cur.executemany(db.sql(INSERT_CASE), cases)
        cur.executemany(db.sql(INSERT_HISTORY), entries)
        cur.executemany(db.sql(INSERT_MEASURE), measure_rows)
        cur.executemany(db.sql(INSERT_CO_UNIT), co_rows)
        if escalations:
            cur.executemany(db.sql(INSERT_ESCALATION), escalations)
        db.commit()
        return len(cases)


# --- the raw export -----------------------------------------------------------------------------

SELECT_CASES = (
    "SELECT rcase.id, rcase.ref, rcase.category, rcase.title, rcase.source, rcase.target, "
    "unit.name, rcase.responsible, rcase.due, rcase.due_at, rcase.long_term, "
    "rcase.severity, rcase.state, rcase.paused_at, rcase.visit, rcase.stage_entered_at "
    "FROM rcase JOIN unit ON unit.code = rcase.unit ORDER BY rcase.id"
)
SELECT_MEASURES = "SELECT case_id, text, done_at FROM measure ORDER BY case_id, id"
SELECT_CO_UNITS = (
    "SELECT case_co_unit.case_id, unit.name FROM case_co_unit "
    "JOIN unit ON unit.code = case_co_unit.unit ORDER BY case_co_unit.case_id, case_co_unit.unit"
)
SELECT_LEVELS = "SELECT case_id, visit, level FROM escalation ORDER BY case_id, id"
SELECT_NOTES = "SELECT case_id, text FROM note ORDER BY case_id, at, id"


def _grouped(cursor: Any) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """(case id, its rows) from a cursor ordered by case id."""
    current: int | None = None
    rows: list[tuple[Any, ...]] = []
    for row in cursor:
        if row[0] != current:
            if current is not None:
                yield current, rows
            current, rows = row[0], []
        rows.append(row)
    if current is not None:
        yield current, rows


class _Groups:
    """The rows of one case at a time off an ordered cursor, for a merge by case id."""

    def __init__(self, db: Raw, sql: str) -> None:
        self.cursor = db.conn.cursor()
        self.cursor.execute(sql)
        self.groups = _grouped(self.cursor)
        self.head = next(self.groups, None)

    def of(self, case_id: int) -> list[tuple[Any, ...]]:
        while self.head is not None and self.head[0] < case_id:
            self.head = next(self.groups, None)
        if self.head is not None and self.head[0] == case_id:
            return self.head[1]
        return []


class RawExport:
    def __init__(self, url: str, now: dt.datetime) -> None:
        self.db, self.now = Raw(url), now
        self.calendar = RawCalendar()

    def rows(self) -> Iterator[dict[str, object]]:
        db, now, cal, tz = self.db, self.now, self.calendar, self.calendar.tz
        measures = _Groups(db, SELECT_MEASURES)
        co_units = _Groups(db, SELECT_CO_UNITS)
        levels = _Groups(db, SELECT_LEVELS)
        notes = _Groups(db, SELECT_NOTES)
        cases = db.conn.cursor()
        cases.execute(SELECT_CASES)
        for number, row in enumerate(cases, 1):
            (case_id, ref, category, title, source, target, unit_name, responsible, due,
             due_at, long_term, severity, state, paused_at, visit, entered) = row  # fmt: skip
            due, due_at = db.parse_time(due), db.parse_time(due_at)
            final = state in FINAL
            shown = due or (due_at if state == DUE_STATE else None)
            deadline: object = shown.astimezone(tz).date() if shown is not None else None
            if long_term:
                deadline = f"{deadline:%Y-%m-%d}，长期坚持" if deadline is not None else "长期坚持"
            light = ""
            if paused_at is None and not final:
                if due_at is None:
                    light = "绿" if long_term else ""
                elif now > due_at:
                    light = "红"
                elif now >= cal.add_workdays(due_at, LADDER[0][1])[0]:
                    light = "黄"
                else:
                    light = "绿"
            reached = [level for _, v, level in levels.of(case_id) if v == visit]
            written = notes.of(case_id)
            closed = final and state != "dismissed"
            closed_on = db.parse_time(entered).astimezone(tz).date() if closed else None  # type: ignore[union-attr]
            yield {
                "序号": number,
                "编号": ref if ref is not None else str(case_id),
                "问题类别": category,
                "存在问题": title,
                "问题来源": source,
                "整改目标": target,
                "整改措施": "\n".join(
                    f"{i}.{text}{DONE_MARK if done_at is not None else ''}"
                    for i, (_, text, done_at) in enumerate(measures.of(case_id), 1)
                ),
                "责任单位": unit_name,
                "配合单位": "、".join(name for _, name in co_units.of(case_id)),
                "责任人": responsible,
                "整改时限": deadline,
                "严重程度": SEVERITY_ZH.get(severity, severity),
                "当前状态": LABELS.get(state, state),
                "灯色": light,
                "督办等级": LEVEL_ZH.get(reached[-1], reached[-1]) if reached else "",
                "最新进展": written[-1][1] if written else "",
                "销号时间": closed_on,
            }
        if db.postgres:
            db.commit()

    def run(self, path: Path) -> int:
        return write_ledger(path, TITLE, self.rows())


# --- the Engine's side, in a child process -------------------------------------------------------


def engine_child(url: str, now: dt.datetime, source: str, target: str) -> None:
    """Run in the child: the import, a hand-over (``turn``, then a line on stdin), the
    export; then a JSON line with the times and the peak RSS."""
    with Engine(url) as engine:
        ready = peak_rss_mb()
        start = time.perf_counter()
        report = engine.import_ledger(source, ACTOR, source=SOURCE, now=now)
        imported = time.perf_counter() - start
        print("turn", flush=True)
        sys.stdin.readline()
        start = time.perf_counter()
        exported = engine.export_ledger(target, title=TITLE, now=now)
        export_seconds = time.perf_counter() - start
    print(json.dumps({
        "created": report.created, "import_seconds": imported, "exported": exported,
        "export_seconds": export_seconds, "ready_rss_mb": ready, "peak_rss_mb": peak_rss_mb(),
    }))  # fmt: skip


def outcome(url: str) -> str:
    """A digest of what an import wrote (every case's columns but none the DB fills in,
    history, measures, co-units, ladder levels): equal after both imports."""
    queries = [
        f"SELECT {', '.join(CASE_COLUMNS)} FROM rcase ORDER BY id",
        'SELECT case_id, seq, "trigger", source, dest, actor, at, comment, prev_hash, hash '
        "FROM history ORDER BY case_id, seq",
        "SELECT case_id, text, owner, due, done_at FROM measure ORDER BY case_id, id",
        "SELECT case_id, unit FROM case_co_unit ORDER BY case_id, unit",
        "SELECT case_id, visit, state, level, due_at, fired_at, backfilled FROM escalation "
        "ORDER BY case_id, id",
    ]
    digest = hashlib.sha256()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for query in queries:
                for row in conn.exec_driver_sql(query):
                    digest.update(repr(tuple(row)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()


def same_export(a: Path, b: Path) -> bool:
    if a.suffix == ".csv":
        return a.read_bytes() == b.read_bytes()
    import python_calamine

    def cells(path: Path) -> list[list[Any]]:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        try:
            return book.get_sheet_by_index(0).to_python()
        finally:
            book.close()

    return cells(a) == cells(b)


def run_format(url: str, ledger: Path, folder: Path, now: dt.datetime) -> dict[str, float]:
    """One file, two copies of the seeded database; the two sides take turns."""
    suffix = ledger.suffix
    engine_url = copy_database(url, f"engine{suffix[1:]}")
    raw_url = copy_database(url, f"raw{suffix[1:]}")
    engine_out, raw_out = folder / f"engine-out{suffix}", folder / f"raw-out{suffix}"
    try:
        raw_import = RawImport(raw_url, now)
        start = time.perf_counter()
        raw_created = raw_import.run(ledger)
        raw_import_seconds = time.perf_counter() - start
        raw_import.db.close()

        command = [sys.executable, __file__, "--child", engine_url, "--now", now.isoformat(),
                   "--source", str(ledger), "--target", str(engine_out)]  # fmt: skip
        errors = tempfile.TemporaryFile("w+")
        child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert child.stdin is not None
        assert child.stdout is not None
        last = ""
        raw_exported, raw_export_seconds = 0, 0.0
        for line in child.stdout:
            last = line.strip()
            if last == "turn":
                raw_export = RawExport(raw_url, now)
                start = time.perf_counter()
                raw_exported = raw_export.run(raw_out)
                raw_export_seconds = time.perf_counter() - start
                raw_export.db.close()
                child.stdin.write("go\n")
                child.stdin.flush()
        if child.wait() != 0:
            errors.seek(0)
            raise SystemExit(f"the engine side failed:\n{errors.read()}")
        errors.close()
        result: dict[str, float] = json.loads(last)
        if outcome(engine_url) != outcome(raw_url) or raw_created != result["created"]:
            raise SystemExit(f"{ledger.name}: the two imports wrote different rows")
        if raw_exported != result["exported"] or not same_export(engine_out, raw_out):
            raise SystemExit(f"{ledger.name}: the two exports differ")
    finally:
        drop_copy(engine_url)
        drop_copy(raw_url)
    result.update(
        raw_created=raw_created, raw_import_seconds=raw_import_seconds,
        raw_exported=raw_exported, raw_export_seconds=raw_export_seconds,
    )  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="ledger rows (default 50000)")
    parser.add_argument("--format", choices=["csv", "xlsx", "both"], default="both")
    parser.add_argument("--db", help="sqlite:///NEW_FILE or postgresql+psycopg://... server")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine_child(args.child, dt.datetime.fromisoformat(args.now), args.source, args.target)
        return

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    formats = ["csv", "xlsx"] if args.format == "both" else [args.format]
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rectiflow-ledger-") as tmp:
        folder = Path(tmp)
        with scratch_database(args.db, "ledger") as url:
            backend = "PostgreSQL" if is_postgres(url) else "SQLite (WAL, synchronous=NORMAL)"
            print(
                f"{backend}: a ledger of {args.rows} rows (3 numbered measures, a lead and a "
                f"co-unit out of {len(UNITS)}, deadline phrases, statuses)"
            )
            seed(url)
            for fmt in formats:
                ledger = folder / f"ledger.{fmt}"
                (write_csv if fmt == "csv" else write_xlsx)(ledger, args.rows)
                size = ledger.stat().st_size / 2**20
                r = run_format(url, ledger, folder, now)
                imp = (r["created"] / r["import_seconds"]) / (
                    r["raw_created"] / r["raw_import_seconds"]
                )
                exp = (r["exported"] / r["export_seconds"]) / (
                    r["raw_exported"] / r["raw_export_seconds"]
                )
                ratios += [imp, exp]
                n = int(r["created"])
                print(f"{fmt} ({size:.1f} MB)")
                raw_n = int(r["raw_created"])
                print(f"  import  engine {fmt_rate(n, r['import_seconds'])} rows")
                print(f"          raw    {fmt_rate(raw_n, r['raw_import_seconds'])} rows")
                m = int(r["exported"])
                raw_m = int(r["raw_exported"])
                print(f"  import  ratio {imp:.2f}")
                print(f"  export  engine {fmt_rate(m, r['export_seconds'])} rows")
                print(f"          raw    {fmt_rate(raw_m, r['raw_export_seconds'])} rows")
                print(f"  export  ratio {exp:.2f}")
                print(
                    f"  engine peak RSS: {r['peak_rss_mb']:.0f} MB "
                    f"(before importing: {r['ready_rss_mb']:.0f} MB)"
                )
    print(f"ratio {min(ratios):.2f}")


if __name__ == "__main__":
    main()
