"""Bad import files: wrong encodings, broken geometries, missing parts and columns, duplicate
codes and ids, empty files, bad numbers and cells. Each is refused with lines naming the file,
the row (or feature) and the column, exit code 1 and no traceback from the CLI; and nothing
of a refused file is imported — one transaction per import, even when the database refuses
a row in the middle."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
from shapely.geometry import Polygon, box

from gridwatch.errors import InputFileError
from gridwatch.geo.grids import read_grid_file
from gridwatch.imports.residents import read_residents_csv
from tests.support.import_files import (
    COMMUNITIES,
    GOOD_ROWS,
    GRIDS,
    HEADER,
    assert_one_error_line,
    baotou_rows,
    cli,
    error_lines,
    write_csv,
    write_features,
    write_layer,
)

# -- residents: encodings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "separator"),
    [("utf-16", "\t"), ("utf-16", ","), ("utf-16-be", ",")],
    ids=["excel-unicode-text", "utf16le-commas", "utf16be-commas"],
)
def test_utf16_with_its_bom_reads_like_utf8(tmp_path, encoding, separator):
    expected = read_residents_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS], name="utf8.csv"))
    lines = [line.replace(",", separator) for line in [HEADER, *GOOD_ROWS]]
    path = tmp_path / "residents.csv"
    text = "\r\n".join(lines) + "\r\n"
    bom = "" if encoding == "utf-16" else "\ufeff"  # the utf-16 codec writes its own
    path.write_bytes((bom + text).encode(encoding))
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert read_residents_csv(path) == expected


@pytest.mark.parametrize(
    ("name", "encoding", "needle"),
    [
        ("José Müller", "latin-1", "is neither UTF-8 nor GBK text (byte 89 cannot be"),
        # Bytes that GB18030 decodes, into rare characters: garbage, if stored.
        ("Müller", "latin-1", "does not read as Chinese GBK text either (Latin-1 or"),
        ("Zoëlle Öberg", "cp1252", "does not read as Chinese GBK text either"),
    ],
)  # fmt: skip
def test_western_encodings_are_refused_not_garbled(tmp_path, name, encoding, needle):
    row = f"R1,{name},Hauptstrasse 5,40.6,109.9,,,,,true"
    lines = error_lines(write_csv(tmp_path, [HEADER, row], encoding=encoding))
    assert len(lines) == 1
    assert lines[0].startswith("residents.csv: ") and needle in lines[0]
    assert lines[0].endswith("save it as CSV (UTF-8)")


def test_gbk_with_rare_characters_in_names_still_reads(tmp_path):
    # 喆 and 堃 are outside GB2312 (GBK only), as in many people's names.
    rows = [
        *GOOD_ROWS,
        "R00004,王喆,青山区富强路1号,40.65,109.9,,,,,是",
        "R00005,李堃,幸福路2号,,,G1,,,,否",
    ]
    residents = read_residents_csv(write_csv(tmp_path, [HEADER, *rows], encoding="gbk"))
    assert [r.name for r in residents[3:]] == ["王喆", "李堃"]


# -- residents: rows ------------------------------------------------------------------------

FILLER = [f"R{n:05d},居民{n},青山区{n}号,40.6,109.9,,M{n},S{n},,是" for n in range(10, 160)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # A NUL far past the first 4 KiB (which is all the binary sniffing reads).
        ([*FILLER, "R9,a\x00b,c,40.6,109.9,,,,,true"],
         "row 152, column name: contains the control character '\\x00'"),
        (['"R\t9",a,b,40.6,109.9,,,,,true'],
         "row 2, column resident_id: contains the control character '\\t'"),
        (["R9,a,b,40.6,109.9,,M\x1b9,,,true"],
         "row 2, column meter_id: contains the control character '\\x1b'"),
        # A stray quote swallowed every row after it.
        ([GOOD_ROWS[0], 'R9,"王大爷,b,40.6,109.9,,,,,true', *GOOD_ROWS[1:]],
         'row 3: a quoted cell is never closed (a stray " in the row?)'),
        (['R9,"王"大爷,b,40.6,109.9,,,,,true'], "row 2: ',' expected after '\"'"),
        (["R9," + "x" * 200_000 + ",b,40.6,109.9,,,,,true"],
         "row 2: a cell is longer than 131072 characters"),
        # An address with an unquoted comma shifts every cell after it.
        (["R9,a,青山区,富强路5号,40.6,109.9,,,,,true"],
         "row 2, column 11: 11 cells for 10 columns (a comma inside a cell that is not quoted?)"),
        (["R9,a,b,1_0,109.9,,,,,true"], "row 2, column lat: '1_0' is not a number"),
        (["R9,a,b,0x10,109.9,,,,,true"], "row 2, column lat: '0x10' is not a number"),
        (["R9,a,b,40.6,infinity,,,,,true"], "row 2, column lon: 'infinity' is not a number"),
        (["R9,a,b,40.6,1e999,,,,,true"], "row 2, column lon: '1e999' is not a number"),
        (["R9,a,b,40.6,109.9,,,,,true", "R9,a,b,40.6,109.9,,,,,true"],
         "row 3, column resident_id: resident_id 'R9' is already used in row 2"),
    ],
    ids=["nul-late", "tab-in-id", "escape-in-meter", "stray-quote", "quote-inside",
         "huge-cell", "extra-cell", "underscore", "hex", "infinity", "overflow", "duplicate"],
)  # fmt: skip
def test_each_bad_row_names_its_row_and_column(tmp_path, rows, expected):
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert f"residents.csv: {expected}" in lines, lines


def test_a_header_and_nothing_else_is_refused(tmp_path):
    assert error_lines(write_csv(tmp_path, [HEADER, "", " , "])) == [
        "residents.csv: the file has a header but no residents"
    ]


def test_a_semicolon_separated_file_is_told_so(tmp_path):
    (line,) = error_lines(write_csv(tmp_path, [HEADER.replace(",", ";"), "R1;a;b;;;G1;;;;1"]))
    assert line.startswith("residents.csv: row 1 (header): missing columns resident_id, name")
    assert line.endswith("(cells separated by ';': save it as CSV with commas)")


def test_full_width_digits_are_numbers(tmp_path):
    # Digits and point as a Chinese input method types them in full-width mode.
    full_width = "\uff14\uff10\uff0e\uff16\uff15,\uff11\uff10\uff19\uff0e\uff19"
    path = write_csv(tmp_path, [HEADER, f"R1,a,b,{full_width},,,,,是"])
    (resident,) = read_residents_csv(path)
    assert (resident.lat, resident.lon) == (40.65, 109.9)


def test_rows_are_records_counted_as_excel_counts_them(tmp_path):
    # A quoted address over two lines is one row; a blank line is a row of its own.
    rows = ['R1,a,"青山区富强路\n12号",40.6,109.9,,,,,true', "", "R2,a,b,x,109.9,,,,,true"]
    (line,) = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert line == "residents.csv: row 4, column lat: 'x' is not a number"
    (first,) = read_residents_csv(write_csv(tmp_path, [HEADER, rows[0]], name="ok.csv"))
    assert first.row == 2 and first.address == "青山区富强路\n12号"


# -- grids: encodings and broken files -------------------------------------------------------

CHINESE = [
    {"编码": "QS-01", "名称": "富强社区第1网格", "geometry": box(109.88, 40.64, 109.89, 40.65)},
    {"编码": "QS-02", "名称": "幸福社区第2网格", "geometry": box(109.89, 40.64, 109.90, 40.65)},
]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_a_shapefile_without_cpg_is_read_in_gbk_or_utf8(tmp_path, encoding):
    # GDAL reads a .dbf that declares no encoding as Latin-1: every name garbled, silently.
    path = write_layer(tmp_path / "grids.shp", CHINESE, encoding=encoding)
    (tmp_path / "grids.cpg").unlink()
    features = read_grid_file(path, code_field="编码", name_field="名称")
    assert [(f.code, f.name) for f in features] == [("QS-01", "富强社区第1网格"),
                                                    ("QS-02", "幸福社区第2网格")]  # fmt: skip


def test_a_latin1_shapefile_without_cpg_stays_latin1(tmp_path):
    rows = [{"code": "G-1", "name": "Müllerstraße", "geometry": box(1, 1, 2, 2)},
            {"code": "G-2", "name": "Zoë", "geometry": box(2, 1, 3, 2)}]  # fmt: skip
    path = write_layer(tmp_path / "grids.shp", rows, encoding="ISO-8859-1")
    (tmp_path / "grids.cpg").unlink()
    assert [f.name for f in read_grid_file(path)] == ["Müllerstraße", "Zoë"]


def feature_collection(name: str, ring: list[tuple[float, float]]) -> str:
    coordinates = ",".join(f"[{x},{y}]" for x, y in ring)
    return (
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
        f'{{"code":"G-1","name":"{name}"}},"geometry":{{"type":"Polygon","coordinates":'
        f"[[{coordinates}]]}}}}]}}"
    )


SQUARE = [(109.9, 40.6), (109.91, 40.6), (109.91, 40.61), (109.9, 40.61), (109.9, 40.6)]


def test_a_geojson_saved_in_gbk_is_read(tmp_path):
    path = tmp_path / "grids.geojson"
    path.write_bytes(feature_collection("富强社区第1网格", SQUARE).encode("gbk"))
    assert [f.name for f in read_grid_file(path)] == ["富强社区第1网格"]


def test_an_unclosed_ring_is_closed(tmp_path):
    path = tmp_path / "grids.geojson"
    path.write_text(feature_collection("a", SQUARE[:-1]))
    (feature,) = read_grid_file(path)
    assert feature.geometry.equals(Polygon(SQUARE))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (feature_collection("a", SQUARE)[:150], "not a vector file that can be read"),
        ('{"type":"FeatureCollection","features":[]}', "the file has no features"),
        (feature_collection("a", [(109.9, 40.6), ("NaN", 40.6), (109.91, 40.61), (109.9, 40.6)]),
         "feature 1 (code 'G-1'): coordinates cannot be converted"),
        (feature_collection("a", [(109.9, 40.6), (109.91, 40.6), (109.9, 40.6)]),
         "feature 1 (code 'G-1'): polygon has no area"),
        (feature_collection("a", [(1e300, 40.6), (109.91, 40.6), (109.91, 40.61), (1e300, 40.6)]),
         "feature 1 (code 'G-1'): coordinates are outside longitude/latitude range"),
        ("code,name\nG-1,a\n", "not a vector file that can be read"),
    ],
    ids=["truncated", "no-features", "nan", "collapsed", "huge", "csv"],
)  # fmt: skip
def test_broken_geojson_is_named(tmp_path, content, needle):
    # filterwarnings=error: GDAL's and shapely's warnings about the file must not escape.
    path = tmp_path / "grids.geojson"
    path.write_text(content)
    with pytest.raises(InputFileError) as caught:
        read_grid_file(path)
    assert str(caught.value).startswith("grids.geojson: ")
    assert needle in str(caught.value)


@pytest.mark.parametrize("part", [".shx", ".dbf"])
def test_a_shapefile_missing_a_part_names_it(tmp_path, part):
    path = write_layer(tmp_path / "grids.shp", baotou_rows())
    (tmp_path / f"grids{part}").unlink()
    with pytest.raises(InputFileError, match=rf"grids.shp: the shapefile's \{part} is missing"):
        read_grid_file(path)


# -- through the CLI: one line, exit 1, the database unchanged ----------------------------------


def snapshot(url: str) -> dict[str, list]:
    """Every row of the tables an import writes."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("grids", "residents", "devices")
        }


