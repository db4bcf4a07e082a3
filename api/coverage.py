"""Patrol coverage (每日双巡 / 入户走访) per grid and local day: patrols, the share of the grid
within reach of the tracks, home visits made against residents due one."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request

from gridwatch.api.auth import Reader
from gridwatch.api.collections import SystemQ, check_params, subtree_ids
from gridwatch.api.features import feature, geometry_json
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.responses import GeoJSONResponse, JSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.maps.coverage import (
    GridCoverage,
    Patrol,
    grid_coverage,
    low_accuracy,
    split_patrols,
)
from gridwatch.model.vocabulary import MANAGEMENT
from gridwatch.store.checkins import VisitCounts, visit_counts
from gridwatch.store.filters import GRID_COLUMNS, local_day_bounds
from gridwatch.store.grids import GridCatalog
from gridwatch.store.tracks import track_points
from gridwatch.store.users import Principal

router = APIRouter(tags=["patrol coverage"])

_CACHE_DAYS = 8


@dataclass(frozen=True, slots=True)
class DayCoverage:
    day: date
    patrols: list[Patrol]
    leaves: dict[int, GridCoverage]
    visits: dict[int, VisitCounts]


@dataclass(frozen=True, slots=True)
class CoverageRow:
    grid_id: int
    patrols: int
    covered_share: float
    track_m: float
    visits_made: int
    residents_due: int
    due_visited: int


class CoverageCache:
    """Coverage of a day, recomputed only when that day's check-ins change."""

    def __init__(self) -> None:
        self._days: OrderedDict[tuple, DayCoverage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn, state: ApiState, day: date, system: str = MANAGEMENT) -> DayCoverage:
        """The day's coverage of the grids of `system`, the patrols' points placed in them."""
        start, end = local_day_bounds(day, state.zone)
        version = tuple(
            conn.execute(
                "SELECT count(*), max(received_at) FROM patrol_checkins "
                "WHERE observed_at >= %s AND observed_at < %s",
                (start, end),
            ).fetchone()
        )
        visits_version = conn.execute("SELECT count(*), max(updated_at) FROM residents").fetchone()
        catalog = state.catalog(conn)
        s = state.settings
        rules = (s.patrol_gap_min, s.patrol_buffer_m, s.owntracks_max_accuracy_m)
        key = (day, version, tuple(visits_version), catalog.version, rules, system)
        with self._lock:
            if key in self._days:
                self._days.move_to_end(key)
                return self._days[key]
        found = compute_day(conn, state, catalog, day, system)
        with self._lock:
            self._days[key] = found
            while len(self._days) > _CACHE_DAYS:
                self._days.popitem(last=False)
        return found


def compute_day(
    conn, state: ApiState, catalog: GridCatalog, day: date, system: str = MANAGEMENT
) -> DayCoverage:
    start, end = local_day_bounds(day, state.zone)
    found = track_points(conn, start=start, end=end, column=GRID_COLUMNS[system])
    # A fix too coarse to say where the worker walked is stored and shown, but no coverage.
    points = found.only(~low_accuracy(found.accuracy_m, state.settings.owntracks_max_accuracy_m))
    patrols = split_patrols(
        points.worker,
        points.t,
        points.lon,
        points.lat,
        points.grid_id,
        gap_s=state.settings.patrol_gap_min * 60,
    )
    leaves = {g.id: g.geometry for g in catalog.in_system(system) if not catalog.children.get(g.id)}
    coverage = grid_coverage(leaves, patrols, buffer_m=state.settings.patrol_buffer_m)
    visits = visit_counts(
        conn,
        day_start=start,
        day_end=end,
        every=timedelta(days=state.settings.visit_every_days),
        column=GRID_COLUMNS[system],
    )
    return DayCoverage(day, patrols, coverage, visits)


def rows_for(catalog: GridCatalog, cover: DayCoverage, grid_ids: list[int]) -> list[CoverageRow]:
    """Per grid; a street or community sums its grids, its share weighted by their area."""
    rows = []
    for grid_id in grid_ids:
        leaves = [g for g in catalog.subtree(grid_id) if g in cover.leaves]
        area = sum(catalog.by_id[g].area_m2 for g in leaves) or 1.0
        visits = [cover.visits[g] for g in catalog.subtree(grid_id) if g in cover.visits]
        rows.append(
            CoverageRow(
                grid_id,
                sum(cover.leaves[g].patrols for g in leaves),
                sum(cover.leaves[g].covered_share * catalog.by_id[g].area_m2 for g in leaves)
                / area,
                sum(cover.leaves[g].track_m for g in leaves),
                sum(v.visits_made for v in visits),
                sum(v.residents_due for v in visits),
                sum(v.due_visited for v in visits),
            )
        )
    return rows


