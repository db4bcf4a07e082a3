"""The places CSV: the register of places a community inspects (安全巡查) — shops,
restaurants, small workshops and warehouses — with their contact and inspection period."""

from __future__ import annotations

import unicodedata
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
    table_text,
)
from gridwatch.model.rows import PlaceRow
from gridwatch.model.vocabulary import PLACE_KIND_LABELS, PLACE_KINDS

PLACES = TableFormat(
    "places",
    (
        "place_id",
        "name",
        "kind",
        "address",
        "lat",
        "lon",
        "grid_code",
        "contact",
        "phone",
        "inspect_every_days",
        *HOME_COLUMNS,
    ),
    (
        "场所编号",
        "名称",
        "类型",
        "地址",
        "纬度",
        "经度",
        "网格编码",
        "负责人",
        "电话",
        "巡查周期天数",
        *HOME_COLUMNS_ZH,
    ),
    aliases={
        "场所名称": "name",
        "场所类型": "kind",
        "联系电话": "phone",
        "巡查周期": "inspect_every_days",
    },
    # The building (楼栋) and unit (单元) a place stands in, where the register says; a place
    # that names none is placed in the building its point lies in.
    optional=HOME_COLUMNS,
)

# The names registers give a kind besides its own (English, or its Chinese label).
KIND_NAMES: dict[str, str] = {
    **{kind: kind for kind in PLACE_KINDS},
    **{label: kind for kind, label in PLACE_KIND_LABELS.items()},
    "商店": "shop",
    "店铺": "shop",
    "门店": "shop",
    "小商铺": "shop",
    "餐饮": "restaurant",
    "餐馆": "restaurant",
    "饭店": "restaurant",
    "小吃店": "restaurant",
    "作坊": "workshop",
    "加工坊": "workshop",
    "仓库": "warehouse",
    "库房": "warehouse",
    "其它": "other",
}
MAX_EVERY_DAYS = 3660  # ten years: a longer period is a typo
_ID_COLUMNS = ("place_id", "grid_code", "kind", "inspect_every_days", *HOME_COLUMNS)


def read_places_csv(path: str | Path, warnings: list[str] | None = None) -> list[PlaceRow]:
    """Parse a places CSV (the formats of `gridwatch.imports.tables`), English or Chinese
    header, a kind in English or Chinese (小餐饮, 小作坊, …).

    Raises InputFileError naming the file, each bad row and column; an implausible phone is
    added to `warnings`.
    """
    first_row_of: dict[tuple[str, str], int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        problems = control_problems(cells, _ID_COLUMNS)
        if problems:
            return None, problems
        check = RowCheck(row, row_warnings, first_row_of)
        place_id = cells["place_id"]
        check.row_id("place_id", place_id)
        if not cells["name"]:
            check.problem("name", "is empty")
        kind = _kind(cells["kind"], check.problem)
        lat, lon, grid_code = read_location(cells, check.problem)
        building_code, unit_code = read_home(cells, check.problem)
        every = _period(cells["inspect_every_days"], check.problem)
        check.problems += excel_mangled(cells, ("place_id", "phone"))
        if check.problems:
            return None, check.problems
        check.warn_phone(cells["phone"])  # shown only when the file is imported
        place = PlaceRow(
            place_id=place_id,
            name=cells["name"],
            kind=kind,
            address=cells["address"],
            lat=lat,
            lon=lon,
            grid_code=grid_code,
            contact=cells["contact"] or None,
            phone=cells["phone"] or None,
            inspect_every_days=every,
            building_code=building_code,
            unit_code=unit_code,
            row=row,
        )
        return place, []

    return read_table(path, PLACES, parse, warnings)


def places_csv_text(places: Iterable[PlaceRow]) -> str:
    """The places as CSV text in the import format (header included, UTF-8 safe)."""
    return table_text(PLACES, ([getattr(p, c) for c in PLACES.columns] for p in places))


def places_template(chinese: bool = False) -> str:
    """An empty places CSV: the header line alone, in English or Chinese column names."""
    return PLACES.template(chinese)


def _kind(text: str, problem) -> str:
    kind = KIND_NAMES.get(text.strip().lower()) or KIND_NAMES.get(text.strip())
    if kind is None:
        choices = ", ".join(f"{k} ({PLACE_KIND_LABELS[k]})" for k in PLACE_KINDS)
        problem("kind", f"{text[:40]!r} is not a kind of place: give one of {choices}")
        return "other"
    return kind


def _period(text: str, problem) -> int:
    number = unicodedata.normalize("NFKC", text).strip().removesuffix("天").strip()
    if not number.isascii() or not number.isdigit():
        problem(
            "inspect_every_days",
            f"{text[:40]!r} is not a whole number of days (e.g. 30 for a monthly inspection)",
        )
        return 0
    days = int(number)
    if not 1 <= days <= MAX_EVERY_DAYS:
        problem("inspect_every_days", f"{days} is not between 1 and {MAX_EVERY_DAYS} days")
    return days
