"""The problem ledger (问题台账): hazards and citizens' requests in one list, each row with its
kind, place, status, level, deadline and whether it is overdue, and its last step; what the
API serves as JSON and CSV and keeps between changes (api/layer_cache.py). Also the cases of
both kinds found and closed per day, the duty desk's trend."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from gridwatch.cases import hazards, requests
from gridwatch.cases.ledger import STATUSES, is_open
from gridwatch.model.vocabulary import LEVELS, MANAGEMENT, SEVERITIES
from gridwatch.store.filters import (
    Filters,
    Placed,
    all_of,
    count_per_day,
    where_columns,
    where_filters,
    where_given,
)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: uuid.UUID
    grid_code: str | None
    grid_name: str | None
    community_name: str | None
    category: str  # a hazard's category, a request's service code
    severity: str | None  # a request has none
    status: str
    level: str
    reporter_id: str
    assignee: str | None
    observed_at: datetime  # found (a hazard) or asked (a request)
    received_at: datetime
    due_at: datetime | None  # the deadline that runs: 整改期限, or a request's 接单 or 办结
    overdue: bool
    resolved_at: datetime | None
    description: str
    last_action: str | None
    last_note: str | None
    grid_id: int | None
    kind: str  # one of cases.ledger.KINDS
    due_kind: str | None  # a request's running deadline: "accept" or "resolve"
    lon: float | None  # where it is (WGS-84); a request with only an address has none
    lat: float | None
    police_grid_id: int | None = None  # its police grid (警格)
    place_id: str | None = None  # a finding of this place's inspection (安全巡查)
    place_name: str | None = None
    closes: tuple[datetime, ...] = ()  # each step into closed (办结), as the trend counts them
    source: str | None = None  # a request's (cases.requests.SOURCES); a hazard has none

    @property
    def is_open(self) -> bool:
        return is_open(self.kind, self.status)

    @property
    def closed_at(self) -> datetime | None:
        """When it was last closed (办结), even if reopened since; None if never."""
        return self.closes[-1] if self.closes else None

    def hours_late(self, now: datetime) -> float | None:
        """Hours past its due time at `now` if overdue (an overdue row has one), else None."""
        if not self.overdue or self.due_at is None:
            return None
        return (now - self.due_at).total_seconds() / 3600


# A request's deadline that runs (接单 while nobody has accepted it, unless its 办结 comes
# first; 办结 after), as cases.requests.deadline_after: the one it is overdue by.
_REQUEST_DUE = sql.SQL(
    "CASE WHEN r.status = ANY(%(waiting)s) THEN least(r.accept_by, r.due_at) ELSE r.due_at END"
)

# Whether a case (`h`) is overdue, as the ledger's `overdue` filter asks.
_OVERDUE = sql.SQL("(h.is_open AND h.due_at <= %(now)s) = %(overdue)s")

# Both kinds as one relation `h`.
_LEDGER_FROM = sql.SQL(
    """
    FROM (
        SELECT 'hazard' AS kind, h.id, h.grid_id, h.category, h.severity, h.status, h.level,
            h.reporter_id, h.assignee, h.observed_at, h.received_at,
            coalesce(h.due_at, h.deadline_at,
                     h.received_at + make_interval(secs => coalesce(d.secs, 0))) AS due_at,
            NULL::text AS due_kind, h.status = ANY(%(open)s) AS is_open, h.description,
            h.lon, h.lat, h.police_grid_id, h.place_id, NULL::text AS source
        FROM hazard_reports h
        LEFT JOIN unnest(%(sev)s::text[], %(secs)s::float8[]) AS d(severity, secs)
            ON d.severity = h.severity
        UNION ALL
        SELECT 'request', r.id, r.grid_id, r.service_code, NULL, r.status, r.level,
            r.reporter, r.assignee, r.requested_at, r.received_at,
            {request_due},
            CASE WHEN r.status = ANY(%(waiting)s) AND r.accept_by < r.due_at THEN 'accept'
                ELSE 'resolve' END,
            r.status = ANY(%(request_open)s), r.description, r.lon, r.lat, r.police_grid_id, NULL,
            r.source
        FROM requests r
    ) h
    LEFT JOIN grids g ON g.id = h.grid_id
    LEFT JOIN grids c ON c.id = g.parent_id
    """
).format(request_due=_REQUEST_DUE)


def ledger(
    conn: psycopg.Connection,
    *,
    now: datetime,
    deadlines: Mapping[str, timedelta],
    scope: list[int] | None,
    grid_ids: list[int] | None = None,
    kind: str | None = None,
    level: str | None = None,
    overdue: bool | None = None,
    statuses: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    found_from: datetime | None = None,
    found_until: datetime | None = None,
    closed_from: datetime | None = None,
    closed_until: datetime | None = None,
    order: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    system: str = MANAGEMENT,
    police_scope: Sequence[int] = (),
) -> tuple[list[LedgerRow], int]:
    """The problem ledger (问题台账): most urgent first, or by `order` (a key of
    LEDGER_ORDERS, `-` before it for descending); (rows, number matched).

    Overdue means open past its due time, whatever level it has reached since. A hazard
    stored without one (before deadlines were set when a hazard is stored) shows the due
    time its severity sets until the hazard clocks give it one. `found_from` and
    `found_until` bound when it was found (a hazard) or asked (a request); `closed_from` and
    `closed_until` select the cases with a close (办结) between them, as the desk's trend counts
    closes. `sources` select requests by where they came from (a hazard has no source).
    `grid_ids` are grids of `system`; `police_scope` the police grids among `scope`.
    """
    filters = Filters(scope=scope, grid_ids=grid_ids, start=found_from, end=found_until)
    filters = replace(filters, system=system, police_scope=list(police_scope))
    where, params = where_filters(filters, alias="h", time_column="observed_at")
    chosen = {"kind": kind, "level": level, "status": statuses, "category": categories}
    where_columns(where, params, "h", **chosen, source=sources)
    params.update(
        now=now,
        open=sorted(hazards.OPEN_STATUSES),
        request_open=sorted(requests.OPEN_STATUSES),
        waiting=sorted(requests.WAITING),
        sev=list(deadlines),
        secs=[d.total_seconds() for d in deadlines.values()],
        sev_order=list(SEVERITIES),
        status_order=list(STATUSES),
        level_order=list(LEVELS),
    )
    where_given(where, params, _OVERDUE, overdue=overdue)
    if closed_from is not None or closed_until is not None:
        where.append(_closed_between(closed_from, closed_until, params))
    conditions = all_of(where)
    # The page first, then the events of its cases in one pass (not a lookup per row).
    query = sql.SQL(
        """
        WITH page AS (
            SELECT h.kind, h.id, h.grid_id, g.code AS grid_code, g.name AS grid_name,
                c.name AS community_name,
                h.category, h.severity, h.status, h.level, h.reporter_id, h.assignee,
                h.observed_at, h.received_at, h.due_at, h.due_kind,
                (h.is_open AND h.due_at <= %(now)s) AS overdue,
                h.description, h.lon, h.lat, h.police_grid_id, h.place_id, h.source,
                count(*) OVER () AS matched, row_number() OVER (ORDER BY {}) AS n
            {}
            WHERE {}
            ORDER BY n
            LIMIT %(limit)s OFFSET %(offset)s
        ), events AS (
            SELECT 'hazard' AS kind, e.hazard_id AS id,
                max(e.at) FILTER (WHERE e.to_status = 'resolved') AS resolved_at,
                (array_agg(e.action ORDER BY e.at DESC, e.id DESC))[1] AS last_action,
                (array_agg(e.note ORDER BY e.at DESC, e.id DESC))[1] AS last_note,
                array_agg(e.at ORDER BY e.at, e.id) FILTER (WHERE {close}) AS closes
            FROM hazard_events e
            WHERE e.hazard_id IN (SELECT id FROM page WHERE kind = 'hazard')
            GROUP BY e.hazard_id
            UNION ALL
            SELECT 'request', e.request_id,
                max(e.at) FILTER (WHERE e.to_status = 'resolved'),
                (array_agg(e.action ORDER BY e.at DESC, e.id DESC))[1],
                (array_agg(e.note ORDER BY e.at DESC, e.id DESC))[1],
                array_agg(e.at ORDER BY e.at, e.id) FILTER (WHERE {close})
            FROM request_events e
            WHERE e.request_id IN (SELECT id FROM page WHERE kind = 'request')
            GROUP BY e.request_id
        )
        SELECT p.id, p.grid_code, p.grid_name, p.community_name, p.category, p.severity,
            p.status, p.level, p.reporter_id, p.assignee, p.observed_at, p.received_at,
            p.due_at, p.overdue, ev.resolved_at, p.description, ev.last_action, ev.last_note,
            p.grid_id, p.kind, p.due_kind, p.lon, p.lat, p.police_grid_id, p.place_id,
            pl.name AS place_name, ev.closes, p.source, p.matched
        FROM page p LEFT JOIN events ev ON ev.kind = p.kind AND ev.id = p.id
        LEFT JOIN places pl ON pl.id = p.place_id
        ORDER BY p.n
        """
    ).format(_ledger_order(order), _LEDGER_FROM, conditions, close=_CLOSE_STEP)
    params["limit"] = limit
    params["offset"] = offset
    found = conn.execute(query, params).fetchall()
    rows = [
        replace(LedgerRow(*row[:-3]), closes=tuple(row[-3] or ()), source=row[-2]) for row in found
    ]
    if found:
        total = found[0][-1]
    else:  # past the last page: count them alone
        [(total,)] = conn.execute(
            sql.SQL("SELECT count(*) {} WHERE {}").format(_LEDGER_FROM, conditions), params
        ).fetchall()
    return rows, total


# Codes compared byte by byte ("C"), not by the database's locale: the same order wherever
# it runs, and the one the API's kept ledger repeats in memory (Python's string order).
LEDGER_ORDERS = {
    "found": sql.SQL("h.observed_at"),
    "due": sql.SQL("h.due_at"),
    "grid": sql.SQL('g.code COLLATE "C"'),
    "kind": sql.SQL('h.kind COLLATE "C"'),
    "category": sql.SQL('h.category COLLATE "C"'),
    "severity": sql.SQL("array_position(%(sev_order)s::text[], h.severity)"),
    "status": sql.SQL("array_position(%(status_order)s::text[], h.status)"),
    "level": sql.SQL("array_position(%(level_order)s::text[], h.level)"),
}
_URGENCY = sql.SQL("h.is_open DESC, h.due_at, h.id")


def _ledger_order(order: str | None) -> sql.Composable:
    """The ledger's ORDER BY: by `order` (ties most urgent first), or most urgent first."""
    if not order:
        return _URGENCY
    key = order.removeprefix("-")
    direction = sql.SQL(" DESC NULLS LAST" if order.startswith("-") else " ASC NULLS LAST")
    return sql.SQL("{}{}, {}").format(LEDGER_ORDERS[key], direction, _URGENCY)


