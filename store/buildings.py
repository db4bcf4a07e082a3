"""Buildings (楼栋) and their units (单元), the levels below the grid: upserts from imported
shapes and tables, homes and points placed in buildings, and what each grid holds of them.

Buildings are kept apart from the grids table: points keep their grid_id as before, and what
walks the grid hierarchy (placement, coverage, the desk, the maps) is unchanged. A home names
its building and unit (residents.building_id, unit_id), and so does an inspected place
(places.building_id, unit_id); a case's point is placed in its building when it is read, and a
finding of a place's inspection stands in the place's building.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from gridwatch.errors import InputFileError, listed
from gridwatch.geo.grids import GridFeature
from gridwatch.geo.index import GridIndex
from gridwatch.model.rows import RegisterRow, ResidentRow, UnitRow
from gridwatch.store.db import upsert_each
from gridwatch.store.grids import grid_codes, shape_columns
from gridwatch.store.residents import CONTRADICTION_M, _metres_outside

_UPSERT_BUILDING = """
    INSERT INTO buildings (code, name, grid_id, geometry, min_lon, min_lat, max_lon, max_lat,
                           area_m2)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (code) DO UPDATE SET
        name = EXCLUDED.name, grid_id = EXCLUDED.grid_id, geometry = EXCLUDED.geometry,
        min_lon = EXCLUDED.min_lon, min_lat = EXCLUDED.min_lat,
        max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat,
        area_m2 = EXCLUDED.area_m2, updated_at = now()
    RETURNING (xmax = 0)
"""
_UPSERT_UNIT = """
    INSERT INTO units (building_id, code, name, address, lon, lat)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (building_id, code) DO UPDATE SET
        name = EXCLUDED.name, address = EXCLUDED.address,
        lon = EXCLUDED.lon, lat = EXCLUDED.lat, updated_at = now()
    RETURNING (xmax = 0)
"""


def upsert_buildings(
    conn: psycopg.Connection,
    features: Sequence[GridFeature],
    parents: dict[str, str | None],
    *,
    source: str,
    numbers: dict[str, int],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update buildings by code, each in the grid its parent code names (its own,
    or the one `parents` found containing it), in one transaction; (inserted, updated).
    A building in no grid, or whose parent is not a grid, is an error naming the feature
    (`numbers`: each code's feature number in the file) and nothing is stored."""
    grids = grid_codes(conn)
    problems = []
    grid_of: dict[str, int] = {}
    for feature in features:
        where = f"feature {numbers[feature.code]} (code {feature.code!r})"
        parent = feature.parent_code or parents.get(feature.code)
        if parent is None:
            problems.append(
                f"{where}: the building lies in no imported grid; import the grids first or "
                "give --parent-field"
            )
        elif parent not in grids:
            problems.append(f"{where}: its parent {parent!r} is not an imported grid")
        elif grids[parent][1] != "grid":
            problems.append(
                f"{where}: its parent {parent!r} is a {grids[parent][1]}; a building's parent "
                "is a grid"
            )
        else:
            grid_of[feature.code] = grids[parent][0]
    if problems:
        raise InputFileError(f"{source}: {listed(problems)}")
    rows = [
        (
            f"building {f.code!r}",
            (f.code, f.name, grid_of[f.code], *shape_columns(f.geometry)),
        )
        for f in features
    ]
    return upsert_each(conn, _UPSERT_BUILDING, rows, source=source, progress=progress)


@dataclass(frozen=True, slots=True)
class Building:
    id: int
    code: str
    grid_id: int
    geometry: BaseGeometry


@dataclass(frozen=True, slots=True)
class Buildings:
    """Every building with its shape, indexed for placing points (smallest code on a shared
    wall), and every unit by (building code, unit code)."""

    by_code: dict[str, Building]
    index: GridIndex
    units: dict[tuple[str, str], tuple[int, int]]  # (building, unit code) → (unit, building id)


def load_buildings(conn: psycopg.Connection) -> Buildings:
    """Every building and unit, read once for an import or a pass."""
    rows = conn.execute(
        "SELECT id, code, grid_id, geometry FROM buildings ORDER BY code"
    ).fetchall()
    shapes = shapely.from_wkb([bytes(r[3]) for r in rows]) if rows else []
    by_code = {
        code: Building(bid, code, grid, shape)
        for (bid, code, grid, _), shape in zip(rows, shapes, strict=True)
    }
    index = GridIndex([r[0] for r in rows], [r[1] for r in rows], list(shapes))
    units = {
        (building, code): (uid, bid)
        for uid, bid, building, code in conn.execute(
            "SELECT u.id, u.building_id, b.code, u.code FROM units u "
            "JOIN buildings b ON b.id = u.building_id"
        )
    }
    return Buildings(by_code, index, units)


def building_at(conn: psycopg.Connection, lon: float | None, lat: float | None) -> int | None:
    """The building a point lies in (smallest code on a shared wall), None in none or without
    a point: the few whose box holds the point are read and tested."""
    if lon is None or lat is None:
        return None
    rows = conn.execute(
        "SELECT id, geometry FROM buildings WHERE min_lon <= %(lon)s AND max_lon >= %(lon)s "
        "AND min_lat <= %(lat)s AND max_lat >= %(lat)s ORDER BY code",
        {"lon": lon, "lat": lat},
    ).fetchall()
    point = shapely.Point(lon, lat)
    return next((bid for bid, wkb in rows if shapely.from_wkb(bytes(wkb)).intersects(point)), None)


