"""Hazard reports: idempotent reports, transitions, escalations, the hazards layer and the
hazards the maps draw (the problem ledger, of hazards and requests, is store/ledger.py).

Every change is a row in hazard_events in the same transaction as the change itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.cases.hazards import (
    OPEN_STATUSES,
    Escalation,
    HazardClock,
    SetDeadline,
    deadline_after,
    next_status,
)
from gridwatch.model.records import HazardReport
from gridwatch.store.case_events import CaseEvent, case_events
from gridwatch.store.filters import Filters, Placed, all_of, where_columns, where_filters
from gridwatch.store.grids import PointGrids, point_grids
from gridwatch.store.paging import Listing, Page, fetch_rows
from gridwatch.store.staging import stage_rows

_LOCK_KEY = 0x67770005  # one escalation at a time across `gridwatch alerts` processes


@dataclass(frozen=True, slots=True)
class Hazard:
    id: uuid.UUID
    reporter_id: str
    observed_at: datetime
    received_at: datetime
    lon: float
    lat: float
    grid_id: int | None
    grid_code: str | None
    category: str
    severity: str
    description: str
    photo_urls: list[str]
    status: str
    level: str
    assignee: str | None
    deadline_at: datetime | None  # when it goes up a level if still open
    due_at: datetime | None  # when it had to be handled by (限期); escalation keeps it
    updated_at: datetime
    police_grid_id: int | None = None  # its police grid (警格)
    place_id: str | None = None  # a finding of this place's inspection


@dataclass(frozen=True, slots=True)
class HazardEvent(CaseEvent):
    """A step of a hazard's history: the fields every case's step has."""


_REPORT_COLUMNS = (
    "id",
    "reporter_id",
    "observed_at",
    "received_at",
    "lon",
    "lat",
    "grid_id",
    "category",
    "severity",
    "description",
    "photo_urls",
    "deadline_at",
    "due_at",
    "police_grid_id",
    "place_id",
)
_SAME_REPORT = ("reporter_id", "lon", "lat", "category", "severity", "description")
"""What a report sent again under a stored id must repeat to be the same report: not its
time (a client that sends no `ts` retries with another), nor its grid (found from its place)."""
_INTAKE = sql.Identifier("hazard_intake")  # a temporary table of this session


@dataclass(frozen=True, slots=True)
class Opened:
    """What storing a batch of reports did."""

    new: int  # hazards opened
    clashes: list[int]  # positions of reports whose id is stored with other content


def open_hazards(
    conn: psycopg.Connection,
    reports: Sequence[tuple[HazardReport, PointGrids | int | None]],
    *,
    deadlines: Mapping[str, timedelta],
) -> Opened:
    """Open a hazard for each new (report, its grids): its row, its 'report' event and the
    deadline its severity sets, all at once. The one way a hazard is stored, whichever door
    it came through; its UUID is the idempotency key, so a report sent again is stored once.

    The reports are COPYed into a temporary table and moved in one statement, so a batch
    of the ingest writer costs no more than one report over HTTP.
    """
    columns = sql.SQL(", ").join(map(sql.Identifier, _REPORT_COLUMNS))
    with conn.transaction():
        rows = (_report_row(report, grids, deadlines) for report, grids in reports)
        stage_rows(conn, _INTAKE, "hazard_reports", _REPORT_COLUMNS, rows)
        new = conn.execute(
            sql.SQL(
                """
                WITH new AS (
                    INSERT INTO hazard_reports ({columns})
                    SELECT {columns} FROM {intake} ORDER BY n
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id, reporter_id, received_at
                )
                INSERT INTO hazard_events (hazard_id, at, action, to_status, actor)
                SELECT id, received_at, 'report', 'reported', reporter_id FROM new
                """
            ).format(columns=columns, intake=_INTAKE)
        ).rowcount
        clashes = _clashes(conn) if new < len(reports) else []
    return Opened(new, clashes)


def _report_row(
    report: HazardReport, grids: PointGrids | int | None, deadlines: Mapping[str, timedelta]
) -> tuple:
    """The values of `_REPORT_COLUMNS` of a report: due by the deadline its severity sets."""
    deadline = deadline_after(report.severity, report.received_at, deadlines)
    grid_id, police_grid_id = point_grids(grids)
    return (
        report.id,
        report.reporter_id,
        report.observed_at,
        report.received_at,
        report.lon,
        report.lat,
        grid_id,
        report.category,
        report.severity,
        report.description,
        list(report.photo_urls),
        deadline,
        deadline,
        police_grid_id,
        report.place_id,
    )


def _clashes(conn: psycopg.Connection) -> list[int]:
    """Positions of the reports just staged whose id is stored with other content (by an
    earlier report, or another of the same batch); the one inserted matches itself."""

    def of(alias: str) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, name) for name in _SAME_REPORT)

    found = conn.execute(
        sql.SQL(
            "SELECT DISTINCT s.n FROM {} s JOIN hazard_reports t ON t.id = s.id "
            "WHERE ({}) IS DISTINCT FROM ({}) ORDER BY s.n"
        ).format(_INTAKE, of("t"), of("s"))
    ).fetchall()
    return [n for (n,) in found]


def insert_hazard(
    conn: psycopg.Connection,
    report: HazardReport,
    *,
    grid_id: int | None,
    deadlines: Mapping[str, timedelta],
    police_grid_id: int | None = None,
) -> tuple[Hazard, bool]:
    """Store one report through `open_hazards`; (the stored hazard, whether it is new)."""
    with conn.transaction():
        grids = PointGrids(grid_id, police_grid_id)
        opened = open_hazards(conn, [(report, grids)], deadlines=deadlines)
        return get_hazard(conn, report.id), opened.new == 1


def get_hazard(conn: psycopg.Connection, hazard_id: uuid.UUID, *, lock: bool = False) -> Hazard:
    """One hazard; NotFound if there is none."""
    key = sql.SQL("h.id = %s")
    lock_of = "h" if lock else None
    return _HAZARDS.one(conn, key, (hazard_id,), f"no hazard {hazard_id}", lock_of=lock_of)


def hazard_events(conn: psycopg.Connection, hazard_id: uuid.UUID) -> list[HazardEvent]:
    """The hazard's history, oldest first."""
    return case_events(conn, HazardEvent, "hazard_events", "hazard_id", hazard_id)


