"""The contacts CSV: unit heads (单元长) and building leads (楼栋长), the people a grid worker
calls first about a home, with their building and unit, their phone and, optionally, a URL
that receives the notifications of the cases in their building."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gridwatch.imports.tables import (
    RowCheck,
    TableFormat,
    control_problems,
    excel_mangled,
    read_table,
)
from gridwatch.imports.units import code_problems
from gridwatch.model.rows import ContactRow
from gridwatch.model.vocabulary import CONTACT_ROLES

CONTACTS = TableFormat(
    "contacts",
    ("contact_id", "name", "role", "building_code", "unit_code", "phone", "webhook_url"),
    ("联系人编号", "姓名", "角色", "楼栋编码", "单元编码", "电话", "推送地址"),
    aliases={"编号": "contact_id", "webhook": "webhook_url", "回调地址": "webhook_url"},
    optional=("unit_code", "webhook_url"),
)
ROLE_NAMES = {"单元长": "unit_head", "楼栋长": "building_lead", "楼长": "building_lead"}
_IDS = ("contact_id", "building_code", "unit_code")
MAX_URL = 2000


def read_contacts_csv(path: str | Path, warnings: list[str] | None = None) -> list[ContactRow]:
    """Parse a contacts CSV (the formats of `gridwatch.imports.tables`), English or Chinese
    header and roles. Raises InputFileError naming the file, each bad row and column; an
    implausible phone is added to `warnings`."""
    first_row_of: dict[tuple[str, str], int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        problems = control_problems(cells, (*_IDS, "webhook_url"))
        if problems:
            return None, problems
        check = RowCheck(row, row_warnings, first_row_of)
        check.problems += code_problems(cells, ("contact_id", "name", "building_code"))
        check.problems += excel_mangled(cells, ("contact_id", "phone"))
        contact_id = cells["contact_id"]
        if contact_id:
            check.unique("contact_id", contact_id)
        role = ROLE_NAMES.get(cells["role"], cells["role"].lower())
        if role not in CONTACT_ROLES:
            check.problem(
                "role",
                f"{cells['role'][:40]!r} is not one of "
                f"{', '.join(CONTACT_ROLES)}, {', '.join(ROLE_NAMES)}",
            )
        elif role == "unit_head" and not cells["unit_code"]:
            check.problem("unit_code", "is empty; a unit head (单元长) heads a unit")
        if cells["unit_code"]:
            check.problems += code_problems(cells, ("unit_code",))
        url = cells["webhook_url"]
        if url and not _http_url(url):
            check.problem(
                "webhook_url",
                f"{url[:60]!r} is not an http:// or https:// URL with a host "
                f"(at most {MAX_URL} characters)",
            )
        check.warn_phone(cells["phone"])  # even for a row with problems
        if check.problems:
            return None, check.problems
        contact = ContactRow(
            contact_id,
            cells["name"],
            role,
            cells["building_code"],
            cells["unit_code"] or None,
            cells["phone"] or None,
            url or None,
            row,
        )
        return contact, []

    return read_table(path, CONTACTS, parse, warnings)


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return len(url) <= MAX_URL and parts.scheme in ("http", "https") and bool(parts.hostname)


def contacts_template(chinese: bool = False) -> str:
    """An empty contacts CSV: the header line alone, in English or Chinese column names."""
    return CONTACTS.template(chinese)
