"""Batches staged in a temporary table of the session: COPYed in, then moved into their table
by a statement or a few, so that a batch of thousands costs a handful of round trips."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql


def stage_rows(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    """COPY `rows` into `staging`, a temporary table shaped as `columns` of `table` with
    `extra` columns before them (each a name and the SQL expression that gives its type),
    made on first use and emptied at each commit. Each row is numbered `n` from 0, its
    position in `rows`; its values are those of `extra`, then of `columns`. Call it inside
    the transaction that moves the rows: an earlier call's rows are deleted first."""
    extras = [(sql.Identifier(name), sql.SQL(expr)) for name, expr in extra]
    made = sql.SQL(", ").join(
        [sql.SQL("0 AS n")]
        + [sql.SQL("{} AS {}").format(expr, name) for name, expr in extras]
        + [sql.Identifier(name) for name in columns]
    )
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
            "SELECT {} FROM {} WITH NO DATA"
        ).format(staging, made, sql.Identifier(table))
    )
    conn.execute(sql.SQL("DELETE FROM {}").format(staging))
    names = sql.SQL(", ").join(
        [sql.Identifier("n")] + [name for name, _ in extras] + [sql.Identifier(c) for c in columns]
    )
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, names)) as copy:
        for n, row in enumerate(rows):
            copy.write_row((n, *row))
