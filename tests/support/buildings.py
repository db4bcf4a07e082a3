"""Buildings (楼栋), their units (单元) and the people to call first there, as the import
tests write them: a small hierarchy of Qingshan District, Baotou (tests.support.import_files)
with three buildings, their units and contacts, in English or Chinese headers."""

from __future__ import annotations

from pathlib import Path

import psycopg
import shapely
from shapely.geometry import box

from gridwatch.imports.pipelines import (
    import_contacts_file,
    import_grid_file,
    import_units_file,
)
from tests.support.import_files import COMMUNITIES, DISTRICT, GRIDS, STREETS, write_features

# Two buildings in grid G-1, one in G-3 (each about 85 m by 55 m).
BUILDINGS = [
    ("B-1", "富强1栋", box(109.862, 40.622, 109.863, 40.6225)),
    ("B-2", "富强2栋", box(109.865, 40.625, 109.866, 40.6255)),
    ("B-3", "幸福1栋", box(109.902, 40.622, 109.903, 40.6225)),
]
IN_B1 = (109.8625, 40.6222)  # (lon, lat) inside B-1
IN_B3 = (109.9025, 40.6222)

UNITS = [
    "building_code,unit_code,name,address,lat,lon",
    "B-1,1,1单元,,40.6221,109.8621",
    "B-1,2,2单元,青山区富强路1号1栋2单元,,",
    "B-2,1,1单元,,,",
    "B-3,1,1单元,,40.6221,109.9021",
]
UNITS_ZH = ["楼栋编码,单元编码,名称,地址,纬度,经度", *UNITS[1:]]

CONTACTS = [
    "contact_id,name,role,building_code,unit_code,phone,webhook_url",
    "C-1,王秀英,unit_head,B-1,1,13900001111,",
    "C-2,李建国,building_lead,B-1,,13900002222,",
    "C-3,赵红梅,unit_head,B-1,2,13900004444,",
    "C-4,张丽,unit_head,B-3,1,13900003333,",
]
CONTACTS_ZH = [
    "联系人编号,姓名,角色,楼栋编码,单元编码,电话",
    "C-1,王秀英,单元长,B-1,1,13900001111",
    "C-2,李建国,楼栋长,B-1,,13900002222",
    "C-3,赵红梅,单元长,B-1,2,13900004444",
    "C-4,张丽,单元长,B-3,1,13900003333",
]


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def import_hierarchy(conn: psycopg.Connection, directory: Path) -> None:
    """The small hierarchy: a district, two streets, two communities, three grids."""
    levels = [
        ("district", DISTRICT), ("street", STREETS), ("community", COMMUNITIES),
        ("grid", GRIDS),
    ]  # fmt: skip
    for level, features in levels:
        import_grid_file(
            conn, write_features(directory / f"{level}.geojson", features), level=level
        )


def import_buildings(conn: psycopg.Connection, directory: Path, *, contacts=CONTACTS) -> None:
    """The hierarchy, then its buildings, units and contacts (`contacts`: the CSV's lines)."""
    import_hierarchy(conn, directory)
    path = write_features(directory / "buildings.geojson", BUILDINGS)
    import_grid_file(conn, path, level="building")
    import_units_file(conn, write_lines(directory / "units.csv", UNITS))
    import_contacts_file(conn, write_lines(directory / "contacts.csv", contacts))


def home_of(url: str, resident: str) -> tuple[str, str | None]:
    """(building code, unit code) of a resident's home."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT b.code, u.code FROM residents r JOIN buildings b ON b.id = r.building_id "
            "LEFT JOIN units u ON u.id = r.unit_id WHERE r.id = %s",
            (resident,),
        ).fetchone()


def point_in_building(url: str, code: str) -> tuple[float, float]:
    """(lon, lat) of a point inside building `code`, in it alone."""
    with psycopg.connect(url) as conn:
        [(wkb,)] = conn.execute("SELECT geometry FROM buildings WHERE code = %s", (code,))
        others = [
            shapely.from_wkb(bytes(w))
            for (w,) in conn.execute("SELECT geometry FROM buildings WHERE code <> %s", (code,))
        ]
    alone = shapely.from_wkb(bytes(wkb)).difference(shapely.union_all(others))
    point = alone.representative_point()
    return point.x, point.y


def people_in(url: str, building: str) -> dict[str, tuple[str, str, str, str | None]]:
    """The contacts of building `building`: id → (name, phone, role, unit code)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.id, c.name, c.phone, c.role, u.code FROM contacts c "
            "JOIN buildings b ON b.id = c.building_id LEFT JOIN units u ON u.id = c.unit_id "
            "WHERE b.code = %s",
            (building,),
        ).fetchall()
    return {cid: tuple(rest) for cid, *rest in rows}


def outside_buildings(url: str, grid: str) -> tuple[float, float]:
    """(lon, lat) of a point of grid `grid` in no building."""
    with psycopg.connect(url) as conn:
        [(wkb,)] = conn.execute("SELECT geometry FROM grids WHERE code = %s", (grid,))
        shapes = [
            shapely.from_wkb(bytes(w)) for (w,) in conn.execute("SELECT geometry FROM buildings")
        ]
    point = (
        shapely.from_wkb(bytes(wkb)).difference(shapely.union_all(shapes)).representative_point()
    )
    return point.x, point.y