def upsert_units(
    conn: psycopg.Connection,
    rows: Sequence[UnitRow],
    *,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert or update units by building and unit code in one transaction; (inserted,
    updated). A unit of a building not imported, or whose door lies more than
    CONTRADICTION_M outside its building, is an error naming the row; nothing is stored."""
    buildings = load_buildings(conn)
    conn.commit()
    problems = []
    for number, row in enumerate(rows, start=2):
        found = buildings.by_code.get(row.building_code)
        where = f"row {row.row or number}"
        if found is None:
            problems.append(
                f"{where}: building_code {row.building_code!r} is not an imported building"
            )
        elif row.lon is not None and row.lat is not None:
            metres = _metres_outside(found.geometry, row.lon, row.lat)
            if metres > CONTRADICTION_M:
                problems.append(
                    f"{where}: lat/lon lie {metres:,.0f} m outside building "
                    f"{row.building_code}; correct one of them"
                )
    if problems:
        raise InputFileError(f"{source}: {listed(problems)}")
    params = [
        (
            f"row {row.row or number}",
            (
                buildings.by_code[row.building_code].id,
                row.unit_code,
                row.name or row.unit_code,
                row.address,
                row.lon,
                row.lat,
            ),
        )
        for number, row in enumerate(rows, start=2)
    ]
    return upsert_each(conn, _UPSERT_UNIT, params, source=source, progress=progress)


@dataclass(frozen=True, slots=True)
class Home:
    """Where a resident lives (or a place stands) below the grid: the building and unit
    (None: not known)."""

    building_id: int | None = None
    unit_id: int | None = None


def place_homes(
    conn: psycopg.Connection,
    rows: Sequence[RegisterRow],
    grid_ids: Sequence[int | None],
    *,
    source: str,
) -> list[Home]:
    """Each resident's (or place's) building and unit: the ones the row names, else the
    building its position lies in. A building or unit not imported, a unit without its
    building, a named building in another grid than the row's (by grid_code or position), or
    a position more than CONTRADICTION_M outside the named building, is an error naming the
    row."""
    if not any(r.building_code or r.lon is not None for r in rows):
        return [Home() for _ in rows]
    buildings = load_buildings(conn)
    conn.commit()
    # Every position placed in one pass (a row without one is NaN: in no building).
    lon = np.array([np.nan if r.lon is None else r.lon for r in rows], dtype=float)
    lat = np.array([np.nan if r.lat is None else r.lat for r in rows], dtype=float)
    found = buildings.index.assign(lon, lat).tolist()
    homes: list[Home] = []
    problems: list[str] = []
    for number, (row, grid_id, inside) in enumerate(
        zip(rows, grid_ids, found, strict=True), start=2
    ):
        home, problem = _home(buildings, row, grid_id, None if inside < 0 else inside)
        homes.append(home)
        if problem:
            problems.append(f"row {row.row or number}: {problem}")
    if problems:
        raise InputFileError(f"{source}: {listed(problems)}")
    return homes


def _home(
    buildings: Buildings, row: RegisterRow, grid_id: int | None, inside: int | None
) -> tuple[Home, str | None]:
    """A row's home below the grid (`inside`: the building its position lies in), or what is
    wrong with what it names."""
    code = row.building_code
    if code is None:
        if row.unit_code:
            return Home(), "unit_code is given without building_code; a unit is named by both"
        return Home(inside), None
    building = buildings.by_code.get(code)
    if building is None:
        return Home(), f"building_code {code!r} is not an imported building"
    unit = None
    if row.unit_code:
        found = buildings.units.get((code, row.unit_code))
        if found is None:
            return Home(), f"unit_code {row.unit_code!r} is not an imported unit of building {code}"
        unit = found[0]
    if grid_id is not None and grid_id != building.grid_id:
        given = "grid_code" if row.grid_code else "lat/lon"
        return Home(), (
            f"building {code} lies in another grid than the row's {given}; correct one of them"
        )
    if row.lon is not None and row.lat is not None:
        metres = _metres_outside(building.geometry, row.lon, row.lat)
        if metres > CONTRADICTION_M:
            return Home(), (
                f"lat/lon lie {metres:,.0f} m outside building {code}; correct one of them"
            )
    return Home(building.id, unit), None


def record_homes(conn: psycopg.Connection, rows: Sequence[ResidentRow], homes: Sequence[Home]):
    """Write each resident's building and unit (in the caller's transaction)."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE residents SET building_id = %s, unit_id = %s WHERE id = %s",
            [
                (home.building_id, home.unit_id, row.resident_id)
                for row, home in zip(rows, homes, strict=True)
            ],
        )


def case_home(
    conn: psycopg.Connection, lon: float | None, lat: float | None, place_id: str | None = None
) -> Home:
    """Where a case stands below the grid: the building and unit of the place whose inspection
    found it (a finding), else the building its point lies in (none without a point)."""
    if place_id is not None:
        row = conn.execute(
            "SELECT building_id, unit_id FROM places WHERE id = %s AND building_id IS NOT NULL",
            (place_id,),
        ).fetchone()
        if row is not None:
            return Home(*row)
    return Home(building_at(conn, lon, lat))
