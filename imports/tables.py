"""CSV tables as district offices keep them: the files residents and workers come in.

UTF-8 with or without BOM, GBK as Excel saves it, or UTF-16 as Excel's "Unicode Text" saves
it (tab-separated); English or Chinese column names; lists in one cell separated by the
marks Chinese input methods type. Every problem names the file, the row (the header is row
1) and the column; a file with any problem gives no rows at all.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from gridwatch.encodings import looks_chinese
from gridwatch.errors import InputFileError

MAX_LISTED_PROBLEMS = 20

# Items of a list in one cell (an id holds none of these): ASCII and full-width semicolons
# and commas, and the enumeration comma (U+3001) of Chinese lists.
_LIST_SEPARATORS = re.compile("[;,\uff1b\uff0c\u3001]")
# What Excel makes of a long number typed into a cell: 13912345678 shows as 1.39123E+10,
# and saved so, the digits are gone.
_EXCEL_MANGLED = re.compile(r"\d+(?:\.\d+)?[eE]\+\d+")
# A mainland mobile (11 digits from 1[3-9]) or a landline with its area code (0 and 2 or 3
# digits, then 7 or 8), optionally with +86/0086 before it and an extension after it.
_PHONE = re.compile(r"(?:\+?86|0086)?(?:1[3-9]\d{9}|0\d{2,3}\d{7,8}(?:[#*转]\d{1,6})?)")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")  # after NFKC: full-width ones are ASCII
# A decimal number as people type it, after NFKC (which turns full-width digits into ASCII);
# float() alone would also take "1_0", "nan" and "infinity".
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Control characters no cell should hold; tab, CR and LF may stand in a quoted address.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An id that names its row elsewhere (MQTT topics and broker user names, check-ins, audit
# records): no spaces, separators or control characters.
_ID = re.compile(r"[^\s/+#$:\x00-\x1f\x7f]{1,128}")

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class TableFormat:
    """The columns of one kind of file, with the other names a header may give them."""

    what: str  # "residents": what its rows are, for messages
    columns: tuple[str, ...]
    chinese: tuple[str, ...]  # the same columns' Chinese names, in the same order
    aliases: dict[str, str] = field(default_factory=dict)  # older or other names
    optional: tuple[str, ...] = ()  # columns a file may leave out: their cells read as ""

    def column_of(self, name: str) -> str:
        """The column a header cell names (any case, Chinese or English, or an alias)."""
        name = name.strip().lower()
        if name in self.chinese:
            return self.columns[self.chinese.index(name)]
        return self.aliases.get(name, name)

    def template(self, chinese: bool = False) -> str:
        """An empty file: the header line alone (the Chinese one after a UTF-8 BOM, so that
        Excel opens the saved file as UTF-8)."""
        if chinese:
            return "\ufeff" + ",".join(self.chinese) + "\n"
        return ",".join(self.columns) + "\n"


# Parses one row's cells (by column) numbered `row`; returns the row or None, and its
# problems as "column: message", and adds "column: message" warnings to the list given.
RowParser = Callable[[dict[str, str], int, list[str]], tuple[Row | None, list[str]]]


@dataclass(slots=True)
class RowCheck:
    """One row's problems, as "column: message" in the order found, and its warnings: the
    steps every register's row parser takes, so that each says only what is its own."""

    row: int
    warnings: list[str]  # the row's warnings, as read_table gives them to the row parser
    # (kind, id) → the row that used it first: one dict per file, shared by its rows' checks.
    first_row_of: dict[tuple[str, str], int]
    problems: list[str] = field(default_factory=list)

    def problem(self, column: str, message: str) -> None:
        """Adds a problem of `column`."""
        self.problems.append(f"{column}: {message}")

    def row_id(self, column: str, text: str, names: str = "") -> None:
        """Adds a problem when `text`, the row's id in `column`, is empty, is not a plain id
        (1 to 128 characters without spaces, / + # $ : or control characters) or was used
        by an earlier row; `names`: what else the id names, for the message of one that is
        not plain."""
        if not text:
            self.problem(column, "is empty")
        elif not _ID.fullmatch(text):
            self.problem(
                column,
                f"{text[:40]!r} must be 1 to 128 characters without spaces, / + # $ : "
                "or control characters" + (f" ({names})" if names else ""),
            )
        else:
            self.unique(column, text)

    def unique(self, column: str, value: str, kind: str = "") -> None:
        """Adds a problem of `column` when an earlier row of the file used `value` (an id of
        `kind`, where a file's ids of several kinds are told apart in the message)."""
        first = self.first_use((kind, value))
        if first != self.row:
            named = f"{kind} {value!r}" if kind else repr(value)
            self.problem(column, f"{named} is already used in row {first}")

    def first_use(self, key: tuple[str, str]) -> int:
        """The row of the file that used `key` first: this row, or an earlier one."""
        return self.first_row_of.setdefault(key, self.row)

    def warn_phone(self, text: str, column: str = "phone") -> None:
        """Adds a warning for a phone that is not a plausible mainland number."""
        warning = phone_warning(text, column)
        if warning:
            self.warnings.append(warning)


