"""The ledger's files read back: the CSV's rows as text, and the XLSX's rows in the same text
(times to the minute, hours late to a tenth, a quote-prefixed cell led by `'` as the CSV leads
it), so the two files of one query can be compared cell by cell."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import openpyxl


def csv_rows(content: bytes) -> list[list[str]]:
    """Every row of a ledger CSV (UTF-8 with BOM), the header first."""
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(content: bytes) -> list[list[str]]:
    """Every row of a ledger workbook's one sheet, the header first, as the CSV writes them;
    checks that times and hours late are typed cells, not text."""
    book = openpyxl.load_workbook(io.BytesIO(content))
    [sheet] = book.worksheets
    rows = []
    for cells in sheet.iter_rows():
        rows.append([_as_csv(cell) for cell in cells])
    return rows


def _as_csv(cell) -> str:
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, datetime):
        assert cell.number_format == "yyyy-mm-dd hh:mm", cell.coordinate
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int | float):
        assert cell.number_format == "0.0", cell.coordinate
        return f"{value:.1f}"
    return "'" + value if cell.quotePrefix else value
