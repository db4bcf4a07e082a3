"""`GET /audit`: administrators read who saw which residents' personal information (see
`disclosure`) and who had a resident forgotten."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gridwatch.api.auth import Admin
from gridwatch.api.collections import CursorQ, LimitQ, check_params, page_size
from gridwatch.api.params import decode_cursor, encode_cursor, parse_instant
from gridwatch.api.responses import JSONResponse
from gridwatch.api.runtime import Conn, State
from gridwatch.store.personal_data import audit_entries

router = APIRouter(tags=["personal data"])


@router.get(
    "/audit",
    response_class=JSONResponse,
    summary="Who saw which residents' personal information, and who had one forgotten "
    "(administrators)",
)
def audit_log(
    request: Request,
    principal: Admin,
    conn: Conn,
    state: State,
    resident: Annotated[str | None, Query(max_length=128, description="a resident id")] = None,
    user: Annotated[str | None, Query(max_length=128, description="a user name")] = None,
    since: Annotated[
        str | None, Query(max_length=40, description="RFC 3339 date-time, or a local date")
    ] = None,
    limit: LimitQ = None,
    cursor: CursorQ = None,
):
    check_params(request, {"resident", "user", "since", "limit", "cursor"})
    after = decode_cursor(cursor, (int,))
    size = page_size(state, limit)
    rows = audit_entries(
        conn,
        resident=resident,
        user=user,
        since=parse_instant(since, state.zone) if since else None,
        after_id=after[0] if after else None,
        limit=size + 1,
    )
    links = [{"href": str(request.url), "rel": "self", "type": "application/json"}]
    if len(rows) > size:
        rows = rows[:size]
        links.append(
            {
                "href": str(request.url.include_query_params(cursor=encode_cursor([rows[-1].id]))),
                "rel": "next",
                "type": "application/json",
            }
        )
    return JSONResponse({"items": [asdict(row) for row in rows], "links": links})