# Days whose local bounds any zone can hold: the first and last days a datetime can hold
# overflow (0001-01-01 in UTC+8 starts in year 0), and no patrol predates 1970.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)


def parse_day(text: str | None, state: ApiState) -> date:
    """The local day `text` names (YYYY-MM-DD, today when absent); 422 with why otherwise."""
    if not text:
        return state.now().astimezone(state.zone).date()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"date {text[:20]!r} is not a day written YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(
            f"date {text!r} is out of range: a day YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}"
        )
    return day


def chosen_grids(
    catalog: GridCatalog,
    principal: Principal,
    level: str,
    grid: str | None,
    system: str = MANAGEMENT,
) -> list[int]:
    under = subtree_ids(catalog, principal, grid, system) if grid else None
    return [
        g.id
        for g in catalog.in_system(system)
        if g.level == level and principal.sees_grid(g.id) and (under is None or g.id in under)
    ]


DateQ = Annotated[str | None, Query(max_length=10, description="local day YYYY-MM-DD (today)")]


@router.get("/coverage", response_class=JSONResponse, summary="Patrol coverage per grid and day")
def coverage(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    date_: Annotated[DateQ, Query(alias="date")] = None,
    level: Literal["street", "community", "grid"] = "grid",
    grid: Annotated[str | None, Query(max_length=64)] = None,
    system: SystemQ = MANAGEMENT,
):
    """Per grid of `system` (the police's 警格 with system=police: their share covered, the
    patrols and visits placed in them)."""
    check_params(request, {"date", "level", "grid", "system"})
    day = parse_day(date_, state)
    catalog = state.catalog(conn)
    ids = chosen_grids(catalog, principal, level, grid, system)
    cover = state.coverage.get(conn, state, day, system)
    items = [
        {
            "grid": catalog.by_id[r.grid_id].code,
            "name": catalog.by_id[r.grid_id].name,
            "level": catalog.by_id[r.grid_id].level,
            "patrols": r.patrols,
            "covered_share": round(r.covered_share, 4),
            "track_m": round(r.track_m, 1),
            "visits_made": r.visits_made,
            "residents_due": r.residents_due,
            "due_visited": r.due_visited,
        }
        for r in rows_for(catalog, cover, ids)
    ]
    return JSONResponse(
        {
            "date": day.isoformat(),
            "buffer_m": state.settings.patrol_buffer_m,
            "patrol_gap_min": state.settings.patrol_gap_min,
            "items": items,
        }
    )


@router.get(
    "/coverage/tracks",
    response_class=GeoJSONResponse,
    summary="Patrols of a day as lines (the points the caller may see)",
)
def tracks(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    date_: Annotated[DateQ, Query(alias="date")] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    system: SystemQ = MANAGEMENT,
):
    check_params(request, {"date", "grid", "system"})
    day = parse_day(date_, state)
    catalog = state.catalog(conn)
    below = subtree_ids(catalog, principal, grid, system) if grid else None
    under = None if below is None else set(below)
    cover = state.coverage.get(conn, state, day, system)
    features = [
        feature(
            f"{p.worker_id}@{int(p.start_s)}",
            geometry_json(p.line()),
            {
                "worker_id": p.worker_id,
                "start": _iso(p.start_s),
                "end": _iso(p.end_s),
                "points": len(p.lon),
            },
        )
        for p in visible_patrols(cover.patrols, principal, under)
    ]
    return GeoJSONResponse({"type": "FeatureCollection", "features": features})


def visible_patrols(
    patrols: list[Patrol], principal: Principal, under: set[int] | None
) -> list[Patrol]:
    """Patrols cut down to the points the caller may see (and inside `under`, if given)."""
    kept = []
    for p in patrols:
        if principal.sees_all and under is None:
            kept.append(p)
            continue
        mask = np.array(
            [
                (principal.sees_grid(int(g)) or p.worker_id == principal.name)
                and (under is None or int(g) in under)
                for g in p.grid_ids
            ],
            dtype=bool,
        )
        if mask.any():
            kept.append(
                Patrol(p.worker_id, p.start_s, p.end_s, p.lon[mask], p.lat[mask], p.grid_ids[mask])
            )
    return kept


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat()
