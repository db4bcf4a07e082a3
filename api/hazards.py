"""The hazard loop over HTTP: assign, start, resolve, close, reopen (each a hazard_events
row), and the problem ledger (问题台账) of hazards and requests as JSON, and as a CSV and an
XLSX workbook that Excel opens correctly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from gridwatch.api.auth import Reader, scope_filters
from gridwatch.api.bodies import (
    AssignBody,
    FeedbackBody,
    NoteBody,
    ResolveBody,
    Strict,
    body_of,
    body_schema,
    with_body,
)
from gridwatch.api.collections import (
    SystemQ,
    check_params,
    get_visible_hazard,
    page_size,
    query_fields,
    query_names,
    subtree_ids,
)
from gridwatch.api.coverage import parse_day
from gridwatch.api.features import hazard_feature
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.layer_cache import NOT_MODIFIED, Body, LedgerLayer, conditional
from gridwatch.api.ledger_files import CSV_TYPE, XLSX_TYPE, attachment, ledger_csv, ledger_xlsx
from gridwatch.api.media import Posted, Sent, keep_photos
from gridwatch.api.params import decode_offset, encode_cursor
from gridwatch.api.responses import GeoJSONResponse, JSONResponse, dumps
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.ledger import CATEGORIES as LEDGER_CATEGORIES
from gridwatch.cases.ledger import KINDS
from gridwatch.cases.ledger import STATUSES as LEDGER_STATUSES
from gridwatch.cases.requests import SOURCES as REQUEST_SOURCES
from gridwatch.cases.requests import service
from gridwatch.ingest.payload import read_photo_urls as validate_photo_urls
from gridwatch.maps.texts import texts_for
from gridwatch.model.vocabulary import LEVELS, MANAGEMENT, Level
from gridwatch.store.filters import Filters, local_day_bounds
from gridwatch.store.hazards import hazard_events, transition_hazard
from gridwatch.store.ledger import LEDGER_ORDERS, LedgerRow, ledger
from gridwatch.store.media import MediaOwner
from gridwatch.store.users import Principal

router = APIRouter(tags=["hazard loop"])

HazardId = Annotated[str, Path(max_length=64, description="the hazard's UUID")]
CSV_LIMIT = 100_000  # rows in one file (CSV or XLSX)
TENTH_HOUR = timedelta(minutes=6)  # hours late are shown to a tenth
HALF_TENTH_HOUR = TENTH_HOUR / 2


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
    sent: Posted | None = None,
):
    hazard = get_visible_hazard(conn, principal, hazard_id)
    photos = validate_photo_urls(photo_urls) if photo_urls else ()
    if sent is not None:
        photos = sent.with_urls(photos)
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
    if sent is not None:
        owner = MediaOwner("resolve", hazard_id=changed.id, grid_id=changed.grid_id)
        keep_photos(conn, state, principal, sent, owner)
    return GeoJSONResponse(hazard_feature(changed, state.now(), hazard_events(conn, changed.id)))


def _step(
    action: str,
    summary: str,
    conflict: str = "the hazard's status does not allow it",
    **extra,
):
    """Route POST /hazards/{id}/<action>: a step of the loop, 409 when the status forbids it."""
    return router.post(
        f"/hazards/{{hazard_id}}/{action}",
        response_class=GeoJSONResponse,
        summary=summary,
        responses={409: {"description": conflict}},
        **extra,
    )


@_step("assign", "Assign a hazard to someone (reported, assigned, in progress or reopened)")
def assign(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body: AssignBody):
    return _transition(
        conn, state, principal, hazard_id, "assign", note=body.note, assignee=body.assignee
    )


def _note_step(action: str, summary: str, model: type[Strict] = NoteBody, **route) -> None:
    """Register step `action`, whose only input is a note: NoteBody may be left out (start);
    any other body, with its required note, must be sent (close, reopen)."""

    def step(principal: Reader, conn: Conn, state: State, hazard_id: HazardId, body=None):
        note = body.note if body else None
        return _transition(conn, state, principal, hazard_id, action, note=note)

    step.__name__ = step.__qualname__ = action
    _step(action, summary, **route)(with_body(step, model, optional=model is NoteBody))


_note_step("start", "Start handling a hazard")


@_step(
    "resolve",
    "Resolve a hazard: what was done, with photos (JSON, or multipart/form-data with files)",
    openapi_extra=body_schema(ResolveBody, photos=True),
)
def resolve(principal: Reader, state: State, hazard_id: HazardId, sent: Sent, conn: Conn):
    body = body_of(ResolveBody, sent.payload)
    return _transition(
        conn,
        state,
        principal,
        hazard_id,
        "resolve",
        note=body.note,
        photo_urls=body.photo_urls,
        sent=sent,
    )


_note_step(
    "close",
    "Close a resolved hazard after feedback (反馈)",
    FeedbackBody,
    conflict="only a resolved hazard can be closed",
)
_note_step(
    "reopen",
    "Reopen a resolved or closed hazard (the feedback says it is not done)",
    FeedbackBody,
    conflict="only a resolved or closed hazard can be reopened",
)


# -- the ledger -------------------------------------------------------------------------------

KindQ = Annotated[
    Literal["hazard", "request"] | None,
    Query(description="only hazards or only citizens' requests (诉求)"),
]
LevelQ = Annotated[
    Level | None,
    Query(description="the level a case is handled at now (it rises when overdue)"),
]
GridQ = Annotated[str | None, Query(max_length=64, description="grid code: it and all below")]
OverdueQ = Annotated[bool | None, Query(description="only overdue (true) or on time (false)")]
StatusQ = Annotated[str | None, Query(max_length=200, description="comma list of statuses")]
CategoryQ = Annotated[
    str | None,
    Query(max_length=200, description="comma list of hazard categories or request service codes"),
]
SourceQ = Annotated[
    str | None,
    Query(
        max_length=100,
        description=f"comma list of request sources ({', '.join(REQUEST_SOURCES)}); requests "
        "only, a hazard has none",
    ),
]
FromQ = Annotated[
    str | None, Query(alias="from", max_length=10, description="found on or after (YYYY-MM-DD)")
]
ToQ = Annotated[str | None, Query(max_length=10, description="found on or before (YYYY-MM-DD)")]
ClosedFromQ = Annotated[
    str | None, Query(max_length=10, description="closed (办结) on or after (YYYY-MM-DD)")
]
ClosedToQ = Annotated[
    str | None, Query(max_length=10, description="closed (办结) on or before (YYYY-MM-DD)")
]
FormQ = Annotated[str | None, Query(max_length=20)]  # the console's form: empty is no filter
SortQ = Annotated[
    str | None,
    Query(
        max_length=20,
        description=f"order by one of {', '.join(LEDGER_ORDERS)}; '-' first for descending "
        "(default: most urgent first)",
    ),
]


@dataclass(frozen=True, slots=True)
class LedgerTerms:
    """The filters of the ledger that /ledger and the console's form take alike, as text
    (the days, comma lists and order are checked when the ledger is read)."""

    grid: GridQ = None
    status: StatusQ = None
    category: CategoryQ = None
    source: SourceQ = None
    from_: FromQ = None
    to: ToQ = None
    closed_from: ClosedFromQ = None
    closed_to: ClosedToQ = None
    sort: SortQ = None


@dataclass(frozen=True, slots=True)
class LedgerAsk(LedgerTerms):
    """The filters of /ledger as asked, not yet checked: the ledger routes take them from the
    query string (a dependency); the console's form asks the same, kind, level and overdue
    as text (LedgerForm)."""

    kind: KindQ = None
    level: LevelQ = None
    overdue: OverdueQ = None
    system: SystemQ = MANAGEMENT


LedgerFilters = Annotated[LedgerAsk, Depends()]
LEDGER_PARAMS = query_names(LedgerAsk)


@dataclass(frozen=True, slots=True)
class LedgerForm(LedgerTerms):
    """The console's ledger form: the filters of /ledger, kind, level and overdue as the
    form's text, and the page's offset; a filter left empty is no filter."""

    kind: FormQ = None
    level: FormQ = None
    overdue: FormQ = None
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0

    def filters(self) -> dict[str, str | None]:
        """Each filter by its query parameter's name, as the form sent it."""
        return {name: getattr(self, field) for name, field in _FORM_FILTERS.items()}

    def ask(self) -> LedgerAsk:
        """The filters as /ledger takes them: 422 for a level, overdue or kind it would not
        take; an empty one none."""
        if self.level and self.level not in LEVELS:
            raise BadRequest(f"level must be one of {', '.join(LEVELS)}")
        if self.overdue and self.overdue not in ("true", "false"):
            raise BadRequest("overdue must be true or false")
        if self.kind and self.kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
        terms: dict[str, Any] = {
            field.name: getattr(self, field.name) or None for field in fields(LedgerTerms)
        }
        return LedgerAsk(
            kind="request" if self.kind == "request" else "hazard" if self.kind else None,
            level=self.level or None,
            overdue=None if not self.overdue else self.overdue == "true",
            **terms,
        )