def _request_params(now: datetime) -> dict:
    return {"now": now, "open": sorted(requests.OPEN_STATUSES), "waiting": sorted(requests.WAITING)}


def requests_by_grid(conn: psycopg.Connection, *, now: datetime) -> dict[Placed, tuple[int, int]]:
    """Open requests and how many of them are overdue at `now`, as the ledger marks them, per
    grid and police grid (None: outside every grid): what the duty desk counts, each caller
    the requests the ledger would list them by either system."""
    query = sql.SQL(
        "SELECT r.grid_id, r.police_grid_id, count(*), count(*) FILTER (WHERE {due} <= %(now)s) "
        "FROM requests r WHERE r.status = ANY(%(open)s) GROUP BY 1, 2"
    ).format(due=_REQUEST_DUE)
    rows = conn.execute(query, _request_params(now)).fetchall()
    return {(grid, police): (count, overdue) for grid, police, count, overdue in rows}


def next_request_overdue(conn: psycopg.Connection, *, now: datetime) -> datetime | None:
    """When the next open request falls overdue (after `now`); None if none will."""
    query = sql.SQL(
        "SELECT min({due}) FROM requests r WHERE r.status = ANY(%(open)s) AND {due} > %(now)s"
    ).format(due=_REQUEST_DUE)
    [(at,)] = conn.execute(query, _request_params(now)).fetchall()
    return at


