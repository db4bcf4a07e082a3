"""The people a grid worker calls first about a home: unit heads (单元长) and building leads
(楼栋长). Their upsert from the contacts CSV, who to call for a home or a case's point, forgetting
one (PIPL), and the notices of cases in their building that reach their webhooks.

Names and phones are personal information, as residents' are: masked on the way out for those
who may not see them, every read in clear audited as `contact:<id>` (api/), and removed by
`gridwatch contacts forget`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from gridwatch.errors import InputFileError, NotFound, listed
from gridwatch.model.rows import ContactRow
from gridwatch.store.buildings import case_home, load_buildings
from gridwatch.store.db import upsert_each
from gridwatch.store.outbox import write_case_outbox
from gridwatch.store.personal_data import FORGET, record_audit

AUDIT_PREFIX = "contact:"
MOST_SHOWN = 20  # people listed to call for one home or case


def upsert_contacts(
    conn: psycopg.Connection,
    rows: Sequence[ContactRow],
    *,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update contacts by id in one transaction; (inserted, updated). A building or
    unit not imported is an error naming the row, and nothing is stored. Importing a
    forgotten contact again brings their details back."""
    buildings = load_buildings(conn)
    conn.commit()
    problems = []
    placed: list[tuple[int, int | None]] = []
    for number, row in enumerate(rows, start=2):
        where = f"row {row.row or number}"
        building = buildings.by_code.get(row.building_code)
        unit = buildings.units.get((row.building_code, row.unit_code or ""))
        if building is None:
            problems.append(
                f"{where}: building_code {row.building_code!r} is not an imported building"
            )
        elif row.unit_code and unit is None:
            problems.append(
                f"{where}: unit_code {row.unit_code!r} is not an imported unit of building "
                f"{row.building_code}"
            )
        else:
            placed.append((building.id, unit[0] if unit else None))
    if problems:
        raise InputFileError(f"{source}: {listed(problems)}")
    params = [
        (
            f"row {row.row or number}",
            (row.contact_id, row.name, row.role, *home, row.phone, row.webhook_url),
        )
        for number, (row, home) in enumerate(zip(rows, placed, strict=True), start=2)
    ]
    return upsert_each(conn, _UPSERT_CONTACT, params, source=source, progress=progress)


_UPSERT_CONTACT = """
    INSERT INTO contacts (id, name, role, building_id, unit_id, phone, webhook_url)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET
        name = EXCLUDED.name, role = EXCLUDED.role,
        building_id = EXCLUDED.building_id, unit_id = EXCLUDED.unit_id,
        phone = EXCLUDED.phone, webhook_url = EXCLUDED.webhook_url,
        forgotten_at = NULL, updated_at = now()
    RETURNING (xmax = 0)
"""


@dataclass(frozen=True, slots=True)
class Contact:
    """One person to call, with where they stand: `grid_id` is their building's grid, which
    decides who may see their name and phone."""

    id: str
    name: str | None
    role: str
    phone: str | None
    building_code: str
    building_name: str
    unit_code: str | None
    unit_name: str | None
    grid_id: int

    @property
    def audit_id(self) -> str:
        return f"{AUDIT_PREFIX}{self.id}"


_CONTACTS = """
    SELECT c.id, c.name, c.role, c.phone, b.code AS building_code, b.name AS building_name,
           u.code AS unit_code, u.name AS unit_name, b.grid_id
    FROM contacts c JOIN buildings b ON b.id = c.building_id
    LEFT JOIN units u ON u.id = c.unit_id
    WHERE c.building_id = %(building)s AND c.forgotten_at IS NULL
    -- the home's own unit head first, then the building's leads, then the other units' heads
    ORDER BY (c.unit_id IS NOT DISTINCT FROM %(unit)s AND c.role = 'unit_head') DESC,
             c.role = 'building_lead' DESC, u.code, c.id
    LIMIT %(limit)s
"""


def first_to_call(
    conn: psycopg.Connection, building_id: int | None, unit_id: int | None = None
) -> list[Contact]:
    """Who to call first about a home in `unit_id` of `building_id` (or a point in the
    building): the unit's head, the building's leads, then the heads of its other units."""
    if building_id is None:
        return []
    with conn.cursor(row_factory=class_row(Contact)) as cur:
        params = {"building": building_id, "unit": unit_id, "limit": MOST_SHOWN}
        return cur.execute(_CONTACTS, params).fetchall()


