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
    """A kept photo and what it belongs to: exactly one of a hazard, a request or a check-in
    (its worker, source and time). Who may see it is who may see that."""

    id: uuid.UUID
    content_type: str
    bytes: int
    sha256: str
    step: str
    hazard_id: uuid.UUID | None
    request_id: uuid.UUID | None
    checkin_worker_id: str | None
    checkin_source: str | None
    checkin_observed_at: datetime | None
    resident_id: str | None


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
    """The photo `media_id` and what it belongs to; NotFound when there is none."""
    return fetch_one(
        conn,
        MediaItem,
        """
        SELECT id, content_type, bytes, sha256, step, hazard_id, request_id, checkin_worker_id,
               checkin_source, checkin_observed_at, resident_id
        FROM media WHERE id = %s
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
