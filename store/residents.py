"""Residents, their devices and grid workers: upserts by id, each import in one transaction;
the residents layer and the homes the maps draw."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import InputFileError, NotFound, listed
from gridwatch.model.rows import RegisterRow, ResidentRow, WorkerRow
from gridwatch.store.db import refused_as_input_error
from gridwatch.store.filters import Filters, where_filters
from gridwatch.store.grids import (
    LeafGrids,
    PointGrids,
    grid_codes,
    load_leaf_grids,
    point_grids,
    unknown_grid_note,
)
from gridwatch.store.paging import Listing, Page


def upsert_residents(
    conn: psycopg.Connection,
    rows: Sequence[ResidentRow],
    grid_ids: Sequence[PointGrids | int | None],
    *,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update residents and their meter and sensors in one transaction; returns
    (inserted, updated). A row the database refuses rolls back all of them. Each home's grids
    as `place_in_grids` found them (a bare grid id: no police grid)."""
    inserted = updated = 0
    with conn.transaction(), conn.cursor() as cur:
        for done, (row, grids) in enumerate(zip(rows, grid_ids, strict=True), start=1):
            with refused_as_input_error(source, f"row {row.row or done + 1}"):
                created = _upsert_resident(cur, row, point_grids(grids))
            inserted += created
            updated += not created
            if progress:
                progress(done, len(rows))
    return inserted, updated


def _upsert_resident(cur: psycopg.Cursor, row: ResidentRow, grids: PointGrids) -> bool:
    """One resident with its devices; True when the resident is new."""
    cur.execute(
        """
        INSERT INTO residents (id, name, address, phone, lat, lon, grid_id, living_alone,
                               police_grid_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, address = EXCLUDED.address, phone = EXCLUDED.phone,
            lat = EXCLUDED.lat, lon = EXCLUDED.lon, grid_id = EXCLUDED.grid_id,
            living_alone = EXCLUDED.living_alone, forgotten_at = NULL,
            police_grid_id = EXCLUDED.police_grid_id, updated_at = now()
        RETURNING (xmax = 0)
        """,
        (
            row.resident_id,
            row.name,
            row.address,
            row.phone,
            row.lat,
            row.lon,
            grids.grid_id,
            row.living_alone,
            grids.police_grid_id,
        ),
    )
    [(created,)] = cur.fetchall()
    devices = [("sensor", sensor) for sensor in row.sensor_ids]
    if row.meter_id:
        devices.append(("meter", row.meter_id))
    # Devices no longer listed for this resident are detached from them.
    cur.execute(
        "UPDATE devices SET resident_id = NULL, updated_at = now() "
        "WHERE resident_id = %s AND NOT (kind || '/' || id = ANY(%s))",
        (row.resident_id, [f"{kind}/{did}" for kind, did in devices]),
    )
    for kind, device_id in devices:
        cur.execute(
            """
            INSERT INTO devices (kind, id, resident_id) VALUES (%s, %s, %s)
            ON CONFLICT (kind, id) DO UPDATE
                SET resident_id = EXCLUDED.resident_id, updated_at = now()
            """,
            (kind, device_id, row.resident_id),
        )
    return created


def upsert_workers(
    conn: psycopg.Connection,
    workers: Sequence[WorkerRow],
    grid_ids: Sequence[Sequence[int]],
    *,
    source: str,
) -> tuple[int, int]:
    """Insert or update grid workers and the grids each is responsible for, in one
    transaction; returns (inserted, updated)."""
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        for done, (row, grids) in enumerate(zip(workers, grid_ids, strict=True), start=1):
            with refused_as_input_error(source, f"row {row.row or done + 1}"):
                cur.execute(
                    """
                    INSERT INTO workers (id, name, phone, grid_id) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
                        grid_id = EXCLUDED.grid_id, updated_at = now()
                    RETURNING xmax = 0
                    """,
                    (row.worker_id, row.name, row.phone, grids[0] if grids else None),
                )
                [(is_new,)] = cur.fetchall()
                inserted += is_new
                cur.execute("DELETE FROM worker_grids WHERE worker_id = %s", (row.worker_id,))
                cur.executemany(
                    "INSERT INTO worker_grids (worker_id, grid_id) VALUES (%s, %s)",
                    [(row.worker_id, grid) for grid in grids],
                )
    return inserted, len(workers) - inserted


