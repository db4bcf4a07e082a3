"""What is stored, per table and per level of the grid hierarchy (for the demo)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gridwatch.geo.grids import LEVELS
from gridwatch.model.vocabulary import MANAGEMENT
from gridwatch.store.filters import GRID_COLUMNS

COUNTED_TABLES = (
    "meter_readings",
    "sensor_events",
    "patrol_checkins",
    "hazard_reports",
    "dead_letters",
)


@dataclass(frozen=True, slots=True)
class Spread:
    """How much one area of a level holds: the least, the mean and the most."""

    least: int
    mean: float
    most: int

    @classmethod
    def of(cls, values: list[int]) -> Spread:
        return cls(min(values), sum(values) / len(values), max(values))


@dataclass(frozen=True, slots=True)
class LevelCounts:
    """A level of the hierarchy: how many areas it has, and what one of them holds."""

    level: str
    areas: int
    residents: Spread
    checkins: Spread
    hazards: Spread


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per time-series and report table."""
    counts: dict[str, int] = {}
    for table in COUNTED_TABLES:
        [(count,)] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchall()
        counts[table] = count
    return counts


def level_counts(conn: psycopg.Connection, system: str = MANAGEMENT) -> list[LevelCounts]:
    """Per level of the hierarchy of `system`, its areas and what one area holds: residents,
    patrol check-ins and hazards placed in it, rolled up from the grids inside it."""
    grids = conn.execute(
        "SELECT id, parent_id, level FROM grids WHERE system = %s", (system,)
    ).fetchall()
    parent: dict[int, int | None] = {gid: up for gid, up, _ in grids}
    level_of: dict[int, str] = {gid: level for gid, _, level in grids}
    per_area: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    grid = sql.Identifier(GRID_COLUMNS[system])
    for column, table in enumerate(("residents", "patrol_checkins", "hazard_reports")):
        for grid_id, count in conn.execute(
            sql.SQL("SELECT {g}, count(*) FROM {t} WHERE {g} IS NOT NULL GROUP BY {g}").format(
                g=grid, t=sql.Identifier(table)
            )
        ):
            node = grid_id
            while node is not None:
                per_area[node][column] += count
                node = parent.get(node)
    by_level: dict[str, list[list[int]]] = {level: [] for level in LEVELS}
    for area_id, level in level_of.items():
        by_level[level].append(per_area.get(area_id, [0, 0, 0]))
    return [
        LevelCounts(level, len(areas), *(Spread.of([a[i] for a in areas]) for i in range(3)))
        for level, areas in by_level.items()
        if areas
    ]


def open_alert_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Alerts not yet resolved, by kind."""
    return dict(
        conn.execute(
            "SELECT kind, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY kind ORDER BY 1"
        ).fetchall()
    )