# A close (办结): a step of a case's events into the loop's last status, closed (a hazard
# 已办结, a request 已关闭 after its feedback), from another; an 'update' event of a closed
# request stays closed and closes nothing. The desk's trend counts these and the ledger's
# closed_from/closed_to select by them, so a day's bar lists what it counts.
_CLOSE_STEP = sql.SQL("e.to_status = 'closed' AND e.from_status IS DISTINCT FROM 'closed'")
_CLOSES = sql.SQL(
    """
    (SELECT 'hazard' AS kind, e.hazard_id AS id, e.at FROM hazard_events e WHERE {step}
    UNION ALL
    SELECT 'request', e.request_id, e.at FROM request_events e WHERE {step}) c
    """
).format(step=_CLOSE_STEP)


def _closed_between(start: datetime | None, end: datetime | None, params: dict) -> sql.Composable:
    """The ledger's condition that a case (`h`) has a close in [start, end] (either open)."""
    bounds: list[sql.Composable] = []
    where_given(bounds, params, sql.SQL("c.at >= %(closed_from)s"), closed_from=start)
    where_given(bounds, params, sql.SQL("c.at <= %(closed_until)s"), closed_until=end)
    return sql.SQL("(h.kind, h.id) IN (SELECT c.kind, c.id FROM {} WHERE {})").format(
        _CLOSES, all_of(bounds)
    )


