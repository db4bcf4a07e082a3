"""Every response that shows residents' names, phones or addresses in clear records who saw
whose, in the request's own transaction: no record, no response."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psycopg
from fastapi import Request

from gridwatch.api.auth import sees_personal_data
from gridwatch.store.personal_data import READ, record_audit
from gridwatch.store.users import Principal


def shown_in_clear(
    principal: Principal, rows: Iterable, resident_id: Callable = lambda row: row.id
) -> list[str]:
    """The residents among `rows` whose personal information the caller sees in clear (rows
    with `grid_id`, `name`, `phone`, `address`; a forgotten resident shows nothing)."""
    return [
        resident_id(row)
        for row in rows
        if resident_id(row) is not None
        and (row.name or row.phone or row.address)
        and sees_personal_data(principal, row.grid_id)
    ]


def alert_resident(row) -> str | None:
    return row.resident_id


def record_reads(
    conn: psycopg.Connection, principal: Principal, request: Request, resident_ids: list[str]
) -> None:
    """Audit that this request shows these residents' personal information."""
    record_audit(
        conn,
        actor=principal.name,
        role=principal.role,
        action=READ,
        what=f"{request.method} {request.url.path}",
        client=request.client.host if request.client else None,
        resident_ids=resident_ids,
        at=request.app.state.gw.now(),
    )


def record_reads_apart(state, principal: Principal, request: Request, resident_ids: list[str]):
    """`record_reads` in a transaction of its own, for a response without a request
    connection (the live stream); committed before the data goes out."""
    if resident_ids:
        with state.pool.connection() as conn:
            record_reads(conn, principal, request, resident_ids)
