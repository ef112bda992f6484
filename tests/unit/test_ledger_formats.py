"""Ledger files: read XLSX/CSV (header found under title rows, encodings), write and read back."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rectiflow.engine.errors import UsageError, ValidationError
from rectiflow.formats import EXPORT_HEADINGS, field_of, read_ledger, write_ledger
from rectiflow.formats.ledger_read import LedgerSheet

RARE = "𠀀𠀁𪚥·、《》〇鿿"  # CJK extension B, middle dot, enumeration comma, book-title marks
MEASURES = "1.清淤疏浚河道；\n2.截污纳管，\n3.建立长效机制"
LONG = "河道治理不到位，存在黑臭水体。" * 40
DANGEROUS = ['=HYPERLINK("http://x","点此")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "'=1"]


def _sample_xlsx(path: Path) -> None:
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    sheet = book.add_worksheet("问题清单")
    book.add_worksheet("说明")
    sheet.merge_range(0, 0, 0, 6, "XX区环保督察反馈问题整改台账（2026年）")
    sheet.write_string(1, 0, "填报单位：区生态环境局    填报时间：2026年3月2日")
    headings = [
        "序号",
        "编号",
        "督察反馈\n问题",
        "整改措施",
        "整改责任单位",
        "整改时限\n（年月日）",
        "备注",
    ]
    for col, heading in enumerate(headings):
        sheet.write_string(2, col, heading)
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_number(3, 0, 1)
    sheet.write_string(3, 1, "DC-2026-001")
    sheet.write_string(3, 2, f"  河道黑臭{RARE}  ")
    sheet.write_string(3, 3, MEASURES)
    sheet.write_string(3, 4, "区水务局")
    sheet.write_datetime(3, 5, dt.date(2026, 6, 30), dates)
    sheet.write_string(3, 6, "重点")
    # row 5 blank, skipped
    sheet.write_number(5, 0, 2)
    sheet.write_string(5, 1, "DC-2026-002")
    sheet.write_string(5, 2, LONG)
    sheet.write_string(5, 3, "'=1+1")  # an apostrophe-guarded text from another tool
    sheet.write_string(5, 5, "2026年底前")
    book.close()


def test_read_xlsx__header_under_title_rows(tmp_path: Path) -> None:
    path = tmp_path / "台账.xlsx"
    _sample_xlsx(path)
    ledger = read_ledger(path)
    assert ledger.header_row == 3
    assert ledger.fields == {
        "ref": "编号",
        "title": "督察反馈\n问题",
        "measures": "整改措施",
        "unit": "整改责任单位",
        "deadline": "整改时限\n（年月日）",
    }
    assert ledger.ignored_columns == ["备注"]
    rows = list(ledger.rows)
    assert [r.number for r in rows] == [4, 6]
    first, second = rows
    assert first.cells["ref"] == ("编号", "DC-2026-001")
    assert first.cells["title"] == ("督察反馈\n问题", f"河道黑臭{RARE}")
    assert first.cells["measures"][1] == MEASURES
    assert first.cells["deadline"][1] == dt.date(2026, 6, 30)
    assert second.cells["title"][1] == LONG
    assert second.cells["measures"][1] == "=1+1"
    assert second.cells["unit"][1] is None
    assert second.cells["deadline"][1] == "2026年底前"


def test_read_xlsx__sheet_by_name_and_unknown_sheet(tmp_path: Path) -> None:
    path = tmp_path / "台账.xlsx"
    _sample_xlsx(path)
    assert read_ledger(path, sheet="问题清单").header_row == 3
    with pytest.raises(ValidationError, match="问题清单, 说明"):
        read_ledger(path, sheet="Sheet9")
    with pytest.raises(ValidationError, match="no header row"):
        read_ledger(path, sheet="说明")


def test_read_xlsx__from_a_stream_named_anything(tmp_path: Path) -> None:
    path = tmp_path / "台账.xlsx"
    _sample_xlsx(path)
    ledger = read_ledger(io.BytesIO(path.read_bytes()))
    assert [r.number for r in ledger.rows] == [4, 6]
    renamed = tmp_path / "export.csv"  # the content decides, not the name
    renamed.write_bytes(path.read_bytes())
    assert read_ledger(renamed).header_row == 3


def _csv_text() -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["XX市问题整改台账", "", ""])
    writer.writerow(["序号", "问题描述", "整改措施", "牵头单位", "完成时限", "当前状态", "说明"])
    writer.writerow(["1", f"城区道路破损{RARE}", MEASURES, "市住建局", "2026-06-30", "整改中", "x"])
    writer.writerow([])
    writer.writerow(["2", " 噪声扰民 ", "'-夜间施工管控", "", "", "'@未启动", ""])
    return out.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_read_csv__encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "ledger.csv"
    path.write_bytes(_csv_text().encode(encoding))
    ledger = read_ledger(path)
    assert ledger.header_row == 2
    assert ledger.fields == {
        "ref": "序号",
        "title": "问题描述",
        "measures": "整改措施",
        "unit": "牵头单位",
        "deadline": "完成时限",
        "status": "当前状态",
    }
    assert ledger.ignored_columns == ["说明"]
    rows = list(ledger.rows)
    assert [r.number for r in rows] == [3, 5]
    assert rows[0].cells["title"][1] == f"城区道路破损{RARE}"
    assert rows[0].cells["measures"][1] == MEASURES
    assert rows[1].cells["title"][1] == "噪声扰民"
    assert rows[1].cells["measures"][1] == "-夜间施工管控"
    assert rows[1].cells["status"][1] == "@未启动"
    assert rows[1].cells["unit"][1] is None


def test_read_csv__short_gbk_file(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_bytes("问题,单位\n垃圾,区\n".encode("gbk"))  # charset-normalizer calls it big5
    with pytest.raises(ValidationError, match="no header row"):
        read_ledger(path)  # 单位 alone is no heading: read, not refused for its encoding
    path.write_bytes("问题,责任单位\n垃圾堆放,区城管局\n".encode("gbk"))
    rows = list(read_ledger(path).rows)
    assert rows[0].cells == {"title": ("问题", "垃圾堆放"), "unit": ("责任单位", "区城管局")}


def test_read_csv__utf16_refused(tmp_path: Path) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes("问题,责任单位\n垃圾堆放,区城管局\n".encode("utf-16"))
    with pytest.raises(ValidationError, match="UTF-8"):
        read_ledger(path)


def test_read_csv__stops_early_without_leaking(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(_csv_text(), encoding="utf-8")
    ledger = read_ledger(path)
    assert next(ledger.rows).number == 3
    del ledger  # the file closes with the iterator (a ResourceWarning would fail the test)


def test_read__mapping_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("问题,存在问题,责任单位,情况说明\na,b,u,c\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="问题 and 存在问题 both give title"):
        read_ledger(path)
    ledger = read_ledger(path, mapping={"问题": "-", "情况说明": "status"})
    assert ledger.fields == {"title": "存在问题", "unit": "责任单位", "status": "情况说明"}
    assert next(ledger.rows).cells["status"] == ("情况说明", "c")
    with pytest.raises(UsageError, match="unknown field 'titel'"):
        read_ledger(path, mapping={"问题": "titel"})


def test_field_of__headings() -> None:
    assert field_of("整改时限\n（年月日）", {}) == "deadline"
    assert field_of(" 存在 问题 ", {}) == "title"
    assert field_of("*责任单位", {}) == "unit"
    assert field_of("ＮＯ", {"no": "ref"}) is None
    assert field_of("ＮＯ", {"NO": "ref"}) == "ref"
    assert field_of("灯色", {}) == "light"
    assert field_of("XX整改台账（2026年）", {}) is None
    with pytest.raises(UsageError):
        field_of("问题", {"问题": "nonsense"})


def test_read__missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cannot read .*nothing\.xlsx"):
        read_ledger(tmp_path / "nothing.xlsx")


def test_read__no_header(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("会议纪要\n问题\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"first 10 rows of .*notes\.csv"):
        read_ledger(path)


# -- writing ------------------------------------------------------------------------------


def _export_row(n: int, **values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(EXPORT_HEADINGS)
    row.update(
        {"序号": n, "编号": f"DC-{n:03}", "存在问题": f"问题{n}", "整改时限": dt.date(2026, 6, n)}
    )
    row.update(values)
    return row


def _export_rows() -> list[dict[str, object]]:
    rows = [
        _export_row(1, 灯色="红", 整改措施=MEASURES, 销号时间=dt.datetime(2026, 5, 1, 23, 30)),
        _export_row(2, 灯色="黄", 存在问题=f"道路破损{RARE}"),
        _export_row(3, 灯色="绿", 最新进展=LONG),
    ]
    rows += [_export_row(4 + i, 灯色="", 存在问题=text) for i, text in enumerate(DANGEROUS)]
    return rows


def test_write_xlsx__layout_and_typed_cells(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    assert write_ledger(path, "XX区问题整改台账", iter(_export_rows())) == 3 + len(DANGEROUS)
    book = openpyxl.load_workbook(path)
    sheet = book.active
    assert sheet is not None
    last = openpyxl.utils.get_column_letter(len(EXPORT_HEADINGS))
    assert [str(r) for r in sheet.merged_cells.ranges] == [f"A1:{last}1"]
    assert sheet["A1"].value == "XX区问题整改台账"
    assert sheet["A1"].font.bold
    assert [c.value for c in sheet[2]] == EXPORT_HEADINGS
    assert sheet.freeze_panes == "A3"
    assert sheet.auto_filter.ref == f"A2:{last}{2 + 3 + len(DANGEROUS)}"
    col = {h: openpyxl.utils.get_column_letter(i + 1) for i, h in enumerate(EXPORT_HEADINGS)}
    assert (
        sheet.column_dimensions[col["存在问题"]].width > sheet.column_dimensions[col["序号"]].width
    )
    assert sheet[f"{col['整改时限']}3"].is_date
    assert sheet[f"{col['整改时限']}3"].value == dt.datetime(2026, 6, 1)
    assert sheet[f"{col['销号时间']}3"].value == dt.datetime(2026, 5, 1)
    assert sheet[f"{col['销号时间']}3"].number_format == "yyyy-mm-dd"
    fills = [sheet[f"{col['灯色']}{r}"].fill.fgColor.rgb for r in (3, 4, 5)]
    fonts = [sheet[f"{col['灯色']}{r}"].font.color.rgb for r in (3, 4, 5)]
    assert fills == ["FFFFC7CE", "FFFFEB9C", "FFC6EFCE"]
    assert fonts == ["FF9C0006", "FF9C5700", "FF006100"]
    for row in sheet.iter_rows(min_row=3):
        for cell in row:
            if isinstance(cell.value, str):
                assert cell.data_type == "s", cell.coordinate
    texts = [sheet[f"{col['存在问题']}{6 + i}"] for i in range(len(DANGEROUS))]
    # openpyxl leaves XML's escape of CR as written (_x000D_); Excel and calamine undo it
    expected = [t.replace("\r", "_x000D_") for t in DANGEROUS]
    assert [c.value for c in texts] == [t if t != "'=1" else "''=1" for t in expected]
    assert all(c.data_type == "s" for c in texts)
    book.close()


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_write__reads_back(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    write_ledger(path, "=台账", _export_rows())
    ledger = read_ledger(path)
    assert ledger.header_row == 2
    assert ledger.fields["ref"] == "编号"  # 编号 wins over 序号
    assert ledger.ignored_columns == []
    rows = list(ledger.rows)
    assert [r.number for r in rows] == list(range(3, 3 + len(rows)))
    assert rows[0].cells["measures"][1] == MEASURES
    assert rows[1].cells["title"][1] == f"道路破损{RARE}"
    assert [r.cells["title"][1] for r in rows[3:]] == [t.strip() for t in DANGEROUS]
    deadline = rows[0].cells["deadline"][1]
    assert deadline == (dt.date(2026, 6, 1) if suffix == ".xlsx" else "2026-06-01")


def test_write_csv__neutralised(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_ledger(path, "台账", _export_rows())
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    records = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert records[0] == ["台账"]
    assert records[1] == EXPORT_HEADINGS
    assert [r[3] for r in records[5:]] == ["'" + t for t in DANGEROUS]
    assert records[2][10] == "2026-06-01"
    assert records[2][16] == "2026-05-01"


def test_write__refuses_other_formats_and_keeps_old_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot write .*out\.xls: use \.xlsx or \.csv"):
        write_ledger(tmp_path / "out.xls", "t", [])
    path = tmp_path / "out.csv"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(ValueError, match="问题"):
        write_ledger(path, "t", [_export_row(1), {"问题": "x"}])
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write__empty_ledger(tmp_path: Path) -> None:
    for name in ("empty.xlsx", "empty.csv"):
        assert write_ledger(tmp_path / name, "台账", []) == 0
        assert list(read_ledger(tmp_path / name).rows) == []


# U+FFFE/U+FFFF are not XML characters: XlsxWriter escapes them, calamine keeps the escape
_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\ufffe\uffff"), max_size=60
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(_TEXT, min_size=1, max_size=4))
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_write_read__text_round_trips(tmp_path: Path, suffix: str, texts: list[str]) -> None:
    path = tmp_path / f"prop{suffix}"
    rows = [_export_row(1, 存在问题="问题", 整改措施=t, 最新进展=t, 责任人=t) for t in texts]
    write_ledger(path, "台账", rows)
    ledger: LedgerSheet = read_ledger(path)
    back = [r.cells["measures"][1] for r in ledger.rows]
    assert back == [t.strip() or None for t in texts]
