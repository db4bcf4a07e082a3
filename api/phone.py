"""The grid worker's phone view (/m): my open tasks — the alerts of my grids, the hazards and
requests in them waiting for someone to act, the residents living alone due a home visit, the
places due an inspection (安全巡查) — with the steps each allows now, a form to report a
hazard, one to record a visit and one to record an inspection with its findings. Every
step posts through the API the console uses (/alerts/{id}/ack, /hazards/{id}/start,
/requests/{id}/accept, POST /hazards, POST /checkins, …); this module only gathers what the
caller may see and draws it. The list is also served alone (/m/tasks) so the page can redraw
it after a step or a live event without a reload; the phone sorts it by distance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gridwatch.api.auth import PageViewer, Reader, scope_filters
from gridwatch.api.console import console_page
from gridwatch.api.disclosure import ALERT_RESIDENT, record_reads, shown_in_clear
from gridwatch.api.features import person
from gridwatch.api.live import case_stream_start
from gridwatch.api.map_pages import PAGE_HEADERS
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.hazards import TRANSITIONS as HAZARD_STEPS
from gridwatch.cases.inspections import is_overdue as inspection_overdue
from gridwatch.cases.ledger import STATUSES as CASE_STATUSES
from gridwatch.cases.requests import TRANSITIONS as REQUEST_STEPS
from gridwatch.ingest.patrol import MAX_FINDINGS, MAX_NEEDS, MAX_NOTE
from gridwatch.maps.console import duration_text, render_fragment
from gridwatch.maps.texts import texts_for
from gridwatch.model.vocabulary import EMERGENCY_EVENTS, HAZARD_CATEGORIES, SEVERITIES
from gridwatch.store.alerts import AlertRow, alert_page
from gridwatch.store.checkins import ResidentVisit, residents_to_visit
from gridwatch.store.filters import Filters
from gridwatch.store.ledger import LedgerRow, ledger
from gridwatch.store.places import PlaceRecord, places_due
from gridwatch.store.users import Principal

router = APIRouter(tags=["console"])

TASK_LIMIT = 200  # of each kind: a worker's grid holds a handful, a street a few hundred
RESIDENT_CHOICES = 300
# What a worker does on each kind of case from the phone, in the order the buttons stand.
CASE_STEPS = {
    "hazard": ("start", "resolve"),  # a hazard is taken on by starting it (no 接单 step)
    "request": ("accept", "start", "resolve"),
}
_TRANSITIONS = {"hazard": HAZARD_STEPS, "request": REQUEST_STEPS}
# The cases a worker can act on: those a phone step may follow.
ACTIONABLE = tuple(
    s
    for s in CASE_STATUSES
    if any(s in _TRANSITIONS[k][step][0] for k, steps in CASE_STEPS.items() for step in steps)
)
ALERT_STEPS = {"open": ("ack", "resolve-alert"), "acknowledged": ("resolve-alert",)}


@dataclass(frozen=True, slots=True)
class Step:
    action: str  # the data-action name: the form it opens
    label: str
    post: str  # where the form posts


@dataclass(frozen=True, slots=True)
class Task:
    """One row of the list: what it is, where, how urgent, and the steps it allows."""

    key: str  # unique in the list: kind and id
    kind: str  # alert, hazard, request, visit or inspection
    kind_label: str
    title: str
    detail: str
    grid: str | None
    status_label: str
    when_text: str
    late: bool
    rank: int  # 0 an emergency, 1 an open alert, 2 an overdue case or inspection, 3 a case,
    # 4 a visit or an inspection due
    lon: float | None
    lat: float | None
    steps: tuple[Step, ...]
    link: str | None = None  # the console's page of it
    mine: bool = False
    resident_id: str | None = None  # a visit's resident
    last_needs: str | None = None
    place_id: str | None = None  # an inspection's place


def step_labels(t: dict) -> dict[str, str]:
    """What each step's button says: the console's words for the same steps."""
    c = t["console"]
    return {
        "ack": c["ack"],
        "resolve-alert": c["resolve_alert"],
        "accept": c["request_steps"]["accept"],
        "start": c["steps"]["start"],
        "resolve": c["steps"]["resolve"],
        "visit": t["phone"]["record_visit"],
        "inspect": t["phone"]["inspect"],
    }


def _scope(principal: Principal) -> list[int] | None:
    return None if principal.sees_all else principal.scope_param()


def gather_tasks(
    conn, state: ApiState, principal: Principal, request: Request
) -> tuple[list[Task], list[ResidentVisit]]:
    """The caller's tasks, most urgent first, and the residents they may visit (due first);
    every resident shown in clear is recorded as read."""
    t = texts_for(state.settings.lang)
    now = state.now()
    scope = _scope(principal)
    alerts = alert_page(
        conn, Filters(scope=scope), limit=TASK_LIMIT, statuses=list(ALERT_STEPS)
    ).rows
    cases, _ = ledger(
        conn,
        now=now,
        deadlines=state.deadlines,
        scope=scope,
        statuses=ACTIONABLE,
        limit=TASK_LIMIT,
    )
    residents = residents_to_visit(
        conn,
        scope=scope,
        now=now,
        every=timedelta(days=state.settings.visit_every_days),
        limit=RESIDENT_CHOICES,
    )
    places = places_due(conn, scope_filters(principal), now=now, limit=TASK_LIMIT)
    shown = shown_in_clear(principal, alerts, ALERT_RESIDENT) + shown_in_clear(principal, residents)
    record_reads(conn, principal, request, list(dict.fromkeys(shown)))
    local = _local(state)
    tasks = [_alert_task(t, principal, row, local) for row in alerts]
    tasks += [_case_task(t, principal, row, local, now) for row in cases]
    tasks += [_visit_task(t, principal, r, local) for r in residents if r.due]
    tasks += [_inspection_task(t, place, local, now) for place in places]
    tasks.sort(key=lambda task: task.rank)  # stable: each kind keeps its own order within
    return tasks, residents


def _local(state: ApiState):
    def local(at: datetime | None) -> str:
        return at.astimezone(state.zone).strftime("%m-%d %H:%M") if at else ""

    return local


def _alert_task(t: dict, principal: Principal, row: AlertRow, local) -> Task:
    p = t["phone"]
    shown = person(principal, row.grid_id, row.name, row.phone, row.address)
    urgent = row.kind in EMERGENCY_EVENTS
    return Task(
        key=f"alert:{row.id}",
        kind="alert",
        kind_label=p["kind"]["alert"],
        title=t["alert_kind"].get(row.kind, row.kind),
        detail=" · ".join(x for x in (shown["name"], shown["address"]) if x),
        grid=row.grid_code,
        status_label=t["alert_state"].get(row.status, row.status),
        when_text=p["since"].format(at=local(row.since)),
        late=urgent,
        rank=0 if urgent else 1,
        lon=row.lon,
        lat=row.lat,
        steps=tuple(
            Step(
                step,
                step_labels(t)[step],
                f"/alerts/{row.id}/{'ack' if step == 'ack' else 'resolve'}",
            )
            for step in ALERT_STEPS[row.status]
        ),
        link=f"/console/alerts/{row.id}",
    )


def _case_task(t: dict, principal: Principal, row: LedgerRow, local, now: datetime) -> Task:
    p, c = t["phone"], t["console"]
    late = row.hours_late(now)
    transitions = _TRANSITIONS[row.kind]
    words = t["category"] if row.kind == "hazard" else t["service"]
    states = t["status"] if row.kind == "hazard" else t["request_status"]
    base = "/hazards" if row.kind == "hazard" else "/requests"
    return Task(
        key=f"{row.kind}:{row.id}",
        kind=row.kind,
        kind_label=p["kind"][row.kind],
        title=words.get(row.category, row.category)
        + (f" · {t['severity'][row.severity]}" if row.severity else ""),
        detail=" · ".join(x for x in (row.place_name, row.description) if x),
        grid=row.grid_code,
        status_label=states.get(row.status, row.status),
        when_text=c["overdue_by"].format(h=duration_text(late, c))
        if late is not None
        else p["due_by"].format(at=local(row.due_at))
        if row.due_at
        else "",
        late=row.overdue,
        rank=2 if row.overdue else 3,
        lon=row.lon,
        lat=row.lat,
        steps=tuple(
            Step(step, step_labels(t)[step], f"{base}/{row.id}/{step}")
            for step in CASE_STEPS[row.kind]
            if row.status in transitions[step][0]
        ),
        link=f"/console/cases/{row.id}",
        mine=row.assignee == principal.name,
    )


def _visit_task(t: dict, principal: Principal, row: ResidentVisit, local) -> Task:
    p = t["phone"]
    shown = person(principal, row.grid_id, row.name, row.phone, row.address)
    last = p["last_visit"].format(at=local(row.last_visit_at)) if row.last_visit_at else None
    return Task(
        key=f"visit:{row.id}",
        kind="visit",
        kind_label=p["kind"]["visit"],
        title=shown["name"] or row.id,
        detail=shown["address"] or "",
        grid=row.grid_code,
        status_label=p["due_visit"],
        when_text=last or p["never_visited"],
        late=False,
        rank=4,
        lon=row.lon,
        lat=row.lat,
        steps=(Step("visit", p["record_visit"], "/checkins"),),
        resident_id=row.id,
        last_needs=None if shown["masked"] else row.last_needs,
    )


def _inspection_task(t: dict, place: PlaceRecord, local, now: datetime) -> Task:
    """A place due (or overdue) for inspection: its step opens the inspection form."""
    p, c = t["phone"], t["console"]
    late = inspection_overdue(place.next_due_at, now)
    last = (
        p["last_inspection"].format(at=local(place.last_inspected_at))
        if place.last_inspected_at
        else p["never_inspected"]
    )
    hours = (now - place.next_due_at).total_seconds() / 3600
    kind = t["places"]["kind"].get(place.kind, place.kind)
    return Task(
        key=f"inspection:{place.id}",
        kind="inspection",
        kind_label=p["kind"]["inspection"],
        title=place.name,
        detail=" · ".join(x for x in (kind, place.address, last) if x),
        grid=place.grid_code,
        status_label=p["overdue_inspection"] if late else p["due_inspection"],
        when_text=c["overdue_by"].format(h=duration_text(hours, c))
        if late
        else p["due_by"].format(at=local(place.next_due_at)),
        late=late,
        rank=2 if late else 4,
        lon=place.lon,
        lat=place.lat,
        steps=(Step("inspect", p["inspect"], "/checkins"),),
        link=f"/console/places?{urlencode({'grid': place.grid_code or ''})}#place-{place.id}",
        place_id=place.id,
    )


def _choices(t: dict, principal: Principal, residents: list[ResidentVisit]) -> list[tuple]:
    """(resident id, label, lon, lat) of the residents the visit form offers, due first."""
    p = t["phone"]
    out = []
    for r in residents:
        shown = person(principal, r.grid_id, r.name, r.phone, r.address)
        due = p["due_visit"] if r.due else None
        label = " · ".join(x for x in (shown["name"] or r.id, due, shown["address"]) if x)
        out.append((r.id, label, r.lon, r.lat))
    return out


@router.get("/m", response_class=HTMLResponse, summary="The grid worker's phone view")
def phone(request: Request, principal: PageViewer, conn: Conn, state: State):
    """My tasks, nearest first on the phone, with the steps each allows; report a hazard;
    record a home visit with what the resident asks for (微心愿)."""
    t = texts_for(state.settings.lang)
    p = t["phone"]
    tasks, residents = gather_tasks(conn, state, principal, request)
    return console_page(
        state,
        principal,
        "console/phone.html",
        "phone",
        p["title"],
        p=p,
        tasks=tasks,
        residents=_choices(t, principal, residents),
        categories=[(c, t["category"][c]) for c in HAZARD_CATEGORIES],
        severities=[(s, t["severity"][s]) for s in SEVERITIES],
        visit_statuses=list(p["visit_statuses"].items()),
        results=list(p["results"].items()),
        limits={"note": MAX_NOTE, "needs": MAX_NEEDS, "findings": MAX_FINDINGS},
        script_data={
            "alerts_after": state.feed.watermark,
            # A phone's clock may be off: reports are timed by the server's, as the page knew it.
            "now_ms": round(state.now().timestamp() * 1000),
            "cases_after": case_stream_start(state),
            "texts": {
                k: p[k]
                for k in (
                    "locating",
                    "located",
                    "no_position",
                    "distance_m",
                    "distance_km",
                    "photos_chosen",
                    "position_wait",
                    "position_ok",
                    "position_home",
                    "position_missing",
                    "report_done",
                    "visit_done",
                    "login_again",
                    "position_place",
                    "inspect_done",
                    "findings_done",
                    "finding",
                )
            }
            | {k: t["console"][k] for k in ("sending", "done", "failed")}
            | {k: t[k] for k in ("connected", "reconnecting")},
        },
    )


@router.get(
    "/m/tasks", response_class=HTMLResponse, summary="The phone view's task list (an HTML part)"
)
def phone_tasks(request: Request, principal: Reader, conn: Conn, state: State):
    """The list of /m alone, as the page redraws it after a step or a live event."""
    t = texts_for(state.settings.lang)
    tasks, _ = gather_tasks(conn, state, principal, request)
    part = render_fragment("console/phone_tasks.html", t, tasks=tasks, p=t["phone"])
    return HTMLResponse(part, headers=PAGE_HEADERS)
