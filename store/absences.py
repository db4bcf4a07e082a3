"""Registered absences (外出报备): while one runs, a home's activity rules are silent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import Conflict, NotFound
from gridwatch.store.filters import Filters, all_of, where_columns, where_filters, where_given
from gridwatch.store.paging import fetch_one


@dataclass(frozen=True, slots=True)
class AbsenceRow:
    id: int
    resident_id: str
    grid_id: int | None
    starts_at: datetime
    ends_at: datetime
    note: str | None
    created_by: str | None
    created_at: datetime


_ACTIVE = sql.SQL("b.starts_at <= %(at)s AND b.ends_at > %(at)s")  # under way at `at`
_ABSENCE_SELECT = sql.SQL(
    "SELECT b.id, b.resident_id, r.grid_id, b.starts_at, b.ends_at, b.note, b.created_by, "
    "b.created_at FROM absences b JOIN residents r ON r.id = b.resident_id"
)


def absence_list(
    conn: psycopg.Connection,
    *,
    scope: list[int] | None,
    resident_id: str | None,
    active_at: datetime | None,
    limit: int,
) -> list[AbsenceRow]:
    where, params = where_filters(Filters(scope=scope), alias="r")
    params["limit"] = limit
    where_columns(where, params, "b", resident_id=resident_id)
    where_given(where, params, _ACTIVE, at=active_at)
    query = sql.SQL("{} WHERE {} ORDER BY b.starts_at DESC, b.id DESC LIMIT %(limit)s").format(
        _ABSENCE_SELECT, all_of(where)
    )
    with conn.cursor(row_factory=class_row(AbsenceRow)) as cur:
        return cur.execute(query, params).fetchall()


def get_absence(conn: psycopg.Connection, absence_id: int) -> AbsenceRow:
    query = sql.SQL("{} WHERE b.id = %s").format(_ABSENCE_SELECT)
    return fetch_one(conn, AbsenceRow, query, (absence_id,), f"no absence {absence_id}")


def delete_absence(conn: psycopg.Connection, absence_id: int) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM absences WHERE id = %s", (absence_id,))


MAX_ABSENCE = timedelta(days=366)


def absence_problem(starts_at: datetime, ends_at: datetime) -> str | None:
    """Why an absence cannot be registered, or None. The activity rules are silent while it
    lasts, so it must end after it starts and last a year at most, whichever door (the API,
    the command line) registers it."""
    if ends_at <= starts_at:
        return "an absence must end after it starts"
    if ends_at - starts_at > MAX_ABSENCE:
        return "an absence can last at most a year; register it again after"
    return None


def add_absence(
    conn: psycopg.Connection,
    resident_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    note: str | None = None,
    created_by: str | None = None,
) -> int:
    """Register an absence (外出报备); the activity rules are silent while it lasts."""
    if problem := absence_problem(starts_at, ends_at):
        raise Conflict(problem)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM residents WHERE id = %s", (resident_id,)).fetchone() is None:
            raise NotFound(f"no resident {resident_id!r}")
        [(absence_id,)] = conn.execute(
            "INSERT INTO absences (resident_id, starts_at, ends_at, note, created_by) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (resident_id, starts_at, ends_at, note, created_by),
        ).fetchall()
        return absence_id
