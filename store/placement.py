"""Stored points placed again in one grid system's grids, after that system's grids were
imported or changed: what was stored before the police grids came (or when they were drawn
otherwise) gets the police grid it lies in, so that every stored point is placed in each
system whenever it came."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from gridwatch.store.filters import GRID_COLUMNS
from gridwatch.store.grids import load_leaf_grids

# The tables that keep a point and its grid in each system, with their keys.
POINT_TABLES: dict[str, tuple[str, ...]] = {
    "residents": ("id",),
    "places": ("id",),
    "hazard_reports": ("id",),
    "requests": ("id",),
    "warnings": ("id",),
    "patrol_checkins": ("worker_id", "source", "observed_at"),
}
BATCH = 50_000
_MOVED = sql.Identifier("placement_moved")  # a temporary table of this session


def place_stored_points(
    conn: psycopg.Connection,
    system: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Place every stored point with a position in the grids of `system` as they are now;
    returns how many points changed grid. A table at a time, `BATCH` points at a time, each
    batch's changes in one statement; only rows whose grid changes are written."""
    column = sql.Identifier(GRID_COLUMNS[system])
    leaves = load_leaf_grids(conn)
    conn.commit()
    moved = 0
    for done, (table, key) in enumerate(POINT_TABLES.items(), start=1):
        moved += _place_table(conn, leaves, system, table, key, column)
        if progress:
            progress(done, len(POINT_TABLES))
    return moved


def _place_table(conn, leaves, system: str, table: str, key: tuple[str, ...], column) -> int:
    keys = sql.SQL(", ").join(map(sql.Identifier, key))
    select = sql.SQL(
        "SELECT {keys}, lon, lat, {column} FROM {table} "
        "WHERE lon IS NOT NULL AND lat IS NOT NULL ORDER BY {keys}"
    ).format(keys=keys, column=column, table=sql.Identifier(table))
    moved = 0
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {moved} ON COMMIT DROP AS "
                "SELECT {keys}, {column} AS grid FROM {table} WITH NO DATA"
            ).format(moved=_MOVED, keys=keys, column=column, table=sql.Identifier(table))
        )
        with conn.cursor(name=f"placing_{table}") as cursor:
            cursor.itersize = BATCH
            cursor.execute(select)
            while rows := cursor.fetchmany(BATCH):
                found = leaves.systems[system].assign(
                    [r[len(key)] for r in rows], [r[len(key) + 1] for r in rows]
                )
                changed = [
                    (*r[: len(key)], None if g < 0 else g)
                    for r, g in zip(rows, found.tolist(), strict=True)
                    if (None if g < 0 else g) != r[-1]
                ]
                if changed:
                    copy = sql.SQL("COPY {} FROM STDIN").format(_MOVED)
                    with conn.cursor().copy(copy) as out:
                        for row in changed:
                            out.write_row(row)
                    moved += len(changed)
        if moved:
            match = sql.SQL(" AND ").join(
                sql.SQL("t.{k} = m.{k}").format(k=sql.Identifier(k)) for k in key
            )
            conn.execute(
                sql.SQL(
                    "UPDATE {table} t SET {column} = m.grid FROM {moved} m WHERE {match}"
                ).format(table=sql.Identifier(table), column=column, moved=_MOVED, match=match)
            )
    return moved
