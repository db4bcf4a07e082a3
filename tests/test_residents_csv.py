"""The residents CSV: good files in each encoding, and each error naming its row and column."""

from __future__ import annotations

import pytest

from gridwatch.imports.residents import read_residents_csv, residents_csv_text
from gridwatch.model.rows import ResidentRow
from tests.support.import_files import GOOD_ROWS, HEADER, error_lines, write_csv


def test_good_file(tmp_path):
    residents = read_residents_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS]))
    assert residents[0] == ResidentRow(
        resident_id="R00001",
        name="王桂兰",
        address="青山区富强路12号3栋2单元301室",
        lat=40.6512,
        lon=109.9011,
        grid_code="QS-01-01-01",
        meter_id="M00001",
        sensor_ids=("S00001-door", "S00001-curtain"),
        phone="13900000001",
        living_alone=True,
    )
    second, third = residents[1], residents[2]
    assert (second.lat, second.lon, second.grid_code) == (None, None, "QS-01-02-03")
    assert second.living_alone is True and second.phone is None
    assert (third.grid_code, third.meter_id, third.sensor_ids) == (None, None, ())
    assert third.living_alone is False


def test_bom_file(tmp_path):
    path = write_csv(tmp_path, [HEADER, *GOOD_ROWS], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [r.resident_id for r in read_residents_csv(path)] == ["R00001", "R00002", "R00003"]


def test_gbk_file_from_excel(tmp_path):
    path = write_csv(tmp_path, [HEADER, *GOOD_ROWS], encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    residents = read_residents_csv(path)
    assert residents[0].name == "王桂兰"
    assert residents[2].address == "青山区青松路8号2栋3单元502室"


def test_crlf_quotes_blank_lines_and_yes_no_spellings(tmp_path):
    lines = [
        HEADER,
        'R1,"Wang, Gui",addr,40.1,109.9,,M1,S1; S2 \uff1bS3,,TRUE',
        "",
        "R2,b,addr,40.1,109.9,,M2,,,No",
        "R3,c,addr,40.1,109.9,,M3,,,1",
        "R4,d,addr,40.1,109.9,,M4,,,",
    ]
    path = tmp_path / "residents.csv"
    path.write_bytes("\r\n".join(lines).encode())
    r1, r2, r3, r4 = read_residents_csv(path)
    assert r1.name == "Wang, Gui" and r1.sensor_ids == ("S1", "S2", "S3")
    assert [r.living_alone for r in (r1, r2, r3, r4)] == [True, False, True, True]


def test_written_text_reads_back_equal(tmp_path):
    residents = read_residents_csv(write_csv(tmp_path, [HEADER, *GOOD_ROWS]))
    path = tmp_path / "again.csv"
    path.write_text(residents_csv_text(residents), encoding="utf-8")
    assert read_residents_csv(path) == residents


def test_missing_columns_are_named(tmp_path):
    header = "resident_id,name,address,lat,lon,grid_code,sensor_ids,living_alone"
    lines = error_lines(write_csv(tmp_path, [header, "R1,a,b,40,110,,,true"]))
    assert lines == [
        "residents.csv: row 1 (header): missing columns meter_id, phone; the header has "
        "resident_id, name, address, lat, lon, grid_code, sensor_ids, living_alone"
    ]


def test_bad_number_names_row_and_column(tmp_path):
    lines = error_lines(write_csv(tmp_path, [HEADER, GOOD_ROWS[0], "R9,a,b,40.6x,109.9,,,,,true"]))
    assert lines == ["residents.csv: row 3, column lat: '40.6x' is not a number"]


def test_out_of_range_coordinates(tmp_path):
    rows = ["R8,a,b,91.5,109.9,,,,,true", "R9,a,b,40.6,-181,,,,,true", "R10,a,b,nan,109.9,,,,,1"]
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert lines == [
        "residents.csv: row 2, column lat: 91.5 is out of range (-90 to 90)",
        "residents.csv: row 3, column lon: -181 is out of range (-180 to 180)",
        "residents.csv: row 4, column lat: 'nan' is not a number",
    ]


def test_position_needs_both_coordinates_or_a_grid(tmp_path):
    rows = ["R1,a,b,40.6,,,,,,true", "R2,a,b,,,,,,,true"]
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert lines == [
        "residents.csv: row 2, column lon: is empty while the other coordinate is given; "
        "give both or neither",
        "residents.csv: row 3, column lat/lon/grid_code: all empty: give lat and lon, or grid_code",
    ]


def test_duplicate_and_empty_resident_id(tmp_path):
    rows = [GOOD_ROWS[0], "R00001,a,b,,,G1,,,,true", ",a,b,,,G1,,,,true"]
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert lines == [
        "residents.csv: row 3, column resident_id: resident_id 'R00001' is already used in row 2",
        "residents.csv: row 4, column resident_id: is empty",
    ]


def test_meter_and_sensor_shared_by_two_residents(tmp_path):
    rows = [GOOD_ROWS[0], "R2,a,b,,,G1,M00001,S2-door;S00001-curtain,,true"]
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert lines == [
        "residents.csv: row 3, column meter_id: meter_id 'M00001' is already used in row 2",
        "residents.csv: row 3, column sensor_ids: sensor id 'S00001-curtain' is already used "
        "in row 2",
    ]


def test_bad_living_alone(tmp_path):
    lines = error_lines(write_csv(tmp_path, [HEADER, "R1,a,b,,,G1,,,,maybe"]))
    assert lines == [
        "residents.csv: row 2, column living_alone: 'maybe' is not one of true/false, 1/0, "
        "yes/no, 是/否"
    ]


def test_many_errors_are_cut_with_a_count(tmp_path):
    rows = [f"R{i},a,b,x,109.9,,,,,true" for i in range(30)]
    lines = error_lines(write_csv(tmp_path, [HEADER, *rows]))
    assert len(lines) == 21
    assert lines[0] == "residents.csv: row 2, column lat: 'x' is not a number"
    assert lines[-1] == "residents.csv: … and 10 more problems"


def test_empty_file_and_workbook_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert error_lines(empty)[0].startswith("empty.csv: the file is empty")
    workbook = tmp_path / "residents.xlsx"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(100))
    assert "not a CSV text file" in error_lines(workbook)[0]


def test_numbers_excel_turned_into_scientific_notation_are_refused(tmp_path):
    row = "R-1,王,地址,40.65,109.90,,1.39123E+10,S-1,1.39123E+10,是"
    lines = error_lines(write_csv(tmp_path, [HEADER, row]))
    assert any("row 2, column meter_id" in line and "1.39123E+10" in line for line in lines)
    assert any(
        "row 2, column phone" in line and "format the column as Text" in line for line in lines
    )


@pytest.mark.parametrize(
    "phone",
    ["13912345678", "+86 139 1234 5678", "139-1234-5678", "0472-5123456", "(010)12345678",
     "\uff10\uff14\uff17\uff12\uff15\uff11\uff12\uff13\uff14\uff15\uff16", "010-12345678转123", ""],
)  # fmt: skip
def test_plausible_phones_import_without_a_warning(tmp_path, phone):
    warnings: list[str] = []
    row = f"R-1,王,地址,40.65,109.90,,,,{phone},是"
    (resident,) = read_residents_csv(write_csv(tmp_path, [HEADER, row]), warnings)
    assert warnings == []
    assert resident.phone == (phone or None)


@pytest.mark.parametrize("phone", ["5123456", "1391234567", "23912345678", "phone"])
def test_implausible_phones_import_with_a_warning_naming_row_and_column(tmp_path, phone):
    warnings: list[str] = []
    row = f"R-1,王,地址,40.65,109.90,,,,{phone},是"
    (resident,) = read_residents_csv(write_csv(tmp_path, [HEADER, row]), warnings)
    assert resident.phone == phone
    (warning,) = warnings
    assert warning.startswith("residents.csv: row 2, column phone:") and repr(phone) in warning


def test_the_template_reads_back_as_a_header_in_either_language(tmp_path):
    from gridwatch.imports.residents import residents_template

    for chinese in (False, True):
        path = tmp_path / f"t{chinese}.csv"
        path.write_text(residents_template(chinese) + "R-1,王,地址,,,G-1,,,,是\n", "utf-8")
        (resident,) = read_residents_csv(path)
        assert resident.grid_code == "G-1"
