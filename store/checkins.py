"""Patrol check-ins (巡查) and home visits: the check-ins layer, one check-in, writes from
the API, per grid the residents due a visit and visited on a day, and the residents a worker
has to visit now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.model.records import PatrolCheckin
from gridwatch.store.filters import Filters, where_columns, where_filters
from gridwatch.store.paging import Listing, Page
from gridwatch.store.residents import ResidentHome


@dataclass(frozen=True, slots=True)
class CheckinRow:
    worker_id: str
    source: str
    observed_at: datetime
    received_at: datetime
    lon: float
    lat: float
    accuracy_m: float | None
    grid_id: int | None
    grid_code: str | None
    kind: str
    resident_id: str | None
    status: str | None
    note: str | None
    needs: str | None
    photo_urls: list[str]
    police_grid_id: int | None = None
    place_id: str | None = None  # an inspection's place, and what it found
    result: str | None = None


_CHECKINS = Listing(
    CheckinRow,
    sql.SQL(
        "c.worker_id, c.source, c.observed_at, c.received_at, c.lon, c.lat, c.accuracy_m, "
        "c.grid_id, g.code AS grid_code, c.kind, c.resident_id, c.status, c.note, "
        "c.needs, coalesce(c.photo_urls, '{}') AS photo_urls, c.police_grid_id, c.place_id, "
        "c.result"
    ),
    sql.SQL("patrol_checkins c LEFT JOIN grids g ON g.id = c.grid_id"),
    sql.SQL("c.observed_at DESC, c.worker_id DESC, c.source DESC"),
    sql.SQL("(c.observed_at, c.worker_id, c.source) < (%(after_t)s, %(after_w)s, %(after_s)s)"),
)


def checkin_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: tuple[datetime, str, str] | None = None,
    kind: str | None = None,
    worker_id: str | None = None,
) -> Page[CheckinRow]:
    """Patrol check-ins newest first."""
    where, params = where_filters(
        filters, alias="c", time_column="observed_at", owner_column="worker_id"
    )
    where_columns(where, params, "c", kind=kind, worker_id=worker_id)
    keyset = None
    if after is not None:
        keyset = {"after_t": after[0], "after_w": after[1], "after_s": after[2]}
    return _CHECKINS.page(conn, where, params, after=keyset, limit=limit)


def get_checkin(
    conn: psycopg.Connection, *, worker_id: str, source: str, observed_at: datetime
) -> CheckinRow:
    key = sql.SQL("c.worker_id = %s AND c.source = %s AND c.observed_at = %s")
    return _CHECKINS.one(conn, key, (worker_id, source, observed_at), "no such check-in")


def insert_checkin(
    conn: psycopg.Connection,
    checkin: PatrolCheckin,
    *,
    grid_id: int | None,
    police_grid_id: int | None = None,
) -> tuple[CheckinRow, bool]:
    """Store a check-in once (same worker, source and time: the same check-in)."""
    with conn.transaction():
        created = conn.execute(
            """
            INSERT INTO patrol_checkins (worker_id, observed_at, received_at, source, lon, lat,
                accuracy_m, grid_id, kind, resident_id, status, note, needs, device, battery,
                photo_urls, police_grid_id, place_id, result)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING RETURNING 1
            """,
            (
                checkin.worker_id,
                checkin.observed_at,
                checkin.received_at,
                checkin.source,
                checkin.lon,
                checkin.lat,
                checkin.accuracy_m,
                grid_id,
                checkin.kind,
                checkin.resident_id,
                checkin.status,
                checkin.note,
                checkin.needs,
                checkin.device,
                checkin.battery,
                list(checkin.photo_urls) or None,
                police_grid_id,
                checkin.place_id,
                checkin.result,
            ),
        ).fetchone()
        row = get_checkin(
            conn,
            worker_id=checkin.worker_id,
            source=checkin.source,
            observed_at=checkin.observed_at,
        )
    return row, created is not None


@dataclass(frozen=True, slots=True)
class VisitCounts:
    grid_id: int
    residents_due: int
    visits_made: int
    due_visited: int


def visit_counts(
    conn: psycopg.Connection,
    *,
    day_start: datetime,
    day_end: datetime,
    every: timedelta,
    column: str = "grid_id",
) -> dict[int, VisitCounts]:
    """Per grid (of the system whose column is `column`): residents due a home visit at the
    start of the day (no visit that found them in `every`), residents visited that day, and
    due residents visited."""
    query = sql.SQL(
        """
        WITH state AS (
            SELECT r.{grid} AS grid_id,
                r.living_alone AND NOT EXISTS (
                    SELECT 1 FROM patrol_checkins c
                    WHERE c.resident_id = r.id AND c.kind = 'visit'
                      AND c.status IN ('ok', 'concern')
                      AND c.observed_at >= %(due_since)s AND c.observed_at < %(start)s
                ) AS due,
                EXISTS (
                    SELECT 1 FROM patrol_checkins c
                    WHERE c.resident_id = r.id AND c.kind = 'visit'
                      AND c.observed_at >= %(start)s AND c.observed_at < %(end)s
                ) AS visited,
                EXISTS (
                    SELECT 1 FROM patrol_checkins c
                    WHERE c.resident_id = r.id AND c.kind = 'visit'
                      AND c.status IN ('ok', 'concern')
                      AND c.observed_at >= %(start)s AND c.observed_at < %(end)s
                ) AS found
            FROM residents r WHERE r.{grid} IS NOT NULL
        )
        SELECT grid_id, count(*) FILTER (WHERE due), count(*) FILTER (WHERE visited),
               count(*) FILTER (WHERE due AND found)
        FROM state GROUP BY grid_id
        """
    ).format(grid=sql.Identifier(column))
    params = {"due_since": day_start - every, "start": day_start, "end": day_end}
    rows = conn.execute(query, params).fetchall()
    return {row[0]: VisitCounts(*row) for row in rows}


@dataclass(frozen=True, slots=True)
class ResidentVisit(ResidentHome):
    """A resident who lives alone, their home, their last visit and what they asked for
    then (微心愿), and whether a visit is due (none found them in the period)."""

    grid_code: str | None
    last_visit_at: datetime | None
    last_needs: str | None
    due: bool


# A visit stamped a little after `now` (the seconds between a page's load and its post, a
# phone's clock a little fast) is made already; one hours ahead is not yet.
VISIT_CLOCK_SLACK = timedelta(minutes=15)


def residents_to_visit(
    conn: psycopg.Connection,
    *,
    scope: list[int] | None,
    now: datetime,
    every: timedelta,
    limit: int,
) -> list[ResidentVisit]:
    """The residents living alone in `scope` (None: every grid), those due a home visit at
    `now` first (no visit that found them in `every`), longest unvisited first."""
    where: sql.Composable = sql.SQL("r.living_alone AND r.grid_id IS NOT NULL")
    if scope is not None:
        where = sql.SQL("{} AND r.grid_id = ANY(%(scope)s)").format(where)
    query = sql.SQL(
        """
        SELECT r.id, r.name, r.address, r.phone, r.lon, r.lat, r.grid_id, g.code AS grid_code,
            v.observed_at AS last_visit_at, v.needs AS last_needs,
            NOT EXISTS (
                SELECT 1 FROM patrol_checkins c
                WHERE c.resident_id = r.id AND c.kind = 'visit'
                  AND c.status IN ('ok', 'concern')
                  AND c.observed_at > %(due_since)s AND c.observed_at <= %(upto)s
            ) AS due
        FROM residents r
        LEFT JOIN grids g ON g.id = r.grid_id
        LEFT JOIN LATERAL (
            SELECT c.observed_at, c.needs FROM patrol_checkins c
            WHERE c.resident_id = r.id AND c.kind = 'visit' AND c.observed_at <= %(upto)s
            ORDER BY c.observed_at DESC LIMIT 1
        ) v ON TRUE
        WHERE {}
        ORDER BY due DESC, v.observed_at NULLS FIRST, r.id
        LIMIT %(limit)s
        """
    ).format(where)
    upto = now + VISIT_CLOCK_SLACK
    params = {"scope": scope, "due_since": now - every, "upto": upto, "limit": limit}
    with conn.cursor(row_factory=class_row(ResidentVisit)) as cur:
        return cur.execute(query, params).fetchall()
