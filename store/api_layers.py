"""The API's map layers as queries: grids with live counts, hazards, patrol check-ins, alerts,
residents; filtered by the caller's grids, a bounding box, a time interval, and paged by key.

Filters (store/filters.py) are fixed SQL fragments with parameters; nothing a caller sends
becomes SQL text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import class_row
from shapely.geometry.base import BaseGeometry

from gridwatch.cases.hazards import OPEN_STATUSES
from gridwatch.errors import NotFound
from gridwatch.model.records import PatrolCheckin
from gridwatch.store.filters import Filters, all_of, where_columns, where_filters
from gridwatch.store.hazards import Hazard

_VERSION = "SELECT count(*), max(updated_at) FROM grids"


# -- grids --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridRecord:
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    geometry: BaseGeometry
    bbox: tuple[float, float, float, float]
    area_m2: float


@dataclass(frozen=True, slots=True)
class GridCatalog:
    """Every grid with its shape, loaded once per change of the grids table."""

    grids: tuple[GridRecord, ...]
    version: tuple
    by_id: dict[int, GridRecord] = field(repr=False)
    by_code: dict[str, GridRecord] = field(repr=False)
    children: dict[int | None, list[int]] = field(repr=False)

    def subtree(self, grid_id: int) -> list[int]:
        """The grid and every grid below it."""
        found, stack = [], [grid_id]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(self.children.get(node, ()))
        return found

    def ancestors(self, grid_id: int) -> list[int]:
        """The grids above `grid_id`, nearest first."""
        chain, node = [], self.by_id[grid_id].parent_id
        while node is not None and node in self.by_id and node not in chain:
            chain.append(node)
            node = self.by_id[node].parent_id
        return chain

    def leaves_under(self, grid_id: int) -> int:
        return sum(1 for g in self.subtree(grid_id) if not self.children.get(g))


def grids_version(conn: psycopg.Connection) -> tuple:
    [version] = conn.execute(_VERSION).fetchall()
    return version


def load_grid_catalog(conn: psycopg.Connection) -> GridCatalog:
    """Every grid, its geometry decoded from WKB once."""
    version = grids_version(conn)
    rows = conn.execute(
        "SELECT id, code, name, level, parent_id, geometry, min_lon, min_lat, max_lon, max_lat, "
        "area_m2 FROM grids ORDER BY code"
    ).fetchall()
    geometries = shapely.from_wkb([bytes(r[5]) for r in rows]) if rows else []
    grids = tuple(
        GridRecord(r[0], r[1], r[2], r[3], r[4], geom, (r[6], r[7], r[8], r[9]), r[10])
        for r, geom in zip(rows, geometries, strict=True)
    )
    children: dict[int | None, list[int]] = {}
    for grid in grids:
        children.setdefault(grid.parent_id, []).append(grid.id)
    return GridCatalog(
        grids,
        version,
        {g.id: g for g in grids},
        {g.code: g for g in grids},
        children,
    )


@dataclass(slots=True)
class GridCounts:
    residents: int = 0
    open_alerts: int = 0
    open_hazards: int = 0
    overdue_hazards: int = 0
    checkins: int = 0

    def add(self, other: GridCounts) -> None:
        self.residents += other.residents
        self.open_alerts += other.open_alerts
        self.open_hazards += other.open_hazards
        self.overdue_hazards += other.overdue_hazards
        self.checkins += other.checkins


def grid_counts(
    conn: psycopg.Connection,
    catalog: GridCatalog,
    *,
    now: datetime,
    checkins_from: datetime,
    checkins_until: datetime,
) -> dict[int, GridCounts]:
    """Live counts per grid, each grid's including everything below it."""
    rows = conn.execute(
        """
        SELECT grid_id, 'residents', count(*) FROM residents
            WHERE grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'open_alerts', count(*) FROM alerts
            WHERE status <> 'resolved' AND grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'open_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'overdue_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND coalesce(due_at, deadline_at) <= %(now)s
              AND grid_id IS NOT NULL
            GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'checkins', count(*) FROM patrol_checkins
            WHERE observed_at >= %(from)s AND observed_at < %(until)s AND grid_id IS NOT NULL
            GROUP BY grid_id
        """,
        {
            "open": sorted(OPEN_STATUSES),
            "now": now,
            "from": checkins_from,
            "until": checkins_until,
        },
    ).fetchall()
    own: dict[int, GridCounts] = {}
    for grid_id, what, count in rows:
        setattr(own.setdefault(grid_id, GridCounts()), what, count)
    totals = {grid.id: GridCounts() for grid in catalog.grids}
    for grid_id, counts in own.items():
        if grid_id not in totals:
            continue
        totals[grid_id].add(counts)
        for ancestor in catalog.ancestors(grid_id):
            totals[ancestor].add(counts)
    return totals


