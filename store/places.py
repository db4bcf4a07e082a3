"""Places a community inspects (安全巡查): the register (upserts by id, each import in one
transaction), inspections as they are stored (the place's clock, a hazard per finding), the
places layer, the overdue inspections the desk counts, and their escalation."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from gridwatch.cases.inspections import (
    DUE_AHEAD,
    KIND,
    InspectionClock,
    InspectionEscalation,
    finding_reports,
)
from gridwatch.model.records import HazardReport, PatrolCheckin
from gridwatch.model.rows import PlaceRow
from gridwatch.model.vocabulary import LEVELS
from gridwatch.store.buildings import Home
from gridwatch.store.db import refused_as_input_error
from gridwatch.store.filters import Filters, all_of, where_columns, where_filters, where_given
from gridwatch.store.grids import PointGrids, point_grids
from gridwatch.store.hazards import open_hazards
from gridwatch.store.paging import Listing, Page, fetch_rows

_LOCK_KEY = 0x67770023  # one inspection escalation at a time across `gridwatch alerts` processes
# A place's period of days as hours: a day is 24 hours whatever the session's zone, as
# `cases.inspections.next_due` counts it.
_PERIOD = sql.SQL("{} * interval '24 hours'")


def upsert_places(
    conn: psycopg.Connection,
    rows: Sequence[PlaceRow],
    grid_ids: Sequence[PointGrids | int | None],
    homes: Sequence[Home],
    *,
    source: str,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update places in one transaction; returns (inserted, updated). A new place's
    first inspection is due a period after `now`; a changed period moves the next due time
    (from the last inspection, or the registration) and brings an escalated inspection back
    to its grid. Each place's grids as `store.residents.place_in_grids` found them (a bare
    grid id: no police grid), its building and unit as `store.buildings.place_homes` did. A
    row the database refuses rolls back all of them."""
    period = _PERIOD.format(sql.Identifier("excluded", "inspect_every_days"))
    since = sql.SQL("coalesce(places.last_inspected_at, places.registered_at)")
    statement = sql.SQL(
        """
        INSERT INTO places (id, name, kind, address, lon, lat, grid_id, police_grid_id,
            building_id, unit_id, contact, phone, inspect_every_days, registered_at, next_due_at)
        VALUES (%(id)s, %(name)s, %(kind)s, %(address)s, %(lon)s, %(lat)s, %(grid_id)s,
            %(police_grid_id)s, %(building_id)s, %(unit_id)s, %(contact)s, %(phone)s,
            %(every)s, %(now)s, %(now)s + {first})
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, kind = EXCLUDED.kind, address = EXCLUDED.address,
            lon = EXCLUDED.lon, lat = EXCLUDED.lat, grid_id = EXCLUDED.grid_id,
            police_grid_id = EXCLUDED.police_grid_id,
            building_id = EXCLUDED.building_id, unit_id = EXCLUDED.unit_id,
            contact = EXCLUDED.contact, phone = EXCLUDED.phone,
            inspect_every_days = EXCLUDED.inspect_every_days,
            next_due_at = {since} + {period},
            level = CASE WHEN {since} + {period} = places.next_due_at THEN places.level
                         ELSE 'grid' END,
            updated_at = %(now)s
        RETURNING (xmax = 0)
        """
    ).format(since=since, period=period, first=_PERIOD.format(sql.Placeholder("every")))
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        for done, (row, grids, home) in enumerate(zip(rows, grid_ids, homes, strict=True), 1):
            grid_id, police_grid_id = point_grids(grids)
            values = {
                "id": row.place_id,
                "name": row.name,
                "kind": row.kind,
                "address": row.address,
                "lon": row.lon,
                "lat": row.lat,
                "grid_id": grid_id,
                "police_grid_id": police_grid_id,
                "building_id": home.building_id,
                "unit_id": home.unit_id,
                "contact": row.contact,
                "phone": row.phone,
                "every": row.inspect_every_days,
                "now": now,
            }
            with refused_as_input_error(source, f"row {row.row or done + 1}"):
                [(created,)] = cur.execute(statement, values).fetchall()
            inserted += created
            if progress:
                progress(done, len(rows))
    return inserted, len(rows) - inserted


