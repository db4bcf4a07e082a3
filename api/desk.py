"""The duty desk's figures kept between changes, as the layers are (api/layer_cache.py): read
once per change for every grid apart (open alerts by kind, level and status; open and overdue
hazards; places whose inspection is overdue; open and overdue citizens' requests; level-2
dispute warnings whose case is open; the day's patrol coverage; the trend of recent days:
alerts opened, and cases, hazards and requests alike, found and closed; homes awaiting
installation; the open alerts), then summed over each caller's grids per request, to the same
figures the database gives for that caller's scope.

Kept on the change notices of the tables they are read from, for one local day at most (the
day's coverage and the trend turn at midnight) and until the next open hazard, inspection or
request falls overdue (the warnings counted are those whose case, a request, is open: the
requests' notices refresh them).
Homes awaiting installation follow meter readings, which come all the time: when only readings
came since, just the meters still awaiting are looked up again."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

import psycopg

from gridwatch.api.coverage import CoverageRow, rows_for
from gridwatch.store.alerts import (
    AlertRow,
    AlertTally,
    active_alerts,
    alerts_opened_daily_by_grid,
    open_alert_tally_by_grid,
)
from gridwatch.store.filters import Placed, local_day_bounds
from gridwatch.store.grids import GridCatalog
from gridwatch.store.hazards import hazards_by_grid, next_overdue
from gridwatch.store.ledger import (
    CaseDay,
    GridCloses,
    case_days_by_grid,
    median_as_percentile_cont,
    next_request_overdue,
    requests_by_grid,
)
from gridwatch.store.places import next_inspection_due, overdue_inspections_by_grid
from gridwatch.store.residents import meters_awaiting, meters_heard
from gridwatch.store.users import Principal
from gridwatch.store.warnings import open_warnings_by_grid

if TYPE_CHECKING:
    from gridwatch.api.runtime import ApiState

_serials = itertools.count(1)
K = TypeVar("K")  # what a per-grid figure is keyed by: a grid, or a grid and police grid
Meters = dict[str, tuple[str, int | None]]  # meter id -> (resident, the home's grid)


@dataclass(frozen=True, slots=True)
class DeskParts:
    """The desk's figures of one caller's grids, before they are put in words."""

    tally: list[AlertTally]  # in open_alert_tally's order
    open_hazards: int
    overdue_hazards: int
    awaiting_installation: int
    overdue_inspections: int  # places whose next inspection is past
    open_requests: int
    overdue_requests: int
    open_warnings: int  # level-2 dispute warnings whose case is open
    coverage: list[CoverageRow]  # of the caller's leaf grids, in the catalog's order
    alerts_opened: dict[date, int]
    case_days: dict[date, CaseDay]  # hazards and requests found and closed
    live: list[AlertRow]  # the newest open alerts


@dataclass(frozen=True, slots=True)
class AwaitingHomes:
    """Homes whose meter was never heard from, per grid, as of one version of the readings."""

    meters: Meters
    per_grid: dict[int | None, int]
    serial: int = field(default_factory=lambda: next(_serials))

    @classmethod
    def of(cls, meters: Meters) -> AwaitingHomes:
        homes: dict[int | None, set[str]] = {}
        for resident, grid_id in meters.values():
            homes.setdefault(grid_id, set()).add(resident)
        return cls(meters, {grid_id: len(ids) for grid_id, ids in homes.items()})


@dataclass(frozen=True, slots=True)
class DeskFigures:
    """Every grid's part of the desk's figures as of one version of the tables, one local day
    (`days`: the trend's first and last) and one time."""

    catalog: GridCatalog
    days: tuple[date, date]
    leaves: tuple[int, ...]  # leaf grids, in the catalog's order
    # The cases by grid and police grid, as a caller sees them by either (store.filters.Placed)
    hazards: dict[Placed, tuple[int, int]]  # open, overdue hazards
    inspections: dict[int | None, int]  # grid -> places whose inspection is overdue
    requests: dict[Placed, tuple[int, int]]  # open, overdue requests
    warnings: dict[Placed, int]  # level-2 warnings whose case is open
    tally: tuple[tuple[Placed, AlertTally], ...]  # in open_alert_tally's order
    coverage: dict[int, CoverageRow]  # leaf grid -> the day's patrol coverage
    alerts_opened: dict[Placed, dict[date, int]]
    cases_opened: dict[Placed, dict[date, int]]  # hazards and requests found
    cases_closed: dict[Placed, dict[date, GridCloses]]
    active: tuple[AlertRow, ...]  # open and acknowledged, newest first
    awaiting: Meters  # as read with the rest
    made_at: datetime
    valid_until: datetime | None
    kept: bool
    serial: int = field(default_factory=lambda: next(_serials))
    # The homes awaiting installation of the latest version of the readings seen, and its key.
    heard: list = field(default_factory=list, init=False, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)


def read_desk(
    conn: psycopg.Connection,
    state: ApiState,
    catalog: GridCatalog,
    days: tuple[date, date],
    *,
    kept: bool,
) -> DeskFigures:
    """Every grid's figures for the trend's days `days` (the last is today)."""
    now = state.now()
    day_end = local_day_bounds(days[1], state.zone)[1]
    trend_start = local_day_bounds(days[0], state.zone)[0]
    leaves = tuple(g.id for g in catalog.grids if not catalog.children.get(g.id))
    cover = rows_for(catalog, state.coverage.get(conn, state, days[1]), list(leaves))
    opened, closed = case_days_by_grid(conn, start=trend_start, end=day_end, zone=state.zone)
    due = [
        at
        for at in (
            next_overdue(conn, now=now),
            next_inspection_due(conn, now=now),
            next_request_overdue(conn, now=now),
        )
        if at
    ]
    return DeskFigures(
        catalog=catalog,
        days=days,
        leaves=leaves,
        hazards=hazards_by_grid(conn, now=now),
        inspections=overdue_inspections_by_grid(conn, now=now),
        requests=requests_by_grid(conn, now=now),
        warnings=open_warnings_by_grid(conn),
        tally=tuple(open_alert_tally_by_grid(conn)),
        coverage={row.grid_id: row for row in cover},
        alerts_opened=alerts_opened_daily_by_grid(
            conn, start=trend_start, end=day_end, zone=state.zone
        ),
        cases_opened=opened,
        cases_closed=closed,
        active=tuple(active_alerts(conn)),
        awaiting=meters_awaiting(conn),
        made_at=now,
        valid_until=min([*due, day_end]),
        kept=kept,
    )


def awaiting_homes(
    conn: psycopg.Connection, figures: DeskFigures, version: tuple | None
) -> AwaitingHomes:
    """The homes awaiting installation as of readings `version` (None: not kept): the meters
    still awaiting at the last version seen (or when the figures were read) looked up again."""
    with figures.lock:
        if version is not None and figures.heard and figures.heard[0] == version:
            return figures.heard[1]
        base = figures.heard[1] if figures.heard else None
        meters = base.meters if base is not None else figures.awaiting
        heard = meters_heard(conn, list(meters)) if meters else set()
        if base is not None and not heard:
            homes = base
        else:
            homes = AwaitingHomes.of({m: home for m, home in meters.items() if m not in heard})
        if version is not None:
            figures.heard[:] = [version, homes]
        return homes


def kept_homes(figures: DeskFigures, version: tuple | None) -> AwaitingHomes | None:
    """The homes awaiting installation if nothing was read since readings `version`."""
    with figures.lock:
        if version is not None and figures.heard and figures.heard[0] == version:
            return figures.heard[1]
        return None


def parts_for(
    figures: DeskFigures, homes: AwaitingHomes, principal: Principal, kind: str | None, rows: int
) -> DeskParts:
    """The figures of the caller's grids: each grid's summed as the database sums a scope
    (a grid outside every grid, None, only for a caller who sees every grid; a case also by
    its police grid, as the ledger lists it), and the `rows` newest open alerts of `kind`
    (any when empty)."""
    sees = principal.sees_grid
    leaves = [g for g in figures.leaves if sees(g)]
    closed: dict[date, int] = {}
    hours: dict[date, list[float]] = {}
    for (grid_id, police_grid_id), by_day in figures.cases_closed.items():
        if sees(grid_id, police_grid_id):
            for day, closes in by_day.items():
                closed[day] = closed.get(day, 0) + closes.cases
                hours.setdefault(day, []).extend(closes.hours)
    opened = _summed(figures.cases_opened, lambda placed: sees(*placed))
    case_days = {
        day: CaseDay(
            day,
            opened.get(day, 0),
            closed.get(day, 0),
            median_as_percentile_cont(hours[day]) if day in hours else None,
        )
        for day in opened.keys() | closed.keys()
    }
    live = [
        a
        for a in figures.active
        if sees(a.grid_id, a.police_grid_id) and (not kind or a.kind == kind)
    ]
    open_hazards, overdue_hazards = cases_total(figures.hazards, sees)
    open_requests, overdue_requests = cases_total(figures.requests, sees)
    return DeskParts(
        tally=[tally for placed, tally in figures.tally if sees(*placed)],
        open_hazards=open_hazards,
        overdue_hazards=overdue_hazards,
        awaiting_installation=grids_total(homes.per_grid, sees),
        overdue_inspections=grids_total(figures.inspections, sees),
        open_requests=open_requests,
        overdue_requests=overdue_requests,
        open_warnings=placed_total(figures.warnings, sees),
        coverage=[figures.coverage[g] for g in leaves],
        alerts_opened=_summed(figures.alerts_opened, lambda placed: sees(*placed)),
        case_days=case_days,
        live=live[:rows],
    )


def grids_total(per_grid: dict[int | None, int], sees) -> int:
    """The sum of a per-grid count over the grids `sees` holds (None: outside every grid)."""
    return sum(n for grid_id, n in per_grid.items() if sees(grid_id))


def placed_total(per_place: dict[Placed, int], sees) -> int:
    """The sum of a count per grid and police grid over the pairs `sees` holds either of."""
    return sum(n for placed, n in per_place.items() if sees(*placed))


def cases_total(per_place: dict[Placed, tuple[int, int]], sees) -> tuple[int, int]:
    """Open and overdue cases summed over the grid and police grid pairs `sees` holds either
    of, as the ledger's scope and police scope select them."""
    shown = [counts for placed, counts in per_place.items() if sees(*placed)]
    return sum(n for n, _ in shown), sum(late for _, late in shown)


def _summed(per_grid: dict[K, dict[date, int]], sees: Callable[[K], bool]) -> dict[date, int]:
    total: dict[date, int] = {}
    for grid_id, by_day in per_grid.items():
        if sees(grid_id):
            for day, count in by_day.items():
                total[day] = total.get(day, 0) + count
    return total
