"""The `media` table: one row per photo kept (its bytes are in the media store), and what it
belongs to — a hazard, a request, or a patrol check-in (a visit's with its resident)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from gridwatch.store.paging import fetch_one

STEPS = ("report", "resolve", "checkin")


@dataclass(frozen=True, slots=True)
class MediaOwner:
    """What photos belong to: exactly one of a hazard, a request or a check-in (its key)."""

    step: str  # report, resolve or checkin
    hazard_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None
    checkin: tuple[str, str, datetime] | None = None  # worker, source, observed_at
    resident_id: str | None = None  # a visit's resident
    grid_id: int | None = None


@dataclass(frozen=True, slots=True)
class NewMedia:
    """A photo to record: its id and what the checks made of it."""

    id: uuid.UUID
    content_type: str
    bytes: int
    thumb_bytes: int
    sent_bytes: int
    width: int
    height: int
    sha256: str


@dataclass(frozen=True, slots=True)
class MediaItem:
    """A kept photo, with the grid of what it belongs to as that is now (a request goes to
    another grid when dispatched) and the user who owns that (a request's reporter, a
    check-in's worker): who may see it follows from these."""

    id: uuid.UUID
    content_type: str
    bytes: int
    sha256: str
    step: str
    hazard_id: uuid.UUID | None
    request_id: uuid.UUID | None
    resident_id: str | None
    owner_grid_id: int | None
    owner_user: str | None


_COLUMNS = (
    "id", "content_type", "bytes", "thumb_bytes", "sent_bytes", "width", "height", "sha256",
    "uploaded_by", "uploaded_at", "step", "hazard_id", "request_id", "checkin_worker_id",
    "checkin_source", "checkin_observed_at", "resident_id", "grid_id",
)  # fmt: skip
_COPY = sql.SQL("COPY media ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
)


def record_media(
    conn: psycopg.Connection,
    photos: Sequence[NewMedia],
    owner: MediaOwner,
    *,
    uploaded_by: str,
    at: datetime,
) -> None:
    """Rows for `photos`, all belonging to `owner`, in the caller's transaction (one COPY)."""
    if owner.step not in STEPS:
        raise ValueError(f"unknown step {owner.step!r}")
    worker, source, observed_at = owner.checkin or (None, None, None)
    with conn.cursor() as cur, cur.copy(_COPY) as copy:
        for p in photos:
            copy.write_row(
                (
                    p.id,
                    p.content_type,
                    p.bytes,
                    p.thumb_bytes,
                    p.sent_bytes,
                    p.width,
                    p.height,
                    p.sha256,
                    uploaded_by,
                    at,
                    owner.step,
                    owner.hazard_id,
                    owner.request_id,
                    worker,
                    source,
                    observed_at,
                    owner.resident_id,
                    owner.grid_id,
                )
            )


def media_item(conn: psycopg.Connection, media_id: uuid.UUID) -> MediaItem:
    """The photo `media_id` with its owner's grid and user now; NotFound when there is none.
    A check-in past retention is gone: its photos keep the grid they were posted in."""
    return fetch_one(
        conn,
        MediaItem,
        """
        SELECT m.id, m.content_type, m.bytes, m.sha256, m.step, m.hazard_id, m.request_id,
               m.resident_id,
               CASE WHEN m.hazard_id IS NOT NULL THEN h.grid_id
                    WHEN m.request_id IS NOT NULL THEN r.grid_id
                    ELSE coalesce(c.grid_id, m.grid_id) END AS owner_grid_id,
               CASE WHEN m.request_id IS NOT NULL THEN r.reporter
                    WHEN m.checkin_worker_id IS NOT NULL THEN m.checkin_worker_id
               END AS owner_user
        FROM media m
        LEFT JOIN hazard_reports h ON h.id = m.hazard_id
        LEFT JOIN requests r ON r.id = m.request_id
        LEFT JOIN patrol_checkins c ON c.worker_id = m.checkin_worker_id
            AND c.source = m.checkin_source AND c.observed_at = m.checkin_observed_at
        WHERE m.id = %s
        """,
        (media_id,),
        f"no photo {media_id}",
    )


def delete_resident_media(conn: psycopg.Connection, resident_id: str) -> list[uuid.UUID]:
    """Delete the rows of the photos of `resident_id`'s visits, in the caller's transaction;
    the ids deleted (their files are the caller's to remove)."""
    rows = conn.execute(
        "DELETE FROM media WHERE resident_id = %s RETURNING id", (resident_id,)
    ).fetchall()
    return [row[0] for row in rows]


def delete_expired_checkin_media(
    conn: psycopg.Connection,
    *,
    before: datetime,
    remove_photos: Callable[[Sequence[uuid.UUID]], None],
) -> int:
    """Delete the photos of check-ins made before `before` (past retention: the check-ins
    themselves are dropped with their day), their images through `remove_photos` before the
    rows' deletion commits; how many."""
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM media WHERE checkin_observed_at < %s RETURNING id", (before,)
        ).fetchall()
        if rows:
            remove_photos([row[0] for row in rows])
    return len(rows)
