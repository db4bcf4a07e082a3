"""Registered absences (外出报备): while one lasts, the resident's activity alerts are silent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from gridwatch.api.auth import Reader, ensure_visible
from gridwatch.api.bodies import AbsenceBody
from gridwatch.api.collections import check_params
from gridwatch.api.features import absence_json
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.responses import JSONResponse
from gridwatch.api.runtime import Conn, State
from gridwatch.errors import NotFound
from gridwatch.store.absences import (
    absence_list,
    absence_problem,
    add_absence,
    delete_absence,
    get_absence,
)
from gridwatch.store.residents import resident_grid

router = APIRouter(tags=["absences (外出报备)"])


def visible_resident(conn, principal, resident_id: str) -> None:
    """NotFound for a resident outside the caller's grids, as for one that does not exist."""
    missing = f"no resident {resident_id[:64]!r}"
    try:
        grid = resident_grid(conn, resident_id)
    except NotFound:
        raise NotFound(missing) from None
    ensure_visible(principal, grid, missing)


@router.get("/absences", response_class=JSONResponse, summary="Registered absences")
def list_absences(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    resident_id: Annotated[str | None, Query(max_length=128)] = None,
    active: Annotated[bool, Query(description="only those in force now")] = False,
    limit: Annotated[int | None, Query(ge=1)] = None,
):
    check_params(request, {"resident_id", "active", "limit"})
    if resident_id is not None:
        visible_resident(conn, principal, resident_id)
    rows = absence_list(
        conn,
        scope=None if principal.sees_all else principal.scope_param(),
        resident_id=resident_id,
        active_at=state.now() if active else None,
        limit=min(limit or state.settings.api_default_limit, state.settings.api_max_limit),
    )
    return JSONResponse({"items": [absence_json(r) for r in rows], "numberReturned": len(rows)})


@router.post(
    "/absences",
    status_code=201,
    response_class=JSONResponse,
    summary="Register an absence; times without an offset are local",
)
def create_absence(principal: Reader, conn: Conn, state: State, body: AbsenceBody):
    visible_resident(conn, principal, body.resident_id)
    starts, ends = _local(body.starts_at, state), _local(body.ends_at, state)
    if problem := absence_problem(starts, ends):
        raise BadRequest(f"{problem} (starts_at, ends_at)")
    absence_id = add_absence(
        conn,
        body.resident_id,
        starts_at=starts,
        ends_at=ends,
        note=body.note,
        created_by=principal.name,
    )
    return JSONResponse(
        absence_json(get_absence(conn, absence_id)),
        201,
        headers={"Location": f"/absences/{absence_id}"},
    )


@router.delete(
    "/absences/{absence_id}", status_code=204, summary="Cancel an absence (the person is back)"
)
def remove_absence(principal: Reader, conn: Conn, absence_id: Annotated[int, Path(ge=1, le=2**62)]):
    missing = f"no absence {absence_id}"
    try:
        row = get_absence(conn, absence_id)
    except NotFound:
        raise NotFound(missing) from None
    ensure_visible(principal, row.grid_id, missing)
    delete_absence(conn, absence_id)
    return Response(status_code=204)


def _local(value: datetime, state) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=state.zone)
    if not 2000 <= value.year <= 9000:
        raise BadRequest("absence times must lie between the years 2000 and 9000")
    return value
