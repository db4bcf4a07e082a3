"""The request loop over HTTP for grid workers and duty officers (组织派单、党员接单): dispatch,
accept, start, resolve, feedback, close, reopen — each a request_events row, in the shape of
the hazard steps (`POST /requests/{id}/{step}`).

A request outside the caller's grids is not even confirmed to exist (404); one the caller
sees only because they entered it may not be acted on there (403); only duty officers and
administrators dispatch (组织派单). The requester's contact shows in clear only to those who
may see it, and every answer that shows it is recorded first.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import Field

from gridwatch.api.auth import Reader, sees_personal_data
from gridwatch.api.bodies import (
    FeedbackBody,
    Note,
    NoteBody,
    RequiredNote,
    ResolveBody,
    Strict,
    body_of,
    body_schema,
    with_body,
)
from gridwatch.api.disclosure import REQUESTER, record_reads, shown_in_clear
from gridwatch.api.features import request_feature
from gridwatch.api.media import Sent, keep_photos
from gridwatch.api.responses import GeoJSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.errors import Forbidden, NotFound
from gridwatch.ingest.payload import read_photo_urls as validate_photo_urls
from gridwatch.store.media import MediaOwner
from gridwatch.store.requests import (
    Request as Case,
)
from gridwatch.store.requests import (
    get_request,
    request_events,
    transition_request,
)
from gridwatch.store.users import Principal

router = APIRouter(tags=["request loop (诉求)"])

RequestId = Annotated[str, Path(max_length=64, description="the request's id (a UUID)")]
DISPATCHERS = ("admin", "duty_officer")


class DispatchBody(Strict):
    grid: str = Field(max_length=64, description="the code of the grid that takes it (派单)")
    note: Note | None = None


class RatingBody(Strict):
    rating: Literal["satisfied", "basically_satisfied", "unsatisfied"] = Field(
        description="回访: 满意, 基本满意 or 不满意 (不满意 reopens it)"
    )
    note: RequiredNote = Field(description="what the requester said")


def visible_request(conn, principal: Principal, request_id: str, *, lock: bool = False) -> Case:
    """A request in the caller's grids or entered by them; NotFound, with the same words,
    for any other."""
    missing = f"no request {request_id[:64]}"
    try:
        key = uuid.UUID(request_id)
        case = get_request(conn, key, lock=lock)
    except (ValueError, NotFound):
        raise NotFound(missing) from None
    seen = principal.sees_grid(case.grid_id, case.police_grid_id)
    if not seen and case.reporter != principal.name:
        raise NotFound(missing)
    return case


def request_answer(conn, request: Request, principal: Principal, state: ApiState, case: Case):
    """One request with its history, recorded in the audit when it shows its requester."""
    record_reads(conn, principal, request, shown_in_clear(principal, [case], REQUESTER))
    clear = sees_personal_data(principal, case.grid_id)
    return GeoJSONResponse(
        request_feature(case, state.now(), clear=clear, events=request_events(conn, case.id))
    )


def _may_act(principal: Principal, action: str):
    def check(case: Case) -> None:
        if action == "dispatch" and principal.role not in DISPATCHERS:
            raise Forbidden("only duty officers and administrators dispatch requests (派单)")
        if not principal.sees_grid(case.grid_id, case.police_grid_id):
            raise Forbidden("this request is not in your grids: its grid's worker acts on it")

    return check


def _step(
    conn,
    request: Request,
    state: ApiState,
    principal: Principal,
    request_id: str,
    action: str,
    **fields,
):
    changed = _changed(conn, state, principal, request_id, action, **fields)
    return request_answer(conn, request, principal, state, changed)


def _changed(
    conn, state: ApiState, principal: Principal, request_id: str, action: str, **fields
) -> Case:
    """Take step `action` of request `request_id` for the caller: the request after it."""
    case = visible_request(conn, principal, request_id)
    return transition_request(
        conn,
        case.id,
        action,
        actor=principal.name,
        now=state.now(),
        may_act=_may_act(principal, action),
        **fields,
    )


def _route(
    action: str, summary: str, conflict: str = "the request's status does not allow it", **extra
):
    return router.post(
        f"/requests/{{request_id}}/{action}",
        response_class=GeoJSONResponse,
        summary=summary,
        responses={
            403: {"description": "the caller may see the request but not take this step"},
            409: {"description": conflict},
        },
        **extra,
    )


def _note_step(action: str, summary: str, model: type[Strict] = NoteBody, **route) -> None:
    """Register step `action`, whose only input is a note: NoteBody may be left out (accept,
    start); any other body, with its required note, must be sent (close, reopen)."""

    def step(
        request: Request,
        principal: Reader,
        conn: Conn,
        state: State,
        request_id: RequestId,
        body=None,
    ):
        note = body.note if body else None
        return _step(conn, request, state, principal, request_id, action, note=note)

    step.__name__ = step.__qualname__ = action
    _route(action, summary, **route)(with_body(step, model, optional=model is NoteBody))


@_route("dispatch", "Dispatch a request to a grid (派单; duty officers and administrators)")
def dispatch(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    request_id: RequestId,
    body: DispatchBody,
):
    if principal.role not in DISPATCHERS:
        raise Forbidden("only duty officers and administrators dispatch requests (派单)")
    grid = state.catalog(conn).by_code.get(body.grid)
    if grid is None or not principal.sees_grid(grid.id):
        raise NotFound(f"no grid {body.grid!r}")
    if grid.level != "grid":
        raise NotFound(f"{body.grid!r} is a {grid.level}: dispatch to one of its grids")
    return _step(
        conn, request, state, principal, request_id, "dispatch", note=body.note, grid_id=grid.id
    )


_note_step("accept", "Accept a request (接单): the grid's worker takes it")
_note_step("start", "Start handling a request (处置)")


@_route(
    "resolve",
    "Resolve a request (办结): what was done, with photos (JSON, or multipart/form-data with "
    "files)",
    openapi_extra=body_schema(ResolveBody, photos=True),
)
def resolve(
    request: Request,
    principal: Reader,
    state: State,
    request_id: RequestId,
    sent: Sent,
    conn: Conn,
):
    body = body_of(ResolveBody, sent.payload)
    given = validate_photo_urls(body.photo_urls) if body.photo_urls else ()
    photos = sent.with_urls(given)
    changed = _changed(
        conn, state, principal, request_id, "resolve", note=body.note, photo_urls=photos
    )
    answer = request_answer(conn, request, principal, state, changed)
    owner = MediaOwner("resolve", request_id=changed.id, grid_id=changed.grid_id)
    keep_photos(conn, state, principal, sent, owner)
    return answer


@_route(
    "feedback",
    "Record the requester's feedback (回访): 不满意 reopens the request",
    conflict="only a resolved request gets feedback",
)
def feedback(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    request_id: RequestId,
    body: RatingBody,
):
    return _step(
        conn, request, state, principal, request_id, "feedback", note=body.note, rating=body.rating
    )


_note_step("close", "Close a request after feedback", FeedbackBody, conflict="only after feedback")
_note_step(
    "reopen",
    "Reopen a resolved or closed request",
    FeedbackBody,
    conflict="only a resolved, fed back or closed request can be reopened",
)