def next_overdue(conn: psycopg.Connection, *, now: datetime) -> datetime | None:
    """When the next open hazard falls overdue (after `now`); None if none will."""
    [(at,)] = conn.execute(
        "SELECT min(coalesce(due_at, deadline_at)) FROM hazard_reports "
        "WHERE status = ANY(%s) AND coalesce(due_at, deadline_at) > %s",
        (sorted(OPEN_STATUSES), now),
    ).fetchall()
    return at


# -- pages of point layers ------------------------------------------------------------------


Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    rows: list[Row]
    matched: int
    more: bool  # rows follow the last one of this page


def _page(
    conn: psycopg.Connection,
    row_type: type[Row],
    select: sql.Composable,
    from_: sql.Composable,
    where: list[sql.Composable],
    params: dict,
    *,
    order: sql.Composable,
    after: sql.Composable | None,
    limit: int,
) -> Page[Row]:
    condition = all_of(where)
    [(matched,)] = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(from_, condition), params
    ).fetchall()
    if after is not None:
        condition = sql.SQL("{} AND {}").format(condition, after)
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %(limit)s").format(
        select, from_, condition, order
    )
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        rows = cur.execute(query, {**params, "limit": limit + 1}).fetchall()
    return Page(rows[:limit], matched, len(rows) > limit)


_HAZARD_SELECT = sql.SQL(
    "h.id, h.reporter_id, h.observed_at, h.received_at, h.lon, h.lat, h.grid_id, "
    "g.code AS grid_code, h.category, h.severity, h.description, h.photo_urls, h.status, "
    "h.level, h.assignee, h.deadline_at, h.due_at, h.updated_at"
)
_HAZARD_FROM = sql.SQL("hazard_reports h LEFT JOIN grids g ON g.id = h.grid_id")


def hazard_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    statuses: Sequence[str] | None = None,
    severities: Sequence[str] | None = None,
    level: str | None = None,
) -> Page[Hazard]:
    """Hazards newest first (by received time)."""
    where, params = where_filters(filters, alias="h", time_column="observed_at")
    where_columns(where, params, "h", status=statuses, severity=severities, level=level)
    keyset = None
    if after is not None:
        keyset = sql.SQL("(h.received_at, h.id) < (%(after_t)s, %(after_id)s)")
        params.update(after_t=after[0], after_id=after[1])
    return _page(
        conn,
        Hazard,
        _HAZARD_SELECT,
        _HAZARD_FROM,
        where,
        params,
        order=sql.SQL("h.received_at DESC, h.id DESC"),
        after=keyset,
        limit=limit,
    )


def all_hazards(conn: psycopg.Connection) -> list[Hazard]:
    """Every hazard in `hazard_page`'s order."""
    query = sql.SQL("SELECT {} FROM {} ORDER BY h.received_at DESC, h.id DESC").format(
        _HAZARD_SELECT, _HAZARD_FROM
    )
    with conn.cursor(row_factory=class_row(Hazard)) as cur:
        return cur.execute(query).fetchall()


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


_CHECKIN_SELECT = sql.SQL(
    "c.worker_id, c.source, c.observed_at, c.received_at, c.lon, c.lat, c.accuracy_m, "
    "c.grid_id, g.code AS grid_code, c.kind, c.resident_id, c.status, c.note"
)
_CHECKIN_FROM = sql.SQL("patrol_checkins c LEFT JOIN grids g ON g.id = c.grid_id")


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
        keyset = sql.SQL(
            "(c.observed_at, c.worker_id, c.source) < (%(after_t)s, %(after_w)s, %(after_s)s)"
        )
        params.update(after_t=after[0], after_w=after[1], after_s=after[2])
    return _page(
        conn,
        CheckinRow,
        _CHECKIN_SELECT,
        _CHECKIN_FROM,
        where,
        params,
        order=sql.SQL("c.observed_at DESC, c.worker_id DESC, c.source DESC"),
        after=keyset,
        limit=limit,
    )


