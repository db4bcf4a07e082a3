"""The grids table: upsert from imported features, the leaf grids that points are placed in,
the catalog the API serves (every grid with its shape) and the live counts per grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from gridwatch.cases.hazards import OPEN_STATUSES
from gridwatch.errors import InputFileError
from gridwatch.geo.grids import LEVELS, GridFeature
from gridwatch.geo.index import GridIndex
from gridwatch.store.db import refused_as_input_error

_VERSION = "SELECT count(*), max(updated_at) FROM grids"


@dataclass(frozen=True, slots=True)
class LeafGrids:
    """The grids that have no children, indexed for point assignment, with the table's version."""

    index: GridIndex
    version: tuple

    def reload_if_changed(self, conn: psycopg.Connection) -> LeafGrids | None:
        """A fresh LeafGrids when the table changed since this one was loaded, else None."""
        [version] = conn.execute(_VERSION).fetchall()
        return None if version == self.version else load_leaf_grids(conn)


def load_leaf_grids(conn: psycopg.Connection) -> LeafGrids:
    """Load the lowest grids (no child grids) and build their spatial index once."""
    [version] = conn.execute(_VERSION).fetchall()
    rows = conn.execute(
        """
        SELECT g.id, g.code, g.geometry FROM grids g
        WHERE NOT EXISTS (SELECT 1 FROM grids c WHERE c.parent_id = g.id)
        ORDER BY g.code
        """
    ).fetchall()
    if not rows:
        return LeafGrids(GridIndex.empty(), version)
    ids = [row[0] for row in rows]
    codes = [row[1] for row in rows]
    geometries = shapely.from_wkb([bytes(row[2]) for row in rows])
    return LeafGrids(GridIndex(ids, codes, geometries), version)


def grid_codes(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Every grid code with its id and level."""
    return {
        code: (gid, level) for gid, code, level in conn.execute("SELECT id, code, level FROM grids")
    }


def upsert_grids(
    conn: psycopg.Connection,
    features: Sequence[GridFeature],
    parents: dict[str, str | None],
    *,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update grids by code in one transaction; returns (inserted, updated)."""
    inserted = updated = 0
    with conn.transaction():
        known = grid_codes(conn)
        for done, feature in enumerate(_parents_first(features), start=1):
            parent_code = feature.parent_code or parents.get(feature.code)
            parent_id = None
            if parent_code is not None:
                if parent_code not in known:
                    raise InputFileError(
                        f"{source}: grid {feature.code!r} names parent {parent_code!r}, "
                        "which is neither in this file nor imported before"
                    )
                parent_id, parent_level = known[parent_code]
                if LEVELS.index(parent_level) >= LEVELS.index(feature.level):
                    raise InputFileError(
                        f"{source}: grid {feature.code!r} ({feature.level}) cannot have parent "
                        f"{parent_code!r} of level {parent_level}"
                    )
            with refused_as_input_error(source, f"grid {feature.code!r}"):
                row = _upsert_grid(conn, feature, parent_id)
            known[feature.code] = (row[0], feature.level)
            if row[1]:
                inserted += 1
            else:
                updated += 1
            if progress:
                progress(done, len(features))
    return inserted, updated


def _upsert_grid(
    conn: psycopg.Connection, feature: GridFeature, parent_id: int | None
) -> tuple[int, bool]:
    """One grid by code; (its id, whether it is new)."""
    [(grid_id, inserted)] = conn.execute(
        """
        INSERT INTO grids (code, name, level, parent_id, geometry,
                           min_lon, min_lat, max_lon, max_lat, area_m2)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (code) DO UPDATE SET
            name = EXCLUDED.name, level = EXCLUDED.level,
            parent_id = EXCLUDED.parent_id, geometry = EXCLUDED.geometry,
            min_lon = EXCLUDED.min_lon, min_lat = EXCLUDED.min_lat,
            max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat,
            area_m2 = EXCLUDED.area_m2, updated_at = now()
        RETURNING id, (xmax = 0) AS inserted
        """,
        (
            feature.code,
            feature.name,
            feature.level,
            parent_id,
            *shape_columns(feature.geometry),
        ),
    ).fetchall()
    return grid_id, inserted


def shape_columns(geometry) -> tuple[bytes, float, float, float, float, float]:
    """A shape as its table columns store it: WKB, its bounding box (min lon, min lat, max
    lon, max lat) and its geodesic area in square metres."""
    return (shapely.to_wkb(geometry), *geometry.bounds, area_m2(geometry))


def area_m2(geometry) -> float:
    """Geodesic area of a lon/lat polygon in square metres."""
    from pyproj import Geod

    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geometry)[0])


def _parents_first(features: Sequence[GridFeature]) -> list[GridFeature]:
    return sorted(features, key=lambda f: LEVELS.index(f.level))


def load_features(conn: psycopg.Connection) -> list[GridFeature]:
    """Every stored grid as a GridFeature, for finding the parents of newly imported ones."""
    rows = conn.execute(
        """
        SELECT g.code, g.name, g.level, p.code, g.geometry
        FROM grids g LEFT JOIN grids p ON p.id = g.parent_id
        """
    ).fetchall()
    return [
        GridFeature(code, name, level, parent, shapely.from_wkb(bytes(wkb)))
        for code, name, level, parent, wkb in rows
    ]