_FORM_FILTERS = {name: f for name, f in query_fields(LedgerForm).items() if name != "offset"}


def _listed(text: str | None, known: tuple[str, ...], what: str) -> list[str] | None:
    """A comma list checked against `known`; None when empty."""
    if not text:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in known]
    if bad:
        raise BadRequest(f"unknown {what} {bad[0][:40]!r}: expected {', '.join(known)}")
    return values or None


@dataclass(frozen=True, slots=True)
class _LedgerQuery:
    """The filters of /ledger, checked; `found_from`/`found_until` and `closed_from`/
    `closed_until` the instants that begin and end the local days asked for (both kept and
    database answers take these)."""

    grid: str | None
    kind: str | None
    level: str | None
    overdue: bool | None
    statuses: list[str] | None
    categories: list[str] | None
    found_from: datetime | None
    found_until: datetime | None
    order: str | None
    system: str = MANAGEMENT  # the grid system `grid` is a grid of
    closed_from: datetime | None = None
    closed_until: datetime | None = None
    sources: list[str] | None = None

    def chosen_by(self) -> dict:
        """What the database's ledger and the kept one both select rows by, besides the
        caller's grids and the days found."""
        return {
            "kind": self.kind,
            "level": self.level,
            "overdue": self.overdue,
            "statuses": self.statuses,
            "categories": self.categories,
            "sources": self.sources,
            "order": self.order,
            "closed_from": self.closed_from,
            "closed_until": self.closed_until,
        }

    def filters(self, principal: Principal, grid_ids: list[int] | None) -> Filters:
        return scope_filters(
            principal,
            grid_ids=grid_ids,
            start=self.found_from,
            end=self.found_until,
            system=self.system,
        )