def residents_file(path: Path, count: int, name: str = "居民") -> Path:
    lines = [HEADER] + [
        f"R{n:04d},{name}{n},青山区{n}号,40.6,109.9,,M{n},S{n}a;S{n}b,1390000{n:04d},是"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def imported_url(tmp_path, database_url, capsys):
    """A database holding communities, grids and 100 residents with their devices."""
    source = tmp_path / "first"
    source.mkdir()
    communities = write_features(source / "communities.geojson", COMMUNITIES)
    assert cli("grids", "import", str(communities), "--level", "community",
               "--database-url", database_url) == 0  # fmt: skip
    grids = write_features(source / "grids.geojson", GRIDS)
    assert cli("grids", "import", str(grids), "--database-url", database_url) == 0
    residents = residents_file(source / "residents.csv", 100)
    assert cli("residents", "import", str(residents), "--database-url", database_url) == 0
    capsys.readouterr()
    return database_url


def refuse_in_the_database(url: str, table: str, column: str, value: str) -> None:
    """A constraint the file's row in the middle breaks, as a database may refuse any row."""
    with psycopg.connect(url) as conn:
        conn.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT test_refuses CHECK ({column} <> '{value}') "
            "NOT VALID"  # rows already there may hold it; a new or updated one may not
        )


def test_a_resident_row_refused_by_the_database_leaves_all_unchanged(
    tmp_path, imported_url, capsys
):
    # 200 rows: the first 100 update residents already there, the rest are new.
    path = residents_file(tmp_path / "residents.csv", 200, name="新名字")
    refuse_in_the_database(imported_url, "residents", "id", "R0150")
    before = snapshot(imported_url)
    assert cli("residents", "import", str(path), "--database-url", imported_url) == 1
    _, err = capsys.readouterr()
    assert_one_error_line(err, "residents.csv: row 152: rejected by the database", "test_refuses")
    assert snapshot(imported_url) == before


