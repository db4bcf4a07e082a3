"""The units CSV: the units (单元) of buildings — a stairwell's door, by its point or only its
address — each named by its building's code and the building's own numbering."""

from __future__ import annotations

from pathlib import Path

from gridwatch.imports.tables import (
    RowCheck,
    TableFormat,
    control_problems,
    read_coordinates,
    read_table,
)
from gridwatch.model.rows import UnitRow

UNITS = TableFormat(
    "units",
    ("building_code", "unit_code", "name", "address", "lat", "lon"),
    ("楼栋编码", "单元编码", "名称", "地址", "纬度", "经度"),
    aliases={"单元名称": "name", "楼栋": "building_code", "单元": "unit_code"},
    optional=("name", "address", "lat", "lon"),
)
_CODES = ("building_code", "unit_code")
MAX_CODE = 128


def read_units_csv(path: str | Path, warnings: list[str] | None = None) -> list[UnitRow]:
    """Parse a units CSV (the formats of `gridwatch.imports.tables`), English or Chinese
    header. Raises InputFileError naming the file, each bad row and column."""
    first_row_of: dict[tuple[str, str], int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        problems = control_problems(cells, _CODES) + code_problems(cells, _CODES)
        if problems:
            return None, problems

        check = RowCheck(row, row_warnings, first_row_of)
        lat, lon = read_coordinates(cells, check.problem)
        key = (cells["building_code"], cells["unit_code"])
        first = check.first_use(key)
        if first != row:
            check.problem(
                "unit_code", f"unit {key[1]!r} of building {key[0]!r} is already in row {first}"
            )
        if check.problems:
            return None, check.problems
        return UnitRow(*key, cells["name"], cells["address"], lat, lon, row), []

    return read_table(path, UNITS, parse, warnings)


def code_problems(cells: dict[str, str], columns: tuple[str, ...]) -> list[str]:
    """Problems, as "column: message", of cells that name a building, a unit or a person:
    empty, or longer than MAX_CODE characters."""
    return [
        f"{column}: is empty"
        if not cells[column]
        else f"{column}: is longer than {MAX_CODE} characters"
        for column in columns
        if not 0 < len(cells[column]) <= MAX_CODE
    ]


def units_template(chinese: bool = False) -> str:
    """An empty units CSV: the header line alone, in English or Chinese column names."""
    return UNITS.template(chinese)