def _ledger_query(state: ApiState, ask: LedgerAsk) -> _LedgerQuery:
    sort = ask.sort
    if sort and sort.removeprefix("-") not in LEDGER_ORDERS:
        raise BadRequest(f"sort must be one of {', '.join(LEDGER_ORDERS)}, '-' first to reverse")
    found = _days(state, ask.from_, ask.to)
    closed = _days(state, ask.closed_from, ask.closed_to)
    if ask.kind is not None and ask.kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    return _LedgerQuery(
        ask.grid,
        ask.kind,
        ask.level,
        ask.overdue,
        _listed(ask.status, LEDGER_STATUSES, "status"),
        _listed(ask.category, LEDGER_CATEGORIES, "category"),
        *found,
        sort,
        ask.system,
        *closed,
        _listed(ask.source, REQUEST_SOURCES, "source"),
    )


def _days(
    state: ApiState, first: str | None, last: str | None
) -> tuple[datetime | None, datetime | None]:
    """The first and last instant of the local days from `first` to `last` (YYYY-MM-DD, each
    left open when absent); 422 with why for a day not so written."""
    start = local_day_bounds(parse_day(first, state), state.zone)[0] if first else None
    end = local_day_bounds(parse_day(last, state), state.zone)[1] if last else None
    return start, end - timedelta(microseconds=1) if end else None


def ledger_rows(
    conn, state: ApiState, principal: Principal, ask: LedgerAsk, *, limit: int, offset: int
) -> tuple[list[LedgerRow], int]:
    """The ledger rows the caller may see with the filters of /ledger, (rows, matched)."""
    q = _ledger_query(state, ask)
    return _ledger_rows(conn, state, principal, q, limit=limit, offset=offset)


def _ledger_rows(
    conn, state: ApiState, principal: Principal, q: _LedgerQuery, *, limit: int, offset: int
) -> tuple[list[LedgerRow], int]:
    """A page of the ledger from the database: what answers when nothing is kept."""
    return ledger(
        conn,
        now=state.now(),
        deadlines=state.deadlines,
        scope=None if principal.sees_all else principal.scope_param(),
        grid_ids=subtree_ids(state.catalog(conn), principal, q.grid, q.system),
        found_from=q.found_from,
        found_until=q.found_until,
        limit=limit,
        offset=offset,
        system=q.system,
        police_scope=principal.police_scope_param(),
        **q.chosen_by(),
    )


