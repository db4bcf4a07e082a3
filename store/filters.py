"""What a listing can be asked (the caller's grids, a box, an interval, column values) as
SQL conditions with parameters; nothing a caller sends becomes SQL text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import psycopg
from psycopg import sql


@dataclass(frozen=True, slots=True)
class Filters:
    """What every point layer can be asked: the caller's grids, a box, an interval."""

    scope: list[int] | None  # None: every grid
    me: str | None = None  # the caller's own rows (reports, check-ins) stay visible to them
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    grid_ids: list[int] | None = None


def where_filters(
    filters: Filters,
    *,
    alias: str,
    time_column: str | None = None,
    owner_column: str | None = None,
    position_alias: str | None = None,
) -> tuple[list[sql.Composable], dict]:
    """The conditions on table `alias` that `filters` ask for, and their parameters."""
    t = sql.Identifier(alias)
    p = sql.Identifier(position_alias or alias)
    where: list[sql.Composable] = []
    params: dict = {}
    if filters.scope is not None:
        if owner_column and filters.me:
            where.append(
                sql.SQL("({}.grid_id = ANY(%(scope)s) OR {} = %(me)s)").format(
                    t, sql.Identifier(alias, owner_column)
                )
            )
            params["me"] = filters.me
        else:
            where.append(sql.SQL("{}.grid_id = ANY(%(scope)s)").format(t))
        params["scope"] = filters.scope
    if filters.grid_ids is not None:
        where.append(sql.SQL("{}.grid_id = ANY(%(grid_ids)s)").format(t))
        params["grid_ids"] = filters.grid_ids
    if filters.bbox is not None:
        where.append(
            sql.SQL(
                "{p}.lon >= %(minx)s AND {p}.lon <= %(maxx)s "
                "AND {p}.lat >= %(miny)s AND {p}.lat <= %(maxy)s"
            ).format(p=p)
        )
        params.update(zip(("minx", "miny", "maxx", "maxy"), filters.bbox, strict=True))
    if time_column is not None:
        column = sql.Identifier(alias, time_column)
        if filters.start is not None:
            where.append(sql.SQL("{} >= %(start)s").format(column))
            params["start"] = filters.start
        if filters.end is not None:
            where.append(sql.SQL("{} <= %(end)s").format(column))
            params["end"] = filters.end
    return where, params


def where_columns(
    where: list[sql.Composable], params: dict, alias: str, **columns: str | Sequence[str] | None
) -> None:
    """Add `alias.column = value` for each column given a value, `= ANY` for a list of them;
    None or empty asks for nothing."""
    for column, value in columns.items():
        if not value:
            continue
        target = sql.Identifier(alias, column)
        if isinstance(value, str):
            where.append(sql.SQL("{} = {}").format(target, sql.Placeholder(column)))
            params[column] = value
        else:
            where.append(sql.SQL("{} = ANY({})").format(target, sql.Placeholder(column)))
            params[column] = list(value)


def all_of(where: list[sql.Composable]) -> sql.Composable:
    """The conditions joined with AND; TRUE when there are none."""
    return sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE")


def local_day_bounds(day: date, zone) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of `day`."""
    start = datetime.combine(day, time(), zone)
    return start, datetime.combine(day + timedelta(days=1), time(), zone)


def count_per_day(
    conn: psycopg.Connection,
    from_: sql.Composable,
    at: sql.Composable,
    where: list[sql.Composable],
    params: dict,
    *,
    start: datetime,
    end: datetime,
    zone,
) -> dict[date, int]:
    """How many rows of `from_` meeting `where` have their time `at` in [start, end), per
    local day of `zone` (the days with none are left out)."""
    query = sql.SQL(
        "SELECT ({at} AT TIME ZONE %(tz)s)::date, count(*) FROM {from_} "
        "WHERE {where} AND {at} >= %(start)s AND {at} < %(end)s GROUP BY 1"
    ).format(at=at, from_=from_, where=all_of(where))
    rows = conn.execute(query, {**params, "start": start, "end": end, "tz": zone.key}).fetchall()
    return dict(rows)
