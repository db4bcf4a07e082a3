"""Residents' personal information (PIPL): the audit of who saw it, and forgetting it.

Forgetting keeps the resident's id, grid and time series — meter readings, sensor events,
alerts and their history, absences, checks — so counts, statistics and past alerts stay
true. It removes what names or locates the person: name, phone, address; the home's exact
position, which on a map points at one household as surely as an address (the patrol visits
made to the home stand where it is, so they keep their time, place and worker but no longer
name the resident); and the free text people wrote about them (notes of absences, visits,
checks and alert steps), and the photos taken at their home visits (rows here, images in
the media store). Dead letters, raw messages kept because they could not be stored, lose
their payload when it names the resident."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import NotFound
from gridwatch.store.media import delete_resident_media

READ, FORGET = "read", "forget"
_ESCAPE = re.compile(r"\\u([0-9a-f]{4})")


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


def record_audits(conn: psycopg.Connection, entries: Sequence[dict]) -> None:
    """Audit rows, each with `record_audit`'s keywords and its time, in one COPY in the
    caller's transaction (rows naming no resident are left out)."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY personal_data_audit (at, actor, role, action, what, client, resident_ids) "
            "FROM STDIN"
        ) as copy,
    ):
        for e in entries:
            ids = list(dict.fromkeys(e["resident_ids"]))
            if ids:
                copy.write_row(
                    (e["at"], e["actor"], e["role"], e["action"], e["what"], e["client"], ids)
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
    photos: int = 0  # photos of their visits removed


RemovePhotos = Callable[[Sequence[uuid.UUID]], None]


def forget_resident(
    conn: psycopg.Connection,
    resident_id: str,
    *,
    actor: str,
    now: datetime,
    remove_photos: RemovePhotos | None = None,
) -> Forgotten:
    """Remove a resident's personal information, keep their anonymous history, and record it
    in the audit, in one transaction. The photos of their visits lose their rows here and
    their images through `remove_photos` (given the photos' ids) before the transaction
    commits: if the images cannot be removed, nothing is, and the command can run again."""
    with conn.transaction():
        row = conn.execute(
            "SELECT forgotten_at, name, phone, address FROM residents WHERE id = %s FOR UPDATE",
            (resident_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no resident {resident_id!r}")
        _redact_dead_letters(conn, resident_id, [t for t in row[1:] if t], now)
        conn.execute(
            "UPDATE residents SET name = NULL, phone = NULL, address = NULL, lat = NULL, "
            "lon = NULL, building_id = NULL, unit_id = NULL, "  # a stairwell names a home too
            "forgotten_at = coalesce(forgotten_at, %s), updated_at = %s WHERE id = %s",
            (now, now, resident_id),
        )
        for statement in _FORGET_NOTES:
            conn.execute(statement, {"id": resident_id})
        photos = delete_resident_media(conn, resident_id)
        if photos:
            if remove_photos is None:
                raise ValueError("the resident's visits have photos: say how to remove them")
            remove_photos(photos)
        record_audit(
            conn,
            actor=actor,
            role=None,
            action=FORGET,
            what="gridwatch residents forget",
            resident_ids=[resident_id],
            at=now,
        )
    return Forgotten(resident_id, row[0] or now, already=row[0] is not None, photos=len(photos))


def _redact_dead_letters(
    conn: psycopg.Connection, resident_id: str, personal: list[str], now: datetime
) -> None:
    """Dead letters are raw messages: those that name the resident (their id as a JSON
    string, or their name, phone or address, as UTF-8 or as JSON escapes) lose their payload
    (the digest stays, so the same message delivered again only counts), and their reason
    loses those words; topic and times stay."""
    needles = {json.dumps(resident_id, ensure_ascii=False).encode()}
    for text in personal:
        escaped = json.dumps(text)[1:-1]  # how an encoder that escapes non-ASCII writes it
        upper = _ESCAPE.sub(lambda m: "\\u" + m.group(1).upper(), escaped)
        needles |= {text.encode(), escaped.encode(), upper.encode()}
    found = conn.execute(
        "SELECT id, reason FROM dead_letters WHERE redacted_at IS NULL AND EXISTS "
        "(SELECT 1 FROM unnest(%s::bytea[]) AS n WHERE position(n IN payload) > 0)",
        (sorted(needles),),
    ).fetchall()
    for letter_id, reason in found:
        for text in personal:
            reason = reason.replace(text, "[forgotten]")
        conn.execute(
            "UPDATE dead_letters SET payload = '', reason = %s, redacted_at = %s WHERE id = %s",
            (reason, now, letter_id),
        )


_FORGET_NOTES = (
    "UPDATE absences SET note = NULL WHERE resident_id = %(id)s AND note IS NOT NULL",
    "UPDATE resident_checks SET note = NULL WHERE resident_id = %(id)s AND note IS NOT NULL",
    # A visit's photos show the home: their links go with the images (and so do links to
    # photos kept elsewhere, which gridwatch cannot delete).
    "UPDATE patrol_checkins SET resident_id = NULL, note = NULL, needs = NULL, photo_urls = NULL "
    "WHERE resident_id = %(id)s",
    "UPDATE alerts SET resolution = NULL WHERE resident_id = %(id)s AND resolution IS NOT NULL",
    "UPDATE alert_events SET note = NULL WHERE note IS NOT NULL "
    "AND alert_id IN (SELECT id FROM alerts WHERE resident_id = %(id)s)",
    # What was published keeps its facts; the words people wrote go.
    "UPDATE alert_outbox SET payload = payload - 'note' - 'reason' "
    "WHERE (payload ? 'note' OR payload ? 'reason') "
    "AND alert_id IN (SELECT id FROM alerts WHERE resident_id = %(id)s)",
    # A visit note's dispute warnings: the keywords are words of the note.
    "UPDATE alert_outbox SET payload = payload - 'keywords' - 'resident_id' "
    "WHERE warning_id IN (SELECT id FROM warnings WHERE resident_id = %(id)s)",
    "UPDATE warnings SET resident_id = NULL, keywords = '{}' WHERE resident_id = %(id)s",
)