def get_checkin(
    conn: psycopg.Connection, *, worker_id: str, source: str, observed_at: datetime
) -> CheckinRow:
    with conn.cursor(row_factory=class_row(CheckinRow)) as cur:
        row = cur.execute(
            sql.SQL(
                "SELECT {} FROM {} WHERE c.worker_id = %s AND c.source = %s AND c.observed_at = %s"
            ).format(_CHECKIN_SELECT, _CHECKIN_FROM),
            (worker_id, source, observed_at),
        ).fetchone()
    if row is None:
        raise NotFound("no such check-in")
    return row


def insert_checkin(
    conn: psycopg.Connection, checkin: PatrolCheckin, *, grid_id: int | None
) -> tuple[CheckinRow, bool]:
    """Store a check-in once (same worker, source and time: the same check-in)."""
    with conn.transaction():
        created = conn.execute(
            """
            INSERT INTO patrol_checkins (worker_id, observed_at, received_at, source, lon, lat,
                accuracy_m, grid_id, kind, resident_id, status, note, device, battery)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
                checkin.device,
                checkin.battery,
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
class AlertRow:
    id: int
    resident_id: str | None
    kind: str
    grid_id: int | None
    grid_code: str | None
    status: str
    severity: str
    level: str
    since: datetime
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    lon: float | None
    lat: float | None
    name: str | None
    phone: str | None
    address: str | None


_ALERT_SELECT = sql.SQL(
    "a.id, a.resident_id, a.kind, a.grid_id, g.code AS grid_code, a.status, a.severity, "
    "a.level, a.since, a.opened_at, a.updated_at, a.acknowledged_at, a.acknowledged_by, "
    "a.resolved_at, a.resolved_by, a.resolution, r.lon, r.lat, r.name, r.phone, r.address"
)
_ALERT_FROM = sql.SQL(
    "alerts a LEFT JOIN residents r ON r.id = a.resident_id LEFT JOIN grids g ON g.id = a.grid_id"
)


def alert_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: int | None = None,
    statuses: Sequence[str] | None = None,
    level: str | None = None,
    kind: str | None = None,
) -> Page[AlertRow]:
    """Alerts newest first; positions are the residents' homes."""
    # An alert has no position of its own: it is where the resident lives.
    where, params = where_filters(filters, alias="a", time_column="opened_at", position_alias="r")
    where_columns(where, params, "a", status=statuses, level=level, kind=kind)
    keyset = None
    if after is not None:
        keyset = sql.SQL("a.id < %(after)s")
        params["after"] = after
    return _page(
        conn,
        AlertRow,
        _ALERT_SELECT,
        _ALERT_FROM,
        where,
        params,
        order=sql.SQL("a.id DESC"),
        after=keyset,
        limit=limit,
    )


def get_alert(conn: psycopg.Connection, alert_id: int) -> AlertRow:
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        row = cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE a.id = %s").format(_ALERT_SELECT, _ALERT_FROM),
            (alert_id,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row


def alerts_by_ids(conn: psycopg.Connection, alert_ids: Sequence[int]) -> dict[int, AlertRow]:
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        rows = cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE a.id = ANY(%s)").format(_ALERT_SELECT, _ALERT_FROM),
            (list(alert_ids),),
        ).fetchall()
    return {row.id: row for row in rows}


@dataclass(frozen=True, slots=True)
class ResidentRow:
    id: str
    name: str | None
    address: str | None
    phone: str | None
    lon: float | None
    lat: float | None
    grid_id: int | None
    grid_code: str | None
    living_alone: bool
    open_alerts: list[str]
    alert_status: str | None
    absent: bool
    last_visit_at: datetime | None
    awaiting_installation: bool  # a meter imported, never yet heard from (未接入)


_RESIDENT_SELECT = sql.SQL(
    """
    r.id, r.name, r.address, r.phone, r.lon, r.lat, r.grid_id, g.code AS grid_code,
    r.living_alone,
    coalesce((SELECT array_agg(a.kind ORDER BY a.kind) FROM alerts a
              WHERE a.resident_id = r.id AND a.status <> 'resolved'), '{}') AS open_alerts,
    (SELECT CASE WHEN bool_or(a.status = 'open') THEN 'open' ELSE 'acknowledged' END
       FROM alerts a WHERE a.resident_id = r.id AND a.status <> 'resolved'
       HAVING count(*) > 0) AS alert_status,
    EXISTS (SELECT 1 FROM absences b WHERE b.resident_id = r.id
            AND b.starts_at <= %(now)s AND b.ends_at > %(now)s) AS absent,
    (SELECT max(c.observed_at) FROM patrol_checkins c
      WHERE c.resident_id = r.id AND c.kind = 'visit') AS last_visit_at,
    EXISTS (SELECT 1 FROM devices d WHERE d.resident_id = r.id AND d.kind = 'meter'
            AND NOT EXISTS (SELECT 1 FROM meter_readings m WHERE m.meter_id = d.id))
      AS awaiting_installation
    """
)
_RESIDENT_FROM = sql.SQL("residents r LEFT JOIN grids g ON g.id = r.grid_id")


def resident_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    now: datetime,
    limit: int,
    after: str | None = None,
    alerting: bool | None = None,
) -> Page[ResidentRow]:
    """Residents by id, with their alert state, whether they are away, their last visit."""
    where, params = where_filters(filters, alias="r")
    params["now"] = now
    if alerting is not None:
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = r.id "
                "AND a.status <> 'resolved') = %(alerting)s"
            )
        )
        params["alerting"] = alerting
    keyset = None
    if after is not None:
        keyset = sql.SQL("r.id > %(after)s")
        params["after"] = after
    return _page(
        conn,
        ResidentRow,
        _RESIDENT_SELECT,
        _RESIDENT_FROM,
        where,
        params,
        order=sql.SQL("r.id"),
        after=keyset,
        limit=limit,
    )