@dataclass(frozen=True, slots=True)
class PlaceSite:
    """Where a place is: its grid in each system and its point (None when the register gives
    only a grid)."""

    grid_id: int | None
    lon: float | None
    lat: float | None
    police_grid_id: int | None = None

    @property
    def grids(self) -> PointGrids:
        return PointGrids(self.grid_id, self.police_grid_id)


def place_sites(conn: psycopg.Connection, ids: Iterable[str]) -> dict[str, PlaceSite]:
    """The site of each of these places that exists."""
    rows = conn.execute(
        "SELECT id, grid_id, lon, lat, police_grid_id FROM places WHERE id = ANY(%s)",
        (sorted(set(ids)),),
    ).fetchall()
    return {place: PlaceSite(*site) for place, *site in rows}


@dataclass(frozen=True, slots=True)
class Inspected:
    """What storing inspections did: the hazards of their findings, each with its grids (new
    or stored before), and how many of those were new."""

    findings: list[tuple[HazardReport, PointGrids]]
    opened: int


def record_inspections(
    conn: psycopg.Connection,
    checkins: Sequence[PatrolCheckin],
    *,
    deadlines: Mapping[str, timedelta],
) -> Inspected:
    """What stored inspection check-ins (others are passed over) do to their places: the
    place's last inspection and next due time move on (never back, for a late message) and
    an escalated inspection is back at its grid; each finding opens a hazard of the place
    through `open_hazards`, the one way a hazard is opened, with its severity's deadline.
    The caller has stored the check-ins (their duplicates too: a finding opens once)."""
    inspections = [c for c in checkins if c.kind == KIND and c.place_id]
    if not inspections:
        return Inspected([], 0)
    sites = place_sites(conn, (c.place_id or "" for c in inspections))
    findings = [
        (report, site.grids)
        for checkin in inspections
        if (site := sites.get(checkin.place_id or "")) is not None
        for report in finding_reports(checkin, site.lon, site.lat)
    ]
    with conn.transaction():
        conn.execute(
            sql.SQL(
                """
                UPDATE places p SET last_inspected_at = i.at, next_due_at = i.at + {},
                    level = 'grid', updated_at = i.received
                FROM (SELECT place_id, max(at) AS at, max(received) AS received
                      FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])
                          AS u(place_id, at, received)
                      GROUP BY place_id) i
                WHERE p.id = i.place_id
                  AND (p.last_inspected_at IS NULL OR p.last_inspected_at < i.at)
                """
            ).format(_PERIOD.format(sql.Identifier("p", "inspect_every_days"))),
            (
                [c.place_id for c in inspections],
                [c.observed_at for c in inspections],
                [c.received_at for c in inspections],
            ),
        )
        opened = open_hazards(conn, findings, deadlines=deadlines).new if findings else 0
    return Inspected(findings, opened)


@dataclass(frozen=True, slots=True)
class PlaceRecord:
    """A place as the layer shows it; the contact is masked on the way out, not here."""

    id: str
    name: str
    kind: str
    address: str
    lon: float | None
    lat: float | None
    grid_id: int | None
    grid_code: str | None
    contact: str | None
    phone: str | None
    inspect_every_days: int
    registered_at: datetime
    last_inspected_at: datetime | None
    next_due_at: datetime
    level: str
    updated_at: datetime
    open_findings: list[uuid.UUID]  # hazards of its inspections not yet closed
    police_grid_id: int | None = None  # its police grid (警格)
    building_code: str | None = None  # the building (楼栋) it stands in, and its unit (单元)
    unit_code: str | None = None

    @property
    def audit_id(self) -> str:
        """Reads of its contact in clear are audited as residents' are, under `place:<id>`."""
        return f"place:{self.id}"


_PLACES = Listing(
    PlaceRecord,
    sql.SQL(
        """
    p.id, p.name, p.kind, p.address, p.lon, p.lat, p.grid_id, g.code AS grid_code, p.contact,
    p.phone, p.inspect_every_days, p.registered_at, p.last_inspected_at, p.next_due_at, p.level,
    p.updated_at,
    coalesce((SELECT array_agg(h.id ORDER BY h.received_at, h.id) FROM hazard_reports h
              WHERE h.place_id = p.id AND h.status <> 'closed'), '{}') AS open_findings,
    p.police_grid_id, b.code AS building_code, u.code AS unit_code
    """
    ),
    sql.SQL(
        "places p LEFT JOIN grids g ON g.id = p.grid_id "
        "LEFT JOIN buildings b ON b.id = p.building_id LEFT JOIN units u ON u.id = p.unit_id"
    ),
    sql.SQL("p.id"),
    sql.SQL("p.id > %(after)s"),
)
_HAS_OPEN_FINDINGS = sql.SQL(
    "EXISTS (SELECT 1 FROM hazard_reports h WHERE h.place_id = p.id AND h.status <> 'closed') "
    "= %(findings)s"
)