# The cases of both kinds as the desk's trend counts them, each a relation `c`. Found: when a
# hazard was found or a request asked, the time the ledger's from/to select a case by, so a
# day's count is the list that day's ledger shows. Closed: each close, with the hours since
# the case was received; a day counts the cases closed, a case closed twice that day once.
_CASES_FOUND = sql.SQL(
    "(SELECT grid_id, police_grid_id, observed_at AS at FROM hazard_reports "
    "UNION ALL SELECT grid_id, police_grid_id, requested_at FROM requests) c"
)
_CASES_CLOSED = sql.SQL(
    """
    (SELECT 'hazard' AS kind, h.id, h.grid_id, h.police_grid_id, e.at,
            (extract(epoch FROM e.at - h.received_at) / 3600)::float8 AS hours
        FROM hazard_events e JOIN hazard_reports h ON h.id = e.hazard_id
        WHERE {step}
    UNION ALL
    SELECT 'request', r.id, r.grid_id, r.police_grid_id, e.at,
            (extract(epoch FROM e.at - r.received_at) / 3600)::float8
        FROM request_events e JOIN requests r ON r.id = e.request_id
        WHERE {step}) c
    """
).format(step=_CLOSE_STEP)
_CASES = sql.SQL("count(DISTINCT (c.kind, c.id))")
_DAY = sql.SQL("(c.at AT TIME ZONE %(tz)s)::date")
_IN_DAYS = sql.SQL("c.at >= %(start)s AND c.at < %(end)s")


@dataclass(frozen=True, slots=True)
class CaseDay:
    """One local day of both loops: cases (hazards and requests) found, cases closed (办结),
    and the median hours from received to closed of the closes that day."""

    day: date
    opened: int = 0
    closed: int = 0
    median_close_h: float | None = None


