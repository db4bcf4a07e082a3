"""The map pages: the API gathers the caller's data, maps/ draws it. A browser without a
session is sent to /login; a bearer token works too."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from gridwatch.api.auth import PageViewer, sees_personal_data
from gridwatch.api.collections import subtree_ids
from gridwatch.api.coverage import chosen_grids, parse_day, rows_for, visible_patrols
from gridwatch.api.disclosure import ALERT_RESIDENT, record_reads, shown_in_clear
from gridwatch.api.features import person, warning_event_json
from gridwatch.api.privacy import coarse_position
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.hazards import is_overdue
from gridwatch.cases.requests import OPEN_STATUSES
from gridwatch.cases.requests import is_overdue as request_overdue
from gridwatch.disputes.levels import REPEAT_WINDOW
from gridwatch.maps.coverage import covered_area
from gridwatch.maps.pages import (
    RESIDENT_STATES,
    MapGrid,
    MapPoint,
    PageContext,
    coverage_page,
    grid_page,
    live_page,
    overview_page,
)
from gridwatch.maps.texts import texts_for
from gridwatch.maps.tiles import tiles_for
from gridwatch.model.figures import GridCounts
from gridwatch.model.services import BY_CODE
from gridwatch.model.vocabulary import SEVERITIES
from gridwatch.store.alerts import alert_page
from gridwatch.store.filters import Filters, local_day_bounds
from gridwatch.store.grids import GridCatalog
from gridwatch.store.hazards import map_hazards
from gridwatch.store.requests import request_page
from gridwatch.store.residents import map_residents
from gridwatch.store.users import Principal
from gridwatch.store.warnings import warning_page

router = APIRouter(tags=["maps"])

PAGE_HEADERS = {"Cache-Control": "no-store"}  # pages can hold residents' names


def page_context(state: ApiState, principal: Principal) -> PageContext:
    settings = state.settings
    return PageContext(
        lang=settings.lang,
        tiles=tiles_for(settings.tiles, tianditu_key=settings.tianditu_key),
        user=principal.name,
        role=principal.role,
        updated=state.now(),
        zone=state.zone,
    )


def _map_grids(conn, state: ApiState, catalog: GridCatalog, principal: Principal, ids=None):
    start, end = local_day_bounds(state.now().astimezone(state.zone).date(), state.zone)
    counts = state.grid_counts(conn, start, end)
    chosen = [g for g in catalog.grids if principal.sees_grid(g.id) and g.level != "district"]
    if ids is not None:
        chosen = [g for g in chosen if g.id in ids]
    return [_map_grid(catalog, g.id, counts.get(g.id, GridCounts())) for g in chosen]


def _map_grid(catalog: GridCatalog, grid_id: int, counts: GridCounts) -> MapGrid:
    g = catalog.by_id[grid_id]
    return MapGrid(
        g.code,
        g.name,
        g.level,
        g.geometry,
        counts,
        catalog.leaves_under(g.id),
    )


def _hazard_points(t: dict, hazards, now: datetime) -> list[MapPoint]:
    points = []
    for h in hazards:
        rank = SEVERITIES.index(h.severity) if h.severity in SEVERITIES else 0
        late = is_overdue(h.status, h.due_at or h.deadline_at, now)
        lines = [
            f"<b>{html.escape(t['category'].get(h.category, h.category))}</b> · "
            f"{html.escape(t['severity'].get(h.severity, h.severity))}",
            html.escape(t["status"].get(h.status, h.status))
            + (f" · <b>{html.escape(t['overdue_hazards'])}</b>" if late else ""),
            html.escape(h.description[:120]),
            html.escape(h.grid_code or ""),
        ]
        points.append(MapPoint(h.lon, h.lat, rank, "<br>".join(x for x in lines if x)))
    return points


def _resident_points(t: dict, principal: Principal, residents) -> list[MapPoint]:
    points = []
    for r in residents:
        state = r.alert_status or ("absent" if r.absent else "ok")
        rank = RESIDENT_STATES.index(state)
        who = person(principal, r.grid_id, r.name, r.phone, r.address)
        lines = [f"<b>{html.escape(who['name'] or r.id)}</b> ({html.escape(r.id)})"]
        if r.alert_kinds:
            kinds = ", ".join(t["alert_kind"].get(k, k) for k in r.alert_kinds)
            lines.append(
                f"{html.escape(t['alert_state'].get(r.alert_status, ''))}: {html.escape(kinds)}"
            )
        elif r.absent:
            lines.append(html.escape(t["absent"]))
        lon, lat = r.lon, r.lat
        if sees_personal_data(principal, r.grid_id):
            lines.append(html.escape(f"{who['phone'] or ''} {who['address'] or ''}".strip()))
        else:
            lon, lat = coarse_position(lon, lat)
        points.append(MapPoint(lon, lat, rank, "<br>".join(lines)))
    return points


def _scope(principal: Principal) -> list[int] | None:
    return None if principal.sees_all else principal.scope_param()


def _open_requests(conn, state: ApiState, principal: Principal) -> list:
    """The caller's open requests that have a point (a 12345 order with only an address
    waits in the street's queue, nowhere on a map)."""
    rows = request_page(
        conn,
        Filters(scope=_scope(principal)),
        limit=state.settings.api_max_limit,
        statuses=sorted(OPEN_STATUSES),
    ).rows
    return [r for r in rows if r.lon is not None and principal.sees_grid(r.grid_id)]


