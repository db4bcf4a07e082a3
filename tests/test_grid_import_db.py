"""Grid and resident imports into the database, through gridwatch.imports.pipelines and the CLI."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import shapely
from shapely.affinity import translate
from shapely.geometry import Point, box

from gridwatch.errors import InputFileError
from gridwatch.imports.pipelines import import_grid_file, import_residents_file
from gridwatch.imports.residents import COLUMNS
from gridwatch.store.grids import grid_codes
from gridwatch.store.residents import worker_grids
from tests.support.databases import count_rows
from tests.support.import_files import (
    COMMUNITIES,
    CONTAINED_IN,
    DISTRICT,
    GRIDS,
    STREETS,
    assert_one_error_line,
    cli,
    write_features,
)


def grids_in(url: str) -> dict[str, tuple]:
    """code → (id, name, level, parent code, geometry, bbox, area)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT g.code, g.id, g.name, g.level, p.code, g.geometry,
                   g.min_lon, g.min_lat, g.max_lon, g.max_lat, g.area_m2
            FROM grids g LEFT JOIN grids p ON p.id = g.parent_id
            """
        ).fetchall()
    return {
        code: (gid, name, level, parent, shapely.from_wkb(bytes(wkb)), tuple(bbox), area)
        for code, gid, name, level, parent, wkb, *bbox, area in rows
    }


@pytest.mark.parametrize("suffix", [".geojson", ".shp", ".gpkg"])
def test_each_format_imports_with_parents_by_containment(tmp_path, database_url, suffix):
    levels = [
        ("district", DISTRICT), ("street", STREETS), ("community", COMMUNITIES),
        ("grid", GRIDS),
    ]  # fmt: skip
    with psycopg.connect(database_url) as conn:
        for level, features in levels:
            path = write_features(tmp_path / f"{level}{suffix}", features)
            result = import_grid_file(conn, path, level=level)
            assert (result.inserted, result.updated) == (len(features), 0), level
            assert result.without_parent_or_grid == 0, level
    stored = grids_in(database_url)
    assert set(stored) == {code for _, features in levels for code, _, _ in features}
    for level, features in levels:
        for code, name, geometry in features:
            _, stored_name, stored_level, parent, stored_geometry, bbox, area = stored[code]
            assert (stored_name, stored_level) == (name, level)
            assert parent == CONTAINED_IN.get(code)
            assert stored_geometry.geom_type == "MultiPolygon"
            assert stored_geometry.symmetric_difference(geometry).area < 1e-12
            assert bbox == pytest.approx(geometry.bounds)
            # ~84.6 km per degree of longitude and ~111 km per degree of latitude here.
            west, south, east, north = geometry.bounds
            rough = (east - west) * 84_600 * (north - south) * 111_000
            assert area == pytest.approx(rough, rel=0.01)


def test_one_file_with_level_and_parent_fields_through_the_cli(tmp_path, database_url, capsys):
    features = DISTRICT + STREETS + COMMUNITIES + GRIDS
    levels = ["district"] + ["street"] * 2 + ["community"] * 2 + ["grid"] * 3
    # The parent field wins over containment: G-3 lies in C-B1 but is filed under C-A1.
    parents = [None, "150204", "150204", "ST-A", "ST-B", "C-A1", "C-A1", "C-A1"]
    path = write_features(tmp_path / "all.geojson", features, level=levels, parent=parents)
    code = cli(
        "grids", "import", str(path), "--database-url", database_url,
        "--level-field", "level", "--parent-field", "parent",
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{path}: 8 grids added, 0 updated" in out
    stored = grids_in(database_url)
    assert {c: row[3] for c, row in stored.items()} == {
        code: parent for (code, _, _), parent in zip(features, parents, strict=True)
    }
    assert {c: row[2] for c, row in stored.items()} == {
        code: level for (code, _, _), level in zip(features, levels, strict=True)
    }


def test_reimport_updates_in_place(tmp_path, database_url, capsys):
    path = tmp_path / "grids.gpkg"
    write_features(path, COMMUNITIES)
    assert cli("grids", "import", str(path), "--database-url", database_url,
               "--level", "community") == 0  # fmt: skip
    write_features(path, GRIDS)
    assert cli("grids", "import", str(path), "--database-url", database_url) == 0
    before = grids_in(database_url)
    capsys.readouterr()

    moved = translate(GRIDS[1][2], xoff=0.001)
    changed = [(GRIDS[0][0], "改名网格", GRIDS[0][2]), (GRIDS[1][0], GRIDS[1][1], moved), GRIDS[2]]
    extra = ("G-4", "新网格", box(109.911, 40.631, 109.919, 40.639))
    write_features(path, [*changed, extra])
    code = cli("grids", "import", str(path), "--database-url", database_url)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{path}: 1 grids added, 3 updated" in out
    after = grids_in(database_url)
    for grid_code in ("G-1", "G-2", "G-3"):
        assert after[grid_code][0] == before[grid_code][0], "same id"
        assert after[grid_code][3] == before[grid_code][3], "same parent"
    assert after["G-1"][1] == "改名网格"
    assert after["G-2"][4].symmetric_difference(moved).area < 1e-12
    assert after["G-2"][5] == pytest.approx(moved.bounds)
    assert after["G-4"][3] == "C-B1"
    with psycopg.connect(database_url) as conn:
        updated = conn.execute(
            "SELECT bool_and(updated_at > created_at) FROM grids WHERE code LIKE 'G-_' "
            "AND code <> 'G-4'"
        ).fetchone()[0]
    assert updated


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("garbage.geojson", b"this is not GeoJSON", "not a vector file that can be read"),
        ("empty.gpkg", b"", "not a vector file"),
        (
            "points.geojson",
            b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
            b'{"code":"P","name":"p"},"geometry":{"type":"Point","coordinates":[109.9,40.6]}}]}',
            "expected a polygon",
        ),
        (
            "nocode.geojson",
            b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
            b'{"id":"P"},"geometry":{"type":"Polygon","coordinates":[[[109.9,40.6],'
            b"[109.91,40.6],[109.91,40.61],[109.9,40.6]]]}}]}",
            "no field 'code'",
        ),
    ],
)
def test_a_bad_grid_file_is_one_error_line(tmp_path, database_url, capsys, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    code = cli("grids", "import", str(path), "--database-url", database_url)
    _, err = capsys.readouterr()
    assert code == 1
    assert_one_error_line(err, name, needle)
    assert count_rows(database_url, "grids") == 0


def test_an_unknown_parent_imports_nothing(tmp_path, database_url, capsys):
    path = write_features(tmp_path / "grids.geojson", GRIDS, parent=["C-A1", "NOWHERE", "C-B1"])
    write_features(tmp_path / "communities.geojson", COMMUNITIES)
    assert cli("grids", "import", str(tmp_path / "communities.geojson"), "--database-url",
               database_url, "--level", "community") == 0  # fmt: skip
    capsys.readouterr()
    code = cli("grids", "import", str(path), "--database-url", database_url,
               "--parent-field", "parent")  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 1
    assert_one_error_line(err, "grids.geojson", "'G-2'", "'NOWHERE'")
    assert count_rows(database_url, "grids", "level = 'grid'") == 0


# -- residents ----------------------------------------------------------------------------------


def write_residents(path: Path, rows: list[dict]) -> Path:
    lines = [",".join(COLUMNS)]
    lines += [",".join(str(row.get(column, "")) for column in COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def grids_url(tmp_path, database_url):
    with psycopg.connect(database_url) as conn:
        import_grid_file(
            conn, write_features(tmp_path / "c.geojson", COMMUNITIES), level="community"
        )
        import_grid_file(conn, write_features(tmp_path / "g.geojson", GRIDS), level="grid")
    return database_url


def _inside(code: str) -> Point:
    return dict((c, g) for c, _, g in GRIDS)[code].centroid


def test_residents_are_placed_by_position_and_by_grid_code(tmp_path, grids_url, capsys):
    p1 = _inside("G-1")
    rows = [
        {"resident_id": "R-1", "name": "张大爷", "lat": p1.y, "lon": p1.x, "meter_id": "M-1",
         "sensor_ids": "S-1;S-2"},
        {"resident_id": "R-2", "name": "李奶奶", "grid_code": "G-3", "sensor_ids": "S-3"},
        # In a community, but in none of its grids: kept without a grid.
        {"resident_id": "R-3", "name": "王大妈", "lat": 40.645, "lon": 109.865},
        # Position and code both given, the position 42 m outside the coded grid (a geocoded
        # address across a border): the code decides.
        {"resident_id": "R-4", "name": "赵爷爷", "lat": 40.625, "lon": 109.8705,
         "grid_code": "G-2"},
    ]  # fmt: skip
    path = write_residents(tmp_path / "residents.csv", rows)
    code = cli("residents", "import", str(path), "--database-url", grids_url)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{path}: 4 residents added, 0 updated" in out
    assert "1 residents are outside every grid" in out
    with psycopg.connect(grids_url) as conn:
        placed = dict(
            conn.execute(
                "SELECT r.id, g.code FROM residents r LEFT JOIN grids g ON g.id = r.grid_id"
            ).fetchall()
        )
        devices = conn.execute(
            "SELECT kind, id, resident_id FROM devices ORDER BY kind, id"
        ).fetchall()
    assert placed == {"R-1": "G-1", "R-2": "G-3", "R-3": None, "R-4": "G-2"}
    assert devices == [
        ("meter", "M-1", "R-1"),
        ("sensor", "S-1", "R-1"),
        ("sensor", "S-2", "R-1"),
        ("sensor", "S-3", "R-2"),
    ]

    # Again with R-1's sensors changed: updated in place, the dropped sensor detached.
    rows[0]["sensor_ids"] = "S-2;S-9"
    write_residents(path, rows)
    with psycopg.connect(grids_url) as conn:
        result = import_residents_file(conn, path)
        devices = conn.execute(
            "SELECT kind, id, resident_id FROM devices ORDER BY kind, id"
        ).fetchall()
    assert (result.inserted, result.updated, result.without_parent_or_grid) == (0, 4, 1)
    assert devices == [
        ("meter", "M-1", "R-1"),
        ("sensor", "S-1", None),
        ("sensor", "S-2", "R-1"),
        ("sensor", "S-3", "R-2"),
        ("sensor", "S-9", "R-1"),
    ]


def test_an_unknown_grid_code_names_its_row_and_imports_nothing(tmp_path, grids_url, capsys):
    p1 = _inside("G-1")
    rows = [
        {"resident_id": "R-1", "lat": p1.y, "lon": p1.x},
        {"resident_id": "R-2", "grid_code": "G-404"},
    ]
    path = write_residents(tmp_path / "residents.csv", rows)
    code = cli("residents", "import", str(path), "--database-url", grids_url)
    _, err = capsys.readouterr()
    assert code == 1
    assert_one_error_line(err, "residents.csv", "row 3", "'G-404'")
    assert count_rows(grids_url, "residents") == 0
    with psycopg.connect(grids_url) as conn, pytest.raises(InputFileError, match="row 3"):
        import_residents_file(conn, path)


def test_a_grid_code_far_from_the_rows_position_is_refused(tmp_path, grids_url, capsys):
    p1 = _inside("G-1")
    rows = [
        {"resident_id": "R-1", "lat": p1.y, "lon": p1.x, "grid_code": "G-1"},
        {"resident_id": "R-2", "lat": p1.y, "lon": p1.x, "grid_code": "G-2"},
    ]
    path = write_residents(tmp_path / "residents.csv", rows)
    code = cli("residents", "import", str(path), "--database-url", grids_url)
    _, err = capsys.readouterr()
    assert code == 1
    assert_one_error_line(err, "residents.csv", "row 3", "'G-2'", "grid G-1", "507 m outside")
    assert count_rows(grids_url, "residents") == 0


def test_chinese_header_separators_and_phones_as_offices_write_them(tmp_path, grids_url, capsys):
    p1 = _inside("G-1")
    path = tmp_path / "居民.csv"
    path.write_text(
        "居民编号,姓名,地址,纬度,经度,网格编码,电表编号,传感器编号,电话,是否独居\n"
        f"R-1,张大爷,富强路1号,{p1.y},{p1.x},,M-1,"
        '"S-1\u3001S-2\uff0cS-3\uff1bS-4",0472-5123456,是\n'
        "R-2,李奶奶,富强路2号,,,G-2,M-2,S-5,5123456,否\n",
        encoding="utf-8-sig",
    )
    code = cli("residents", "import", str(path), "--database-url", grids_url)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 residents added" in out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "row 3, column phone" in warning and "'5123456'" in warning
    with psycopg.connect(grids_url) as conn:
        sensors = conn.execute(
            "SELECT id FROM devices WHERE resident_id = 'R-1' AND kind = 'sensor' ORDER BY id"
        ).fetchall()
        phone = conn.execute("SELECT phone FROM residents WHERE id = 'R-2'").fetchone()
    assert [s for (s,) in sensors] == ["S-1", "S-2", "S-3", "S-4"]
    assert phone == ("5123456",)


def test_residents_without_any_grids_are_kept_outside(tmp_path, database_url):
    path = write_residents(
        tmp_path / "residents.csv", [{"resident_id": "R-1", "lat": 40.6, "lon": 109.9}]
    )
    with psycopg.connect(database_url) as conn:
        result = import_residents_file(conn, path)
    assert (result.inserted, result.without_parent_or_grid) == (1, 1)
    assert count_rows(database_url, "residents", "grid_id IS NULL") == 1


# -- workers ------------------------------------------------------------------------------------


def test_workers_import_with_several_grids_chinese_header_and_again(tmp_path, grids_url, capsys):
    path = tmp_path / "网格员.csv"
    path.write_text(
        '工号,姓名,电话,负责网格\nW-1,刘网格,13912345678,"G-1\u3001G-2"\nW-2,陈网格,5123456,G-3\n',
        encoding="gbk",
    )
    code = cli("workers", "import", str(path), "--database-url", grids_url)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{path}: 2 workers added, 0 updated" in out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "row 3, column phone" in warning
    with psycopg.connect(grids_url) as conn:
        grids = worker_grids(conn, ["W-1", "W-2", "W-404"])
        codes = {gid: code for code, (gid, _level) in grid_codes(conn).items()}
    assert {w: {codes[g] for g in gs} for w, gs in grids.items()} == {
        "W-1": {"G-1", "G-2"},
        "W-2": {"G-3"},
    }
    # Again with W-1 down to one grid: updated in place.
    path.write_text("worker_id,name,phone,grid_codes\nW-1,刘网格,13912345678,G-2\n", "utf-8")
    assert cli("workers", "import", str(path), "--database-url", grids_url) == 0
    assert "0 workers added, 1 updated" in capsys.readouterr().out
    with psycopg.connect(grids_url) as conn:
        assert worker_grids(conn, ["W-1"]) == {"W-1": frozenset({grid_codes(conn)["G-2"][0]})}


def test_a_worker_of_an_unknown_grid_names_its_row_and_imports_nothing(tmp_path, grids_url, capsys):
    path = tmp_path / "workers.csv"
    path.write_text(
        "worker_id,name,phone,grid_codes\nW-1,刘,13912345678,G-1\nW-2,陈,,G-404\n", "utf-8"
    )
    assert cli("workers", "import", str(path), "--database-url", grids_url) == 1
    _, err = capsys.readouterr()
    assert_one_error_line(err, "workers.csv", "row 3", "'G-404'")
    assert count_rows(grids_url, "workers") == 0
