"""Pages of a point layer, keyed on the last row seen (no OFFSET): a page never repeats or
skips a row when rows arrive between requests.

Filters (store/filters.py) are fixed SQL fragments with parameters; nothing a caller sends
becomes SQL text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import NotFound
from gridwatch.store.filters import all_of

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    rows: list[Row]
    matched: int
    more: bool  # rows follow the last one of this page


@dataclass(frozen=True, slots=True)
class Listing(Generic[Row]):
    """How a layer lists a table: the columns it selects into `row_type`, from which join,
    in which order, and `after`, the keyset condition that continues after a page's last row
    (its parameters named `after…`)."""

    row_type: type[Row]
    select: sql.Composable
    from_: sql.Composable
    order: sql.Composable
    after: sql.Composable

    def page(
        self,
        conn: psycopg.Connection,
        where: list[sql.Composable],
        params: dict,
        *,
        after: dict | None,
        limit: int,
    ) -> Page[Row]:
        """The rows matching `where`, up to `limit` of them after the row whose key `after`
        gives the keyset's parameters (None: from the first row)."""
        condition = all_of(where)
        [(matched,)] = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self.from_, condition), params
        ).fetchall()
        if after is not None:
            condition = sql.SQL("{} AND {}").format(condition, self.after)
            params = {**params, **after}
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %(limit)s").format(
            self.select, self.from_, condition, self.order
        )
        with conn.cursor(row_factory=class_row(self.row_type)) as cur:
            rows = cur.execute(query, {**params, "limit": limit + 1}).fetchall()
        return Page(rows[:limit], matched, len(rows) > limit)

    def one(
        self,
        conn: psycopg.Connection,
        key: sql.Composable,
        params: Any,
        missing: str,
        *,
        lock_of: str | None = None,
    ) -> Row:
        """The row that `key` (a condition on its primary key) finds; NotFound with the
        words `missing` when there is none. `lock_of` names the alias whose row is locked
        (FOR UPDATE OF) until the transaction ends."""
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(self.select, self.from_, key)
        if lock_of is not None:
            query += sql.SQL(" FOR UPDATE OF {}").format(sql.Identifier(lock_of))
        return fetch_one(conn, self.row_type, query, params, missing)

    def all(self, conn: psycopg.Connection) -> list[Row]:
        """Every row, in the pages' order."""
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(self.select, self.from_, self.order)
        with conn.cursor(row_factory=class_row(self.row_type)) as cur:
            return cur.execute(query).fetchall()


def fetch_rows(
    conn: psycopg.Connection, row_type: type[Row], query: str | sql.SQL | sql.Composed, params: Any
) -> list[Row]:
    """Every row `query` finds, as `row_type`."""
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        return cur.execute(query, params).fetchall()


def fetch_one(
    conn: psycopg.Connection,
    row_type: type[Row],
    query: str | sql.SQL | sql.Composed,
    params: Any,
    missing: str,
) -> Row:
    """The row `query` finds, as `row_type`; NotFound with the words `missing` when none."""
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        row = cur.execute(query, params).fetchone()
    if row is None:
        raise NotFound(missing)
    return row