def transition_hazard(
    conn: psycopg.Connection,
    hazard_id: uuid.UUID,
    action: str,
    *,
    actor: str,
    now: datetime,
    deadlines: Mapping[str, timedelta],
    note: str | None = None,
    assignee: str | None = None,
    photo_urls: Sequence[str] = (),
    may_act: Callable[[Hazard], None] | None = None,
) -> Hazard:
    """Apply one step of the loop under a row lock; Conflict (with why) if it may not follow.

    `may_act(hazard)` is the caller's permission check, made on the locked row; it raises.
    """
    with conn.transaction():
        hazard = get_hazard(conn, hazard_id, lock=True)
        if may_act is not None:
            may_act(hazard)
        target = next_status(action, hazard.status)
        deadline, due = hazard.deadline_at, hazard.due_at
        if action == "reopen":  # feedback says it is not done: a fresh period at its level
            deadline = due = deadline_after(hazard.severity, now, deadlines)
        conn.execute(
            "UPDATE hazard_reports SET status = %s, assignee = coalesce(%s, assignee), "
            "deadline_at = %s, due_at = %s, updated_at = %s WHERE id = %s",
            (target, assignee, deadline, due, now, hazard_id),
        )
        conn.execute(
            "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, actor, "
            "note, photo_urls) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (hazard_id, now, action, hazard.status, target, actor, note, list(photo_urls)),
        )
        return get_hazard(conn, hazard_id)


def open_hazard_clocks(conn: psycopg.Connection, *, now: datetime) -> list[HazardClock]:
    """Open hazards past their deadline, or stored without one (before deadlines were set
    when a hazard is stored): what the hazard clocks of `gridwatch alerts` look at."""
    query = (
        "SELECT id, severity, status, level, received_at, deadline_at FROM hazard_reports "
        "WHERE status = ANY(%s) AND (deadline_at IS NULL OR deadline_at <= %s) "
        "AND level <> 'street'"
    )
    clocks = fetch_rows(conn, HazardClock, query, (sorted(OPEN_STATUSES), now))
    conn.commit()
    return clocks