def get_resident(conn: psycopg.Connection, resident_id: str, *, now: datetime) -> ResidentRow:
    with conn.cursor(row_factory=class_row(ResidentRow)) as cur:
        row = cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE r.id = %(id)s").format(
                _RESIDENT_SELECT, _RESIDENT_FROM
            ),
            {"id": resident_id, "now": now},
        ).fetchone()
    if row is None:
        raise NotFound(f"no resident {resident_id!r}")
    return row


def resident_grid(conn: psycopg.Connection, resident_id: str) -> int | None:
    """The grid of a resident; NotFound if there is no such resident."""
    row = conn.execute("SELECT grid_id FROM residents WHERE id = %s", (resident_id,)).fetchone()
    if row is None:
        raise NotFound(f"no resident {resident_id!r}")
    return row[0]


# -- absences --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbsenceRow:
    id: int
    resident_id: str
    grid_id: int | None
    starts_at: datetime
    ends_at: datetime
    note: str | None
    created_by: str | None
    created_at: datetime


_ABSENCE_SELECT = sql.SQL(
    "SELECT b.id, b.resident_id, r.grid_id, b.starts_at, b.ends_at, b.note, b.created_by, "
    "b.created_at FROM absences b JOIN residents r ON r.id = b.resident_id"
)


def absence_list(
    conn: psycopg.Connection,
    *,
    scope: list[int] | None,
    resident_id: str | None,
    active_at: datetime | None,
    limit: int,
) -> list[AbsenceRow]:
    where, params = where_filters(Filters(scope=scope), alias="r")
    params["limit"] = limit
    if resident_id is not None:
        where.append(sql.SQL("b.resident_id = %(resident)s"))
        params["resident"] = resident_id
    if active_at is not None:
        where.append(sql.SQL("b.starts_at <= %(at)s AND b.ends_at > %(at)s"))
        params["at"] = active_at
    query = sql.SQL("{} WHERE {} ORDER BY b.starts_at DESC, b.id DESC LIMIT %(limit)s").format(
        _ABSENCE_SELECT, all_of(where)
    )
    with conn.cursor(row_factory=class_row(AbsenceRow)) as cur:
        return cur.execute(query, params).fetchall()