def test_a_grid_refused_by_the_database_leaves_all_unchanged(tmp_path, imported_url, capsys):
    renamed = [(code, name + "新", geometry) for code, name, geometry in GRIDS]
    extra = [("G-4", "新网格", box(109.911, 40.621, 109.919, 40.629))]
    path = write_features(tmp_path / "grids.geojson", renamed + extra)
    refuse_in_the_database(imported_url, "grids", "code", "G-2")
    before = snapshot(imported_url)
    assert cli("grids", "import", str(path), "--database-url", imported_url) == 1
    _, err = capsys.readouterr()
    assert_one_error_line(err, "grids.geojson: grid 'G-2': rejected by the database")
    assert snapshot(imported_url) == before


def bad_residents_files(directory: Path) -> list[Path]:
    """Residents files each refused as a whole, one bad row in the middle of good ones."""
    made = []
    for name, bad_row, encoding in [
        ("nul.csv", "R9999,a\x00b,c,40.6,109.9,,,,,true", "utf-8"),
        ("number.csv", "R9999,a,b,40.6x,109.9,,,,,true", "utf-8"),
        ("duplicate.csv", "R0001,a,b,40.6,109.9,,,,,true", "utf-8"),
        ("quote.csv", 'R9999,"a,b,40.6,109.9,,,,,true', "utf-8"),
        ("unknown-grid.csv", "R9999,a,b,,,G-404,,,,true", "utf-8"),
        ("latin1.csv", "R9999,Müller,b,40.6,109.9,,,,,true", "latin-1"),
    ]:
        rows = [f"R{n:04d},a{n},b,40.6,109.9,,M{n},,,true" for n in range(150)]
        rows.insert(75, bad_row)
        path = directory / name
        path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode(encoding))
        made.append(path)
    (directory / "empty.csv").write_bytes(b"")
    (directory / "header.csv").write_text(HEADER + "\n")
    (directory / "workbook.csv").write_bytes(b"PK\x03\x04" + bytes(200))
    return [*made, directory / "empty.csv", directory / "header.csv", directory / "workbook.csv"]


