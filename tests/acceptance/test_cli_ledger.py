"""``ledger import``, ``ledger export`` and ``case edit`` through the real command.

The ledger file is what an office hands over: two title rows merged across the sheet, a
header with synonyms and a column nobody asked for, several units in one cell, numbered
measures, deadline phrases and status words.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from pathlib import Path

import openpyxl
import xlsxwriter
from cli_support import SUPERVISOR, Cli

HEADINGS = ["序号", "问题描述", "问题类别", "整改措施", "整改责任单位", "完成时限", "问题等级",
            "整改情况", "备注"]  # fmt: skip
ROWS: list[list[object]] = [
    [1, "企业开办审批环节多", "营商环境", "1.压缩审批环节\n2.推行一网通办",
     "哈尔滨市牵头，齐齐哈尔市配合", "2026年6月底前", "高", "正在整改", "重点"],
    [2, "窗口服务推诿扯皮", "作风建设", "（1）建立首问负责制（2）开展暗访", "HRB", "长期坚持", "中",
     "已完成", ""],
    [3, "惠企政策落实不到位", "政策落实", "①梳理政策清单②逐项兑现", "齐齐哈尔市",
     "2026年第三季度", "低", "待验收", ""],
    [4, "审批材料重复提交", "营商环境", "一是精简材料，二是数据共享", "哈尔滨市",
     dt.datetime(2026, 12, 31), "", "未启动", ""],
]  # fmt: skip


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False})
    sheet = book.add_worksheet("台账")
    sheet.merge_range(0, 0, 0, len(HEADINGS) - 1, "黑龙江省巡视反馈问题整改台账（2026年）")
    sheet.merge_range(1, 0, 1, len(HEADINGS) - 1, "填报单位：省委督查室    填报时间：2026年3月1日")
    sheet.write_row(2, 0, HEADINGS)
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    for r, row in enumerate(rows, 3):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, date)
            else:
                sheet.write(r, c, value)
    book.close()
    return path


def write_gbk_csv(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", encoding="gb18030", newline="") as f:
        out = csv.writer(f)
        out.writerow(["黑龙江省巡视反馈问题整改台账"])
        out.writerow(HEADINGS)
        for row in rows:
            out.writerow([v.strftime("%Y-%m-%d") if isinstance(v, dt.datetime) else v for v in row])
    return path


def counts(cli: Cli) -> tuple[int, ...]:
    with sqlite3.connect(cli.db) as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("rcase", "history", "measure", "unit", "case_co_unit")
        )


def test_ledger_import__xlsx_with_title_rows__cases_in_their_states(
    ledger: Cli, tmp_path: Path
) -> None:
    file = write_xlsx(tmp_path / "台账.xlsx", ROWS)
    report = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR, "--source", "巡视")
    assert report["created"] == 4
    assert report["ignored_columns"] == ["备注"]
    cases = ledger.json("case", "list")
    assert [(c["ref"], c["state"], c["severity"]) for c in cases] == [
        ("1", "rectify", "high"), ("2", "closed", "medium"), ("3", "verify", "low"),
        ("4", "plan", "medium"),
    ]  # fmt: skip
    first = cases[0]
    assert first["unit"] == "HRB"
    assert first["co_units"] == ["QQHR"]
    assert first["due"] == "2026-06-30T23:59:59+08:00"
    assert [m["text"] for m in first["measures"]] == ["压缩审批环节", "推行一网通办"]
    assert cases[1]["long_term"] is True
    assert all(m["done"] for m in cases[1]["measures"])
    assert cases[2]["due"] == "2026-09-30T23:59:59+08:00"
    assert cases[3]["due"] == "2026-12-31T23:59:59+08:00"
    shown = ledger.json("case", "show", str(first["id"]))
    assert [(h["trigger"], h["source"], h["dest"], h["comment"]) for h in shown["history"]] == [
        ("import", None, "rectify", "正在整改")
    ]
    ledger.run("audit", "verify")

    again = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR, "--source", "巡视")
    assert (again["created"], again["unchanged"]) == (0, 4)


def test_ledger_import__gbk_csv_reads_the_same(ledger: Cli, tmp_path: Path) -> None:
    file = write_gbk_csv(tmp_path / "台账.csv", ROWS)
    report = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR)
    assert report["created"] == 4
    titles = [c["title"] for c in ledger.json("case", "list")]
    assert titles == [row[1] for row in ROWS]


def test_ledger_import__bad_rows__every_error_listed_exit_2_nothing_written(
    ledger: Cli, tmp_path: Path
) -> None:
    bad = [
        *ROWS,
        [5, "问题五", "", "1.措施", "哈尔滨市", "尽快", "", "正在整改", ""],
        [6, "问题六", "", "1.措施", "牡丹江市", "2026年13月", "", "正在整改", ""],
        [7, "问题七", "", "1.措施", "哈尔滨市", "2026-02-30", "", "暂缓", ""],
        [1, "重复编号", "", "1.措施", "哈尔滨市", "2026年底前", "", "正在整改", ""],
    ]
    file = write_xlsx(tmp_path / "台账.xlsx", bad)
    before = counts(ledger)
    done = ledger.run("ledger", "import", str(file), "--actor", SUPERVISOR, code=2)
    assert done.stderr.strip().count("\n") == 0  # one line on stderr
    assert "row error" in done.stderr
    for expected in ("row 8, 完成时限 '尽快'", "row 9, 整改责任单位 '牡丹江市'",
                     "row 9, 完成时限 '2026年13月'", "row 10, 完成时限 '2026-02-30'",
                     "row 10, 整改情况 '暂缓'", "row 11, 序号 '1'"):  # fmt: skip
        assert expected in done.stdout, done.stdout
    assert counts(ledger) == before

    dry = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR, "--skip-errors",
                      "--dry-run")  # fmt: skip
    assert (dry["created"], dry["skipped"]) == (4, 4)
    assert counts(ledger) == before
    skipped = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR, "--skip-errors")
    assert (skipped["created"], skipped["skipped"], len(skipped["errors"])) == (4, 4, 6)


def test_ledger_import__unknown_units_created_under_a_parent(ledger: Cli, tmp_path: Path) -> None:
    rows = [[1, "问题一", "", "1.措施", "牡丹江市", "2026年底前", "", "正在整改", ""]]
    file = write_xlsx(tmp_path / "台账.xlsx", rows)
    ledger.run("ledger", "import", str(file), "--actor", SUPERVISOR, code=2)
    ledger.run("ledger", "import", str(file), "--actor", SUPERVISOR, "--create-units", "HLJ")
    units = {u["name"]: u for u in ledger.json("unit", "list")}
    assert units["牡丹江市"]["parent"] == "HLJ"


def test_ledger_import__changed_row__reported_then_applied_with_update(
    ledger: Cli, tmp_path: Path
) -> None:
    file = write_xlsx(tmp_path / "台账.xlsx", ROWS)
    ledger.run("ledger", "import", str(file), "--actor", SUPERVISOR)
    changed = [list(row) for row in ROWS]
    changed[0][1], changed[0][5] = "企业开办审批环节多、时限长", "2026年底前"
    file = write_xlsx(tmp_path / "台账.xlsx", changed)
    report = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR)
    assert (report["changed"], report["unchanged"]) == (1, 3)
    assert ledger.json("case", "show", "1")["title"] == "企业开办审批环节多"
    report = ledger.json("ledger", "import", str(file), "--actor", SUPERVISOR, "--update")
    assert report["updated"] == 1
    case = ledger.json("case", "show", "1")
    assert case["title"] == "企业开办审批环节多、时限长"
    assert case["due"] == "2026-12-31T23:59:59+08:00"
    edit = case["history"][-1]
    assert edit["trigger"] == "edit"
    assert "title: 企业开办审批环节多 → 企业开办审批环节多、时限长" in edit["comment"]


def test_ledger_export__xlsx_reads_as_a_ledger_and_round_trips(ledger: Cli, tmp_path: Path) -> None:
    rows = [[*ROWS[0][:1], '=HYPERLINK("http://x","点此")', *ROWS[0][2:]], *ROWS[1:]]
    ledger.run("ledger", "import", str(write_xlsx(tmp_path / "in.xlsx", rows)),
               "--actor", SUPERVISOR, "--source", "巡视")  # fmt: skip
    out = tmp_path / "out.xlsx"
    ledger.run("ledger", "export", str(out))
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    assert sheet.freeze_panes == "A3"
    assert sheet["A1"].value.startswith("问题整改台账")
    assert sheet["D2"].value == "存在问题"
    assert sheet["D3"].value == '=HYPERLINK("http://x","点此")'
    assert sheet["D3"].data_type == "s"  # a string, never a formula
    assert sheet["N3"].value == "绿"  # due 2026-06-30, the clock at 2026-03-02

    empty = Cli(tmp_path / "copy.db")
    empty.run("init")
    for code, name, parent in (("HLJ", "黑龙江省", None), ("HRB", "哈尔滨市", "HLJ"),
                               ("QQHR", "齐齐哈尔市", "HLJ")):  # fmt: skip
        empty.run("unit", "add", code, name, *(["--parent", parent] if parent else []))
    empty.run("actor", "add", SUPERVISOR, "--role", "supervisor")
    empty.run("ledger", "import", str(out), "--actor", SUPERVISOR)
    fields = ("title", "ref", "category", "source", "unit", "co_units", "due", "long_term",
              "severity", "state")  # fmt: skip

    def shape(cli: Cli) -> list[tuple[object, ...]]:
        return [
            (*(c[f] for f in fields), [(m["text"], m["done"]) for m in c["measures"]])
            for c in cli.json("case", "list")
        ]

    assert shape(empty) == shape(ledger)


def test_case_edit__supervisor_corrects__one_edit_entry(ledger: Cli) -> None:
    opened = ledger.run(
        "case", "open", "--unit", "HRB", "--title", "原标题", "--actor", SUPERVISOR,
        "--ref", "A-1", "--co-unit", "QQHR", "--long-term",
    )  # fmt: skip
    case = opened.stdout.strip()
    done = ledger.run("case", "edit", case, "--actor", SUPERVISOR, "--title", "新标题",
                      "--severity", "high", "--comment", "更正")  # fmt: skip
    assert "title: 原标题 → 新标题" in done.stdout
    shown = ledger.json("case", "show", case)
    assert (shown["title"], shown["severity"], shown["ref"]) == ("新标题", "high", "A-1")
    assert shown["co_units"] == ["QQHR"]
    assert shown["history"][-1]["trigger"] == "edit"
    assert "nothing to change" in ledger.fails(2, "case", "edit", case, "--actor", SUPERVISOR,
                                                "--title", "新标题")  # fmt: skip
    ledger.fails(6, "case", "edit", case, "--actor", "李强", "--title", "越权")