def place_in_grids(
    conn: psycopg.Connection, rows: Sequence[RegisterRow], *, source: str
) -> tuple[list[PointGrids], int]:
    """Each resident's (or place's) grids: the management grid by grid_code when given, else
    by position, the police grid by position (none without one); (grids, outside count).

    An unknown grid code is an error naming the row, and so is a grid code whose grid lies
    more than CONTRADICTION_M from the row's position (one of the two is wrong, and the home's
    alerts would go to the wrong grid worker); a position outside every grid is kept with no
    grid, as everywhere in gridwatch.
    """
    codes = grid_codes(conn)
    leaves = load_leaf_grids(conn)
    conn.commit()
    named = [row.grid_code for row in rows if row.grid_code and row.grid_code not in codes]
    unknown = [
        f"row {row.row or number}: grid_code {row.grid_code!r} is not an imported grid"
        for number, row in enumerate(rows, start=2)
        if row.grid_code and row.grid_code not in codes
    ]
    if unknown:
        raise InputFileError(
            f"{source}: {len(unknown)} rows name unknown grids: {listed(unknown)}"
            + unknown_grid_note(conn, named)
        )
    # (row index, lon, lat) of the rows with a position (a row gives both or neither).
    located = [
        (i, row.lon, row.lat)
        for i, row in enumerate(rows)
        if row.lon is not None and row.lat is not None
    ]
    lon = np.array([x for _, x, _ in located], dtype=float)
    lat = np.array([y for _, _, y in located], dtype=float)
    placed = leaves.place(lon, lat)
    assigned = np.array([-1 if p.grid_id is None else p.grid_id for p in placed], dtype=np.int64)
    _refuse_far_contradictions(conn, rows, located, assigned, leaves, codes, source)
    grids = [PointGrids(codes[row.grid_code][0] if row.grid_code else None) for row in rows]
    outside = 0
    for (i, _, _), found in zip(located, placed, strict=True):
        if rows[i].grid_code:
            grids[i] = grids[i]._replace(police_grid_id=found.police_grid_id)
        else:
            grids[i] = found
            outside += found.grid_id is None
    return grids, outside


def resident_grids(conn: psycopg.Connection, ids: Iterable[str]) -> dict[str, PointGrids]:
    """The grids of each of these residents that exists (None: outside every grid)."""
    rows = conn.execute(
        "SELECT id, grid_id, police_grid_id FROM residents WHERE id = ANY(%s)",
        (sorted(set(ids)),),
    ).fetchall()
    return {rid: PointGrids(grid, police) for rid, grid, police in rows}


def worker_grids(conn: psycopg.Connection, ids: Iterable[str]) -> dict[str, frozenset[int]]:
    """The grids of each of these registered workers (empty: given none)."""
    rows = conn.execute(
        """
        SELECT w.id, coalesce(array_agg(wg.grid_id) FILTER (WHERE wg.grid_id IS NOT NULL), '{}')
        FROM workers w LEFT JOIN worker_grids wg ON wg.worker_id = w.id
        WHERE w.id = ANY(%s) GROUP BY w.id
        """,
        (sorted(set(ids)),),
    ).fetchall()
    return {worker: frozenset(grids) for worker, grids in rows}


CONTRADICTION_M = 100.0
"""How far a row's position may lie outside the grid its grid_code names (a geocoded address
often falls a few metres across a border) before the two are taken to contradict."""


def _refuse_far_contradictions(
    conn: psycopg.Connection,
    rows: Sequence[RegisterRow],
    located: Sequence[tuple[int, float, float]],
    assigned: np.ndarray,
    leaves: LeafGrids,
    codes: dict[str, tuple[int, str]],
    source: str,
) -> None:
    # (row index, its position, the grid it names, the grid it lies in) where the two differ
    both: list[tuple[int, float, float, str, int]] = []
    for (i, lon, lat), g in zip(located, assigned, strict=True):
        code = rows[i].grid_code
        if code and codes[code][0] != int(g):
            both.append((i, lon, lat, code, int(g)))
    if not both:
        return
    named = {code for _, _, _, code, _ in both}
    shapes = {
        code: shapely.from_wkb(bytes(wkb))
        for code, wkb in conn.execute(
            "SELECT code, geometry FROM grids WHERE code = ANY(%s)", [list(named)]
        )
    }
    conn.commit()
    problems = []
    for i, lon, lat, code, gid in both:
        row = rows[i]
        metres = _metres_outside(shapes[code], lon, lat)
        if metres > CONTRADICTION_M:
            lies_in = f"grid {leaves.index.code_of(gid)}" if gid >= 0 else "no grid"
            number = row.row or i + 2
            problems.append(
                f"row {number}: grid_code {row.grid_code!r} contradicts lat/lon, which lie in "
                f"{lies_in}, {metres:,.0f} m outside {row.grid_code}; correct one of them"
            )
    if problems:
        raise InputFileError(f"{source}: {listed(problems)}")