def bad_grid_files(directory: Path) -> list[Path]:
    made = [
        write_features(directory / "duplicate.geojson", [*GRIDS, ("G-1", "again", GRIDS[0][2])]),
        write_features(directory / "no-code.geojson", GRIDS, code=["G-7", "", "G-8"]),
    ]
    for name, content in [("not-json.geojson", "this is not JSON"), ("empty.geojson", "")]:
        (directory / name).write_text(content)
        made.append(directory / name)
    projected = gpd.GeoDataFrame(baotou_rows(), crs="EPSG:4326").to_crs("EPSG:3857")
    projected.to_file(directory / "no-prj.shp", engine="pyogrio")
    (directory / "no-prj.prj").unlink()
    return [*made, directory / "no-prj.shp"]


def test_every_bad_file_is_one_error_line_and_imports_nothing(tmp_path, imported_url, capsys):
    before = snapshot(imported_url)
    files = [("residents", p) for p in bad_residents_files(tmp_path)]
    files += [("grids", p) for p in bad_grid_files(tmp_path)]
    for command, path in files:
        code = cli(command, "import", str(path), "--database-url", imported_url)
        _, err = capsys.readouterr()
        assert code == 1, (path.name, err)
        errors = [line for line in err.splitlines() if line.startswith("gridwatch:")]
        assert len(errors) == 1 and path.name in errors[0], (path.name, err)
        assert "Traceback" not in err and "internal error" not in err, (path.name, err)
        assert snapshot(imported_url) == before, path.name