def _kept_rows(layer: LedgerLayer, principal: Principal, q: _LedgerQuery) -> list[LedgerRow]:
    """Every row of the kept ledger `ledger` would give this caller for `q`, in its order."""
    chosen = layer.select(
        q.filters(principal, subtree_ids(layer.catalog, principal, q.grid, q.system)),
        **q.chosen_by(),
    )
    return [layer.rows[i] for i in chosen]


async def _ledger_layer(state: ApiState) -> LedgerLayer | None:
    """The kept ledger, read now if it is to be kept; None when nothing is kept."""
    return await state.current_layer(state.kept_ledger, _read_ledger)


def _read_ledger(state: ApiState) -> LedgerLayer:
    with state.pool.connection() as conn:
        return state.ledger_layer(conn)


def _kept_body(
    layer: LedgerLayer,
    content: bytes,
    shown: list[LedgerRow],
    now: datetime,
    *,
    compress: bool = True,
) -> Body:
    """An answer that shows `shown` as of `now`: the answer until the ledger changes or the
    hours late it shows do."""
    until = _sooner(layer.valid_until, figures_change(shown, now))
    return Body.of(content, compress=compress, valid_until=until)


def _kept_answer(
    request: Request,
    state: ApiState,
    principal: Principal,
    layer: LedgerLayer,
    make: Callable[[], Body],
    media_type: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """`make`'s answer from the kept ledger, kept for this caller's grids and URL."""
    key = (layer.serial, principal.grid_ids, str(request.url))
    body = state.answers.answer(layer, key, make, state.now())
    return conditional(request, body, media_type, headers)


def figures_change(rows: Iterable[LedgerRow], now: datetime) -> datetime | None:
    """When the hours late shown (to a tenth) of any of `rows` next change after `now`: until
    then an answer made at `now` is the answer. `now` itself when one stands on a rounding
    tie (it may change a microsecond later)."""
    soonest = None
    for row in rows:
        if not row.overdue or row.due_at is None:
            continue
        late = now - row.due_at - HALF_TENTH_HOUR
        if late % TENTH_HOUR == timedelta(0):
            return now
        change = now - late % TENTH_HOUR + TENTH_HOUR
        soonest = change if soonest is None else min(soonest, change)
    return soonest


def _row_json(row: LedgerRow, now: datetime) -> dict:
    late = row.hours_late(now)
    return {
        "id": str(row.id),
        "kind": row.kind,
        "grid": row.grid_code,
        "grid_name": row.grid_name,
        "community": row.community_name,
        "category": row.category,
        "service_name": service(row.category).name if row.kind == "request" else None,
        "severity": row.severity,
        "status": row.status,
        "level": row.level,
        "reporter_id": row.reporter_id,
        "assignee": row.assignee,
        "observed_at": row.observed_at,
        "received_at": row.received_at,
        "due_at": row.due_at,
        "due_kind": row.due_kind,
        "overdue": row.overdue,
        "overdue_hours": round(late, 1) if late is not None else None,
        "resolved_at": row.resolved_at,
        "closed_at": row.closed_at,
        "description": row.description,
        "last_action": row.last_action,
        "last_note": row.last_note,
        "place": row.place_name,
        "source": row.source,
    }


@router.get(
    "/ledger",
    response_class=JSONResponse,
    summary="The problem ledger (问题台账)",
    responses=NOT_MODIFIED,
)
async def ledger_json(
    request: Request,
    principal: Reader,
    state: State,
    ask: LedgerFilters,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    """Kept between changes and until the next hazard falls due, each answer until the hours
    late it shows change: with nothing changed, an answer costs no database work."""
    check_params(request, LEDGER_PARAMS | {"limit", "cursor"})
    size = page_size(state, limit)
    offset = decode_offset(cursor)
    q = _ledger_query(state, ask)
    layer = await _ledger_layer(state)
    if layer is None:
        return await state.in_db_thread(
            _ledger_json_from_db, state, request, principal, q, size, offset
        )
    kept = layer

    def make() -> Body:
        rows = _kept_rows(kept, principal, q)
        page = rows[offset : offset + size]
        now = state.now()
        return _kept_body(
            kept, dumps(_ledger_page(request, page, len(rows), offset, size, now)), page, now
        )

    return _kept_answer(request, state, principal, kept, make, JSONResponse.media_type)


def _ledger_json_from_db(
    state: ApiState,
    request: Request,
    principal: Principal,
    q: _LedgerQuery,
    size: int,
    offset: int,
) -> JSONResponse:
    with state.pool.connection() as conn:
        rows, total = _ledger_rows(conn, state, principal, q, limit=size, offset=offset)
    return JSONResponse(_ledger_page(request, rows, total, offset, size, state.now()))


def _ledger_page(
    request: Request, rows: list[LedgerRow], total: int, offset: int, size: int, now: datetime
) -> dict:
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
    for path, media_type in (("/ledger.csv", "text/csv"), ("/ledger.xlsx", XLSX_TYPE)):
        url = request.url.replace(path=path).remove_query_params(["limit", "cursor"])
        links.append({"href": str(url), "rel": "alternate", "type": media_type})
    return {
        "items": [_row_json(r, now) for r in rows],
        "numberMatched": total,
        "numberReturned": len(rows),
        "timeStamp": now,
        "links": links,
    }


def _sooner(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class _LedgerFile:
    """A kind of ledger file: its extension, its media type, how it is written from the
    rows, and whether a kept answer is worth gzipping (an XLSX is a zip already)."""

    extension: str
    media_type: str
    write: Callable[[list[LedgerRow], dict, tzinfo, datetime], bytes]
    compress: bool


_CSV = _LedgerFile("csv", CSV_TYPE, ledger_csv, compress=True)
_XLSX = _LedgerFile(
    "xlsx",
    XLSX_TYPE,
    lambda rows, t, zone, now: ledger_xlsx(rows, t, zone, now, title=t["ledger"]),
    compress=False,
)
_FILE_RESPONSES: dict[int | str, dict] = {
    **NOT_MODIFIED,
    422: {"description": f"a bad filter, or more than {CSV_LIMIT} rows match"},
}


@router.get(
    "/ledger.csv",
    summary="The problem ledger as CSV (UTF-8 with BOM, opens in Excel)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **_FILE_RESPONSES},
)
async def ledger_csv_file(request: Request, principal: Reader, state: State, ask: LedgerFilters):
    """Kept as the JSON ledger is."""
    return await _ledger_file(request, principal, state, ask, _CSV)


@router.get(
    "/ledger.xlsx",
    summary="The problem ledger as an Excel workbook (XLSX)",
    response_class=Response,
    responses={200: {"content": {XLSX_TYPE: {}}}, **_FILE_RESPONSES},
)
async def ledger_xlsx_file(request: Request, principal: Reader, state: State, ask: LedgerFilters):
    """The rows, columns and order of the CSV, with times as Excel dates in the district's
    zone and hours late as numbers; kept as the JSON ledger is."""
    return await _ledger_file(request, principal, state, ask, _XLSX)


async def _ledger_file(
    request: Request, principal: Principal, state: ApiState, ask: LedgerAsk, kind: _LedgerFile
) -> Response:
    """The whole ledger the caller may see with the filters of /ledger (at most CSV_LIMIT
    rows) as a `kind` file to download, named for the district's day."""
    check_params(request, LEDGER_PARAMS)
    q = _ledger_query(state, ask)
    t = texts_for(state.settings.lang)
    day = state.now().astimezone(state.zone).date()
    headers = {"Content-Disposition": attachment(t["ledger_file"], day, kind.extension)}
    layer = await _ledger_layer(state)
    if layer is None:
        rows = await state.in_db_thread(_ledger_file_rows, state, principal, q)
        # Written in a worker thread, not the database's: a large workbook takes seconds.
        content = await anyio.to_thread.run_sync(kind.write, rows, t, state.zone, state.now())
        return Response(content, media_type=kind.media_type, headers=headers)
    kept = layer

    def make() -> Body:
        rows = _kept_rows(kept, principal, q)
        _check_csv_size(len(rows))
        now = state.now()
        content = kind.write(rows, t, state.zone, now)
        return _kept_body(kept, content, rows, now, compress=kind.compress)

    return await anyio.to_thread.run_sync(
        _kept_answer, request, state, principal, kept, make, kind.media_type, headers
    )


def _ledger_file_rows(state: ApiState, principal: Principal, q: _LedgerQuery) -> list[LedgerRow]:
    with state.pool.connection() as conn:
        rows, total = _ledger_rows(conn, state, principal, q, limit=CSV_LIMIT, offset=0)
    _check_csv_size(total)
    return rows


def _check_csv_size(total: int) -> None:
    if total > CSV_LIMIT:
        raise BadRequest(f"{total} rows match; narrow the ledger (grid=, level=) below {CSV_LIMIT}")
