"""Residents' personal information (PIPL): the audit of who saw it, and forgetting it.

Forgetting keeps the resident's id, grid and time series — meter readings, sensor events,
alerts and their history, absences, checks — so counts, statistics and past alerts stay
true. It removes what names or locates the person: name, phone, address; the home's exact
position, which on a map points at one household as surely as an address (the patrol visits
made to the home stand where it is, so they keep their time, place and worker but no longer
name the resident); and the free text people wrote about them (notes of absences, visits,
checks and alert steps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import NotFound

READ, FORGET = "read", "forget"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    what: str
    client: str | None
    resident_ids: list[str]


def record_audit(
    conn: psycopg.Connection,
    *,
    actor: str,
    role: str | None,
    action: str,
    what: str,
    resident_ids: Sequence[str],
    client: str | None = None,
    at: datetime | None = None,
) -> None:
    """One audit row in the caller's transaction (nothing when no resident is named)."""
    ids = list(dict.fromkeys(resident_ids))
    if not ids:
        return
    conn.execute(
        "INSERT INTO personal_data_audit (at, actor, role, action, what, client, resident_ids) "
        "VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s, %s)",
        (at, actor, role, action, what, client, ids),
    )


def audit_entries(
    conn: psycopg.Connection,
    *,
    resident: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit rows in the order they were written, oldest first, after `after_id`."""
    conditions = [
        (name, value, clause)
        for name, value, clause in (
            ("resident", resident, "resident_ids @> ARRAY[%(resident)s]::text[]"),
            ("user", user, "actor = %(user)s"),
            ("since", since, "at >= %(since)s"),
            ("after", after_id, "id > %(after)s"),
        )
        if value is not None
    ]
    where = [clause for _, _, clause in conditions] or ["TRUE"]
    params = {name: value for name, value, _ in conditions} | {"limit": limit}
    query = sql.SQL(
        "SELECT id, at, actor, role, action, what, client, resident_ids "
        "FROM personal_data_audit WHERE {} ORDER BY id LIMIT %(limit)s"
    ).format(sql.SQL(" AND ").join(map(sql.SQL, where)))
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(query, params).fetchall()


@dataclass(frozen=True, slots=True)
class Forgotten:
    resident_id: str
    at: datetime
    already: bool  # forgotten before: nothing was left to remove


def forget_resident(
    conn: psycopg.Connection, resident_id: str, *, actor: str, now: datetime
) -> Forgotten:
    """Remove a resident's personal information, keep their anonymous history, and record it
    in the audit, in one transaction."""
    with conn.transaction():
        row = conn.execute(
            "SELECT forgotten_at FROM residents WHERE id = %s FOR UPDATE", (resident_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no resident {resident_id!r}")
        conn.execute(
            "UPDATE residents SET name = NULL, phone = NULL, address = NULL, lat = NULL, "
            "lon = NULL, forgotten_at = coalesce(forgotten_at, %s), updated_at = %s "
            "WHERE id = %s",
            (now, now, resident_id),
        )
        for statement in _FORGET_NOTES:
            conn.execute(statement, {"id": resident_id})
        record_audit(
            conn,
            actor=actor,
            role=None,
            action=FORGET,
            what="gridwatch residents forget",
            resident_ids=[resident_id],
            at=now,
        )
    return Forgotten(resident_id, row[0] or now, already=row[0] is not None)


_FORGET_NOTES = (
    "UPDATE absences SET note = NULL WHERE resident_id = %(id)s AND note IS NOT NULL",
    "UPDATE resident_checks SET note = NULL WHERE resident_id = %(id)s AND note IS NOT NULL",
    "UPDATE patrol_checkins SET resident_id = NULL, note = NULL WHERE resident_id = %(id)s",
    "UPDATE alerts SET resolution = NULL WHERE resident_id = %(id)s AND resolution IS NOT NULL",
    "UPDATE alert_events SET note = NULL WHERE note IS NOT NULL "
    "AND alert_id IN (SELECT id FROM alerts WHERE resident_id = %(id)s)",
    # What was published keeps its facts; the words people wrote go.
    "UPDATE alert_outbox SET payload = payload - 'note' - 'reason' "
    "WHERE (payload ? 'note' OR payload ? 'reason') "
    "AND alert_id IN (SELECT id FROM alerts WHERE resident_id = %(id)s)",
)