def _request_points(t: dict, requests, now: datetime) -> list[MapPoint]:
    points = []
    for r in requests:
        late = request_overdue(r.status, r.due_at, now)
        name = BY_CODE[r.service_code].name if r.service_code in BY_CODE else r.service_code
        lines = [
            f"<b>{html.escape(t['layer_requests'])} · {html.escape(name)}</b>",
            html.escape(t["request_status"].get(r.status, r.status))
            + (f" · <b>{html.escape(t['requests_overdue'])}</b>" if late else ""),
            html.escape(r.description[:120]),
            html.escape(r.grid_code or ""),
        ]
        points.append(MapPoint(r.lon, r.lat, int(late), "<br>".join(x for x in lines if x)))
    return points


def _recent_warnings(conn, state: ApiState, principal: Principal) -> list:
    """The caller's level-2 dispute warnings of the last `REPEAT_WINDOW`, newest first."""
    now = state.now()
    rows = warning_page(
        conn,
        Filters(scope=_scope(principal), start=now - REPEAT_WINDOW),
        limit=state.settings.api_max_limit,
        level=2,
    ).rows
    return [w for w in rows if w.lon is not None and principal.sees_grid(w.grid_id)]


def _warning_json(principal: Principal, warnings) -> list[dict]:
    """Warnings as the live stream sends them (positions of residents' homes coarse for
    those who may not see them), oldest first."""
    return [warning_event_json(w, principal) for w in reversed(warnings)]


def _warning_points(t: dict, principal: Principal, warnings) -> list[MapPoint]:
    points = []
    for w in _warning_json(principal, warnings):
        lines = [
            f"<b>{html.escape(t['warning'])} · {html.escape(w['category'])}</b>",
            html.escape(t["warning_reason"].get(w["reason"], w["reason"] or "")),
            html.escape("、".join(w["keywords"])),
            html.escape(w["grid"] or ""),
        ]
        points.append(MapPoint(w["lon"], w["lat"], 0, "<br>".join(x for x in lines if x)))
    return points


