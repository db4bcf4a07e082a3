"""The residents CSV: solitary elderly residents, their homes, meters and sensors."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gridwatch.imports.tables import (
    HOME_COLUMNS,
    HOME_COLUMNS_ZH,
    RowCheck,
    TableFormat,
    control_problems,
    excel_mangled,
    read_home,
    read_location,
    read_table,
    split_list,
    table_text,
)
from gridwatch.model.rows import ResidentRow

COLUMNS = (
    "resident_id",
    "name",
    "address",
    "lat",
    "lon",
    "grid_code",
    "meter_id",
    "sensor_ids",
    "phone",
    "living_alone",
    *HOME_COLUMNS,
)

RESIDENTS = TableFormat(
    "residents",
    COLUMNS,
    (
        "居民编号",
        "姓名",
        "地址",
        "纬度",
        "经度",
        "网格编码",
        "电表编号",
        "传感器编号",
        "电话",
        "是否独居",
        *HOME_COLUMNS_ZH,
    ),
    # Which building (楼栋) and unit (单元) a resident lives in, where the register says.
    optional=HOME_COLUMNS,
)

_ID_COLUMNS = ("resident_id", "grid_code", "meter_id", "sensor_ids", *HOME_COLUMNS)

_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"false", "0", "no", "n", "否"}


def residents_csv_text(residents: Iterable[ResidentRow]) -> str:
    """The residents as CSV text in the import format (header included, UTF-8 safe)."""
    return table_text(
        RESIDENTS,
        (
            [
                r.resident_id,
                r.name,
                r.address,
                r.lat,
                r.lon,
                r.grid_code,
                r.meter_id,
                ";".join(r.sensor_ids),
                r.phone,
                "true" if r.living_alone else "false",
                r.building_code or "",
                r.unit_code or "",
            ]
            for r in residents
        ),
    )


def read_residents_csv(path: str | Path, warnings: list[str] | None = None) -> list[ResidentRow]:
    """Parse a residents CSV (the formats of `gridwatch.imports.tables`), English or Chinese header.

    Raises InputFileError naming the file, each bad row (the header is row 1) and column;
    what is imported but worth a look (an implausible phone) is added to `warnings`.
    """
    first_row_of: dict[tuple[str, str], int] = {}  # (kind, id) → the row that used it first

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        return _parse_row(cells, RowCheck(row, row_warnings, first_row_of))

    return read_table(path, RESIDENTS, parse, warnings)


def _parse_row(cells: dict[str, str], check: RowCheck) -> tuple[ResidentRow | None, list[str]]:
    """The row as a ResidentRow, or None and its problems as "column: message"; what is
    imported but worth a look goes to the check's warnings the same way."""
    check.problems += control_problems(cells, _ID_COLUMNS)
    if check.problems:
        return None, check.problems

    resident_id = cells["resident_id"]
    if not resident_id:
        check.problem("resident_id", "is empty")

    lat, lon, grid_code = read_location(cells, check.problem)
    building_code, unit_code = read_home(cells, check.problem)

    living_alone = True
    flag = cells["living_alone"].lower()
    if flag in _FALSE:
        living_alone = False
    elif flag and flag not in _TRUE:
        check.problem(
            "living_alone",
            f"{cells['living_alone']!r} is not one of true/false, 1/0, yes/no, 是/否",
        )

    check.problems += excel_mangled(cells, ("resident_id", "meter_id", "sensor_ids", "phone"))
    meter_id = cells["meter_id"] or None
    sensor_ids = split_list(cells["sensor_ids"])
    claims = [("resident_id", "resident_id", resident_id)] if resident_id else []
    claims += [("meter_id", "meter_id", meter_id)] if meter_id else []
    claims += [("sensor_ids", "sensor id", s) for s in sensor_ids]
    for column, kind, value in claims:
        check.unique(column, value, kind)

    if check.problems:
        return None, check.problems
    check.warn_phone(cells["phone"])
    resident = ResidentRow(
        resident_id=resident_id,
        name=cells["name"],
        address=cells["address"],
        lat=lat,
        lon=lon,
        grid_code=grid_code,
        meter_id=meter_id,
        sensor_ids=sensor_ids,
        phone=cells["phone"] or None,
        living_alone=living_alone,
        building_code=building_code,
        unit_code=unit_code,
        row=check.row,
    )
    return resident, []


def residents_template(chinese: bool = False) -> str:
    """An empty residents CSV: the header line alone, in English or Chinese column names."""
    return RESIDENTS.template(chinese)
