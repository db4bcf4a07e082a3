"""The ledger (问题台账) as files people open in Excel: CSV (UTF-8 with BOM) and XLSX, both
from one table of typed cells (`ledger_cells`), so the two files hold the same rows, columns
and order; only how a cell is written differs."""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import date, datetime, tzinfo
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from gridwatch.store.ledger import LedgerRow

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# A cell: text, a time (aware; written in the district's zone), or hours late; None is empty.
Cell = str | datetime | float | None

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot hold (openpyxl refuses them): control characters but tab, LF, CR.
XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
EXCEL_TEXT_MAX = 32_767  # the most characters an Excel cell holds
WIDTH_SAMPLE = 200  # rows read to size the columns
WIDTH_MAX = 60


def ledger_cells(row: LedgerRow, t: dict, now: datetime) -> list[Cell]:
    """One row of the ledger file, in the order of `t["ledger_columns"]`."""
    late = row.hours_late(now)
    return [
        str(row.id),
        row.grid_code or "",
        row.grid_name or "",
        row.community_name or "",
        case_category(t, row.kind, row.category),
        t["severity"].get(row.severity, row.severity) if row.severity else "",
        case_status(t, row.kind, row.status),
        t["level"].get(row.level, row.level),
        row.reporter_id,
        row.assignee or "",
        row.observed_at,
        row.due_at,
        t["yes"] if row.overdue else t["no"],
        round(late, 1) if late is not None else None,
        row.resolved_at,
        row.description,
        row.last_note or "",
        t["kind"].get(row.kind, row.kind),
        t["due_kind"].get(row.due_kind, row.due_kind) if row.due_kind else "",
        row.place_name or "",  # the place whose inspection found it (场所巡查)
        row.closed_at,  # its last close (办结), even if reopened since
        t["console"]["sources"].get(row.source, row.source) if row.source else "",
    ]


def case_category(t: dict, kind: str, code: str) -> str:
    """A hazard's category or a request's service, as people name it."""
    names = t["service"] if kind == "request" else t["category"]
    return names.get(code, code)


def case_status(t: dict, kind: str, status: str) -> str:
    """A status in words of its own loop (a request's 办结 is a hazard's 已处置)."""
    names = t["request_status"] if kind == "request" else t["status"]
    return names.get(status, status)


def starts_formula(text: str) -> bool:
    """Whether Excel would take `text` typed into a cell as a formula. Every text cell is
    checked: ids, names and codes come from reporters and grid files too."""
    return text[:1] in FORMULA_START


# -- CSV ----------------------------------------------------------------------------------------


def ledger_csv(rows: Iterable[LedgerRow], t: dict, zone: tzinfo, now: datetime) -> bytes:
    """The ledger as CSV in UTF-8 with a BOM (Excel reads it as UTF-8 then), local times to
    the minute, hours late to a tenth, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(t["ledger_columns"])
    for row in rows:
        writer.writerow([csv_text(cell, zone) for cell in ledger_cells(row, t, now)])
    return out.getvalue().encode("utf-8-sig")


def csv_text(cell: Cell, zone: tzinfo) -> str:
    """A cell as the CSV writes it: text a formula would start is led by `'`."""
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(cell, float):
        return f"{cell:.1f}"
    return "'" + cell if starts_formula(cell) else cell


# -- XLSX ---------------------------------------------------------------------------------------

TIME_FORMAT = "yyyy-mm-dd hh:mm"
HOURS_FORMAT = "0.0"


def ledger_xlsx(
    rows: Iterable[LedgerRow], t: dict, zone: tzinfo, now: datetime, *, title: str
) -> bytes:
    """The ledger as an Excel workbook of one sheet `title`, written as it goes (openpyxl's
    write-only mode): a bold header row frozen above an autofilter, columns sized to their
    contents, times as Excel dates in the district's zone, hours late as numbers. Text that
    would start a formula is kept as text (Excel's quote prefix), never evaluated."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(_sheet_title(title))
    headers: list[str] = t["ledger_columns"]
    table: Iterator[list[Cell]] = (ledger_cells(row, t, now) for row in rows)
    sample = list(itertools.islice(table, WIDTH_SAMPLE))
    for index, width in enumerate(_widths(headers, sample, zone), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    count = 0
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, header)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for cells in itertools.chain(sample, table):
        sheet.append([_xlsx_cell(sheet, cell, zone) for cell in cells])
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{count + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(sheet, cell: Cell, zone: tzinfo):
    """A value openpyxl writes as is, or a cell with the format it needs."""
    if cell is None:
        return None
    if isinstance(cell, datetime):
        local = cell.astimezone(zone).replace(tzinfo=None, microsecond=0)
        styled = WriteOnlyCell(sheet, local)
        styled.number_format = TIME_FORMAT
        return styled
    if isinstance(cell, float):
        styled = WriteOnlyCell(sheet, cell)
        styled.number_format = HOURS_FORMAT
        return styled
    text = XML_ILLEGAL.sub("\ufffd", cell)[:EXCEL_TEXT_MAX]
    if not starts_formula(text):
        return text or None  # an empty cell, not an empty string
    styled = WriteOnlyCell(sheet, text)
    styled.data_type = "s"  # openpyxl takes a leading = for a formula
    styled.quotePrefix = True  # and Excel keeps it text when the cell is edited
    return styled


def _widths(headers: list[str], sample: list[list[Cell]], zone: tzinfo) -> list[float]:
    """Each column's width in characters (a Chinese character counts two): its widest
    heading or sampled cell, at most WIDTH_MAX."""
    widths = [_display_width(h) for h in headers]
    for cells in sample:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], _display_width(csv_text(cell, zone)))
    return [min(w, WIDTH_MAX) + 2 for w in widths]


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _sheet_title(title: str) -> str:
    """A sheet name Excel takes: at most 31 characters, none of []:*?/\\."""
    return re.sub(r"[\[\]:*?/\\]", " ", title)[:31] or "ledger"


# -- the download's name ------------------------------------------------------------------------


def attachment(name: str, day: date, extension: str) -> str:
    """A Content-Disposition for the file `<name>-YYYYMMDD.<extension>`: the name in UTF-8
    (RFC 5987 `filename*`), and `ledger-YYYYMMDD.<extension>` for clients that know only
    ASCII names."""
    stamp = day.strftime("%Y%m%d")
    fallback = f"ledger-{stamp}.{extension}"
    full = quote(f"{name}-{stamp}.{extension}", safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{full}"
