"""Buildings (楼栋), units (单元) and their unit heads and building leads into the database:
through `grids import --level building`, the units and contacts CSVs (English or Chinese
headers, UTF-8 or GBK), each bad row named, every import idempotent; residents and inspected
places placed in their building and unit."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from shapely.geometry import box

from gridwatch.errors import InputFileError
from gridwatch.imports.pipelines import (
    import_contacts_file,
    import_grid_file,
    import_places_file,
    import_residents_file,
    import_units_file,
)
from gridwatch.imports.places import PLACES
from gridwatch.store.personal_data import forget_resident
from tests.support.buildings import (
    BUILDINGS,
    CONTACTS,
    CONTACTS_ZH,
    IN_B1,
    IN_B3,
    UNITS,
    UNITS_ZH,
    import_buildings,
    import_hierarchy,
    write_lines,
)
from tests.support.databases import query
from tests.support.import_files import HEADER, assert_one_error_line, cli, write_features


def _buildings(url: str) -> dict[str, tuple[str, str]]:
    return dict(
        (code, (name, grid))
        for code, name, grid in query(
            url, "SELECT b.code, b.name, g.code FROM buildings b JOIN grids g ON g.id = b.grid_id"
        )
    )


def test_buildings_come_in_as_grids_do_each_in_the_grid_that_holds_it(tmp_path, database_url):
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
        path = write_features(tmp_path / "buildings.shp", BUILDINGS)
        first = import_grid_file(conn, path, level="building")
        again = import_grid_file(conn, path, level="building")
    assert (first.inserted, first.updated) == (3, 0)
    assert (again.inserted, again.updated) == (0, 3)
    assert _buildings(database_url) == {
        "B-1": ("富强1栋", "G-1"),
        "B-2": ("富强2栋", "G-1"),
        "B-3": ("幸福1栋", "G-3"),
    }
    # Points are still placed in grids: the grids stay the leaves, buildings are not grids.
    assert query(database_url, "SELECT count(*) FROM grids WHERE level = 'building'") == [(0,)]


def test_a_level_field_may_say_楼栋_and_a_parent_field_names_the_grid(tmp_path, database_url):
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
        path = write_features(
            tmp_path / "mixed.geojson",
            BUILDINGS,
            层级=["楼栋", "楼栋", "楼栋"],
            grid=["G-2", "G-1", "G-3"],
        )
        import_grid_file(conn, path, level=None, parent_field="grid")
    assert _buildings(database_url)["B-1"] == ("富强1栋", "G-2")


def test_a_building_in_no_grid_or_under_a_community_is_refused_by_feature(tmp_path, database_url):
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
        far = [*BUILDINGS[:2], ("B-X", "远处", box(109.95, 40.70, 109.951, 40.701))]
        with pytest.raises(InputFileError) as caught:
            import_grid_file(conn, write_features(tmp_path / "far.geojson", far), level="building")
        path = write_features(tmp_path / "parent.geojson", BUILDINGS[:1], parent=["C-A1"])
        with pytest.raises(InputFileError) as community:
            import_grid_file(conn, path, level="building", parent_field="parent")
    assert "far.geojson: feature 3 (code 'B-X'): the building lies in no imported grid" in str(
        caught.value
    )
    assert (
        "feature 1 (code 'B-1'): its parent 'C-A1' is a community; a building's parent is a grid"
        in str(community.value)
    )
    assert query(database_url, "SELECT count(*) FROM buildings") == [(0,)]


@pytest.mark.parametrize(
    ("english", "encoding"), [(True, "utf-8"), (False, "gbk"), (False, "utf-8-sig")]
)
def test_units_and_contacts_in_either_header_and_encoding_and_again_change_nothing(
    tmp_path, database_url, english, encoding
):
    units, contacts = (UNITS, CONTACTS) if english else (UNITS_ZH, CONTACTS_ZH)
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
        import_grid_file(conn, write_features(tmp_path / "b.geojson", BUILDINGS), level="building")
        done = []
        for importer, lines in ((import_units_file, units), (import_contacts_file, contacts)):
            path = write_lines(tmp_path / "file.csv", lines, encoding)
            done += [importer(conn, path), importer(conn, path)]
    assert [(r.inserted, r.updated) for r in done] == [(4, 0), (0, 4), (4, 0), (0, 4)]
    rows = query(
        database_url,
        "SELECT b.code, u.code, u.name, u.address, u.lon, u.lat FROM units u "
        "JOIN buildings b ON b.id = u.building_id ORDER BY 1, 2",
    )
    assert rows[:2] == [
        ("B-1", "1", "1单元", "", 109.8621, 40.6221),
        ("B-1", "2", "2单元", "青山区富强路1号1栋2单元", None, None),
    ]
    rows = query(
        database_url,
        "SELECT c.id, c.name, c.role, b.code, u.code, c.phone FROM contacts c "
        "JOIN buildings b ON b.id = c.building_id LEFT JOIN units u ON u.id = c.unit_id "
        "ORDER BY c.id",
    )
    assert rows == [
        ("C-1", "王秀英", "unit_head", "B-1", "1", "13900001111"),
        ("C-2", "李建国", "building_lead", "B-1", None, "13900002222"),
        ("C-3", "赵红梅", "unit_head", "B-1", "2", "13900004444"),
        ("C-4", "张丽", "unit_head", "B-3", "1", "13900003333"),
    ]


def test_bad_unit_rows_are_each_named_and_nothing_is_imported(tmp_path, database_url):
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
        import_grid_file(conn, write_features(tmp_path / "b.geojson", BUILDINGS), level="building")
        bad = [
            UNITS[0],
            "B-1,1,1单元,,40.6221,109.8621",
            "B-1,1,again,,,",  # the same unit twice
            ",2,,,,",  # no building
            "B-1,3,,,40.6221,",  # one coordinate
            "B-1,4\x07,,,,",  # a control character in a code
        ]
        with pytest.raises(InputFileError) as caught:
            import_units_file(conn, write_lines(tmp_path / "units.csv", bad))
        unknown = [UNITS[0], "B-9,1,,,,", "B-1,1,,,40.70,109.95"]
        with pytest.raises(InputFileError) as stored:
            import_units_file(conn, write_lines(tmp_path / "units2.csv", unknown))
    assert str(caught.value).splitlines() == [
        "units.csv: row 3, column unit_code: unit '1' of building 'B-1' is already in row 2",
        "units.csv: row 4, column building_code: is empty",
        "units.csv: row 5, column lon: is empty while the other coordinate is given; give "
        "both or neither",
        "units.csv: row 6, column unit_code: contains the control character '\\x07'",
    ]
    message = str(stored.value)
    assert "units2.csv: row 2: building_code 'B-9' is not an imported building" in message
    assert "row 3: lat/lon lie" in message and "m outside building B-1" in message
    assert query(database_url, "SELECT count(*) FROM units") == [(0,)]


def test_bad_contact_rows_are_each_named_with_file_and_row(tmp_path, database_url, capsys):
    bad = [
        CONTACTS[0],
        "C-1,王秀英,unit_head,B-1,1,13900001111,",
        "C-1,重复,building_lead,B-1,,13900001112,",  # the same id twice
        "C-5,李,guard,B-1,,139,",  # no such role; an implausible phone is only a warning
        "C-6,周,unit_head,B-1,,13900001113,",  # a unit head without a unit
        "C-7,吴,building_lead,B-1,,13900001114,ftp://example.cn/hook",
        "C-8,,building_lead,,,1.39E+10,",
    ]
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
    path = write_lines(tmp_path / "contacts.csv", bad)
    url = database_url
    assert cli("contacts", "import", str(path), "--database-url", url) == 1
    err = capsys.readouterr().err
    assert "contacts.csv: row 3, column contact_id: 'C-1' is already used in row 2" in err
    assert "contacts.csv: row 4, column role: 'guard' is not one of unit_head, building_lead" in err
    assert (
        "contacts.csv: row 5, column unit_code: is empty; a unit head (单元长) heads a unit" in err
    )
    assert "contacts.csv: row 6, column webhook_url: 'ftp://example.cn/hook' is not an http" in err
    assert "contacts.csv: row 7, column name: is empty" in err
    assert "contacts.csv: row 7, column building_code: is empty" in err
    assert "contacts.csv: row 7, column phone: '1.39E+10' is a number Excel turned" in err
    unknown = [CONTACTS[0], "C-9,钱,unit_head,B-1,7,13900001115,", "C-10,孙,building_lead,B-8,,,"]
    path = write_lines(tmp_path / "unknown.csv", unknown)
    assert cli("contacts", "import", str(path), "--database-url", url) == 1
    assert_one_error_line(
        capsys.readouterr().err,
        "unknown.csv: row 2: unit_code '7' is not an imported unit of building B-1",
        "row 3: building_code 'B-8' is not an imported building",
    )
    assert query(url, "SELECT id FROM contacts ORDER BY id") == [
        ("C-1",), ("C-2",), ("C-3",), ("C-4",),
    ]  # fmt: skip


def test_the_commands_import_print_templates_and_say_what_they_did(tmp_path, database_url, capsys):
    with psycopg.connect(database_url) as conn:
        import_hierarchy(conn, tmp_path)
    buildings = write_features(tmp_path / "buildings.geojson", BUILDINGS)
    url = ["--database-url", database_url]
    assert cli("grids", "import", str(buildings), "--level", "building", *url) == 0
    assert cli("units", "import", str(write_lines(tmp_path / "u.csv", UNITS)), *url) == 0
    people = write_lines(tmp_path / "c.csv", [*CONTACTS, "C-5,李,unit_head,B-2,1,139,"])
    assert cli("contacts", "import", str(people), *url) == 0
    out = capsys.readouterr().out
    assert "buildings.geojson: 3 buildings added, 0 updated" in out
    assert "u.csv: 4 units added, 0 updated" in out
    assert "c.csv: 5 contacts added, 0 updated" in out
    assert "warning: c.csv: row 6, column phone: '139' is not a mainland mobile" in out
    assert cli("contacts", "template", "--zh") == 0
    assert capsys.readouterr().out == "\ufeff联系人编号,姓名,角色,楼栋编码,单元编码,电话,推送地址\n"
    assert cli("units", "template") == 0
    assert capsys.readouterr().out == "building_code,unit_code,name,address,lat,lon\n"


def test_residents_name_their_building_and_unit_or_are_placed_by_position(tmp_path, database_url):
    rows = [
        f"{HEADER},building_code,unit_code",
        "R1,王,地址,,,G-1,,,,true,B-1,2",  # named, no position
        f"R2,李,地址,{IN_B1[1]},{IN_B1[0]},,,,,true,,",  # placed by its position
        f"R3,张,地址,{IN_B3[1]},{IN_B3[0]},G-3,,,,true,B-3,",  # named, with its position
        "R4,赵,地址,40.6281,109.8681,,,,,true,,",  # in grid G-1, in no building
    ]
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
        import_residents_file(conn, write_lines(tmp_path / "residents.csv", rows))
    assert _homes(database_url, "residents") == PLACED


# Where rows 1 to 4 of the tests below stand: (grid, building, unit).
PLACED = [("G-1", "B-1", "2"), ("G-1", "B-1", None), ("G-3", "B-3", None), ("G-1", None, None)]


def _homes(url: str, table: str) -> list[tuple]:
    """(grid, building, unit) code of each row of `table` (residents, places), by id."""
    return query(
        url,
        f"SELECT g.code, b.code, u.code FROM {table} t JOIN grids g ON g.id = t.grid_id "
        "LEFT JOIN buildings b ON b.id = t.building_id LEFT JOIN units u ON u.id = t.unit_id "
        "ORDER BY t.id",
    )


UNIT_WITHOUT_BUILDING = (
    "row 2, column building_code: is empty while unit_code is given; a unit is named by both"
)


def _assert_homes_refused(message: str, label: str) -> None:
    """Rows 2 to 5 of `label` name an unknown building, an unknown unit, a building of another
    grid than their grid_code and one of another grid than their position: each is named."""
    assert f"{label}: row 2: building_code 'B-9' is not an imported building" in message
    assert "row 3: unit_code '9' is not an imported unit of building B-1" in message
    assert "row 4: building B-1 lies in another grid than the row's grid_code" in message
    assert "row 5: building B-1 lies in another grid than the row's lat/lon" in message


def test_residents_naming_what_is_not_there_are_refused_by_row(tmp_path, database_url):
    rows = [
        f"{HEADER},楼栋编码,单元编码",
        "R1,王,地址,,,G-1,,,,true,B-9,",
        "R2,李,地址,,,G-1,,,,true,B-1,9",
        "R3,张,地址,,,G-2,,,,true,B-1,1",  # B-1 lies in G-1
        f"R4,赵,地址,{IN_B3[1]},{IN_B3[0]},,,,,true,B-1,",  # 3 km from B-1, in G-3
        "R5,钱,地址,,,G-1,,,,true,,1",
    ]
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
        with pytest.raises(InputFileError) as named:
            import_residents_file(conn, write_lines(tmp_path / "r.csv", [rows[0], rows[5]]))
        with pytest.raises(InputFileError) as caught:
            import_residents_file(conn, write_lines(tmp_path / "residents.csv", rows[:5]))
    assert str(named.value) == f"r.csv: {UNIT_WITHOUT_BUILDING}"
    _assert_homes_refused(str(caught.value), "residents.csv")
    assert query(database_url, "SELECT count(*) FROM residents") == [(0,)]


def test_a_forgotten_resident_no_longer_names_their_building_and_unit(tmp_path, database_url):
    rows = [f"{HEADER},building_code,unit_code", "R1,王,地址,,,G-1,,,,true,B-1,2"]
    path = write_lines(tmp_path / "residents.csv", rows)
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
        import_residents_file(conn, path)
        forget_resident(conn, "R1", actor="社区书记", now=datetime.now(UTC))
        forgotten = conn.execute("SELECT building_id, unit_id FROM residents").fetchall()
        import_residents_file(conn, path)  # the register again: the home comes back with it
    assert forgotten == [(None, None)]
    assert query(
        database_url, "SELECT building_id IS NOT NULL, unit_id IS NOT NULL FROM residents"
    ) == [(True, True)]


def _places_csv(tmp_path, rows: list[str], chinese: bool = True):
    header = ",".join(PLACES.chinese if chinese else PLACES.columns)
    return write_lines(tmp_path / "places.csv", [header, *rows], encoding="gbk")


def test_places_name_their_building_and_unit_or_are_placed_by_position(tmp_path, database_url):
    rows = [
        "P1,老王面馆,小餐饮,富强路1号,,,G-1,王,13800000001,30,B-1,2",  # named, no position
        f"P2,幸福超市,商铺,富强路2号,{IN_B1[1]},{IN_B1[0]},,,,30,,",  # placed by position
        f"P3,张记作坊,小作坊,幸福路3号,{IN_B3[1]},{IN_B3[0]},G-3,,,90,B-3,",  # named, inside
        "P4,库房,小仓库,富强路9号,40.6281,109.8681,,,,180,,",  # in grid G-1, in no building
    ]
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
        first = import_places_file(conn, _places_csv(tmp_path, rows))
        again = import_places_file(conn, _places_csv(tmp_path, rows))
    assert (first.inserted, again.inserted, again.updated) == (4, 0, 4)
    assert _homes(database_url, "places") == PLACED
    # A register without the two columns (the places CSV before them) places by position.
    english = [",".join(r.split(",")[:10]) for r in rows]
    with psycopg.connect(database_url) as conn:
        import_places_file(
            conn, write_lines(tmp_path / "old.csv", [",".join(PLACES.columns[:10]), *english])
        )
    assert [b for _, b, _ in _homes(database_url, "places")] == [None, "B-1", "B-3", None]


def test_places_naming_what_is_not_there_are_refused_by_row(tmp_path, database_url):
    rows = [
        "P1,面馆,restaurant,,,,G-1,,,30,B-9,",
        "P2,超市,shop,,,,G-1,,,30,B-1,9",
        "P3,作坊,workshop,,,,G-2,,,30,B-1,1",  # B-1 lies in G-1
        f"P4,库房,warehouse,,{IN_B3[1]},{IN_B3[0]},,,,30,B-1,",  # 3 km from B-1, in G-3
    ]
    with psycopg.connect(database_url) as conn:
        import_buildings(conn, tmp_path)
        with pytest.raises(InputFileError) as named:
            import_places_file(conn, _places_csv(tmp_path, ["P5,店,shop,,,,G-1,,,30,,1"], False))
        with pytest.raises(InputFileError) as caught:
            import_places_file(conn, _places_csv(tmp_path, rows, chinese=False))
        with pytest.raises(InputFileError) as control:
            import_places_file(conn, _places_csv(tmp_path, ["P6,店,shop,,,,G-1,,,30,B-1\x01,"]))
    assert str(named.value) == f"places.csv: {UNIT_WITHOUT_BUILDING}"
    _assert_homes_refused(str(caught.value), "places.csv")
    assert "column building_code: contains the control character '\\x01'" in str(control.value)
    assert query(database_url, "SELECT count(*) FROM places") == [(0,)]


def test_the_places_template_names_the_building_and_unit_columns(capsys):
    assert cli("places", "template", "--zh") == 0
    assert capsys.readouterr().out.endswith(",巡查周期天数,楼栋编码,单元编码\n")
    assert cli("places", "template") == 0
    assert capsys.readouterr().out.endswith(",inspect_every_days,building_code,unit_code\n")
