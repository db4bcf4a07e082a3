"""The ledger's two files from the same rows, without a server: the XLSX holds what the CSV
holds (times as Excel dates in the district's zone, hours late as numbers), no text of a
reporter's becomes a formula in either, characters XML cannot carry do not break the
workbook, and the download is named in Chinese with an ASCII fallback."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl

from gridwatch.api.ledger_files import attachment, ledger_csv, ledger_xlsx
from gridwatch.maps.texts import texts_for
from gridwatch.store.ledger import LedgerRow
from tests.support.spreadsheets import csv_rows, xlsx_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ZH = texts_for("zh")


def _row(**changed) -> LedgerRow:
    values = {
        "id": uuid.uuid4(),
        "grid_code": "QS-01-01-01",
        "grid_name": "富强一网格",
        "community_name": "富强社区",
        "category": "road",
        "severity": "high",
        "status": "reported",
        "level": "grid",
        "reporter_id": "W001",
        "assignee": None,
        "observed_at": NOW - timedelta(hours=30, seconds=7),
        "received_at": NOW - timedelta(hours=30),
        "due_at": NOW - timedelta(hours=6, minutes=15),
        "overdue": True,
        "resolved_at": None,
        "description": "路面坑洼",
        "last_action": None,
        "last_note": None,
        "grid_id": 1,
        "kind": "hazard",
        "due_kind": None,
        "lon": None,
        "lat": None,
    }
    return LedgerRow(**{**values, **changed})


ROWS = [
    _row(place_id="P0068", place_name="团结建材库"),  # found by the place's inspection
    _row(
        place_id="P0069",
        place_name="=先锋加工坊",
        reporter_id="-2",
        assignee="@SUM(A1)",
        description='=HYPERLINK("http://x")',
        last_note="+cmd",
        overdue=False,
        due_at=NOW + timedelta(days=1),
        resolved_at=NOW - timedelta(minutes=1),
        status="closed",
        closes=(NOW - timedelta(days=1), NOW - timedelta(seconds=30)),  # closed, reopened, closed
    ),
    _row(
        kind="request",
        category="noise",
        severity=None,
        status="dispatched",
        due_kind="accept",
        source="hotline",
        grid_code=None,
        grid_name=None,
        community_name=None,
    ),
]


def _xlsx(rows: list[LedgerRow]) -> bytes:
    return ledger_xlsx(rows, ZH, SHANGHAI, NOW, title=ZH["ledger"])


def test_the_workbook_holds_what_the_csv_holds():
    expected = csv_rows(ledger_csv(ROWS, ZH, SHANGHAI, NOW))
    assert xlsx_rows(_xlsx(ROWS)) == expected
    assert expected[1][10:14] == ["2026-11-22 05:59", "2026-11-23 05:45", "是", "6.2"]
    guarded = ["'-2", "'@SUM(A1)", '\'=HYPERLINK("http://x")', "'+cmd", "'=先锋加工坊"]
    assert [expected[2][i] for i in (8, 9, 15, 16, 19)] == guarded, "no formula in the CSV"
    assert (expected[3][4], expected[3][5], expected[3][17], expected[3][18]) == (
        "噪声扰民",
        "",
        "诉求",
        "接单期限",
    )
    assert expected[0][19] == "场所"
    places = [r[19] for r in expected[1:]]
    assert places == ["团结建材库", "'=先锋加工坊", ""], "the place, or empty"
    assert expected[0][20] == "办结时间"
    assert [r[20] for r in expected[1:]] == ["", "2026-11-23 11:59", ""], "the last close"
    assert expected[0][21] == "来源"
    assert [r[21] for r in expected[1:]] == ["", "", "12345热线"], "a request's source"


def test_the_workbook_types_its_cells_and_frames_its_sheet():
    book = openpyxl.load_workbook(io.BytesIO(_xlsx(ROWS)))
    sheet = book.active
    assert sheet.title == "问题台账"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:V4"
    assert all(cell.font.b for cell in sheet[1])
    assert not any(cell.font.b for cell in sheet[2])
    found, due, late = sheet["K2"], sheet["L2"], sheet["N2"]
    assert found.value == datetime(2026, 11, 22, 5, 59, 53)  # Shanghai's wall clock, no zone
    assert found.is_date and due.is_date
    assert late.data_type == "n" and late.value == 6.2
    closed = sheet["U3"]
    assert closed.is_date and closed.value == datetime(2026, 11, 23, 11, 59, 30)
    formula = sheet["P3"]
    assert formula.data_type == "s" and formula.quotePrefix, "text, never a formula"
    widths = {col: sheet.column_dimensions[col].width for col in ("A", "C", "P")}
    assert widths["A"] >= 36, "a whole UUID shows"
    assert widths["C"] >= 10, "a Chinese name counts two characters a letter"
    assert widths["P"] <= 62


def test_characters_xml_cannot_hold_do_not_break_the_workbook():
    odd = _row(description="噪声\x07扰民\x00", last_note="x" * 40_000, assignee="")
    [_, cells] = xlsx_rows(_xlsx([odd]))
    assert cells[15] == "噪声\ufffd扰民\ufffd"
    assert len(cells[16]) == 32_767, "Excel's longest cell"
    assert cells[9] == ""


def test_an_empty_ledger_is_a_header_alone():
    assert xlsx_rows(_xlsx([])) == [ZH["ledger_columns"]]


def test_the_download_is_named_in_chinese_with_an_ascii_fallback():
    header = attachment("问题台账", date(2026, 11, 23), "xlsx")
    assert header == (
        'attachment; filename="ledger-20261123.xlsx"; '
        "filename*=UTF-8''%E9%97%AE%E9%A2%98%E5%8F%B0%E8%B4%A6-20261123.xlsx"
    )
    assert attachment("ledger", date(2026, 1, 2), "csv").endswith("''ledger-20260102.csv")
