"""The console for people on shift: the desk (值班台), one alert, the ledger on screen, one
case. Pages are for a browser session (like the maps); the JSON behind them is read with the
same scope and masking as every other read, and every action posts through the existing
routes (/alerts/{id}/ack, /hazards/{id}/resolve, …)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from shapely.geometry import mapping

from gridwatch.api.auth import PageViewer, Reader
from gridwatch.api.collections import get_visible_alert, get_visible_hazard
from gridwatch.api.contacts import case_calls, people_to_call
from gridwatch.api.coverage import CoverageRow
from gridwatch.api.desk import (
    AwaitingHomes,
    DeskFigures,
    DeskParts,
    awaiting_homes,
    kept_homes,
    parts_for,
    read_desk,
)
from gridwatch.api.disclosure import ALERT_RESIDENT, record_reads, shown_in_clear
from gridwatch.api.features import person
from gridwatch.api.hazards import LedgerForm, ledger_rows
from gridwatch.api.layer_cache import NOT_MODIFIED, Body, conditional
from gridwatch.api.ledger_files import case_category, case_status
from gridwatch.api.live import case_stream_start
from gridwatch.api.map_pages import PAGE_HEADERS, page_context
from gridwatch.api.requests import DISPATCHERS, visible_request
from gridwatch.api.responses import JSONResponse, dumps
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.hazards import TRANSITIONS, is_overdue
from gridwatch.cases.ledger import CATEGORIES as LEDGER_CATEGORIES
from gridwatch.cases.ledger import KINDS
from gridwatch.cases.ledger import STATUSES as LEDGER_STATUSES
from gridwatch.cases.requests import OPEN_STATUSES as REQUEST_OPEN
from gridwatch.cases.requests import TRANSITIONS as REQUEST_TRANSITIONS
from gridwatch.cases.requests import deadline_after as request_deadline
from gridwatch.errors import NotFound
from gridwatch.maps.console import duration_text, render_page
from gridwatch.maps.texts import texts_for
from gridwatch.maps.tiles import points_to_display, tiles_for, to_display
from gridwatch.model.vocabulary import ACTIVITY_KINDS, EMERGENCY_KINDS, LEVELS, METER_OFFLINE
from gridwatch.store.alerts import AlertRow, alert_history
from gridwatch.store.contacts import resident_home
from gridwatch.store.grids import GridCatalog
from gridwatch.store.hazards import Hazard, hazard_events
from gridwatch.store.homes import home_week
from gridwatch.store.ledger import CaseDay
from gridwatch.store.places import get_place
from gridwatch.store.requests import Request as RequestRow
from gridwatch.store.requests import request_events
from gridwatch.store.residents import get_resident
from gridwatch.store.users import Principal

router = APIRouter(tags=["console"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]
TREND_DAYS = 14
WEEK = timedelta(days=7)
LIVE_ROWS = 50
# The desk's figures are read again on every event and each minute; the list beside them
# follows the stream, so those reads ask without it: no resident shown, none recorded as read.
LIVE_QUERY = "false: the figures alone, without the newest open alerts (and their residents)"
LEDGER_PAGE = 200
MAX_POINTS = 12_000  # power readings sent for the week's chart; more are thinned to peaks
# The desk's order of kinds: emergencies (sos, fall: someone needs help now) first.
DESK_KINDS = (*EMERGENCY_KINDS, *ACTIVITY_KINDS, METER_OFFLINE)
# The steps a hazard's page offers, with the data-action name each control carries.
HAZARD_STEPS = (
    ("assign", "dispatch"),
    ("start", "start"),
    ("resolve", "resolve"),
    ("close", "close"),
    ("reopen", "reopen"),
)


def console_page(
    state: ApiState, principal: Principal, template: str, page: str, title: str, **data
) -> HTMLResponse:
    """The console page `template` for the caller (`page` marks its tab in the bar)."""
    html = render_page(template, page_context(state, principal), page, title, **data)
    return HTMLResponse(html, headers=PAGE_HEADERS)


# -- the desk ---------------------------------------------------------------------------------


def desk_summary(
    conn,
    state: ApiState,
    principal: Principal,
    request: Request,
    kind: str | None = None,
    live_rows: int = LIVE_ROWS,
) -> dict:
    """What the desk shows: counts that matter now, the last 14 days, the live list. From the
    kept figures when the app keeps them (api/desk.py), else from the same figures read for
    this answer alone: one way of counting, the caller's part summed from every grid's."""
    figures = _desk_figures(conn, state, _desk_days(state, state.now()))
    homes = awaiting_homes(conn, figures, state.readings_version())
    summary, parts = _desk_answer(state, principal, figures, homes, kind, live_rows)
    record_reads(conn, principal, request, shown_in_clear(principal, parts.live, ALERT_RESIDENT))
    return summary


def _desk_days(state: ApiState, now: datetime) -> tuple[date, date]:
    """The trend's first day and today, in the district's zone."""
    today = now.astimezone(state.zone).date()
    return today - timedelta(days=TREND_DAYS - 1), today


def _desk_figures(conn, state: ApiState, days: tuple[date, date]) -> DeskFigures:
    return state.desk_figures(
        conn, days, lambda conn, catalog, kept: read_desk(conn, state, catalog, days, kept=kept)
    )


def _desk_answer(
    state: ApiState,
    principal: Principal,
    figures: DeskFigures,
    homes: AwaitingHomes,
    kind: str | None,
    live_rows: int = LIVE_ROWS,
) -> tuple[dict, DeskParts]:
    """The summary from the desk's figures (kept, or read for this answer); `now` in it is when
    they were read (they hold since)."""
    parts = parts_for(figures, homes, principal, kind, live_rows)
    summary = _summary(state, principal, figures.catalog, parts, figures.made_at, figures.days)
    return summary, parts


def _summary(
    state: ApiState,
    principal: Principal,
    catalog: GridCatalog,
    parts: DeskParts,
    now: datetime,
    days: tuple[date, date],
) -> dict:
    t = texts_for(state.settings.lang)
    return {
        "now": now,
        "zone": state.zone.key,
        "alerts": _alert_counts(t, parts.tally),
        "hazards": {"open": parts.open_hazards, "overdue": parts.overdue_hazards},
        "awaiting_installation": parts.awaiting_installation,
        "inspections": {"overdue": parts.overdue_inspections},
        "requests": {"open": parts.open_requests, "overdue": parts.overdue_requests},
        "warnings": {"open": parts.open_warnings},
        "coverage": _coverage(catalog, parts.coverage),
        "trend": _trend(state, days[0], parts.alerts_opened, parts.case_days),
        "live": [live_item(t, state, principal, row) for row in parts.live],
    }


def _alert_counts(t: dict, tally) -> dict:
    by_kind: dict[str, list[int]] = {kind: [0, 0] for kind in DESK_KINDS}
    by_level: dict[str, int] = dict.fromkeys(LEVELS, 0)
    for row in tally:
        counts = by_kind.setdefault(row.kind, [0, 0])
        counts[0] += row.count
        counts[1] += row.count if row.status == "open" else 0
        by_level[row.level] = by_level.get(row.level, 0) + row.count
    return {
        "open": sum(c[0] for c in by_kind.values()),
        "unacked": sum(c[1] for c in by_kind.values()),
        "by_kind": [
            {
                "kind": kind,
                "label": t["alert_kind"].get(kind, kind),
                "open": c[0],
                "unacked": c[1],
                "urgent": kind in EMERGENCY_KINDS,
            }
            for kind, c in by_kind.items()
        ],
        "by_level": [
            {"level": level, "label": t["level"].get(level, level), "count": count}
            for level, count in by_level.items()
        ],
    }


def _coverage(catalog: GridCatalog, rows: list[CoverageRow]) -> dict:
    area = sum(catalog.by_id[r.grid_id].area_m2 for r in rows) or 1.0
    share = sum(r.covered_share * catalog.by_id[r.grid_id].area_m2 for r in rows) / area
    return {
        "covered_share": round(share, 3),
        "percent": f"{share:.0%}",
        "grids": len(rows),
        "twice": sum(1 for r in rows if r.patrols >= 2),
        "visits_made": sum(r.visits_made for r in rows),
        "residents_due": sum(r.residents_due for r in rows),
        "due_visited": sum(r.due_visited for r in rows),
    }


def _trend(
    state: ApiState, first: date, alerts: dict[date, int], cases: dict[date, CaseDay]
) -> list[dict]:
    """Each of the last days: alerts opened, and cases (hazards and requests) found, closed
    and the median hours from received to closed."""
    c = texts_for(state.settings.lang)["console"]
    days = []
    for n in range(TREND_DAYS):
        day = first + timedelta(days=n)
        h = cases.get(day)
        median = round(h.median_close_h, 1) if h and h.median_close_h is not None else None
        days.append(
            {
                "day": day.isoformat(),
                "alerts_opened": alerts.get(day, 0),
                "cases_opened": h.opened if h else 0,
                "cases_closed": h.closed if h else 0,
                "median_close_h": median,
                "median_close_h_text": duration_text(median, c) or "-",
            }
        )
    return days


def live_item(t: dict, state: ApiState, principal: Principal, row: AlertRow) -> dict:
    """One alert of the live list, as the caller may see its resident."""
    return {
        "alert_id": row.id,
        "kind": row.kind,
        "kind_label": t["alert_kind"].get(row.kind, row.kind),
        "urgent": row.kind in EMERGENCY_KINDS,
        "status": row.status,
        "status_label": t["alert_state"].get(row.status, row.status),
        "level": row.level,
        "level_label": t["level"].get(row.level, row.level),
        "severity": row.severity,
        "grid": row.grid_code,
        "since": row.since,
        "since_text": row.since.astimezone(state.zone).strftime("%m-%d %H:%M"),
        "opened_at": row.opened_at,
        "resident_id": row.resident_id,
        "resident": person(principal, row.grid_id, row.name, row.phone, row.address),
    }


@router.get(
    "/console/summary.json",
    response_class=JSONResponse,
    summary="The desk's figures",
    responses=NOT_MODIFIED,
)
async def summary_json(
    request: Request,
    principal: Reader,
    state: State,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    live: Annotated[bool, Query(description=LIVE_QUERY)] = True,
):
    """Open alerts by kind and level, open and overdue hazards, open and overdue requests,
    level-2 dispute warnings whose case is open, homes awaiting installation, today's patrol
    coverage, the last 14 days (alerts opened; cases, hazards and requests alike, found and
    closed, and the median hours from received to closed) and the newest open alerts, of the
    caller's grids (residents masked as on every read). Kept between changes, per role and
    grids; `now` is when the figures were read (they hold until a change, a hazard or request
    falling overdue or midnight); every answer that shows a resident in clear is recorded,
    kept or not."""
    rows = LIVE_ROWS if live else 0
    days = _desk_days(state, state.now())
    found = _kept_now(state, days)
    if found is None and not state.keeps_layers():  # nothing kept: the database answers
        return await state.in_db_thread(_summary_response, state, request, principal, kind, rows)
    if found is None:
        found = await state.in_db_thread(_read_kept, state, days)
    figures, homes = found

    def make() -> Body:
        summary, parts = _desk_answer(state, principal, figures, homes, kind, rows)
        return Body.of(
            dumps(summary),
            compress=True,
            valid_until=figures.valid_until,
            disclosed=shown_in_clear(principal, parts.live, ALERT_RESIDENT),
        )

    key = ("desk", figures.serial, homes.serial, principal.role, principal.grid_ids, kind, rows)
    body = state.answers.answer(figures, key, make, state.now())
    await state.reads.record(principal, request, list(body.disclosed))
    return conditional(request, body, JSONResponse.media_type)


def _kept_now(state: ApiState, days: tuple[date, date]) -> tuple[DeskFigures, AwaitingHomes] | None:
    """The kept figures and homes if both are current: no database needed."""
    figures = state.kept_desk(days)
    homes = None if figures is None else kept_homes(figures, state.readings_version())
    return None if figures is None or homes is None else (figures, homes)


def _read_kept(state: ApiState, days: tuple[date, date]) -> tuple[DeskFigures, AwaitingHomes]:
    with state.pool.connection() as conn:
        figures = _desk_figures(conn, state, days)
        return figures, awaiting_homes(conn, figures, state.readings_version())


def _summary_response(
    state: ApiState, request: Request, principal: Principal, kind: str | None, rows: int
) -> JSONResponse:
    with state.pool.connection() as conn:
        return JSONResponse(desk_summary(conn, state, principal, request, kind, rows))


@router.get("/console", response_class=HTMLResponse, summary="The duty desk (值班台)")
def desk(
    request: Request,
    principal: PageViewer,
    conn: Conn,
    state: State,
    kind: Annotated[str | None, Query(max_length=40)] = None,
):
    t = texts_for(state.settings.lang)
    c = t["console"]
    summary = desk_summary(conn, state, principal, request, kind)
    keys = ("alerts_opened", "cases_opened", "cases_closed", "median_close_h")
    summary["trend_max"] = {k: max((d[k] or 0) for d in summary["trend"]) for k in keys}
    trend_rows = [(key, c[key.removesuffix("_h")]) for key in keys]
    return console_page(
        state,
        principal,
        "console/desk.html",
        "console",
        t["desk"],
        summary=summary,
        trend_rows=trend_rows,
        kind=kind,
        kind_label=t["alert_kind"].get(kind or "", kind),
        script_data=_desk_script(t, state, summary, kind),
    )


def _desk_script(t: dict, state: ApiState, summary: dict, kind: str | None) -> dict:
    return {
        "after": state.feed.watermark,
        "zone": state.zone.key,
        "kind": kind,
        "urgent": list(EMERGENCY_KINDS),
        "texts": {
            "kind": t["alert_kind"],
            "state": {k: v for k, v in t["alert_state"].items() if k is not None},
            "level": t["level"],
            "connected": t["connected"],
            "reconnecting": t["reconnecting"],
            "no_alerts": t["no_alerts"],
        }
        | _case_texts(t),
        "known": [a["alert_id"] for a in summary["live"]],
        "cases_after": case_stream_start(state),
    }


def _case_texts(t: dict) -> dict:
    """The words a page needs to show a step of a case that came over the case stream."""
    return {
        "case_kind": t["kind"],
        "case_category": {"hazard": t["category"], "request": t["service"]},
        "case_status": {"hazard": t["status"], "request": t["request_status"]},
        "case_event": t["console"]["event"],
    }


# -- one alert --------------------------------------------------------------------------------


def _why(t: dict, state: ApiState, row: AlertRow) -> str:
    since = row.since.astimezone(state.zone).strftime("%Y-%m-%d %H:%M")
    template = t["console"]["why_kind"].get(row.kind)
    return template.format(since=since) if template else t["alert_kind"].get(row.kind, row.kind)


def _alert_history(t: dict, conn, alert_id: int) -> list[dict]:
    """The alert's events for people: actions in words, the engine's kind codes too."""
    events = t["console"]["event"]
    return [
        {
            "at": e.at,
            "label": events.get(e.action, e.action),
            "actor": e.actor,
            "note": t["alert_kind"].get(e.note, e.note) if e.note else None,
        }
        for e in alert_history(conn, alert_id)
    ]


@router.get("/console/alerts/{alert_id}", response_class=HTMLResponse, summary="One alert")
def alert_view(
    request: Request, principal: PageViewer, conn: Conn, state: State, alert_id: AlertId
):
    t = texts_for(state.settings.lang)
    row = get_visible_alert(conn, principal, alert_id)
    record_reads(conn, principal, request, shown_in_clear(principal, [row], ALERT_RESIDENT))
    alert = live_item(t, state, principal, row)
    alert.update(
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
    )
    absent = False
    calls: list[dict] = []
    if row.resident_id:
        absent = get_resident(conn, row.resident_id, now=state.now()).absent
        calls = people_to_call(conn, principal, request, *resident_home(conn, row.resident_id))
    return console_page(
        state,
        principal,
        "console/alert.html",
        "alert",
        f"{alert['kind_label']} · {t['console']['alert']}",
        alert=alert,
        why=_why(t, state, row),
        absent=absent,
        calls=calls,
        history=_alert_history(t, conn, alert_id),
        script_data={
            "alert_id": alert_id,
            "after": state.feed.watermark,
            "kinds": t["alert_kind"],
            "week": f"/console/alerts/{alert_id}/week.json",
            "zone": state.zone.key,
            "status": row.status,
            "texts": _action_texts(t),
            "series": t["console"]["series"],
        },
    )


def _action_texts(t: dict) -> dict:
    c = t["console"]
    return {
        "state": {k: v for k, v in t["alert_state"].items() if k is not None},
        "level": t["level"],
        "event": c["event"],
        "sending": c["sending"],
        "done": c["done"],
        "failed": c["failed"],
        "acknowledged_by": c["acknowledged_by"],
        "resolved_by": c["resolved_by"],
    }


@router.get(
    "/console/alerts/{alert_id}/week.json",
    response_class=JSONResponse,
    summary="The resident's last 7 days around an alert",
)
def alert_week(request: Request, principal: Reader, conn: Conn, state: State, alert_id: AlertId):
    """Meter power against the learned night baseline, the signs of life the engine sees in
    it, sensor events, visits and checks, absences, and the alert's span, for the 7 days up
    to the alert's end (or now). Times are epoch seconds; `zone` is the district's."""
    row = get_visible_alert(conn, principal, alert_id)
    now = state.now()
    span_end = row.resolved_at or now
    end = min(max(span_end, row.opened_at) + timedelta(hours=6), now)
    start = end - WEEK
    week = (
        home_week(conn, row.resident_id, start=start, end=end, zone=state.zone)
        if (row.resident_id)
        else None
    )
    body: dict = {
        "zone": state.zone.key,
        "start": start.timestamp(),
        "end": end.timestamp(),
        "span": [row.since.timestamp(), span_end.timestamp()],
        "opened_at": row.opened_at.timestamp(),
        "kind": row.kind,
        "power": {"t": [], "w": []},
        "baseline": None,
        "meter_signs": [],
        "sensor_events": [],
        "seen": [],
        "absences": [],
    }
    if week is None:
        return JSONResponse(body)
    times, watts = _thinned(week.readings)
    b = week.baseline
    body.update(
        power={"t": times, "w": watts},
        baseline={
            "night_mean_w": round(b.night_mean_w, 1),
            "night_peak_w": round(b.night_peak_w, 1),
            "spike_w": round(b.spike_w, 1),
            "sustained_w": round(b.sustained_w, 1),
        }
        if week.meter_id
        else None,
        meter_signs=[at.timestamp() for at in week.meter_signs],
        sensor_events=[[at.timestamp(), event] for at, event in week.sensor_events],
        seen=[[s.at.timestamp(), s.what, s.actor] for s in week.seen],
        absences=[[a.timestamp(), b.timestamp()] for a, b in week.absences],
    )
    return JSONResponse(body)


def _thinned(readings: list[tuple[datetime, float | None]]) -> tuple[list[float], list]:
    """At most about MAX_POINTS readings: runs of readings become their peak, so a kettle's
    minute stays visible at any zoom."""
    step = max(1, -(-len(readings) // MAX_POINTS))
    times, watts = [], []
    for i in range(0, len(readings), step):
        chunk = readings[i : i + step]
        values = [w for _, w in chunk if w is not None]
        times.append(chunk[0][0].timestamp())
        watts.append(max(values) if values else None)
    return times, watts


# -- the ledger -------------------------------------------------------------------------------

LEDGER_COLUMNS = (
    "id", "kind", "grid", "category", "severity", "status", "level", "found", "due", "desc",
)  # fmt: skip


@router.get("/console/ledger", response_class=HTMLResponse, summary="The ledger on screen")
def ledger_view(
    request: Request,
    principal: PageViewer,
    conn: Conn,
    state: State,
    form: Annotated[LedgerForm, Depends()],
):
    """The ledger with the filters of /ledger; a filter left empty in the form is no filter.
    `source` has no control of its own: a link asks it (the desk's 预警) and the page keeps it."""
    t = texts_for(state.settings.lang)
    c = t["console"]
    filters = form.filters()
    chosen = {k: v for k, v in filters.items() if v}
    ask = form.ask()
    offset, sort, source = form.offset, form.sort, form.source
    rows, matched = ledger_rows(conn, state, principal, ask, limit=LEDGER_PAGE, offset=offset)
    now = state.now()
    catalog = state.catalog(conn)
    columns = dict(zip(LEDGER_COLUMNS, _ledger_headings(t), strict=True))
    sortable = {"kind": "kind", "grid": "grid", "category": "category", "severity": "severity"}
    sortable |= {"status": "status", "level": "level", "found": "found", "due": "due"}
    sort_urls, sort_marks = {}, {}
    for key in sortable:
        descending = sort == key
        sort_urls[key] = _url(
            "/console/ledger", chosen | {"sort": f"-{key}" if descending else key}
        )
        sort_marks[key] = " ▲" if sort == key else " ▼" if sort == f"-{key}" else ""
    return console_page(
        state,
        principal,
        "console/ledger.html",
        "ledger",
        t["ledger"],
        q={k: v or "" for k, v in filters.items()},
        choices=_ledger_choices(t, catalog, principal)
        | {
            "sort": [
                (f"{way}{key}", f"{columns[key]} {mark}")
                for key in sortable
                for way, mark in (("", "▲"), ("-", "▼"))
            ]
        },
        rows=[_ledger_row(t, r, now) for r in rows],
        columns=list(columns.items()),
        labels=columns,
        sortable=sortable,
        sort_urls=sort_urls,
        sort_marks=sort_marks,
        matched_text=c["matched"].format(n=matched),
        shown_text=c["shown"].format(n=len(rows)) if matched > len(rows) else "",
        source_text=", ".join(c["sources"].get(one, one) for one in source.split(","))
        if source
        else "",
        unsourced_url=_url("/console/ledger", {k: v for k, v in chosen.items() if k != "source"}),
        csv_url=_url("/ledger.csv", chosen),
        xlsx_url=_url("/ledger.xlsx", chosen),
        prev_url=_url("/console/ledger", chosen | {"offset": max(offset - LEDGER_PAGE, 0)})
        if offset
        else None,
        next_url=_url("/console/ledger", chosen | {"offset": offset + LEDGER_PAGE})
        if offset + LEDGER_PAGE < matched
        else None,
        script_data={},
    )


def _url(path: str, query: dict) -> str:
    return path + ("?" + urlencode(query) if query else "")


def _ledger_headings(t: dict) -> list[str]:
    names = t["ledger_columns"]  # the CSV's headings, so screen and file read alike
    return [names[0], names[17], names[2], names[4], names[5], names[6], names[7], names[10],
            names[11], names[15]]  # fmt: skip


def grid_choices(t: dict, catalog: GridCatalog, principal: Principal) -> list[tuple[str, str]]:
    """(code, label) of the grids a page's grid filter offers the caller: theirs, each level."""
    return [
        (g.code, f"{t['levels'].get(g.level, g.level)} · {g.name} ({g.code})")
        for g in sorted(catalog.grids, key=lambda g: g.code)
        if principal.sees_grid(g.id) and g.level != "district"
    ]


def _ledger_choices(t: dict, catalog: GridCatalog, principal: Principal) -> dict:
    return {
        "kind": [(kind, t["kind"][kind]) for kind in KINDS],
        "level": [(level, t["level"][level]) for level in LEVELS],
        "grid": grid_choices(t, catalog, principal),
        "status": [(s, t["status"].get(s) or t["request_status"][s]) for s in LEDGER_STATUSES],
        "category": [(k, t["category"].get(k) or t["service"][k]) for k in LEDGER_CATEGORIES],
    }


def _ledger_row(t: dict, row, now: datetime) -> dict:
    late = row.hours_late(now)
    c = t["console"]
    return {
        "id": str(row.id),
        "kind": row.kind,
        "kind_label": t["kind"].get(row.kind, row.kind),
        "grid": row.grid_code,
        "grid_name": row.grid_name,
        "category_label": case_category(t, row.kind, row.category),
        "severity": row.severity or "",
        "severity_label": t["severity"].get(row.severity, row.severity) if row.severity else "",
        "status_label": case_status(t, row.kind, row.status),
        "level_label": t["level"].get(row.level, row.level),
        "observed_at": row.observed_at,
        "due_at": row.due_at,
        "overdue": row.overdue,
        "overdue_text": _overdue_text(c, late) if late else "",
        "closed_at": row.closed_at,
        "description": row.description,
        "place_name": row.place_name,
    }


# -- one case (a hazard or a request) ---------------------------------------------------------


@router.get("/console/cases/{case_id}", response_class=HTMLResponse, summary="One case")
def case_view(
    request: Request,
    principal: PageViewer,
    conn: Conn,
    state: State,
    case_id: Annotated[str, Path(max_length=64)],
):
    """A hazard's page, or a request's: the ledger links both kinds here."""
    try:
        hazard = get_visible_hazard(conn, principal, case_id)
    except NotFound:
        return _request_view(request, principal, conn, state, case_id)
    t = texts_for(state.settings.lang)
    due = hazard.due_at or hazard.deadline_at
    shown = {
        "category_label": t["category"].get(hazard.category, hazard.category),
        "severity_label": t["severity"].get(hazard.severity, hazard.severity),
        "status_label": t["status"].get(hazard.status, hazard.status),
        "observed_at": hazard.observed_at,
        "reporter_id": hazard.reporter_id,
        "place": _finding_place(t, conn, hazard.place_id),
    }
    now = state.now()
    late = is_overdue(hazard.status, due, now)
    page = _CasePage(t, _HAZARD_PAGE, hazard, state.catalog(conn), due, late, now)
    return page.render(
        state,
        principal,
        shown,
        hazard_events(conn, hazard.id),
        hazard.photo_urls,
        {step: sorted(src) for step, (src, _) in TRANSITIONS.items()},
        steps=HAZARD_STEPS,
        calls=case_calls(conn, principal, request, hazard.lon, hazard.lat, hazard.place_id),
        grid_choices=[],
    )


def _finding_place(t: dict, conn, place_id: str | None) -> dict | None:
    """The place whose inspection found this hazard, with its row in the register."""
    if place_id is None:
        return None
    place = get_place(conn, place_id)
    query = urlencode({"grid": place.grid_code} if place.grid_code else {})
    return {
        "name": place.name,
        "kind_label": t["places"]["kind"].get(place.kind, place.kind),
        "url": f"/console/places{'?' + query if query else ''}#place-{place.id}",
    }


def _request_view(
    request: Request, principal: Principal, conn, state: ApiState, case_id: str
) -> HTMLResponse:
    """A request's page: what was asked, its clocks, its steps (those its status allows and
    the caller may take) and its history. The requester's contact is not shown here."""
    t = texts_for(state.settings.lang)
    found = visible_request(conn, principal, case_id)
    catalog = state.catalog(conn)
    due = request_deadline(found.status, found.accept_by, found.due_at)
    now = state.now()
    late = found.status in REQUEST_OPEN and due <= now
    page = _CasePage(t, _REQUEST_PAGE, found, catalog, due, late, now)
    transitions = {
        step: sorted(src)
        for step, (src, _) in REQUEST_TRANSITIONS.items()
        if step != "dispatch" or principal.role in DISPATCHERS
    }
    return page.render(
        state,
        principal,
        {
            "category_label": case_category(t, "request", found.service_code),
            "severity_label": t["console"]["sources"].get(found.source, found.source),
            "status_label": case_status(t, "request", found.status),
            "observed_at": found.requested_at,
            "reporter_id": found.reporter,
        },
        request_events(conn, found.id),
        found.media_urls,
        transitions,
        steps=[(step, step) for step in transitions],
        calls=case_calls(conn, principal, request, found.lon, found.lat),
        grid_choices=[
            (g.code, g.name or g.code)
            for g in sorted(catalog.grids, key=lambda g: g.code)
            if g.level == "grid" and principal.sees_grid(g.id)
        ],
    )


@dataclass(frozen=True, slots=True)
class _CaseKind:
    """What the pages of a kind of case (hazards, requests) differ in beyond their rows: the
    routes they post to and read from, and the keys of their title, step and status texts."""

    path: str
    title: str
    step_labels: str
    statuses: str


_HAZARD_PAGE = _CaseKind("hazards", "case", "steps", "status")
_REQUEST_PAGE = _CaseKind("requests", "request_case", "request_steps", "request_status")


@dataclass(frozen=True, slots=True)
class _CasePage:
    """The page of one case, a hazard or a request (`row`): what both show of it, its due
    time and whether it is past it (`late`) at `now`."""

    t: dict
    kind: _CaseKind
    row: Hazard | RequestRow
    catalog: GridCatalog
    due: datetime | None
    late: bool
    now: datetime

    def render(
        self,
        state: ApiState,
        principal: Principal,
        shown: dict,
        events: list,
        sent_photos: list[str],
        transitions: dict[str, list[str]],
        **steps,
    ) -> HTMLResponse:
        """The page with `shown`, what only this kind shows, the history `events`, the photos
        sent with the case and with its steps, and the steps (`transitions` from the statuses
        each may follow) it offers the caller."""
        t, c, row = self.t, self.t["console"], self.row
        grid = self.catalog.by_id.get(row.grid_id) if row.grid_id is not None else None
        case = {
            "id": str(row.id),
            **shown,
            "level_label": t["level"].get(row.level, row.level),
            "overdue": self.late,
            "overdue_text": _overdue_text(c, self.hours_late()),
            "description": row.description,
            "due_at": self.due,
            "grid": row.grid_code,
            "grid_name": grid.name if grid else None,
            "assignee": row.assignee,
        }
        return console_page(
            state,
            principal,
            "console/case.html",
            "case",
            f"{case['category_label']} · {c[self.kind.title]}",
            case=case,
            photos=list(dict.fromkeys([*sent_photos, *(u for e in events for u in e.photo_urls)])),
            step_labels=c[self.kind.step_labels],
            post_to=f"/{self.kind.path}/{row.id}",
            allowed=[step for step, src in transitions.items() if row.status in src],
            history=[case_event(t, state, e) for e in events],
            script_data={
                "case_id": str(row.id),
                "item": f"/collections/{self.kind.path}/items/{row.id}",
                "cases_after": case_stream_start(state),
                "zone": state.zone.key,
                "transitions": transitions,
                "texts": _action_texts(t)
                | {"photos": c["photos"], "case_state": t[self.kind.statuses]},
                "map": _case_map(state, row.lon, row.lat, grid),
            },
            **steps,
        )

    def hours_late(self) -> float | None:
        """How long the case is past its due time; None when it is not late."""
        if not self.late or self.due is None:
            return None
        return (self.now - self.due).total_seconds() / 3600


def _overdue_text(c: dict, hours: float | None) -> str:
    """'超期2天3小时' for a case `hours` past its due time; nothing for one on time (None)."""
    return "" if hours is None else c["overdue_by"].format(h=duration_text(hours, c))


def case_event(t: dict, state: ApiState, event) -> dict:
    """One step of a case for people; the escalation job's own notes (for logs) left out."""
    c = t["console"]
    return {
        "at_text": event.at.astimezone(state.zone).strftime("%Y-%m-%d %H:%M"),
        "label": c["event"].get(event.action, event.action),
        "actor": event.actor,
        "note": None if event.actor == "gridwatch" else event.note,
        "photo_urls": event.photo_urls,
    }


def _case_map(state: ApiState, lon: float | None, lat: float | None, grid) -> dict:
    """The case's point (None: a request with only an address) and its grid's outline in the
    tiles' CRS, and the tiles."""
    tiles = tiles_for(state.settings.tiles, tianditu_key=state.settings.tianditu_key)
    point = None
    if lon is not None and lat is not None:
        x, y = points_to_display(np.array([lon]), np.array([lat]), tiles.crs)
        point = [float(y[0]), float(x[0])]
    outline = None
    if grid is not None:
        outline = mapping(to_display(grid.geometry, tiles.crs))
    return {
        "point": point,
        "grid": outline,
        "tiles": [
            {
                "url": layer.url,
                "attribution": layer.attribution,
                "subdomains": layer.subdomains or "abc",
                "max_zoom": layer.max_zoom,
            }
            for layer in tiles.layers
        ],
    }
