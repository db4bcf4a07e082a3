"""What is stored, per table and per level of the grid hierarchy (for the demo and `db info`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gridwatch.geo.grids import LEVELS

COUNTED_TABLES = (
    "meter_readings",
    "sensor_events",
    "patrol_checkins",
    "hazard_reports",
    "dead_letters",
)


@dataclass(frozen=True, slots=True)
class LevelCounts:
    level: str
    units: int
    residents: int
    checkins: int
    hazards: int


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per time-series and report table."""
    counts: dict[str, int] = {}
    for table in COUNTED_TABLES:
        [(count,)] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchall()
        counts[table] = count
    return counts


def level_counts(conn: psycopg.Connection) -> list[LevelCounts]:
    """Residents, patrol check-ins and hazards rolled up from grids to each level above."""
    parent: dict[int, int | None] = dict(conn.execute("SELECT id, parent_id FROM grids").fetchall())
    level_of: dict[int, str] = dict(conn.execute("SELECT id, level FROM grids").fetchall())
    per_grid: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for column, table in enumerate(("residents", "patrol_checkins", "hazard_reports")):
        for grid_id, count in conn.execute(
            sql.SQL(
                "SELECT grid_id, count(*) FROM {} WHERE grid_id IS NOT NULL GROUP BY grid_id"
            ).format(sql.Identifier(table))
        ):
            node = grid_id
            while node is not None:
                per_grid[node][column] += count
                node = parent.get(node)
    totals = {level: [0, 0, 0, 0] for level in LEVELS}
    for grid_id, level in level_of.items():
        counts = per_grid.get(grid_id, [0, 0, 0])
        totals[level][0] += 1
        for i in range(3):
            totals[level][i + 1] += counts[i]
    return [LevelCounts(level, *totals[level]) for level in LEVELS if totals[level][0]]


def open_alert_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Alerts not yet resolved, by kind."""
    return dict(
        conn.execute(
            "SELECT kind, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY kind ORDER BY 1"
        ).fetchall()
    )
