"""The workers CSV: grid workers (网格员), their phones and the grids each is responsible for."""

from __future__ import annotations

import re
from pathlib import Path

from gridwatch.imports.tables import (
    TableFormat,
    excel_mangled,
    phone_warning,
    read_table,
    split_list,
)
from gridwatch.model.rows import WorkerRow

WORKERS = TableFormat(
    "workers",
    ("worker_id", "name", "phone", "grid_codes"),
    ("工号", "姓名", "电话", "负责网格"),
    aliases={"grid_code": "grid_codes", "网格编码": "grid_codes", "网格员编号": "worker_id"},
)

# Ids end up in MQTT topics (gw/patrol/{worker_id}) and broker user names.
_ID = re.compile(r"[^\s/+#$:\x00-\x1f\x7f]{1,128}")


def read_workers_csv(path: str | Path, warnings: list[str] | None = None) -> list[WorkerRow]:
    """Parse a workers CSV (the formats of `gridwatch.imports.tables`), English or Chinese header.

    Raises InputFileError naming the file, each bad row and column; an implausible phone is
    added to `warnings`.
    """
    first_row_of: dict[str, int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        problems = excel_mangled(cells, ("worker_id", "phone"))
        worker_id = cells["worker_id"]
        if not worker_id:
            problems.append("worker_id: is empty")
        elif not _ID.fullmatch(worker_id):
            problems.append(
                f"worker_id: {worker_id[:40]!r} must be 1 to 128 characters without spaces, "
                "/ + # $ : or control characters (it names the worker's MQTT topics)"
            )
        elif first_row_of.setdefault(worker_id, row) != row:
            problems.append(
                f"worker_id: {worker_id!r} is already used in row {first_row_of[worker_id]}"
            )
        if not cells["name"]:
            problems.append("name: is empty")
        grid_codes = split_list(cells["grid_codes"])
        if not grid_codes:
            problems.append("grid_codes: is empty; name the grid or grids the worker covers")
        warning = phone_warning(cells["phone"])
        if warning:
            row_warnings.append(warning)
        if problems:
            return None, problems
        return WorkerRow(worker_id, cells["name"], cells["phone"] or None, grid_codes, row), []

    return read_table(path, WORKERS, parse, warnings)


def workers_template(chinese: bool = False) -> str:
    """An empty workers CSV: the header line alone, in English or Chinese column names."""
    return WORKERS.template(chinese)