def apply_escalations(
    conn: psycopg.Connection, plan: Sequence[Escalation | SetDeadline], *, now: datetime
) -> int:
    """Write the escalation plan, each step with its event; returns the escalations written.

    Under an advisory lock, and each update checks the level it expects, so two alert
    processes never escalate the same step twice.
    """
    escalated = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for step in plan:
            if isinstance(step, SetDeadline):
                conn.execute(
                    "UPDATE hazard_reports SET deadline_at = %s, "
                    "due_at = coalesce(due_at, %s) WHERE id = %s AND deadline_at IS NULL",
                    (step.deadline_at, step.deadline_at, step.hazard_id),
                )
                continue
            row = conn.execute(
                "UPDATE hazard_reports SET level = %s, deadline_at = %s, updated_at = %s "
                "WHERE id = %s AND level = %s AND status = ANY(%s) RETURNING status",
                (
                    step.to_level,
                    step.new_deadline,
                    now,
                    step.hazard_id,
                    step.from_level,
                    sorted(OPEN_STATUSES),
                ),
            ).fetchone()
            if row is None:
                continue
            conn.execute(
                "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, "
                "actor, note) VALUES (%s, %s, 'escalate', %s, %s, 'gridwatch', %s)",
                (
                    step.hazard_id,
                    now,
                    row[0],
                    row[0],
                    f"deadline {step.passed.isoformat()} passed at {step.from_level} level; "
                    f"escalated to {step.to_level}, new deadline {step.new_deadline.isoformat()}",
                ),
            )
            escalated += 1
    return escalated


def hazards_by_grid(conn: psycopg.Connection, *, now: datetime) -> dict[Placed, tuple[int, int]]:
    """Open hazards and how many of them are overdue at `now` (as `grid_counts` counts them),
    per grid and police grid: what the duty desk counts for each caller."""
    rows = conn.execute(
        "SELECT grid_id, police_grid_id, count(*), "
        "count(*) FILTER (WHERE coalesce(due_at, deadline_at) <= %s) "
        "FROM hazard_reports WHERE status = ANY(%s) GROUP BY 1, 2",
        (now, sorted(OPEN_STATUSES)),
    ).fetchall()
    return {(grid, police): (count, overdue) for grid, police, count, overdue in rows}


def next_overdue(conn: psycopg.Connection, *, now: datetime) -> datetime | None:
    """When the next open hazard falls overdue (after `now`); None if none will."""
    [(at,)] = conn.execute(
        "SELECT min(coalesce(due_at, deadline_at)) FROM hazard_reports "
        "WHERE status = ANY(%s) AND coalesce(due_at, deadline_at) > %s",
        (sorted(OPEN_STATUSES), now),
    ).fetchall()
    return at


def open_due_times(conn: psycopg.Connection, column: str = "grid_id") -> list[tuple[int, datetime]]:
    """(grid, due time) of every open hazard in a grid that will fall, or fell, overdue: what
    `grid_counts` counts as overdue once its due time has passed. `column`: the grid of one
    system (store.filters.GRID_COLUMNS)."""
    query = sql.SQL(
        "SELECT {grid}, coalesce(due_at, deadline_at) FROM hazard_reports "
        "WHERE status = ANY(%s) AND {grid} IS NOT NULL "
        "AND coalesce(due_at, deadline_at) IS NOT NULL"
    ).format(grid=sql.Identifier(column))
    return conn.execute(query, (sorted(OPEN_STATUSES),)).fetchall()


_HAZARD_SELECT = sql.SQL(
    "h.id, h.reporter_id, h.observed_at, h.received_at, h.lon, h.lat, h.grid_id, "
    "g.code AS grid_code, h.category, h.severity, h.description, h.photo_urls, h.status, "
    "h.level, h.assignee, h.deadline_at, h.due_at, h.updated_at, h.police_grid_id, h.place_id"
)


_HAZARD_FROM = sql.SQL("hazard_reports h LEFT JOIN grids g ON g.id = h.grid_id")
_HAZARDS = Listing(
    Hazard,
    _HAZARD_SELECT,
    _HAZARD_FROM,
    sql.SQL("h.received_at DESC, h.id DESC"),
    sql.SQL("(h.received_at, h.id) < (%(after_t)s, %(after_id)s)"),
)


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
    keyset = None if after is None else {"after_t": after[0], "after_id": after[1]}
    return _HAZARDS.page(conn, where, params, after=keyset, limit=limit)


def all_hazards(conn: psycopg.Connection) -> list[Hazard]:
    """Every hazard in `hazard_page`'s order."""
    return _HAZARDS.all(conn)


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
