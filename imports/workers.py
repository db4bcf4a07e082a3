"""The workers CSV: grid workers (网格员), their phones and the grids each is responsible for."""

from __future__ import annotations

from pathlib import Path

from gridwatch.imports.tables import RowCheck, TableFormat, excel_mangled, read_table, split_list
from gridwatch.model.rows import WorkerRow

WORKERS = TableFormat(
    "workers",
    ("worker_id", "name", "phone", "grid_codes"),
    ("工号", "姓名", "电话", "负责网格"),
    aliases={"grid_code": "grid_codes", "网格编码": "grid_codes", "网格员编号": "worker_id"},
)


def read_workers_csv(path: str | Path, warnings: list[str] | None = None) -> list[WorkerRow]:
    """Parse a workers CSV (the formats of `gridwatch.imports.tables`), English or Chinese header.

    Raises InputFileError naming the file, each bad row and column; an implausible phone is
    added to `warnings`.
    """
    first_row_of: dict[tuple[str, str], int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        check = RowCheck(row, row_warnings, first_row_of)
        check.problems += excel_mangled(cells, ("worker_id", "phone"))
        worker_id = cells["worker_id"]
        # Ids end up in MQTT topics (gw/patrol/{worker_id}) and broker user names.
        check.row_id("worker_id", worker_id, "it names the worker's MQTT topics")
        if not cells["name"]:
            check.problem("name", "is empty")
        grid_codes = split_list(cells["grid_codes"])
        if not grid_codes:
            check.problem("grid_codes", "is empty; name the grid or grids the worker covers")
        check.warn_phone(cells["phone"])  # even for a row with problems
        if check.problems:
            return None, check.problems
        return WorkerRow(worker_id, cells["name"], cells["phone"] or None, grid_codes, row), []

    return read_table(path, WORKERS, parse, warnings)


def workers_template(chinese: bool = False) -> str:
    """An empty workers CSV: the header line alone, in English or Chinese column names."""
    return WORKERS.template(chinese)
