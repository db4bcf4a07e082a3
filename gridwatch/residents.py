"""The residents CSV: solitary elderly residents, their homes, meters and sensors."""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gridwatch.encodings import looks_chinese
from gridwatch.errors import InputFileError

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
)

# The same columns as Chinese offices name them; a header may use either name for each.
CHINESE_COLUMNS = dict(
    zip(
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
        ),
        COLUMNS,
        strict=True,
    )
)

MAX_LISTED_PROBLEMS = 20

# Sensor ids in one cell are separated by any of these (an id holds none of them): ASCII and
# full-width semicolons and commas, and the enumeration comma (U+3001) of Chinese lists.
_SENSOR_SEPARATORS = re.compile("[;,\uff1b\uff0c\u3001]")
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
_ID_COLUMNS = ("resident_id", "grid_code", "meter_id", "sensor_ids")

_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"false", "0", "no", "n", "否"}


@dataclass(frozen=True, slots=True)
class ResidentRow:
    """One resident as imported; lat/lon are WGS-84 and may be absent when grid_code is given."""

    resident_id: str
    name: str
    address: str
    lat: float | None
    lon: float | None
    grid_code: str | None
    meter_id: str | None
    sensor_ids: tuple[str, ...]
    phone: str | None
    living_alone: bool
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


