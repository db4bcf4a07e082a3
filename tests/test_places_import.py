"""The places register (安全巡查) from CSV: both header languages, GBK as Excel saves it, kinds
in English or Chinese, each bad row named with its file, row and column, and an import that
can be run again without adding anything twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from gridwatch.errors import InputFileError
from gridwatch.imports.pipelines import import_places_file
from gridwatch.imports.places import PLACES, places_csv_text, read_places_csv
from gridwatch.model.rows import PlaceRow
from gridwatch.simulators.district import build_sample_district
from tests.support.databases import count_rows, point_in_grid, query_one
from tests.support.import_files import assert_one_error_line, cli, write_csv

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
GRID_A = "QS-01-01-01"

ENGLISH = [
    ",".join(PLACES.columns),
    "P-1,富强便利店,shop,青山区富强路12号,40.6512,109.9011,,王丽娜,13800000001,30",
    "P-2,老王面馆,restaurant,青山区幸福路5号,,,QS-01-02-03,,0472-5123456,14",
    'P-3,"鑫源加工坊, 二部",workshop,青山区青松路8号,40.6444,109.8950,,张伟,,7',
]
CHINESE = [
    ",".join(PLACES.chinese),
    "P-1,富强便利店,商铺,青山区富强路12号,40.6512,109.9011,,王丽娜,13800000001,30",
    "P-2,老王面馆,小餐饮,青山区幸福路5号,,,QS-01-02-03,,0472-5123456,14天",
    # A period typed in full-width digits, as a Chinese input method may.
    'P-3,"鑫源加工坊, 二部",小作坊,青山区青松路8号,40.6444,109.8950,,张伟,,\uff17',
]


def _errors(path: Path) -> list[str]:
    with pytest.raises(InputFileError) as caught:
        read_places_csv(path)
    return str(caught.value).splitlines()


def test_english_and_chinese_headers_read_the_same(tmp_path):
    english = read_places_csv(write_csv(tmp_path, ENGLISH, "places.csv"))
    chinese = read_places_csv(write_csv(tmp_path, CHINESE, "场所.csv", encoding="gbk"))
    assert english == chinese
    assert english[0] == PlaceRow(
        place_id="P-1",
        name="富强便利店",
        kind="shop",
        address="青山区富强路12号",
        lat=40.6512,
        lon=109.9011,
        grid_code=None,
        contact="王丽娜",
        phone="13800000001",
        inspect_every_days=30,
    )
    assert [(p.kind, p.inspect_every_days) for p in english] == [
        ("shop", 30),
        ("restaurant", 14),
        ("workshop", 7),
    ]
    assert english[1].contact is None and english[1].grid_code == "QS-01-02-03"
    assert english[2].name == "鑫源加工坊, 二部"


def test_the_gbk_file_is_gbk_and_the_template_names_both_headers(tmp_path):
    path = write_csv(tmp_path, CHINESE, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    assert read_places_csv(path)[0].name == "富强便利店"
    assert PLACES.template(chinese=True).lstrip("\ufeff").startswith("场所编号,名称,类型,")
    assert PLACES.template().startswith("place_id,name,kind,address,lat,lon,grid_code,")


def test_the_sample_districts_places_read_back_from_their_file(tmp_path):
    district = build_sample_district(residents=50, places=30)
    path = tmp_path / "places.csv"
    path.write_text(places_csv_text(district.places), encoding="utf-8")
    assert read_places_csv(path) == district.places
    assert {p.kind for p in district.places} <= {
        "shop",
        "restaurant",
        "workshop",
        "warehouse",
        "other",
    }


def test_each_bad_row_is_named_with_file_row_and_column(tmp_path):
    lines = [
        ",".join(PLACES.columns),
        "P-1,便利店,shop,addr,40.65,109.90,,,,30",
        "P-2,面馆,casino,addr,40.65,109.90,,,,30",
        "P-3,作坊,workshop,addr,40.65,,,,,30",
        "P-1,again,shop,addr,40.65,109.90,,,,30",
        "P-5,,shop,addr,,,,,,30",
        "P-6,仓库,warehouse,addr,40.65,109.90,,,,0",
        "P-7,仓库,warehouse,addr,40.65,109.90,,,,monthly",
        "P 8,仓库,warehouse,addr,40.65,109.90,,,,30",
        "P-9,店,shop,addr,40.65,109.90,,,1.38E+10,30",
    ]
    errors = _errors(write_csv(tmp_path, lines, "places.csv"))
    expected = [
        ("row 3, column kind", "'casino' is not a kind of place"),
        ("row 4, column lon", "give both or neither"),
        ("row 5, column place_id", "'P-1' is already used in row 2"),
        ("row 6, column name", "is empty"),
        ("row 6, column lat/lon/grid_code", "all empty"),
        ("row 7, column inspect_every_days", "0 is not between 1 and 3660"),
        ("row 8, column inspect_every_days", "is not a whole number of days"),
        ("row 9, column place_id", "must be 1 to 128 characters without spaces"),
        ("row 10, column phone", "Excel turned into scientific notation"),
    ]
    assert len(errors) == len(expected), errors
    for line, (where, words) in zip(errors, expected, strict=True):
        assert line.startswith(f"places.csv: {where}:"), line
        assert words in line, line


def test_a_missing_column_and_a_stray_quote_are_named(tmp_path):
    missing = write_csv(tmp_path, ["place_id,name,kind", "P-1,a,shop"], "short.csv")
    [line] = _errors(missing)
    assert line.startswith("short.csv: row 1 (header): missing columns address, lat, lon")
    quoted = write_csv(tmp_path, [ENGLISH[0], 'P-1,"a,shop,addr,40.6,109.9,,,,30'], "quote.csv")
    [line] = _errors(quoted)
    assert line.startswith("quote.csv: row 2: a quoted cell is never closed")


def _clock(url: str, place_id: str) -> tuple | None:
    return query_one(
        url,
        "SELECT p.registered_at, p.next_due_at, p.level, p.inspect_every_days, g.code, p.phone "
        "FROM places p LEFT JOIN grids g ON g.id = p.grid_id WHERE p.id = %s",
        (place_id,),
    )


def test_importing_again_updates_in_place_and_keeps_the_clock(tmp_path, district_database_url):
    url = district_database_url
    lon, lat = point_in_grid(url, GRID_A)
    lines = [
        ",".join(PLACES.chinese),
        f"T-1,富强便利店,商铺,青山区富强路12号,{lat!r},{lon!r},,王丽娜,13800000001,30",
        "T-2,老王面馆,小餐饮,青山区幸福路5号,,,QS-01-02-03,,,14",
    ]
    path = write_csv(tmp_path, lines, "places.csv", encoding="gbk")
    with psycopg.connect(url) as conn:
        first = import_places_file(conn, path, now=T0)
        again = import_places_file(conn, path, now=T0 + timedelta(days=2))
    assert (first.inserted, first.updated) == (2, 0)
    assert (again.inserted, again.updated) == (0, 2)
    registered, due, level, every, grid, phone = _clock(url, "T-1")
    assert (registered, due, level, every, grid) == (
        T0,
        T0 + timedelta(days=30),
        "grid",
        30,
        GRID_A,
    )
    assert _clock(url, "T-2")[4] == "QS-01-02-03"

    # A new period moves the next due time from the registration (no inspection yet), and a
    # new phone replaces the old one; nothing is added.
    lines[1] = f"T-1,富强便利店,商铺,青山区富强路12号,{lat!r},{lon!r},,王丽娜,13800000009,7"
    with psycopg.connect(url) as conn:
        changed = import_places_file(conn, write_csv(tmp_path, lines, "places.csv"), now=T0)
    assert (changed.inserted, changed.updated) == (0, 2)
    assert count_rows(url, "places", "id LIKE %s", ("T-%",)) == 2
    registered, due, _, every, _, phone = _clock(url, "T-1")
    assert (registered, due, every, phone) == (T0, T0 + timedelta(days=7), 7, "13800000009")


def test_a_grid_that_is_not_imported_refuses_the_whole_file(tmp_path, district_database_url):
    lines = [
        ",".join(PLACES.columns),
        "T-1,便利店,shop,addr,,,QS-01-01-01,,,30",
        "T-2,面馆,restaurant,addr,,,QS-99-99-99,,,14",
    ]
    path = write_csv(tmp_path, lines, "places.csv")
    with psycopg.connect(district_database_url) as conn, pytest.raises(InputFileError) as caught:
        import_places_file(conn, path, now=T0)
    assert "row 3: grid_code 'QS-99-99-99' is not an imported grid" in str(caught.value)
    assert count_rows(district_database_url, "places", "id LIKE %s", ("T-%",)) == 0


def test_the_places_command_imports_and_names_a_bad_row(tmp_path, capsys, district_database_url):
    good = write_csv(tmp_path, [*ENGLISH[:2], ENGLISH[3]], "places.csv")
    assert cli("places", "import", str(good), "--database-url", district_database_url) == 0
    assert "places.csv: 2 places added, 0 updated" in capsys.readouterr().out
    assert cli("places", "import", str(good), "--database-url", district_database_url) == 0
    assert "places.csv: 0 places added, 2 updated" in capsys.readouterr().out
    bad = write_csv(tmp_path, [ENGLISH[0], "P-9,店,casino,addr,40.65,109.90,,,,30"], "bad.csv")
    assert cli("places", "import", str(bad), "--database-url", district_database_url) == 1
    assert_one_error_line(capsys.readouterr().err, "bad.csv: row 2, column kind")
    assert cli("places", "template", "--zh") == 0
    assert capsys.readouterr().out.lstrip("\ufeff").startswith("场所编号,名称,类型,地址")