def read_table(
    path: str | Path,
    table: TableFormat,
    parse_row: RowParser[Row],
    warnings: list[str] | None = None,
    *,
    text: str | None = None,
    unknown: list[str] | None = None,
) -> list[Row]:
    """The rows of a CSV file of `table`'s format, each parsed by `parse_row`.

    Raises InputFileError naming the file, each bad row and column; what is read but worth a
    look is added to `warnings` the same way. `text`: the file's content already read (a
    workbook's sheet as CSV), named by `path`; `unknown` collects the header cells that name
    no column of `table`.
    """
    warnings = [] if warnings is None else warnings
    path = Path(path)
    label = path.name
    text = _decode(label, path) if text is None else text
    first_line = text.split("\n", 1)[0]
    # Excel's "Unicode Text" (UTF-16) separates cells with tabs.
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    # strict: a stray quote is an error, not a cell that silently swallows the rows after it.
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = _next_record(label, records, 1)
    if header is None or not any(cell.strip() for cell in header):
        raise InputFileError(
            f"{label}: the file is empty; expected the header {','.join(table.columns)}"
        )
    position = _header_positions(label, header, table)
    if unknown is not None:
        unknown.extend(h.strip() for h in header if h.strip() and _unnamed(table, h))

    problems: list[str] = []
    rows: list[Row] = []
    row_number = 1
    while (record := _next_record(label, records, row_number + 1)) is not None:
        row_number += 1
        if not any(cell.strip() for cell in record):
            continue
        cells = dict.fromkeys(table.optional, "")
        cells.update({name: _cell(record, i) for name, i in position.items()})
        row_warnings: list[str] = []
        row, row_problems = parse_row(cells, row_number, row_warnings)
        warnings.extend(f"{label}: row {row_number}, column {w}" for w in row_warnings)
        extra = [cell for cell in record[len(header) :] if cell.strip()]
        if extra:
            row_problems.append(
                f"{len(header) + 1}: {len(record)} cells for {len(header)} columns "
                "(a comma inside a cell that is not quoted?)"
            )
        problems.extend(f"{label}: row {row_number}, column {p}" for p in row_problems)
        if row is not None and not extra:
            rows.append(row)
    if not problems and not rows:
        raise InputFileError(f"{label}: the file has a header but no {table.what}")
    if problems:
        lines = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"{label}: … and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        raise InputFileError("\n".join(lines))
    return rows


