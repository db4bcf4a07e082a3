"""`gridwatch requests import FILE`: 12345 work-order exports, CSV (UTF-8, GBK) or XLSX, mapped
by header with unknown columns reported; the same export twice stores every order once, a
later export updates them; a bad row is named with file and row, and nothing is imported."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import psycopg
import pytest

from gridwatch.cli import main as cli
from gridwatch.disputes.matcher import Keyword
from gridwatch.store.keywords import import_library

HEADER = ["工单编号", "来电时间", "诉求内容", "诉求地址", "所属街道", "所属社区", "联系电话",
          "诉求类型", "办理时限", "回访结果"]  # fmt: skip
CALLED = (datetime.now() - timedelta(days=2)).replace(microsecond=0)


def _orders(called: datetime = CALLED) -> list[list[str]]:
    at = called.strftime("%Y-%m-%d %H:%M:%S")
    return [
        ["GD2026001", at, "楼上装修噪音扰民 晚上十点后还在施工", "富强路12号3栋", "富强路街道",
         "富强社区", "13912341234", "噪声扰民", "3个工作日", ""],
        ["GD2026002", at, "小区垃圾三天未清运", "幸福小区东门", "", "幸福社区", "0472-5123456",
         "城市管理-垃圾清运", "24小时", "满意"],
        ["GD2026003", at, "咨询老年证办理", "", "", "", "13800001111", "政策咨询", "", ""],
    ]  # fmt: skip


def _write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    lines = [",".join(HEADER), *(",".join(row) for row in rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def _import(path: Path, url: str, capsys) -> tuple[int, str, str]:
    code = cli(["requests", "import", str(path), "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def _stored(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT r.source_key, r.service_code, r.description, r.status, g.code, r.due_at, "
            "r.requester_phone FROM requests r LEFT JOIN grids g ON g.id = r.grid_id "
            "WHERE r.source = 'hotline'"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_an_export_twice_stores_each_order_once_and_a_later_export_updates(
    tmp_path, district_database_url, capsys
):
    url = district_database_url
    first = _write_csv(tmp_path / "12345-1.csv", _orders())
    code, out, err = _import(first, url, capsys)
    assert code == 0, err
    assert "3 work orders added, 0 updated" in out
    assert "warning: 12345-1.csv: columns not read (unknown): 回访结果" in out
    assert "row 4, column 诉求类型: '政策咨询' names no service; filed as 其他" in out
    stored = _stored(url)
    assert {k: v[:2] for k, v in stored.items()} == {
        "GD2026001": ("noise", "楼上装修噪音扰民 晚上十点后还在施工"),
        "GD2026002": ("sanitation", "小区垃圾三天未清运"),
        "GD2026003": ("other", "咨询老年证办理"),
    }
    # No point in a work order: each waits in its street's 待分拨 queue for 派单.
    assert {v[2:4] for v in stored.values()} == {("received", "QS-01")}
    local = CALLED.replace(tzinfo=ZoneInfo("Asia/Shanghai"))  # a naive time is GRIDWATCH_TZ's
    assert stored["GD2026002"][4] == local + timedelta(hours=24)

    assert _import(first, url, capsys)[1].count("0 work orders added, 0 updated") == 1
    later = _orders()
    later[1][2] = "小区垃圾三天未清运，已有异味"  # noqa: RUF001
    later.append(["GD2026004", "", "路灯不亮", "", "", "光明社区", "", "公共设施", "", ""])
    code, out, err = _import(_write_csv(tmp_path / "12345-2.csv", later, "gbk"), url, capsys)
    assert code == 0, err
    assert "1 work orders added, 1 updated" in out
    assert _stored(url)["GD2026002"][1] == "小区垃圾三天未清运，已有异味"  # noqa: RUF001
    with psycopg.connect(url) as conn:
        [(count,)] = conn.execute("SELECT count(*) FROM requests WHERE source = 'hotline'")
        actions = conn.execute(
            "SELECT e.action FROM request_events e JOIN requests r ON r.id = e.request_id "
            "WHERE r.source_key = 'GD2026002' ORDER BY e.id"
        ).fetchall()
    assert count == 4
    assert [a for (a,) in actions] == ["receive", "update"]


def test_an_xlsx_export_of_the_same_orders_is_the_same_orders(
    tmp_path, district_database_url, capsys
):
    url = district_database_url
    assert _import(_write_csv(tmp_path / "a.csv", _orders()), url, capsys)[0] == 0
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in _orders():
        cells: list = list(row)
        cells[1] = CALLED  # a real date-time cell, as the platform exports it
        cells[6] = int(row[6]) if row[6].isdigit() else row[6]  # a phone typed as a number
        sheet.append(cells)
    path = tmp_path / "12345.xlsx"
    book.save(path)
    code, out, err = _import(path, url, capsys)
    assert code == 0, err
    assert "0 work orders added, 0 updated" in out


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (["GD9", "", "", "", "", "", "", "", "", ""], "row 3, column 诉求内容: is empty"),
        (["GD9", "昨天下午", "吵", "", "", "", "", "", "", ""],
         "row 3, column 来电时间: '昨天下午' is not a date and time"),
        (["GD9", "", "吵" * 4001, "", "", "", "", "", "", ""],
         "row 3, column 诉求内容: is 4001 characters long"),
        (["GD9", "", "a\x07b", "", "", "", "", "", "", ""], "row 3, column 诉求内容: holds"),
        (["GD9", "", "a\x00b", "", "", "", "", "", "", ""], "is not a CSV text file"),
        (["GD9", "", "吵", "", "", "", "", "", "尽快", ""], "row 3, column 办理时限"),
        (["", "", "吵", "", "", "", "", "", "", ""], "row 3, column 工单编号: is empty"),
        (["1.39123E+10", "", "吵", "", "", "", "", "", "", ""],
         "row 3, column 工单编号: '1.39123E+10' is a number Excel turned into"),
        (["GD9", "2999-01-01 08:00", "吵", "", "", "", "", "", "", ""],
         "row 3, column 来电时间: 2999-01-01 08:00 is in the future"),
    ],
)  # fmt: skip
def test_a_bad_row_is_named_with_file_and_row_and_nothing_is_imported(
    tmp_path, district_database_url, capsys, row, words
):
    rows = _orders()
    rows.insert(1, row)
    code, _, err = _import(_write_csv(tmp_path / "bad.csv", rows), district_database_url, capsys)
    assert code == 1, err
    assert f"bad.csv: {words}" in err
    assert _stored(district_database_url) == {}


def test_an_export_without_its_order_numbers_is_refused(tmp_path, district_database_url, capsys):
    path = tmp_path / "no-number.csv"
    path.write_text("来电时间,诉求内容\n2026-11-20 08:00,吵\n", encoding="utf-8")
    code, _, err = _import(path, district_database_url, capsys)
    assert code == 1
    assert "no-number.csv: row 1 (header): missing column order_no" in err
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + bytes(100))
    code, _, err = _import(broken, district_database_url, capsys)
    assert code == 1 and "broken.xlsx: is not an Excel workbook" in err


def _warnings(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT r.source_key, w.category FROM warnings w "
            "JOIN requests r ON r.id::text = w.source_id "
            "WHERE w.source = 'request' ORDER BY r.source_key, w.category"
        ).fetchall()


def test_an_orders_text_is_scanned_once_and_again_only_when_it_changed(
    tmp_path, district_database_url, capsys
):
    """The same export again makes no second warning; a later export that changes an
    order's text scans it again, one that changes only its phone does not (a library that
    now knows a word of its text makes no warning of it)."""
    url = district_database_url
    first = _write_csv(tmp_path / "a.csv", _orders())
    assert _import(first, url, capsys)[0] == 0
    assert _warnings(url) == [("GD2026001", "邻里纠纷")]  # 噪音扰民
    assert _import(first, url, capsys)[0] == 0
    assert _warnings(url) == [("GD2026001", "邻里纠纷")]
    with psycopg.connect(url) as conn:
        import_library(
            conn,
            [Keyword("劳资纠纷", "拖欠工资"), Keyword("物业纠纷", "垃圾")],
            source="test",
            by=None,
        )
    later = _orders()
    later[0][2] += " 还拖欠工资"
    later[1][6] = "13700001111"  # only the phone: its text (垃圾) is not read again
    code, out, err = _import(_write_csv(tmp_path / "b.csv", later), url, capsys)
    assert code == 0, err
    assert "0 work orders added, 2 updated" in out
    assert _warnings(url) == [("GD2026001", "劳资纠纷"), ("GD2026001", "邻里纠纷")]