def get_absence(conn: psycopg.Connection, absence_id: int) -> AbsenceRow:
    with conn.cursor(row_factory=class_row(AbsenceRow)) as cur:
        row = cur.execute(
            sql.SQL("{} WHERE b.id = %s").format(_ABSENCE_SELECT), (absence_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no absence {absence_id}")
    return row


def delete_absence(conn: psycopg.Connection, absence_id: int) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM absences WHERE id = %s", (absence_id,))


# -- patrol coverage -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitCounts:
    grid_id: int
    residents_due: int
    visits_made: int
    due_visited: int


def visit_counts(
    conn: psycopg.Connection, *, day_start: datetime, day_end: datetime, every: timedelta
) -> dict[int, VisitCounts]:
    """Per grid: residents due a home visit at the start of the day (no visit that found them
    in `every`), residents visited that day, and due residents visited."""
    rows = conn.execute(
        """
        WITH state AS (
            SELECT r.grid_id,
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
            FROM residents r WHERE r.grid_id IS NOT NULL
        )
        SELECT grid_id, count(*) FILTER (WHERE due), count(*) FILTER (WHERE visited),
               count(*) FILTER (WHERE due AND found)
        FROM state GROUP BY grid_id
        """,
        {"due_since": day_start - every, "start": day_start, "end": day_end},
    ).fetchall()
    return {row[0]: VisitCounts(*row) for row in rows}


def local_day_bounds(day: date, zone) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of `day`."""
    from datetime import time

    start = datetime.combine(day, time(), zone)
    return start, datetime.combine(day + timedelta(days=1), time(), zone)


# -- what the map pages draw -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapResident:
    id: str
    name: str | None
    address: str | None
    phone: str | None
    lon: float | None
    lat: float | None
    grid_id: int | None
    alert_status: str | None
    alert_kinds: list[str]
    absent: bool


def map_residents(
    conn: psycopg.Connection, *, scope: list[int] | None, now: datetime
) -> list[MapResident]:
    """Every resident in scope with their alert state, in one pass (no per-row subqueries)."""
    query = sql.SQL(
        """
        WITH open_alerts AS (
            SELECT resident_id,
                   CASE WHEN bool_or(status = 'open') THEN 'open' ELSE 'acknowledged' END AS st,
                   array_agg(DISTINCT kind ORDER BY kind) AS kinds
            FROM alerts WHERE status <> 'resolved' GROUP BY resident_id
        ), away AS (
            SELECT DISTINCT resident_id FROM absences
            WHERE starts_at <= %(now)s AND ends_at > %(now)s
        )
        SELECT r.id, r.name, r.address, r.phone, r.lon, r.lat, r.grid_id,
               o.st AS alert_status, coalesce(o.kinds, '{{}}') AS alert_kinds,
               (w.resident_id IS NOT NULL) AS absent
        FROM residents r
        LEFT JOIN open_alerts o ON o.resident_id = r.id
        LEFT JOIN away w ON w.resident_id = r.id
        WHERE r.lon IS NOT NULL AND {}
        ORDER BY r.id
        """
    ).format(sql.SQL("r.grid_id = ANY(%(scope)s)") if scope is not None else sql.SQL("TRUE"))
    with conn.cursor(row_factory=class_row(MapResident)) as cur:
        return cur.execute(query, {"now": now, "scope": scope}).fetchall()


def map_hazards(
    conn: psycopg.Connection, *, scope: list[int] | None, grid_ids: list[int] | None = None
) -> list[Hazard]:
    """Hazards not yet closed, in scope."""
    where, params = where_filters(Filters(scope=scope, grid_ids=grid_ids), alias="h")
    where.insert(0, sql.SQL("h.status <> 'closed'"))
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY h.received_at").format(
        _HAZARD_SELECT, _HAZARD_FROM, all_of(where)
    )
    with conn.cursor(row_factory=class_row(Hazard)) as cur:
        return cur.execute(query, params).fetchall()