def place_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    now: datetime,
    limit: int,
    after: str | None = None,
    kinds: Sequence[str] | None = None,
    level: str | None = None,
    overdue: bool | None = None,
    findings: bool | None = None,
) -> Page[PlaceRecord]:
    """Places by id, with their inspection clock and open findings; `overdue`: only those
    whose next inspection is (or is not) past at `now`; `findings`: only those with (or
    without) open findings."""
    where, params = _place_where(filters, now, kinds, level, overdue, findings)
    keyset = None if after is None else {"after": after}
    return _PLACES.page(conn, where, params, after=keyset, limit=limit)


def _place_where(
    filters: Filters,
    now: datetime,
    kinds: Sequence[str] | None,
    level: str | None,
    overdue: bool | None,
    findings: bool | None,
) -> tuple[list[sql.Composable], dict]:
    where, params = where_filters(filters, alias="p")
    where_columns(where, params, "p", kind=kinds, level=level)
    params["now"] = now
    where_given(where, params, sql.SQL("(p.next_due_at < %(now)s) = %(overdue)s"), overdue=overdue)
    if findings is not None:
        where.append(_HAS_OPEN_FINDINGS)
        params["findings"] = findings
    return where, params


# The register's orders (a key, `-` before it for descending), over a listed row `p`; ties by
# due time, then id. Names and codes compared byte by byte ("C"): the same order wherever the
# database runs.
PLACE_ORDERS = {
    "name": sql.SQL('p.name COLLATE "C"'),
    "kind": sql.SQL('p.kind COLLATE "C"'),
    "grid": sql.SQL('p.grid_code COLLATE "C"'),
    "last": sql.SQL("p.last_inspected_at"),
    "due": sql.SQL("p.next_due_at"),
    "level": sql.SQL("array_position(%(level_order)s::text[], p.level)"),
    "findings": sql.SQL("cardinality(p.open_findings)"),
}


def place_table(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    now: datetime,
    limit: int,
    offset: int = 0,
    kinds: Sequence[str] | None = None,
    overdue: bool | None = None,
    findings: bool | None = None,
    order: str | None = None,
) -> tuple[list[PlaceRecord], int]:
    """The register as a table: the places `place_page` would list, sorted by `order` (a key
    of PLACE_ORDERS, `-` before it for descending; none: the next due first, the most
    overdue on top), a page at `offset`; (rows, number matched)."""
    where, params = _place_where(filters, now, kinds, None, overdue, findings)
    key = (order or "due").removeprefix("-")
    direction = sql.SQL(" DESC NULLS LAST" if (order or "").startswith("-") else " ASC NULLS LAST")
    query = sql.SQL(
        "SELECT * FROM (SELECT {}, count(*) OVER () AS matched FROM {} WHERE {}) p "
        "ORDER BY {}{}, p.next_due_at, p.id LIMIT %(limit)s OFFSET %(offset)s"
    ).format(_PLACES.select, _PLACES.from_, all_of(where), PLACE_ORDERS[key], direction)
    params.update(limit=limit, offset=offset, level_order=list(LEVELS))
    found = conn.execute(query, params).fetchall()
    if not found:  # past the last page (or none asked for): count them alone
        [(matched,)] = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_PLACES.from_, all_of(where)),
            params,
        ).fetchall()
        return [], matched
    return [PlaceRecord(*row[:-1]) for row in found], found[0][-1]


def places_due(
    conn: psycopg.Connection, filters: Filters, *, now: datetime, limit: int
) -> list[PlaceRecord]:
    """The places whose inspection is a task at `now`: overdue, or due within DUE_AHEAD (half
    their period when that is shorter); the most overdue first."""
    where, params = _place_where(filters, now, None, None, None, None)
    where.append(
        sql.SQL("p.next_due_at <= %(now)s + least(%(ahead)s, p.inspect_every_days * {})").format(
            sql.Literal(timedelta(hours=12))
        )
    )
    params["ahead"] = DUE_AHEAD
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY p.next_due_at, p.id LIMIT %(limit)s")
    return fetch_rows(
        conn,
        PlaceRecord,
        query.format(_PLACES.select, _PLACES.from_, all_of(where)),
        {**params, "limit": limit},
    )


