"""The grids table: upsert from imported features, and the leaf grids that points are placed in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
import shapely

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
    minx, miny, maxx, maxy = feature.geometry.bounds
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
            shapely.to_wkb(feature.geometry),
            minx,
            miny,
            maxx,
            maxy,
            area_m2(feature.geometry),
        ),
    ).fetchall()
    return grid_id, inserted


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