@router.get("/maps/overview", response_class=HTMLResponse, summary="District overview map")
def overview(request: Request, principal: PageViewer, conn: Conn, state: State):
    catalog = state.catalog(conn)
    t = texts_for(state.settings.lang)
    now = state.now()
    grids = _map_grids(conn, state, catalog, principal)
    hazards = _hazard_points(t, map_hazards(conn, scope=_scope(principal)), now)
    residents = map_residents(conn, scope=_scope(principal), now=now)
    record_reads(conn, principal, request, shown_in_clear(principal, residents))
    page = overview_page(
        page_context(state, principal),
        grids,
        hazards,
        _resident_points(t, principal, residents),
        _request_points(t, _open_requests(conn, state, principal), now),
        _warning_points(t, principal, _recent_warnings(conn, state, principal)),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/maps/grids/{code}", response_class=HTMLResponse, summary="One grid's map")
def grid_map(
    request: Request,
    principal: PageViewer,
    conn: Conn,
    state: State,
    code: Annotated[str, Path(max_length=64)],
):
    catalog = state.catalog(conn)
    ids = subtree_ids(catalog, principal, code)  # NotFound outside the caller's grids
    t = texts_for(state.settings.lang)
    now = state.now()
    grid = catalog.by_code[code]
    counts = _map_grids(conn, state, catalog, principal, {grid.id})
    residents = [
        r for r in map_residents(conn, scope=ids, now=now) if principal.sees_grid(r.grid_id)
    ]
    record_reads(conn, principal, request, shown_in_clear(principal, residents))
    hazards = map_hazards(conn, scope=_scope(principal), grid_ids=ids)
    today = now.astimezone(state.zone).date()
    cover = state.coverage.get(conn, state, today)
    patrols = visible_patrols(cover.patrols, principal, set(ids))
    tracks = [(p.worker_id, p.line(), _track_tip(p, state)) for p in patrols]
    covered = covered_area(grid.geometry, patrols, buffer_m=state.settings.patrol_buffer_m)
    page = grid_page(
        page_context(state, principal),
        counts[0],
        _resident_points(t, principal, residents),
        _hazard_points(t, hazards, now),
        tracks,
        covered,
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


def _track_tip(patrol, state: ApiState) -> str:
    start = datetime.fromtimestamp(patrol.start_s, UTC).astimezone(state.zone)
    end = datetime.fromtimestamp(patrol.end_s, UTC).astimezone(state.zone)
    return html.escape(f"{patrol.worker_id} {start:%H:%M}-{end:%H:%M}")


@router.get("/maps/coverage", response_class=HTMLResponse, summary="Patrol coverage map")
def coverage_map(
    principal: PageViewer,
    conn: Conn,
    state: State,
    date_: Annotated[str | None, Query(alias="date", max_length=10)] = None,
):
    day = parse_day(date_, state)
    catalog = state.catalog(conn)
    t = texts_for(state.settings.lang)
    cover = state.coverage.get(conn, state, day)
    ids = chosen_grids(catalog, principal, "grid", None)
    rows = rows_for(catalog, cover, ids)
    grids = []
    for row in rows:
        g = catalog.by_id[row.grid_id]
        tip = "<br>".join(
            [
                f"<b>{html.escape(g.name)}</b> ({html.escape(g.code)})",
                f"{html.escape(t['patrols'])}: {row.patrols}",
                f"{html.escape(t['covered'])}: {row.covered_share:.0%}",
                f"{html.escape(t['visits'])}: {row.visits_made} / {row.residents_due}",
                f"{html.escape(t['due_visited'])}: {row.due_visited}",
            ]
        )
        grids.append((_map_grid(catalog, g.id, GridCounts()), row.covered_share, tip))
    patrols = visible_patrols(cover.patrols, principal, None)
    tracks = [(p.worker_id, p.line(), _track_tip(p, state)) for p in patrols]
    page = coverage_page(page_context(state, principal), day.isoformat(), grids, tracks)
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/maps/live", response_class=HTMLResponse, summary="Live alerts for duty officers")
def live_map(request: Request, principal: PageViewer, conn: Conn, state: State):
    catalog = state.catalog(conn)
    # The stream starts where this page's snapshot ends.
    after, after_warning = state.feed.watermark, state.feed.warning_watermark
    grids = _map_grids(conn, state, catalog, principal)
    page_rows = alert_page(
        conn,
        Filters(scope=_scope(principal)),
        limit=state.settings.api_max_limit,
        statuses=["open", "acknowledged"],
    ).rows
    record_reads(conn, principal, request, shown_in_clear(principal, page_rows, ALERT_RESIDENT))
    alerts = [
        {
            "alert_id": a.id,
            "kind": a.kind,
            "status": a.status,
            "severity": a.severity,
            "level": a.level,
            "grid": a.grid_code,
            "since": a.since.isoformat(),
            "resident_id": a.resident_id,
            "resident": person(principal, a.grid_id, a.name, a.phone, a.address),
            "lon": a.lon,
            "lat": a.lat,
        }
        for a in reversed(page_rows)
    ]
    t = texts_for(state.settings.lang)
    page = live_page(
        page_context(state, principal),
        grids,
        alerts,
        after,
        warnings=_warning_json(principal, _recent_warnings(conn, state, principal)),
        after_warning=after_warning,
        requests=_request_points(t, _open_requests(conn, state, principal), state.now()),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)