_VERSION = "SELECT count(*), max(updated_at) FROM grids"


@dataclass(frozen=True, slots=True)
class GridRecord:
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    geometry: BaseGeometry
    bbox: tuple[float, float, float, float]
    area_m2: float


@dataclass(frozen=True, slots=True)
class GridCatalog:
    """Every grid with its shape, loaded once per change of the grids table."""

    grids: tuple[GridRecord, ...]
    version: tuple
    by_id: dict[int, GridRecord] = field(repr=False)
    by_code: dict[str, GridRecord] = field(repr=False)
    children: dict[int | None, list[int]] = field(repr=False)

    def subtree(self, grid_id: int) -> list[int]:
        """The grid and every grid below it."""
        found, stack = [], [grid_id]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(self.children.get(node, ()))
        return found

    def ancestors(self, grid_id: int) -> list[int]:
        """The grids above `grid_id`, nearest first."""
        chain, node = [], self.by_id[grid_id].parent_id
        while node is not None and node in self.by_id and node not in chain:
            chain.append(node)
            node = self.by_id[node].parent_id
        return chain

    def leaves_under(self, grid_id: int) -> int:
        return sum(1 for g in self.subtree(grid_id) if not self.children.get(g))


def grids_version(conn: psycopg.Connection) -> tuple:
    [version] = conn.execute(_VERSION).fetchall()
    return version


def load_grid_catalog(conn: psycopg.Connection) -> GridCatalog:
    """Every grid, its geometry decoded from WKB once."""
    version = grids_version(conn)
    rows = conn.execute(
        "SELECT id, code, name, level, parent_id, geometry, min_lon, min_lat, max_lon, max_lat, "
        "area_m2 FROM grids ORDER BY code"
    ).fetchall()
    geometries = shapely.from_wkb([bytes(r[5]) for r in rows]) if rows else []
    grids = tuple(
        GridRecord(r[0], r[1], r[2], r[3], r[4], geom, (r[6], r[7], r[8], r[9]), r[10])
        for r, geom in zip(rows, geometries, strict=True)
    )
    children: dict[int | None, list[int]] = {}
    for grid in grids:
        children.setdefault(grid.parent_id, []).append(grid.id)
    return GridCatalog(
        grids,
        version,
        {g.id: g for g in grids},
        {g.code: g for g in grids},
        children,
    )


@dataclass(slots=True)
class GridCounts:
    residents: int = 0
    open_alerts: int = 0
    open_hazards: int = 0
    overdue_hazards: int = 0
    checkins: int = 0
    buildings: int = 0  # below the grid: its buildings (楼栋), their units (单元)
    units: int = 0
    contacts: int = 0  # and the unit heads and building leads to call there

    def add(self, other: GridCounts) -> None:
        self.residents += other.residents
        self.open_alerts += other.open_alerts
        self.open_hazards += other.open_hazards
        self.overdue_hazards += other.overdue_hazards
        self.checkins += other.checkins
        self.buildings += other.buildings
        self.units += other.units
        self.contacts += other.contacts


# What lies below each grid (a building's grid is its parent): counted with the grid's own.
_BELOW_GRID_COUNTS = """
    SELECT grid_id, 'buildings', count(*) FROM buildings GROUP BY grid_id
    UNION ALL
    SELECT b.grid_id, 'units', count(*) FROM units u JOIN buildings b ON b.id = u.building_id
        GROUP BY b.grid_id
    UNION ALL
    SELECT b.grid_id, 'contacts', count(*) FROM contacts c JOIN buildings b ON b.id = c.building_id
        WHERE c.forgotten_at IS NULL GROUP BY b.grid_id
"""


def grid_counts(
    conn: psycopg.Connection,
    catalog: GridCatalog,
    *,
    now: datetime,
    checkins_from: datetime,
    checkins_until: datetime,
) -> dict[int, GridCounts]:
    """Live counts per grid, each grid's including everything below it."""
    rows = conn.execute(
        """
        SELECT grid_id, 'residents', count(*) FROM residents
            WHERE grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'open_alerts', count(*) FROM alerts
            WHERE status <> 'resolved' AND grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'open_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND grid_id IS NOT NULL GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'overdue_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND coalesce(due_at, deadline_at) <= %(now)s
              AND grid_id IS NOT NULL
            GROUP BY grid_id
        UNION ALL
        SELECT grid_id, 'checkins', count(*) FROM patrol_checkins
            WHERE observed_at >= %(from)s AND observed_at < %(until)s AND grid_id IS NOT NULL
            GROUP BY grid_id
        """,
        {
            "open": sorted(OPEN_STATUSES),
            "now": now,
            "from": checkins_from,
            "until": checkins_until,
        },
    ).fetchall()
    rows += conn.execute(_BELOW_GRID_COUNTS).fetchall()
    own: dict[int, GridCounts] = {}
    for grid_id, what, count in rows:
        setattr(own.setdefault(grid_id, GridCounts()), what, count)
    totals = {grid.id: GridCounts() for grid in catalog.grids}
    for grid_id, counts in own.items():
        if grid_id not in totals:
            continue
        totals[grid_id].add(counts)
        for ancestor in catalog.ancestors(grid_id):
            totals[ancestor].add(counts)
    return totals
