"""The history both kinds of case keep (hazard_events, request_events): one row a step, with
the fields every step has; a kind of case adds its own after them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from gridwatch.store.paging import fetch_rows


@dataclass(frozen=True, slots=True)
class CaseEvent:
    id: int
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str | None
    note: str | None
    photo_urls: list[str]


Event = TypeVar("Event", bound=CaseEvent)


def case_events(
    conn: psycopg.Connection, event_type: type[Event], table: str, case_column: str, case_id: Any
) -> list[Event]:
    """The history of one case, oldest first: the `event_type` fields of the rows of `table`
    whose `case_column` is `case_id`."""
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s ORDER BY at, id").format(
        sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(event_type)),
        sql.Identifier(table),
        sql.Identifier(case_column),
    )
    return fetch_rows(conn, event_type, query, (case_id,))