def _metres_outside(grid: shapely.Geometry, lon: float, lat: float) -> float:
    """Distance from the point to the grid in metres (equirectangular around the point)."""
    scale = np.array([111_320.0 * np.cos(np.radians(lat)), 110_574.0])
    local = shapely.transform(grid, lambda xy: (xy - (lon, lat)) * scale)
    return float(shapely.distance(local, shapely.Point(0.0, 0.0)))


@dataclass(frozen=True, slots=True)
class ResidentHome:
    """A resident and where they live: what every view of one (the layer, the maps) begins
    with; the personal fields are masked on the way out, not here."""

    id: str
    name: str | None
    address: str | None
    phone: str | None
    lon: float | None
    lat: float | None
    grid_id: int | None


@dataclass(frozen=True, slots=True)
class ResidentRecord(ResidentHome):
    grid_code: str | None
    living_alone: bool
    open_alerts: list[str]
    alert_status: str | None
    absent: bool
    last_visit_at: datetime | None
    awaiting_installation: bool  # a meter imported, never yet heard from (未接入)
    police_grid_id: int | None = None


_RESIDENTS = Listing(
    ResidentRecord,
    sql.SQL(
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
      AS awaiting_installation,
    r.police_grid_id
    """
    ),
    sql.SQL("residents r LEFT JOIN grids g ON g.id = r.grid_id"),
    sql.SQL("r.id"),
    sql.SQL("r.id > %(after)s"),
)


def resident_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    now: datetime,
    limit: int,
    after: str | None = None,
    alerting: bool | None = None,
) -> Page[ResidentRecord]:
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
    keyset = None if after is None else {"after": after}
    return _RESIDENTS.page(conn, where, params, after=keyset, limit=limit)


def get_resident(conn: psycopg.Connection, resident_id: str, *, now: datetime) -> ResidentRecord:
    params = {"id": resident_id, "now": now}
    return _RESIDENTS.one(conn, sql.SQL("r.id = %(id)s"), params, f"no resident {resident_id!r}")


def resident_grid(conn: psycopg.Connection, resident_id: str) -> int | None:
    """The grid of a resident; NotFound if there is no such resident."""
    row = conn.execute("SELECT grid_id FROM residents WHERE id = %s", (resident_id,)).fetchone()
    if row is None:
        raise NotFound(f"no resident {resident_id!r}")
    return row[0]


@dataclass(frozen=True, slots=True)
class MapResident(ResidentHome):
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


def awaiting_installation(conn: psycopg.Connection, *, scope: list[int] | None) -> int:
    """Homes in `scope` whose meter was imported and never heard from (未接入): the scope's
    own count, which the desk's sum of `meters_awaiting` per grid must equal (tested)."""
    where, params = where_filters(Filters(scope=scope), alias="r")
    [(count,)] = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM residents r WHERE {} AND EXISTS (SELECT 1 FROM devices d "
            "WHERE d.resident_id = r.id AND d.kind = 'meter' "
            "AND NOT EXISTS (SELECT 1 FROM meter_readings m WHERE m.meter_id = d.id))"
        ).format(sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE")),
        params,
    ).fetchall()
    return count


def meters_awaiting(conn: psycopg.Connection) -> dict[str, tuple[str, int | None]]:
    """The meters `awaiting_installation` counts homes by (never heard from): meter id →
    (resident, the home's grid)."""
    rows = conn.execute(
        "SELECT d.id, r.id, r.grid_id FROM devices d JOIN residents r ON r.id = d.resident_id "
        "WHERE d.kind = 'meter' "
        "AND NOT EXISTS (SELECT 1 FROM meter_readings m WHERE m.meter_id = d.id)"
    ).fetchall()
    return {meter: (resident, grid_id) for meter, resident, grid_id in rows}


def meters_heard(conn: psycopg.Connection, meter_ids: Sequence[str]) -> set[str]:
    """Those of `meter_ids` with a reading (looked up for these meters only)."""
    rows = conn.execute(
        "SELECT id FROM unnest(%s::text[]) AS id "
        "WHERE EXISTS (SELECT 1 FROM meter_readings m WHERE m.meter_id = id)",
        (list(meter_ids),),
    ).fetchall()
    return {meter for (meter,) in rows}
