"""What a listing can be asked (the caller's grids, a box, an interval, column values) as
SQL conditions with parameters; nothing a caller sends becomes SQL text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import psycopg
from psycopg import sql

from gridwatch.model.vocabulary import MANAGEMENT

GRID_COLUMNS = {"management": "grid_id", "police": "police_grid_id"}
"""The column of a point's grid in each grid system (model.vocabulary.GRID_SYSTEMS), the same
name in every table that stores points (migration 024)."""

Placed = tuple[int | None, int | None]
"""Where a case lies: its grid and its police grid (None: outside every grid of the system).
A caller sees it when either is theirs (`where_filters`' scope and police scope)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What every point layer can be asked: the caller's grids, a box, an interval."""

    scope: list[int] | None  # None: every grid
    me: str | None = None  # the caller's own rows (reports, check-ins) stay visible to them
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    grid_ids: list[int] | None = None
    system: str = MANAGEMENT  # the grid system `grid_ids` are grids of
    # The police grids among `scope`: a row is then also visible by its police grid. Empty for
    # a caller given management grids only, whose rows are found by grid_id alone, as ever.
    police_scope: list[int] = field(default_factory=list)


def where_filters(
    filters: Filters,
    *,
    alias: str,
    time_column: str | None = None,
    owner_column: str | None = None,
    position_alias: str | None = None,
) -> tuple[list[sql.Composable], dict]:
    """The conditions on table `alias` that `filters` ask for, and their parameters; a row's
    position and police grid are read from `position_alias` (an alert's: its resident's)."""
    t = sql.Identifier(alias)
    p = sql.Identifier(position_alias or alias)
    where: list[sql.Composable] = []
    params: dict = {}
    if filters.scope is not None:
        seen = sql.SQL("{}.grid_id = ANY(%(scope)s)").format(t)
        if filters.police_scope:
            seen = sql.SQL("({} OR {}.police_grid_id = ANY(%(police_scope)s))").format(seen, p)
            params["police_scope"] = filters.police_scope
        if owner_column and filters.me:
            where.append(
                sql.SQL("({} OR {} = %(me)s)").format(seen, sql.Identifier(alias, owner_column))
            )
            params["me"] = filters.me
        else:
            where.append(seen)
        params["scope"] = filters.scope
    if filters.grid_ids is not None:
        owner = t if filters.system == MANAGEMENT else p
        column = sql.Identifier(GRID_COLUMNS[filters.system])
        where.append(sql.SQL("{}.{} = ANY(%(grid_ids)s)").format(owner, column))
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
        where_given(where, params, sql.SQL("{} >= %(start)s").format(column), start=filters.start)
        where_given(where, params, sql.SQL("{} <= %(end)s").format(column), end=filters.end)
    return where, params


def where_columns(
    where: list[sql.Composable],
    params: dict,
    alias: str,
    **columns: str | int | Sequence[str] | None,
) -> None:
    """Add `alias.column = value` for each column given a value, `= ANY` for a list of them;
    None, an empty string or an empty list asks for nothing."""
    for column, value in columns.items():
        if value is None or (not isinstance(value, int) and not value):
            continue
        target = sql.Identifier(alias, column)
        if isinstance(value, str | int):
            where.append(sql.SQL("{} = {}").format(target, sql.Placeholder(column)))
            params[column] = value
        else:
            where.append(sql.SQL("{} = ANY({})").format(target, sql.Placeholder(column)))
            params[column] = list(value)


def where_given(
    where: list[sql.Composable], params: dict, condition: sql.Composable, **values: object
) -> None:
    """Add `condition`, whose placeholders are named as `values`, when every one is given (not
    None): the optional filter, its value and its test in one line."""
    if all(value is not None for value in values.values()):
        where.append(condition)
        params.update(values)


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
