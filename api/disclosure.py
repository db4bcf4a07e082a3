"""Every response that shows residents' names, phones or addresses in clear records who saw
whose before it goes out: in the request's own transaction, or, for a kept answer (which needs
no connection), in one transaction with the reads of the requests waiting at the same time. No
record, no response."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool

from gridwatch.api.auth import sees_personal_data
from gridwatch.store.personal_data import READ, record_audit, record_audits
from gridwatch.store.users import Principal


@dataclass(frozen=True, slots=True)
class Personal:
    """Where a kind of row holds someone's personal information (`fields`), and the id
    (`audit_id` of a row; None: it is of no one) its reads in clear are audited under."""

    fields: tuple[str, ...]
    audit_id: Callable[[Any], str | None]


def _own_audit_id(row) -> str:
    return row.audit_id


RESIDENT = Personal(("name", "phone", "address"), lambda row: row.id)
ALERT_RESIDENT = Personal(RESIDENT.fields, lambda row: row.resident_id)
REQUESTER = Personal(
    ("requester_name", "requester_phone", "requester_email", "address"), _own_audit_id
)
PLACE_CONTACT = Personal(("contact", "phone"), _own_audit_id)
CONTACT = Personal(("name", "phone"), _own_audit_id)  # a unit head's, a building lead's


def shown_in_clear(
    principal: Principal, rows: Iterable, personal: Personal = RESIDENT
) -> list[str]:
    """The audit ids of the people among `rows` (each with its `grid_id`) whose `personal`
    information the caller sees in clear: a row of no one, or whose fields are all empty
    (forgotten), shows nothing."""
    return [
        shown
        for row in rows
        if (shown := personal.audit_id(row)) is not None
        and any(getattr(row, field) for field in personal.fields)
        and sees_personal_data(principal, row.grid_id)
    ]


def record_reads(
    conn: psycopg.Connection, principal: Principal, request: Request, resident_ids: list[str]
) -> None:
    """Audit that this request shows these residents' personal information."""
    record_audit(conn, **_read(principal, request, resident_ids))


def _read(principal: Principal, request: Request, resident_ids: list[str]) -> dict:
    return {
        "actor": principal.name,
        "role": principal.role,
        "action": READ,
        "what": f"{request.method} {request.url.path}",
        "client": request.client.host if request.client else None,
        "resident_ids": resident_ids,
        "at": request.app.state.gw.now(),
    }


class ReadRecorder:
    """Reads recorded for answers that need no connection of their own (kept answers): the
    records of requests waiting at the same time are written in one transaction, and each
    answer goes out only after the commit that holds its record — no record, no response, at
    one commit for many answers."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def record(self, principal: Principal, request: Request, resident_ids: list[str]):
        """Return once the record of this read is committed; raise if it cannot be."""
        if not resident_ids:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((_read(principal, request, resident_ids), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        """Write what waits, batch after batch, until nothing does; one thread at a time."""
        one = anyio.CapacityLimiter(1)
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await anyio.to_thread.run_sync(self._insert, [r for r, _ in batch], limiter=one)
            except Exception as error:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            except BaseException:  # cancelled: so are the answers that wait for it
                for _, done in batch + self._waiting:
                    done.cancel()
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _insert(self, reads: list[dict]) -> None:
        with self.pool.connection() as conn:
            record_audits(conn, reads)


def record_reads_apart(state, principal: Principal, request: Request, resident_ids: list[str]):
    """`record_reads` in a transaction of its own, for a response without a request
    connection (the live stream); committed before the data goes out."""
    if resident_ids:
        with state.pool.connection() as conn:
            record_reads(conn, principal, request, resident_ids)