def table_text(table: TableFormat, rows: Iterable[Sequence[object]]) -> str:
    """Rows as CSV text in `table`'s format, its header first (None an empty cell, a number
    as Python writes it back exactly); UTF-8 safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return buffer.getvalue()


def split_list(text: str) -> tuple[str, ...]:
    """The items of a list in one cell, in order, each once."""
    listed = (item.strip() for item in _LIST_SEPARATORS.split(text))
    return tuple(dict.fromkeys(item for item in listed if item))


def excel_mangled(cells: dict[str, str], columns: tuple[str, ...]) -> list[str]:
    """Problems, as "column: message", for numbers Excel turned into scientific notation."""
    return [
        f"{column}: {cells[column]!r} is a number Excel turned into scientific notation and "
        "its digits are lost; format the column as Text in Excel and type it again"
        for column in columns
        if _EXCEL_MANGLED.fullmatch(cells[column])
    ]


def phone_warning(text: str, column: str = "phone") -> str | None:
    """A warning, as "column: message", for a phone that is not a plausible mainland number."""
    phone = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    if not phone or _PHONE.fullmatch(phone):
        return None
    return (
        f"{column}: {text[:40]!r} is not a mainland mobile (11 digits from 1) or a landline "
        "with its area code; imported as written"
    )


def control_problems(cells: dict[str, str], id_columns: tuple[str, ...]) -> list[str]:
    """Problems, as "column: message", for control characters in cells: none at all in the
    `id_columns`, and none but tab and line breaks (a quoted address) in the others."""
    problems = []
    for column, text in cells.items():
        control = (_ID_CONTROL if column in id_columns else _CONTROL).search(text)
        if control:
            problems.append(f"{column}: contains the control character {control.group()!r}")
    return problems


def read_coordinates(
    cells: dict[str, str], problem: Callable[[str, str], None]
) -> tuple[float | None, float | None]:
    """(lat, lon) of a row that gives both or neither; each problem goes to
    `problem(column, message)`."""
    lat = _coordinate(cells["lat"], "lat", 90.0, problem)
    lon = _coordinate(cells["lon"], "lon", 180.0, problem)
    if (cells["lat"] == "") != (cells["lon"] == ""):
        missing = "lat" if cells["lat"] == "" else "lon"
        problem(missing, "is empty while the other coordinate is given; give both or neither")
    return lat, lon


def read_location(
    cells: dict[str, str], problem: Callable[[str, str], None]
) -> tuple[float | None, float | None, str | None]:
    """(lat, lon, grid_code) of a row that gives lat and lon, or grid_code, or all three;
    each problem goes to `problem(column, message)`."""
    lat, lon = read_coordinates(cells, problem)
    grid_code = cells["grid_code"] or None
    if cells["lat"] == "" and cells["lon"] == "" and grid_code is None:
        problem("lat/lon/grid_code", "all empty: give lat and lon, or grid_code")
    return lat, lon, grid_code


# The building (楼栋) and unit (单元) a register's row may name (residents, places), as the
# units CSV names a unit: by its building's code and the building's own numbering.
HOME_COLUMNS = ("building_code", "unit_code")
HOME_COLUMNS_ZH = ("楼栋编码", "单元编码")


def read_home(
    cells: dict[str, str], problem: Callable[[str, str], None]
) -> tuple[str | None, str | None]:
    """(building_code, unit_code) a row names, None where it names none; a unit without its
    building goes to `problem(column, message)`."""
    building, unit = cells["building_code"] or None, cells["unit_code"] or None
    if unit and not building:
        problem("building_code", "is empty while unit_code is given; a unit is named by both")
    return building, unit


def _coordinate(
    text: str, column: str, limit: float, problem: Callable[[str, str], None]
) -> float | None:
    if text == "":
        return None
    number = unicodedata.normalize("NFKC", text).strip()
    value = float(number) if _DECIMAL.fullmatch(number) else math.nan
    if not math.isfinite(value):
        problem(column, f"{text[:40]!r} is not a number")
        return None
    if not -limit <= value <= limit:
        problem(column, f"{text} is out of range (-{limit:g} to {limit:g})")
        return None
    return value


def _decode(label: str, path: Path) -> str:
    """UTF-8 (a BOM is dropped), UTF-16 with its BOM (Excel's "Unicode Text"), else GB18030,
    the superset of GBK that Excel in China saves."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{label}: starts as UTF-16 text but byte {exc.start + 3} cannot be decoded; "
                "save it as CSV (UTF-8)"
            ) from exc
    if data.startswith(b"PK\x03\x04") or b"\x00" in data[:4096]:
        raise InputFileError(
            f"{label}: is not a CSV text file (an Excel workbook?); save it as CSV (UTF-8)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        where = f"byte {utf8_error.start + 1} cannot be decoded"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise InputFileError(
            f"{label}: is neither UTF-8 nor GBK text ({where}); save it as CSV (UTF-8)"
        ) from None
    if not looks_chinese(text):
        # Western text (Latin-1, Windows-1252) mostly decodes as GB18030 too, into rare
        # characters: stored, every accented name would be garbage.
        raise InputFileError(
            f"{label}: is not UTF-8 ({where}) and does not read as Chinese GBK text either "
            "(Latin-1 or Windows-1252?); save it as CSV (UTF-8)"
        )
    return text


def _next_record(label: str, records, row_number: int) -> list[str] | None:
    """The next CSV record, or None at the end; a malformed one is an error naming its row."""
    try:
        return next(records, None)
    except csv.Error as exc:
        reason = str(exc)
        if "unexpected end of data" in reason:
            reason = 'a quoted cell is never closed (a stray " in the row?)'
        elif "field larger than field limit" in reason:
            reason = f"a cell is longer than {csv.field_size_limit()} characters"
        raise InputFileError(f"{label}: row {row_number}: {reason}") from None


def _header_positions(label: str, header: list[str], table: TableFormat) -> dict[str, int]:
    names = [table.column_of(cell) for cell in header]
    columns = table.columns
    missing = [c for c in columns if c not in names and c not in table.optional]
    if missing:
        hint = ""
        if len(names) == 1 and ";" in names[0]:
            hint = " (cells separated by ';': save it as CSV with commas)"
        raise InputFileError(
            f"{label}: row 1 (header): missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; the header has "
            f"{', '.join(h for h in names if h)[:200] or 'nothing'}{hint}"
        )
    repeated = sorted({c for c in columns if names.count(c) > 1})
    if repeated:
        raise InputFileError(f"{label}: row 1 (header): repeated columns {', '.join(repeated)}")
    return {c: names.index(c) for c in columns if c in names}


def _unnamed(table: TableFormat, cell: str) -> bool:
    return table.column_of(cell) not in table.columns


def _cell(record: list[str], index: int) -> str:
    return record[index].strip() if index < len(record) else ""
