"""The grids table: upsert from imported features, the leaf grids that points are placed in,
the catalog the API serves (every grid with its shape) and the live counts per grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy.typing as npt
import psycopg
import shapely
from psycopg import sql
from shapely.geometry.base import BaseGeometry

from gridwatch.cases.hazards import OPEN_STATUSES
from gridwatch.errors import InputFileError
from gridwatch.geo.grids import LEVELS, GridFeature
from gridwatch.geo.index import GridIndex, GridSystems
from gridwatch.model.figures import GridCounts
from gridwatch.model.vocabulary import GRID_SYSTEMS, MANAGEMENT, POLICE
from gridwatch.store.db import refused_as_input_error

_VERSION = "SELECT count(*), max(updated_at) FROM grids"


@dataclass(frozen=True, slots=True)
class LeafGrids:
    """The grids that have no children, indexed for point assignment per grid system, with
    the table's version."""

    systems: GridSystems
    version: tuple

    @property
    def index(self) -> GridIndex:
        """The management system's index: the grid_id every point keeps."""
        return self.systems.management

    def reload_if_changed(self, conn: psycopg.Connection) -> LeafGrids | None:
        """A fresh LeafGrids when the table changed since this one was loaded, else None."""
        [version] = conn.execute(_VERSION).fetchall()
        return None if version == self.version else load_leaf_grids(conn)

    def place(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> list[PointGrids]:
        """Each point's grid in every system, in one pass (None: outside every grid of it)."""
        found = self.systems.assign(lon, lat)
        return [
            PointGrids(None if g < 0 else g, None if p < 0 else p)
            for g, p in zip(found[MANAGEMENT].tolist(), found[POLICE].tolist(), strict=True)
        ]


class PointGrids(NamedTuple):
    """Where a point lies: its grid in each system (None: outside every grid of it)."""

    grid_id: int | None
    police_grid_id: int | None = None


OUTSIDE = PointGrids(None, None)


def point_grids(grids: PointGrids | int | None) -> PointGrids:
    """`grids` as PointGrids: a bare grid id (or None) is a management grid and no police one,
    as callers that know only the management grid pass it."""
    return grids if isinstance(grids, PointGrids) else PointGrids(grids)


def load_leaf_grids(conn: psycopg.Connection) -> LeafGrids:
    """Load the lowest grids (no child grids) of each system and build their indexes once."""
    [version] = conn.execute(_VERSION).fetchall()
    rows = conn.execute(
        """
        SELECT g.system, g.id, g.code, g.geometry FROM grids g
        WHERE NOT EXISTS (SELECT 1 FROM grids c WHERE c.parent_id = g.id)
        ORDER BY g.code
        """
    ).fetchall()
    indexes: dict[str, GridIndex] = {}
    for system in GRID_SYSTEMS:
        chosen = [row for row in rows if row[0] == system]
        if chosen:
            geometries = shapely.from_wkb([bytes(row[3]) for row in chosen])
            indexes[system] = GridIndex([r[1] for r in chosen], [r[2] for r in chosen], geometries)
    return LeafGrids(GridSystems(indexes), version)


def grid_codes(
    conn: psycopg.Connection, system: str | None = MANAGEMENT
) -> dict[str, tuple[int, str]]:
    """Every grid code of `system` (None: of every system) with its id and level."""
    rows = conn.execute(
        "SELECT id, code, level FROM grids WHERE %(system)s::text IS NULL OR system = %(system)s",
        {"system": system},
    )
    return {code: (gid, level) for gid, code, level in rows}


def unknown_grid_note(conn: psycopg.Connection, codes: Sequence[str]) -> str:
    """What to say of codes that are not management grids when some are police grids."""
    police = sorted(set(codes) & set(grid_codes(conn, POLICE)))
    if not police:
        return ""
    named = ", ".join(map(repr, police[:3]))
    return (
        f" ({named}: {'a police grid' if len(police) == 1 else 'police grids'}; residents and "
        "workers are placed in management grids, a police officer is an API user given them)"
    )


def upsert_grids(
    conn: psycopg.Connection,
    features: Sequence[GridFeature],
    parents: dict[str, str | None],
    *,
    source: str,
    system: str = MANAGEMENT,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update grids of `system` by code in one transaction; returns (inserted,
    updated). A code another system uses, or a parent of another system, is an error naming
    the feature (numbered from 1 in the order given)."""
    if system not in GRID_SYSTEMS:
        raise InputFileError(f"unknown grid system {system!r}: expected {', '.join(GRID_SYSTEMS)}")
    number = {f.code: n for n, f in enumerate(features, start=1)}
    inserted = updated = 0
    with conn.transaction():
        known = grid_codes(conn, None)
        systems: dict[str, str] = dict(conn.execute("SELECT code, system FROM grids").fetchall())
        for done, feature in enumerate(_parents_first(features), start=1):
            where = f"{source}: feature {number[feature.code]} (code {feature.code!r})"
            if systems.get(feature.code, system) != system:
                raise InputFileError(
                    f"{where}: the code is a {systems[feature.code]} grid's; a code names one "
                    f"grid in every system, so give the {system} grids codes of their own"
                )
            parent_code = feature.parent_code or parents.get(feature.code)
            parent_id = None
            if parent_code is not None:
                if parent_code not in known:
                    raise InputFileError(
                        f"{source}: grid {feature.code!r} names parent {parent_code!r}, "
                        "which is neither in this file nor imported before"
                    )
                if systems.get(parent_code, system) != system:
                    raise InputFileError(
                        f"{where}: its parent {parent_code!r} is a {systems[parent_code]} grid; "
                        f"a {system} grid's parent is a {system} grid"
                    )
                parent_id, parent_level = known[parent_code]
                if LEVELS.index(parent_level) >= LEVELS.index(feature.level):
                    raise InputFileError(
                        f"{source}: grid {feature.code!r} ({feature.level}) cannot have parent "
                        f"{parent_code!r} of level {parent_level}"
                    )
            with refused_as_input_error(source, f"grid {feature.code!r}"):
                row = _upsert_grid(conn, feature, parent_id, system)
            known[feature.code] = (row[0], feature.level)
            systems[feature.code] = system
            if row[1]:
                inserted += 1
            else:
                updated += 1
            if progress:
                progress(done, len(features))
    return inserted, updated


def _upsert_grid(
    conn: psycopg.Connection, feature: GridFeature, parent_id: int | None, system: str
) -> tuple[int, bool]:
    """One grid by code; (its id, whether it is new)."""
    [(grid_id, inserted)] = conn.execute(
        """
        INSERT INTO grids (code, name, level, parent_id, geometry,
                           min_lon, min_lat, max_lon, max_lat, area_m2, system)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
            system,
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


def load_features(conn: psycopg.Connection, system: str = MANAGEMENT) -> list[GridFeature]:
    """Every stored grid of `system` as a GridFeature, for finding the parents of newly
    imported ones."""
    rows = conn.execute(
        """
        SELECT g.code, g.name, g.level, p.code, g.geometry
        FROM grids g LEFT JOIN grids p ON p.id = g.parent_id
        WHERE g.system = %s
        """,
        (system,),
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
    system: str = MANAGEMENT


@dataclass(frozen=True, slots=True)
class GridCatalog:
    """Every grid with its shape, loaded once per change of the grids table.

    `grids` and `by_code` are the management system's: the hierarchy every view shows unless
    another system is asked for (`in_system`, `find`); `by_id` and `children` hold the grids of
    every system (a grid id is one grid whatever its system)."""

    grids: tuple[GridRecord, ...]
    version: tuple
    by_id: dict[int, GridRecord] = field(repr=False)
    by_code: dict[str, GridRecord] = field(repr=False)
    children: dict[int | None, list[int]] = field(repr=False)
    systems: dict[str, tuple[GridRecord, ...]] = field(default_factory=dict, repr=False)
    _codes: dict[str, dict[str, GridRecord]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        codes = {name: {g.code: g for g in grids} for name, grids in self.systems.items()}
        object.__setattr__(self, "_codes", codes)

    @property
    def all_grids(self) -> tuple[GridRecord, ...]:
        """The grids of every system, each system's in code order."""
        return tuple(g for system in GRID_SYSTEMS for g in self.systems.get(system, ()))

    def in_system(self, system: str) -> tuple[GridRecord, ...]:
        """The grids of `system`, in code order."""
        return self.systems.get(system, ())

    def find(self, code: str, system: str | None = None) -> GridRecord | None:
        """The grid of this code in `system` (None: in any; a code names one grid)."""
        for name in GRID_SYSTEMS if system is None else (system,):
            found = self._codes.get(name, {}).get(code)
            if found is not None:
                return found
        return None

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
        "area_m2, system FROM grids ORDER BY code"
    ).fetchall()
    geometries = shapely.from_wkb([bytes(r[5]) for r in rows]) if rows else []
    every = tuple(
        GridRecord(r[0], r[1], r[2], r[3], r[4], geom, (r[6], r[7], r[8], r[9]), r[10], r[11])
        for r, geom in zip(rows, geometries, strict=True)
    )
    children: dict[int | None, list[int]] = {}
    for grid in every:
        children.setdefault(grid.parent_id, []).append(grid.id)
    systems: dict[str, tuple[GridRecord, ...]] = {
        name: tuple(g for g in every if g.system == name) for name in GRID_SYSTEMS
    }
    grids = systems[MANAGEMENT]
    return GridCatalog(
        grids,
        version,
        {g.id: g for g in every},
        {g.code: g for g in grids},
        children,
        systems,
    )


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
    """Live counts per grid, each grid's including everything below it; a police grid's
    counts are of the points placed in it in the police system (an alert: its resident's)."""
    params = {
        "open": sorted(OPEN_STATUSES),
        "now": now,
        "from": checkins_from,
        "until": checkins_until,
    }
    rows = conn.execute(_counts_query("grid_id", sql.SQL("alerts a")), params).fetchall()
    if catalog.in_system(POLICE):
        alerts = sql.SQL("alerts a JOIN residents r ON r.id = a.resident_id")
        rows += conn.execute(_counts_query("police_grid_id", alerts, "r"), params).fetchall()
    rows += conn.execute(_BELOW_GRID_COUNTS).fetchall()
    own: dict[int, GridCounts] = {}
    for grid_id, what, count in rows:
        setattr(own.setdefault(grid_id, GridCounts()), what, count)
    totals = {grid.id: GridCounts() for grid in catalog.all_grids}
    for grid_id, counts in own.items():
        if grid_id not in totals:
            continue
        totals[grid_id].add(counts)
        for ancestor in catalog.ancestors(grid_id):
            totals[ancestor].add(counts)
    return totals


def _counts_query(column: str, alerts: sql.Composable, alert_alias: str = "a") -> sql.Composed:
    """Counts per grid of one system: `column` names the points' grid in it; an alert's is
    read from `alert_alias` of the `alerts` relation."""
    g = sql.Identifier(column)
    a = sql.Identifier(alert_alias, column)
    return sql.SQL(
        """
        SELECT {g}, 'residents', count(*) FROM residents
            WHERE {g} IS NOT NULL GROUP BY {g}
        UNION ALL
        SELECT {a}, 'open_alerts', count(*) FROM {alerts}
            WHERE a.status <> 'resolved' AND {a} IS NOT NULL GROUP BY {a}
        UNION ALL
        SELECT {g}, 'open_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND {g} IS NOT NULL GROUP BY {g}
        UNION ALL
        SELECT {g}, 'overdue_hazards', count(*) FROM hazard_reports
            WHERE status = ANY(%(open)s) AND coalesce(due_at, deadline_at) <= %(now)s
              AND {g} IS NOT NULL
            GROUP BY {g}
        UNION ALL
        SELECT {g}, 'checkins', count(*) FROM patrol_checkins
            WHERE observed_at >= %(from)s AND observed_at < %(until)s AND {g} IS NOT NULL
            GROUP BY {g}
        """
    ).format(g=g, a=a, alerts=alerts)