def resident_home(conn: psycopg.Connection, resident_id: str) -> tuple[int | None, int | None]:
    """The building and unit a resident lives in (None where not known); NotFound if there is
    no such resident."""
    row = conn.execute(
        "SELECT building_id, unit_id FROM residents WHERE id = %s", (resident_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no resident {resident_id!r}")
    return row[0], row[1]


@dataclass(frozen=True, slots=True)
class ForgottenContact:
    contact_id: str
    at: datetime
    already: bool  # forgotten before: nothing was left to remove
    deliveries: int = 0  # undelivered notices to their webhook dropped


def forget_contact(
    conn: psycopg.Connection, contact_id: str, *, actor: str, now: datetime
) -> ForgottenContact:
    """Remove a contact's name, phone and webhook (and the notices still waiting for that
    webhook, when no other contact uses it), keep their role and building, and record it in
    the audit, in one transaction."""
    with conn.transaction():
        row = conn.execute(
            "SELECT forgotten_at, webhook_url FROM contacts WHERE id = %s FOR UPDATE",
            (contact_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no contact {contact_id!r}")
        forgotten_at, url = row
        conn.execute(
            "UPDATE contacts SET name = NULL, phone = NULL, webhook_url = NULL, "
            "forgotten_at = coalesce(forgotten_at, %s), updated_at = %s WHERE id = %s",
            (now, now, contact_id),
        )
        dropped = 0
        if url is not None:
            dropped = conn.execute(
                """
                DELETE FROM webhook_deliveries d USING alert_outbox o
                WHERE o.id = d.outbox_id AND o.case_event_id IS NOT NULL
                  AND d.url = %(url)s AND d.delivered_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.webhook_url = %(url)s)
                """,
                {"url": url},
            ).rowcount
        record_audit(
            conn,
            actor=actor,
            role=None,
            action=FORGET,
            what="gridwatch contacts forget",
            resident_ids=[f"{AUDIT_PREFIX}{contact_id}"],
            at=now,
        )
    return ForgottenContact(
        contact_id, forgotten_at or now, already=forgotten_at is not None, deliveries=dropped
    )


# -- notices of cases to their building's contacts ---------------------------------------------

_STEPS = {
    "hazard": """
        SELECT e.id, e.hazard_id::text, e.at, e.action, e.to_status, h.lon, h.lat, h.place_id,
               g.code, h.category, h.severity, h.level
        FROM hazard_events e JOIN hazard_reports h ON h.id = e.hazard_id
        LEFT JOIN grids g ON g.id = h.grid_id
        WHERE e.id = ANY(%s) ORDER BY e.id
    """,
    "request": """
        SELECT e.id, e.request_id::text, e.at, e.action, e.to_status, r.lon, r.lat, NULL,
               g.code, r.service_code, NULL, r.level
        FROM request_events e JOIN requests r ON r.id = e.request_id
        LEFT JOIN grids g ON g.id = r.grid_id
        WHERE e.id = ANY(%s) ORDER BY e.id
    """,
}
NOTICE_BATCH = 500


def send_case_notices(conn: psycopg.Connection, *, topic_prefix: str, now: datetime) -> int:
    """Turn the queued steps of cases into outbox rows for the webhooks of the contacts of the
    building each case stands in (a finding's place's, else its point's; one row per step,
    posted to each distinct URL once), in one transaction; steps of cases in no building with
    a webhook are dropped. Several processes may run it: each takes queued steps no other
    holds. Returns the rows written."""
    with conn.transaction():
        queued = conn.execute(
            "SELECT id, case_kind, event_id FROM case_notices ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            (NOTICE_BATCH,),
        ).fetchall()
        if not queued:
            return 0
        written = 0
        places: dict[str, tuple[int | None, str | None, list[str]]] = {}
        for kind in ("hazard", "request"):
            ids = [event for _, k, event in queued if k == kind]
            if not ids:
                continue
            for step in conn.execute(_STEPS[kind], (ids,)).fetchall():
                (
                    event_id,
                    case_id,
                    at,
                    action,
                    status,
                    lon,
                    lat,
                    place,
                    grid,
                    what,
                    severity,
                    level,
                ) = step
                if case_id not in places:
                    places[case_id] = _building_webhooks(conn, lon, lat, place)
                _, building, urls = places[case_id]
                if not urls:
                    continue
                payload = {
                    "kind": "case_step",
                    "case_kind": kind,
                    "case_id": case_id,
                    "event_id": event_id,
                    "action": action,
                    "status": status,
                    "level": level,
                    "category" if kind == "hazard" else "service_code": what,
                    "severity": severity,
                    "grid_code": grid or "none",
                    "building_code": building,
                    "at": at.isoformat(),
                }
                write_case_outbox(conn, kind, event_id, payload, topic_prefix, urls, now)
                written += 1
        conn.execute("DELETE FROM case_notices WHERE id = ANY(%s)", ([n for n, _, _ in queued],))
    return written


def _building_webhooks(
    conn: psycopg.Connection, lon: float | None, lat: float | None, place_id: str | None
) -> tuple[int | None, str | None, list[str]]:
    """The building a case stands in (its inspected place's, else the one its point lies in),
    its code, and its contacts' webhooks."""
    building = case_home(conn, lon, lat, place_id).building_id
    if building is None:
        return None, None, []
    rows = conn.execute(
        "SELECT b.code, c.webhook_url FROM buildings b LEFT JOIN contacts c "
        "ON c.building_id = b.id AND c.webhook_url IS NOT NULL AND c.forgotten_at IS NULL "
        "WHERE b.id = %s ORDER BY c.webhook_url",
        (building,),
    ).fetchall()
    urls = list(dict.fromkeys(url for _, url in rows if url))
    return building, rows[0][0], urls