def residents_csv_text(residents: Iterable[ResidentRow]) -> str:
    """The residents as CSV text in the import format (header included, UTF-8 safe)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in residents:
        writer.writerow(
            [
                r.resident_id,
                r.name,
                r.address,
                "" if r.lat is None else repr(r.lat),
                "" if r.lon is None else repr(r.lon),
                r.grid_code or "",
                r.meter_id or "",
                ";".join(r.sensor_ids),
                r.phone or "",
                "true" if r.living_alone else "false",
            ]
        )
    return buffer.getvalue()


def read_residents_csv(path: str | Path, warnings: list[str] | None = None) -> list[ResidentRow]:
    """Parse a residents CSV (UTF-8 with or without BOM, or GBK from Excel), with English or
    Chinese column names.

    Raises InputFileError naming the file, each bad row (the header is row 1) and column;
    what is imported but worth a look (an implausible phone) is added to `warnings`.
    """
    warnings = [] if warnings is None else warnings
    path = Path(path)
    label = path.name
    text = _decode(label, path)
    first_line = text.split("\n", 1)[0]
    # Excel's "Unicode Text" (UTF-16) separates cells with tabs.
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    # strict: a stray quote is an error, not a cell that silently swallows the rows after it.
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = _next_record(label, records, 1)
    if header is None or not any(cell.strip() for cell in header):
        raise InputFileError(f"{label}: the file is empty; expected the header {','.join(COLUMNS)}")
    position = _header_positions(label, header)

    problems: list[str] = []
    residents: list[ResidentRow] = []
    first_row_of: dict[tuple[str, str], int] = {}  # (kind, id) → the row that used it first
    row_number = 1
    while (record := _next_record(label, records, row_number + 1)) is not None:
        row_number += 1
        if not any(cell.strip() for cell in record):
            continue
        cells = {name: _cell(record, i) for name, i in position.items()}
        row_warnings: list[str] = []
        resident, row_problems = _parse_row(cells, first_row_of, row_number, row_warnings)
        warnings.extend(f"{label}: row {row_number}, column {w}" for w in row_warnings)
        extra = [cell for cell in record[len(header) :] if cell.strip()]
        if extra:
            row_problems.append(
                f"{len(header) + 1}: {len(record)} cells for {len(header)} columns "
                "(a comma inside a cell that is not quoted?)"
            )
        problems.extend(f"{label}: row {row_number}, column {p}" for p in row_problems)
        if resident is not None and not extra:
            residents.append(resident)
    if not problems and not residents:
        raise InputFileError(f"{label}: the file has a header but no residents")
    if problems:
        lines = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"{label}: … and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        raise InputFileError("\n".join(lines))
    return residents


def _parse_row(
    cells: dict[str, str],
    first_row_of: dict[tuple[str, str], int],
    row_number: int,
    warnings: list[str],
) -> tuple[ResidentRow | None, list[str]]:
    """The row as a ResidentRow, or None and its problems as "column: message"; what is
    imported but worth a look is added to `warnings` the same way."""
    problems: list[str] = []

    def problem(column: str, message: str) -> None:
        problems.append(f"{column}: {message}")

    for column, text in cells.items():
        control = (_ID_CONTROL if column in _ID_COLUMNS else _CONTROL).search(text)
        if control:
            problem(column, f"contains the control character {control.group()!r}")
    if problems:
        return None, problems

    resident_id = cells["resident_id"]
    if not resident_id:
        problem("resident_id", "is empty")

    lat = _coordinate(cells["lat"], "lat", 90.0, problem)
    lon = _coordinate(cells["lon"], "lon", 180.0, problem)
    grid_code = cells["grid_code"] or None
    if (cells["lat"] == "") != (cells["lon"] == ""):
        missing = "lat" if cells["lat"] == "" else "lon"
        problem(missing, "is empty while the other coordinate is given; give both or neither")
    elif cells["lat"] == "" and grid_code is None:
        problem("lat/lon/grid_code", "all empty: give lat and lon, or grid_code")

    living_alone = True
    flag = cells["living_alone"].lower()
    if flag in _FALSE:
        living_alone = False
    elif flag and flag not in _TRUE:
        problem(
            "living_alone",
            f"{cells['living_alone']!r} is not one of true/false, 1/0, yes/no, 是/否",
        )

    for column in ("resident_id", "meter_id", "sensor_ids", "phone"):
        if _EXCEL_MANGLED.fullmatch(cells[column]):
            problem(
                column,
                f"{cells[column]!r} is a number Excel turned into scientific notation and its "
                "digits are lost; format the column as Text in Excel and type it again",
            )
    meter_id = cells["meter_id"] or None
    listed = (s.strip() for s in _SENSOR_SEPARATORS.split(cells["sensor_ids"]))
    sensor_ids = tuple(dict.fromkeys(s for s in listed if s))
    claims = [("resident_id", "resident_id", resident_id)] if resident_id else []
    claims += [("meter_id", "meter_id", meter_id)] if meter_id else []
    claims += [("sensor_ids", "sensor id", s) for s in sensor_ids]
    for column, kind, value in claims:
        first = first_row_of.setdefault((kind, value), row_number)
        if first != row_number:
            problem(column, f"{kind} {value!r} is already used in row {first}")

    if problems:
        return None, problems
    phone = unicodedata.normalize("NFKC", cells["phone"])
    if phone and not _PHONE.fullmatch(_PHONE_SEPARATORS.sub("", phone)):
        warnings.append(
            f"phone: {cells['phone'][:40]!r} is not a mainland mobile (11 digits from 1) or a "
            "landline with its area code; imported as written"
        )
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
        row=row_number,
    )
    return resident, []


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


def residents_template(chinese: bool = False) -> str:
    """An empty residents CSV: the header line alone, in English or Chinese column names
    (the Chinese one after a UTF-8 BOM, so that Excel opens the saved file as UTF-8)."""
    if chinese:
        return "\ufeff" + ",".join(CHINESE_COLUMNS) + "\n"
    return ",".join(COLUMNS) + "\n"


def _header_positions(label: str, header: list[str]) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    names = [CHINESE_COLUMNS.get(name, name) for name in names]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        hint = ""
        if len(names) == 1 and ";" in names[0]:
            hint = " (cells separated by ';': save it as CSV with commas)"
        raise InputFileError(
            f"{label}: row 1 (header): missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; the header has "
            f"{', '.join(h for h in names if h)[:200] or 'nothing'}{hint}"
        )
    repeated = sorted({c for c in COLUMNS if names.count(c) > 1})
    if repeated:
        raise InputFileError(f"{label}: row 1 (header): repeated columns {', '.join(repeated)}")
    return {c: names.index(c) for c in COLUMNS}


def _cell(record: list[str], index: int) -> str:
    return record[index].strip() if index < len(record) else ""


def _coordinate(text: str, column: str, limit: float, problem) -> float | None:
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
