"""What is stored, per table and per level of the grid hierarchy (for the demo)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gridwatch.geo.grids import LEVELS
from gridwatch.model.vocabulary import MANAGEMENT
from gridwatch.store.buildings import load_buildings
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
    checkins: Spread | None  # None: not counted at this level
    hazards: Spread | None


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


def below_grid_counts(conn: psycopg.Connection) -> list[LevelCounts]:
    """The levels below the grid, where there are any: per building its residents, and the
    patrol check-ins and hazards whose points lie in it; per unit its residents and the home
    visits made to them."""
    buildings = load_buildings(conn)
    if not buildings.by_code:
        return []
    ids = [b.id for b in buildings.by_code.values()]
    at = {bid: i for i, bid in enumerate(ids)}
    per_building = [[0, 0, 0] for _ in ids]
    for building, count in conn.execute(
        "SELECT building_id, count(*) FROM residents WHERE building_id IS NOT NULL GROUP BY 1"
    ):
        per_building[at[building]][0] = count
    for column, table in ((1, "patrol_checkins"), (2, "hazard_reports")):
        points = conn.execute(sql.SQL("SELECT lon, lat FROM {}").format(sql.Identifier(table)))
        lon_lat = [row for row in points if None not in row]
        if lon_lat:
            lon, lat = zip(*lon_lat, strict=True)
            for building in buildings.index.assign(lon, lat).tolist():
                if building >= 0:
                    per_building[at[building]][column] += 1
    per_unit = conn.execute(
        """
        SELECT count(DISTINCT r.id),
               count(c.resident_id) FILTER (WHERE c.kind = 'visit')
        FROM units u LEFT JOIN residents r ON r.unit_id = u.id
        LEFT JOIN patrol_checkins c ON c.resident_id = r.id
        GROUP BY u.id
        """
    ).fetchall()
    spreads = (Spread.of([b[i] for b in per_building]) for i in range(3))
    rows = [LevelCounts("building", len(ids), *spreads)]
    if per_unit:
        residents, visits = (Spread.of(list(column)) for column in zip(*per_unit, strict=True))
        rows.append(LevelCounts("unit", len(per_unit), residents, visits, None))
    return rows


def open_alert_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Alerts not yet resolved, by kind."""
    return dict(
        conn.execute(
            "SELECT kind, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY kind ORDER BY 1"
        ).fetchall()
    )
