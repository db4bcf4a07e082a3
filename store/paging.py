"""Pages of a point layer, keyed on the last row seen (no OFFSET): a page never repeats or
skips a row when rows arrive between requests.

Filters (store/filters.py) are fixed SQL fragments with parameters; nothing a caller sends
becomes SQL text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.store.filters import all_of

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    rows: list[Row]
    matched: int
    more: bool  # rows follow the last one of this page


def fetch_page(
    conn: psycopg.Connection,
    row_type: type[Row],
    select: sql.Composable,
    from_: sql.Composable,
    where: list[sql.Composable],
    params: dict,
    *,
    order: sql.Composable,
    after: sql.Composable | None,
    limit: int,
) -> Page[Row]:
    condition = all_of(where)
    [(matched,)] = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(from_, condition), params
    ).fetchall()
    if after is not None:
        condition = sql.SQL("{} AND {}").format(condition, after)
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %(limit)s").format(
        select, from_, condition, order
    )
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        rows = cur.execute(query, {**params, "limit": limit + 1}).fetchall()
    return Page(rows[:limit], matched, len(rows) > limit)