@dataclass(frozen=True, slots=True)
class OpenFinding:
    """A finding of a place's inspection that nobody has closed yet: its case in brief."""

    id: uuid.UUID
    place_id: str
    category: str
    severity: str
    status: str


def open_findings(
    conn: psycopg.Connection, place_ids: Iterable[str]
) -> dict[str, list[OpenFinding]]:
    """The open findings of each of these places (those with none left out), oldest first."""
    rows = fetch_rows(
        conn,
        OpenFinding,
        "SELECT id, place_id, category, severity, status FROM hazard_reports "
        "WHERE place_id = ANY(%s) AND status <> 'closed' ORDER BY received_at, id",
        (sorted(set(place_ids)),),
    )
    found: dict[str, list[OpenFinding]] = {}
    for row in rows:
        found.setdefault(row.place_id, []).append(row)
    return found


def get_place(conn: psycopg.Connection, place_id: str) -> PlaceRecord:
    """One place; NotFound if there is none."""
    return _PLACES.one(conn, sql.SQL("p.id = %s"), (place_id,), f"no place {place_id[:64]!r}")


@dataclass(frozen=True, slots=True)
class PlaceEvent:
    id: int
    at: datetime
    action: str
    from_level: str | None
    to_level: str | None
    actor: str | None
    note: str | None


def place_events(conn: psycopg.Connection, place_id: str) -> list[PlaceEvent]:
    """The place's escalations, oldest first."""
    query = (
        "SELECT id, at, action, from_level, to_level, actor, note FROM place_events "
        "WHERE place_id = %s ORDER BY at, id"
    )
    return fetch_rows(conn, PlaceEvent, query, (place_id,))


def overdue_inspections_by_grid(
    conn: psycopg.Connection, *, now: datetime
) -> dict[int | None, int]:
    """Places whose next inspection is past at `now`, per grid (None: outside every grid)."""
    rows = conn.execute(
        "SELECT grid_id, count(*) FROM places WHERE next_due_at < %s GROUP BY grid_id", (now,)
    ).fetchall()
    return dict(rows)


def next_inspection_due(conn: psycopg.Connection, *, now: datetime) -> datetime | None:
    """When the next place falls overdue (after `now`); None if none will."""
    [(at,)] = conn.execute(
        "SELECT min(next_due_at) FROM places WHERE next_due_at >= %s", (now,)
    ).fetchall()
    return at


def overdue_inspection_clocks(
    conn: psycopg.Connection, *, now: datetime, grace: timedelta
) -> list[InspectionClock]:
    """Places whose inspection is overdue by more than `grace` and not yet at the street:
    what the clocks of `gridwatch alerts` look at."""
    rows = conn.execute(
        "SELECT id, level, next_due_at FROM places "
        "WHERE next_due_at + %s <= %s AND level <> 'street'",
        (grace, now),
    ).fetchall()
    conn.commit()
    return [InspectionClock(*row) for row in rows]


def apply_inspection_escalations(
    conn: psycopg.Connection, plan: Sequence[InspectionEscalation], *, now: datetime
) -> int:
    """Write the plan, each step with its `escalate` event; returns the steps written. Under
    an advisory lock, each update checks the level and due time it expects, so two alert
    processes never write a step twice, nor one an inspection made meanwhile undid."""
    written = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for step in plan:
            moved = conn.execute(
                "UPDATE places SET level = %s, updated_at = %s "
                "WHERE id = %s AND level = %s AND next_due_at = %s RETURNING id",
                (step.climb.to_level, now, step.place_id, step.climb.from_level, step.next_due_at),
            ).fetchone()
            if moved is None:
                continue
            note = (
                f"inspection due {step.next_due_at.isoformat()} not made by "
                f"{step.climb.passed.isoformat()} at {step.climb.from_level} level; "
                f"escalated to {step.climb.to_level}"
            )
            conn.execute(
                "INSERT INTO place_events (place_id, at, action, from_level, to_level, actor, "
                "note) VALUES (%s, %s, 'escalate', %s, %s, 'gridwatch', %s)",
                (step.place_id, now, step.climb.from_level, step.climb.to_level, note),
            )
            written += 1
    return written