def case_days(
    conn: psycopg.Connection,
    *,
    scope: list[int] | None,
    start: datetime,
    end: datetime,
    zone,
    police_scope: Sequence[int] = (),
) -> dict[date, CaseDay]:
    """Per local day of `zone` in [start, end), the cases of `scope` found and closed; a case
    is also of the scope by its police grid among `police_scope`, as in the ledger. The scope's
    own count, which the desk's sum of `case_days_by_grid` must equal (tested)."""
    filters = Filters(scope=scope, police_scope=list(police_scope))
    where, params = where_filters(filters, alias="c")
    opened = count_per_day(
        conn, _CASES_FOUND, sql.SQL("c.at"), where, params, start=start, end=end, zone=zone
    )
    closed = conn.execute(
        sql.SQL(
            "SELECT {day}, {cases}, percentile_cont(0.5) WITHIN GROUP (ORDER BY c.hours) "
            "FROM {closed} WHERE {where} AND {in_days} GROUP BY 1"
        ).format(
            day=_DAY, cases=_CASES, closed=_CASES_CLOSED, where=all_of(where), in_days=_IN_DAYS
        ),
        {**params, "start": start, "end": end, "tz": zone.key},
    ).fetchall()
    days = {day: CaseDay(day, opened=count) for day, count in opened.items()}
    for day, count, median_h in closed:
        days[day] = CaseDay(day, days.get(day, CaseDay(day)).opened, count, median_h)
    return days


@dataclass(frozen=True, slots=True)
class GridCloses:
    """The closes of one grid and police grid on one local day: the cases closed (a case lies
    in one of each, so a scope's count is the sum of its pairs'), and the hours from received to
    closed of each close (a median is no sum: a scope's is taken from the hours of its pairs,
    the same float8 values percentile_cont takes)."""

    cases: int
    hours: tuple[float, ...]


def case_days_by_grid(
    conn: psycopg.Connection, *, start: datetime, end: datetime, zone
) -> tuple[dict[Placed, dict[date, int]], dict[Placed, dict[date, GridCloses]]]:
    """`case_days` of every grid and police grid apart: cases found per pair of them and
    local day, and the closes per pair and day."""
    params = {"start": start, "end": end, "tz": zone.key}
    opened: dict[Placed, dict[date, int]] = {}
    for grid, police, day, count in conn.execute(
        sql.SQL(
            "SELECT c.grid_id, c.police_grid_id, {day}, count(*) FROM {found} WHERE {in_days} "
            "GROUP BY 1, 2, 3"
        ).format(day=_DAY, found=_CASES_FOUND, in_days=_IN_DAYS),
        params,
    ).fetchall():
        opened.setdefault((grid, police), {})[day] = count
    closed: dict[Placed, dict[date, GridCloses]] = {}
    for grid, police, day, cases, hours in conn.execute(
        sql.SQL(
            "SELECT c.grid_id, c.police_grid_id, {day}, {cases}, array_agg(c.hours) FROM {closed} "
            "WHERE {in_days} GROUP BY 1, 2, 3"
        ).format(day=_DAY, cases=_CASES, closed=_CASES_CLOSED, in_days=_IN_DAYS),
        params,
    ).fetchall():
        closed.setdefault((grid, police), {})[day] = GridCloses(cases, tuple(hours))
    return opened, closed


def median_as_percentile_cont(values: Sequence[float]) -> float:
    """The median as PostgreSQL's `percentile_cont(0.5)` computes it, to the last bit: the two
    middle values interpolated as `lo + 0.5 * (hi - lo)`."""
    ordered = sorted(values)
    place = 0.5 * (len(ordered) - 1)
    first, second = math.floor(place), math.ceil(place)
    lo, hi = ordered[first], ordered[second]
    return lo if first == second else lo + (place - first) * (hi - lo)
