"""The hazard loop over HTTP: assign, start, resolve, close, reopen (each a hazard_events
row), and the problem ledger (问题台账) as JSON and as a CSV that Excel opens correctly."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from gridwatch.api.auth import Reader
from gridwatch.api.bodies import AssignBody, FeedbackBody, NoteBody, ResolveBody
from gridwatch.api.collections import check_params, get_visible_hazard, page_size, subtree_ids
from gridwatch.api.coverage import parse_day
from gridwatch.api.features import hazard_feature
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.params import decode_cursor, encode_cursor
from gridwatch.api.responses import GeoJSONResponse, JSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.hazards import STATUSES
from gridwatch.ingest.hazard import _photo_urls as validate_photo_urls
from gridwatch.maps.texts import texts_for
from gridwatch.model.vocabulary import HAZARD_CATEGORIES, Level
from gridwatch.store.filters import local_day_bounds
from gridwatch.store.hazards import (
    LEDGER_ORDERS,
    LedgerRow,
    hazard_events,
    ledger,
    transition_hazard,
)
from gridwatch.store.users import Principal

router = APIRouter(tags=["hazard loop"])

HazardId = Annotated[str, Path(max_length=64, description="the hazard's UUID")]
CSV_LIMIT = 100_000


def _transition(
    conn,
    state: ApiState,
    principal: Principal,
    hazard_id: str,
    action: str,
    *,
    note: str | None = None,
    assignee: str | None = None,
    photo_urls: list[str] | None = None,
):
    hazard = get_visible_hazard(conn, principal, hazard_id)
    photos = validate_photo_urls(photo_urls) if photo_urls else ()
    changed = transition_hazard(
        conn,
        hazard.id,
        action,
        actor=principal.name,
        now=state.now(),
        deadlines=state.deadlines,
        note=note,
        assignee=assignee,
        photo_urls=photos,
    )
    return GeoJSONResponse(hazard_feature(changed, state.now(), hazard_events(conn, changed.id)))


def _step(action: str, summary: str, conflict: str = "the hazard's status does not allow it"):
    """Route POST /hazards/{id}/<action>: a step of the loop, 409 when the status forbids it."""
    return router.post(
        f"/hazards/{{hazard_id}}/{action}",
        response_class=GeoJSONResponse,
        summary=summary,
        responses={409: {"description": conflict}},
    )


@_step("assign", "Assign a hazard to someone (reported, assigned, in progress or reopened)")
def assign(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: AssignBody):
    return _transition(
        conn, state, principal, hazard_id, "assign", note=body.note, assignee=body.assignee
    )


@_step("start", "Start handling a hazard")
def start(
    principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: NoteBody | None = None
):
    return _transition(conn, state, principal, hazard_id, "start", note=body.note if body else None)


@_step("resolve", "Resolve a hazard: what was done, with photos")
def resolve(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: ResolveBody):
    return _transition(
        conn, state, principal, hazard_id, "resolve", note=body.note, photo_urls=body.photo_urls
    )


@_step(
    "close",
    "Close a resolved hazard after feedback (反馈)",
    conflict="only a resolved hazard can be closed",
)
def close(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: FeedbackBody):
    return _transition(conn, state, principal, hazard_id, "close", note=body.note)


@_step(
    "reopen",
    "Reopen a resolved or closed hazard (the feedback says it is not done)",
    conflict="only a resolved or closed hazard can be reopened",
)
def reopen(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: FeedbackBody):
    return _transition(conn, state, principal, hazard_id, "reopen", note=body.note)


# -- the ledger -------------------------------------------------------------------------------

LevelQ = Annotated[
    Level | None,
    Query(description="the level a hazard is handled at now (it rises when overdue)"),
]
GridQ = Annotated[str | None, Query(max_length=64, description="grid code: it and all below")]
OverdueQ = Annotated[bool | None, Query(description="only overdue (true) or on time (false)")]
StatusQ = Annotated[str | None, Query(max_length=200, description="comma list of statuses")]
CategoryQ = Annotated[str | None, Query(max_length=200, description="comma list of categories")]
FromQ = Annotated[
    str | None, Query(alias="from", max_length=10, description="found on or after (YYYY-MM-DD)")
]
ToQ = Annotated[str | None, Query(max_length=10, description="found on or before (YYYY-MM-DD)")]
SortQ = Annotated[
    str | None,
    Query(
        max_length=20,
        description=f"order by one of {', '.join(LEDGER_ORDERS)}; '-' first for descending "
        "(default: most urgent first)",
    ),
]
LEDGER_PARAMS = {"level", "grid", "overdue", "status", "category", "from", "to", "sort"}


def _listed(text: str | None, known: tuple[str, ...], what: str) -> list[str] | None:
    """A comma list checked against `known`; None when empty."""
    if not text:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in known]
    if bad:
        raise BadRequest(f"unknown {what} {bad[0][:40]!r}: expected {', '.join(known)}")
    return values or None


def ledger_rows(
    conn,
    state: ApiState,
    principal: Principal,
    *,
    grid=None,
    level=None,
    overdue=None,
    status=None,
    category=None,
    from_=None,
    to=None,
    sort=None,
    limit,
    offset,
):
    """The ledger rows the caller may see with the filters of /ledger, (rows, matched)."""
    if sort and sort.removeprefix("-") not in LEDGER_ORDERS:
        raise BadRequest(f"sort must be one of {', '.join(LEDGER_ORDERS)}, '-' first to reverse")
    first = local_day_bounds(parse_day(from_, state), state.zone)[0] if from_ else None
    last = local_day_bounds(parse_day(to, state), state.zone)[1] if to else None
    grids = subtree_ids(state.catalog(conn), principal, grid)
    return ledger(
        conn,
        now=state.now(),
        deadlines=state.deadlines,
        scope=None if principal.sees_all else principal.scope_param(),
        grid_ids=grids,
        level=level,
        overdue=overdue,
        statuses=_listed(status, STATUSES, "status"),
        categories=_listed(category, HAZARD_CATEGORIES, "category"),
        found_from=first,
        found_until=last - timedelta(microseconds=1) if last else None,
        order=sort,
        limit=limit,
        offset=offset,
    )


def _row_json(row: LedgerRow, now: datetime) -> dict:
    late = row.hours_late(now)
    return {
        "id": str(row.id),
        "grid": row.grid_code,
        "grid_name": row.grid_name,
        "community": row.community_name,
        "category": row.category,
        "severity": row.severity,
        "status": row.status,
        "level": row.level,
        "reporter_id": row.reporter_id,
        "assignee": row.assignee,
        "observed_at": row.observed_at,
        "received_at": row.received_at,
        "due_at": row.due_at,
        "overdue": row.overdue,
        "overdue_hours": round(late, 1) if late is not None else None,
        "resolved_at": row.resolved_at,
        "description": row.description,
        "last_action": row.last_action,
        "last_note": row.last_note,
    }


@router.get("/ledger", response_class=JSONResponse, summary="The problem ledger (问题台账)")
def ledger_json(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    level: LevelQ = None,
    grid: GridQ = None,
    overdue: OverdueQ = None,
    status: StatusQ = None,
    category: CategoryQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    sort: SortQ = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    check_params(request, LEDGER_PARAMS | {"limit", "cursor"})
    size = page_size(state, limit)
    offset = (decode_cursor(cursor, (int,)) or [0])[0]
    if offset < 0:
        raise BadRequest("cursor is not one this server issued")
    rows, total = ledger_rows(
        conn,
        state,
        principal,
        grid=grid,
        level=level,
        overdue=overdue,
        status=status,
        category=category,
        from_=from_,
        to=to,
        sort=sort,
        limit=size,
        offset=offset,
    )
    now = state.now()
    links = [{"href": str(request.url), "rel": "self"}]
    if offset + size < total:
        links.append(
            {
                "href": str(
                    request.url.include_query_params(cursor=encode_cursor([offset + size]))
                ),
                "rel": "next",
            }
        )
    csv_url = request.url.replace(path="/ledger.csv").remove_query_params(["limit", "cursor"])
    links.append({"href": str(csv_url), "rel": "alternate", "type": "text/csv"})
    return JSONResponse(
        {
            "items": [_row_json(r, now) for r in rows],
            "numberMatched": total,
            "numberReturned": len(rows),
            "timeStamp": now,
            "links": links,
        }
    )


@router.get(
    "/ledger.csv",
    summary="The problem ledger as CSV (UTF-8 with BOM, opens in Excel)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def ledger_csv(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    level: LevelQ = None,
    grid: GridQ = None,
    overdue: OverdueQ = None,
    status: StatusQ = None,
    category: CategoryQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    sort: SortQ = None,
):
    check_params(request, LEDGER_PARAMS)
    rows, total = ledger_rows(
        conn,
        state,
        principal,
        grid=grid,
        level=level,
        overdue=overdue,
        status=status,
        category=category,
        from_=from_,
        to=to,
        sort=sort,
        limit=CSV_LIMIT,
        offset=0,
    )
    if total > CSV_LIMIT:
        raise BadRequest(f"{total} rows match; narrow the ledger (grid=, level=) below {CSV_LIMIT}")
    text = ledger_csv_text(rows, state, state.now())
    day = state.now().astimezone(state.zone).date().isoformat()
    return Response(
        text.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ledger-{day}.csv"'},
    )


def ledger_csv_text(rows: list[LedgerRow], state: ApiState, now: datetime) -> str:
    """The ledger as CSV text in the settings' language, local times, CRLF line ends."""
    t = texts_for(state.settings.lang)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(t["ledger_columns"])
    zone = state.zone

    def local(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""

    for row in rows:
        late = row.hours_late(now)
        cells = [
            str(row.id),
            row.grid_code or "",
            row.grid_name or "",
            row.community_name or "",
            t["category"].get(row.category, row.category),
            t["severity"].get(row.severity, row.severity),
            t["status"].get(row.status, row.status),
            t["level"].get(row.level, row.level),
            row.reporter_id,
            row.assignee or "",
            local(row.observed_at),
            local(row.due_at),
            t["yes"] if row.overdue else t["no"],
            f"{late:.1f}" if late is not None else "",
            local(row.resolved_at),
            row.description,
            row.last_note or "",
        ]
        writer.writerow([_cell(cell) for cell in cells])
    return out.getvalue()


def _cell(text: str) -> str:
    """A cell Excel shows as text: a leading = + - @ (or tab, CR) would start a formula. Every
    cell passes here: ids, names and codes come from reporters and grid files too."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
