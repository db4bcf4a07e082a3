"""12345 work orders (工单) as a hotline platform exports them, CSV or Excel (XLSX): each row a
request (诉求) of source `hotline`, keyed by its 工单编号, so that importing the same export
twice stores every order once and a later export of the same orders updates them.

Columns are found by their header (工单编号, 来电时间, 诉求内容, 诉求地址, 所属街道, 所属社区,
联系电话, 诉求类型, 办理时限, and the other names platforms give them); only 工单编号 and
诉求内容 must be there. A header cell that names none is reported, not silently dropped.
Every bad row is named with the file and row; a file with any bad row imports nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from gridwatch.errors import InputFileError
from gridwatch.imports.tables import TableFormat, excel_mangled, phone_warning, read_table
from gridwatch.model.records import RequestIntake, text_problem
from gridwatch.model.services import BY_CODE, service_for
from gridwatch.store.requests import hotline_id

WORK_ORDERS = TableFormat(
    what="work orders",
    columns=("order_no", "called_at", "content", "address", "street", "community", "phone",
             "kind", "time_limit", "name"),
    chinese=("工单编号", "来电时间", "诉求内容", "诉求地址", "所属街道", "所属社区", "联系电话",
             "诉求类型", "办理时限", "联系人"),
    aliases={
        "工单号": "order_no", "工单编码": "order_no", "受理编号": "order_no",
        "受理时间": "called_at", "来电日期": "called_at", "登记时间": "called_at",
        "诉求描述": "content", "问题描述": "content", "来电内容": "content",
        "事发地址": "address", "地址": "address", "街道": "street", "社区": "community",
        "来电号码": "phone", "诉求人电话": "phone", "电话": "phone",
        "诉求分类": "kind", "问题分类": "kind", "工单类型": "kind",
        "办结时限": "time_limit", "处理时限": "time_limit", "承办时限": "time_limit",
        "诉求人": "name", "来电人": "name", "姓名": "name",
    },
    optional=("called_at", "address", "street", "community", "phone", "kind", "time_limit",
              "name"),
)  # fmt: skip
_FREE_TEXT = (
    ("address", "诉求地址"), ("street", "所属街道"), ("community", "所属社区"),
    ("phone", "联系电话"), ("name", "联系人"), ("kind", "诉求类型"),
)  # fmt: skip
MAX_ORDER_NO = 64
MAX_FIELD = 500
REPORTER = "12345"
_DURATION = re.compile(r"^(\d{1,4})\s*(个)?\s*(小时|h|天|日|自然日|工作日|个工作日)?$")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                 "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日%H:%M",
                 "%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日")  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorkOrders:
    """The orders of a file, with what is worth a look (unknown columns, types filed as
    其他, doubtful phones), one line each."""

    intakes: list[RequestIntake]
    warnings: list[str]


def read_work_orders(path: Path, *, zone: ZoneInfo, now: datetime) -> WorkOrders:
    """The work orders of a CSV (UTF-8, GBK, UTF-16) or XLSX export; InputFileError naming
    the file and every bad row."""
    path = Path(path)
    warnings: list[str] = []
    unknown: list[str] = []
    text = _sheet_as_csv(path) if path.suffix.lower() in (".xlsx", ".xlsm") else None

    def parse(cells: dict[str, str], row: int, notes: list[str]):
        return _parse_row(cells, row, notes, zone=zone, now=now)

    intakes = read_table(path, WORK_ORDERS, parse, warnings, text=text, unknown=unknown)
    if unknown:
        warnings.insert(0, f"{path.name}: columns not read (unknown): {', '.join(unknown)}")
    last: dict[str, RequestIntake] = {}
    for intake in intakes:
        if intake.source_key in last:
            warnings.append(
                f"{path.name}: 工单编号 {intake.source_key} appears more than once; "
                "the last row is kept"
            )
        last[intake.source_key or ""] = intake
    return WorkOrders(list(last.values()), warnings)


def _sheet_as_csv(path: Path) -> str:
    """The first sheet of a workbook as CSV text, times written as the CSV export writes
    them, so that one reader checks both."""
    import zipfile

    import openpyxl  # only for workbooks
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InputFileError(
            f"{path.name}: is not an Excel workbook that can be read ({exc})"
        ) from None
    try:
        sheet = book.worksheets[0]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for values in sheet.iter_rows(values_only=True):
            writer.writerow([_cell_text(v) for v in values])
        return out.getvalue()
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_row(
    cells: dict[str, str], row: int, notes: list[str], *, zone: ZoneInfo, now: datetime
) -> tuple[RequestIntake | None, list[str]]:
    named = {"工单编号": cells["order_no"], "联系电话": cells["phone"]}
    problems = excel_mangled(named, tuple(named))
    order = cells["order_no"]
    if not order:
        problems.append("工单编号: is empty")
    elif len(order) > MAX_ORDER_NO or text_problem(order, MAX_ORDER_NO):
        problems.append(f"工单编号: {order[:40]!r} is not a work-order number")
    content = cells["content"]
    why = "is empty" if not content.strip() else text_problem(content)
    if why:
        problems.append(f"诉求内容: {why}")
    for column, name in _FREE_TEXT:
        why = text_problem(cells[column], MAX_FIELD)
        if why:
            problems.append(f"{name}: {why}")
    called = _time(cells["called_at"], zone)
    if cells["called_at"] and called is None:
        problems.append(f"来电时间: {cells['called_at'][:40]!r} is not a date and time")
    elif called is not None and called > now + timedelta(days=1):
        problems.append(f"来电时间: {cells['called_at']} is in the future")
    due = _due(cells["time_limit"], called, zone)
    if cells["time_limit"] and due is None and not (called is None and _period(cells)):
        problems.append(
            f"办理时限: {cells['time_limit'][:40]!r} is neither a time nor a period such as "
            "3个工作日 or 24小时"
        )
    if problems:
        return None, problems
    service = service_for(cells["kind"])
    if service is None:
        service = BY_CODE["other"]
        if cells["kind"]:
            notes.append(f"诉求类型: {cells['kind'][:40]!r} names no service; filed as 其他")
    if called is None and _period(cells):
        notes.append(
            "办理时限: a period counts from 来电时间, which is empty; the service's applies"
        )
    if cells["phone"]:
        warning = phone_warning(cells["phone"], "联系电话")
        if warning:
            notes.append(warning)
    return (
        RequestIntake(
            id=hotline_id(order),
            source="hotline",
            source_key=order,
            service_code=service.code,
            description=content,
            reporter=REPORTER,
            requested_at=called,
            received_at=now,
            address=cells["address"] or None,
            street=cells["street"] or None,
            community=cells["community"] or None,
            requester_name=cells["name"] or None,
            requester_phone=cells["phone"] or None,
            due_at=due,
        ),
        [],
    )


def _time(text: str, zone: ZoneInfo) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
        for form in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, form)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _period(cells: dict[str, str]) -> bool:
    return _DURATION.match(cells["time_limit"].strip()) is not None


def _due(text: str, start: datetime | None, zone: ZoneInfo) -> datetime | None:
    """办理时限 as a time (the end of that day when only a date), or a period from the call:
    N小时, N天 (calendar days), N个工作日 (Monday to Friday); a bare number is working days,
    the unit 12345 platforms count in."""
    text = text.strip()
    if not text:
        return None
    found = _DURATION.match(text)
    if found is not None and start is None:
        return None
    if found is None:
        at = _time(text, zone)
        if at is not None and len(text) <= len("2026/11/30"):  # a date alone: that whole day
            at = datetime.combine(at.date(), time(23, 59, 59), zone)
        return at
    assert start is not None  # noqa: S101 - returned above
    count, unit = int(found.group(1)), found.group(3) or "工作日"
    if unit in ("小时", "h"):
        return start + timedelta(hours=count)
    if unit in ("天", "日", "自然日"):
        return start + timedelta(days=count)
    local = start.astimezone(zone)
    day = np.busday_offset(np.datetime64(local.date()), count, roll="forward")
    return datetime.combine(day.astype(date), local.time(), zone)
