"""The sample district: one street of Qingshan District (青山区), Baotou, cut into 8
communities and 110 grids, with ~2,000 solitary elderly residents and one worker per grid.

Everything is generated from a fixed seed with numpy's default_rng and shapely only, so the
same seed gives the same district on every machine. Shapes are built in metres on a local
plane and mapped to WGS-84 lon/lat by one affine step (adds and multiplies only).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from gridwatch.geo.grids import BUILDING, GridFeature
from gridwatch.imports.places import places_csv_text
from gridwatch.imports.residents import residents_csv_text
from gridwatch.model.rows import ContactRow, PlaceRow, ResidentRow, UnitRow

DEFAULT_SEED = 20261123
DEFAULT_RESIDENTS = 2000
DEFAULT_PLACES = 160
COMMUNITIES = 8
GRIDS = 110

# Local plane origin and scale near 40.65°N (WGS 84 metres per degree of lat and of lon).
ORIGIN_LON, ORIGIN_LAT = 109.905, 40.650
METRES_PER_DEG_LAT = 111_047.0
METRES_PER_DEG_LON = 84_579.0

DISTRICT_CODE, DISTRICT_NAME = "150204", "青山区"
STREET_CODE, STREET_NAME = "QS-01", "富强路街道"

# The street follows roads and the rail line: straight stretches with bends, about 4 by 3 km.
STREET_OUTLINE_M = [
    (-2000, -1350),
    (-600, -1500),
    (300, -1420),
    (1250, -1550),
    (2050, -1300),
    (1980, -400),
    (2100, 350),
    (1850, 1400),
    (700, 1520),
    (-300, 1380),
    (-1250, 1500),
    (-2080, 1250),
    (-1900, 300),
    (-2150, -500),
]
# Only a sketch of the district around the street; the real one is larger.
DISTRICT_OUTLINE_M = [
    (-5200, -3600),
    (-1500, -4100),
    (4800, -3900),
    (5600, 500),
    (4400, 4300),
    (-800, 4900),
    (-5600, 3700),
    (-6100, 200),
]

COMMUNITY_NAMES = ["富强", "幸福", "青松", "文化", "团结", "友谊", "和平", "光明"]
ROADS = [
    "富强",
    "青年",
    "幸福",
    "文化",
    "民主",
    "团结",
    "友谊",
    "青松",
    "光明",
    "和平",
    "建设",
    "先锋",
    "钢铁",
    "少先",
    "自由",
    "呼得木林",
]
SURNAMES = list(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
ELDER_GIVEN_NAMES = [
    "桂兰",
    "秀英",
    "玉兰",
    "淑珍",
    "凤英",
    "秀兰",
    "玉珍",
    "桂英",
    "淑兰",
    "秀珍",
    "翠花",
    "玉梅",
    "素芬",
    "兰英",
    "秀荣",
    "凤兰",
    "桂芝",
    "淑芬",
    "建国",
    "德福",
    "国庆",
    "振华",
    "志强",
    "福生",
    "长顺",
    "保国",
    "富贵",
    "金山",
    "永利",
    "文明",
    "有才",
    "德胜",
    "宝山",
    "万福",
    "玉山",
    "明德",
]
# Baotou has a large Mongolian community; their names have no Han surname.
MONGOLIAN_NAMES = ["巴特尔", "其其格", "乌云", "苏日娜", "额尔敦", "那仁", "斯琴", "宝音", "图雅"]
WORKER_GIVEN_NAMES = [
    "丽娜",
    "晓燕",
    "海峰",
    "志刚",
    "婷婷",
    "磊",
    "静",
    "伟",
    "敏",
    "涛",
    "芳",
    "军",
    "慧",
    "鹏",
    "雪梅",
    "建华",
    "红梅",
    "晓东",
]

# Places a community inspects (安全巡查): how common each kind is, how often it is inspected
# (restaurants and workshops every two weeks), and what their signs say after the road.
PLACE_KINDS = {"shop": 0.4, "restaurant": 0.3, "workshop": 0.15, "warehouse": 0.1, "other": 0.05}
INSPECT_EVERY_DAYS = {"shop": 30, "restaurant": 14, "workshop": 14, "warehouse": 30, "other": 60}
PLACE_NAMES = {
    "shop": ("便利店", "五金店", "超市", "理发店", "药店"),
    "restaurant": ("面馆", "烧烤店", "早餐店", "饺子馆", "火锅店"),
    "workshop": ("加工坊", "家电维修铺", "豆腐坊", "汽修店"),
    "warehouse": ("仓储点", "物流库房", "建材库"),
    "other": ("棋牌室", "废品回收站"),
}

# The police's grids (警格) over the same street, cut their own way: the street split between
# two police stations (派出所) along a line that follows no community border, each station's
# part into police districts (警务区) and those into police grids, under the district's police
# branch (分局). Drawn from a generator of their own, so the management grids, residents and
# workers are those of a district without them.
POLICE_SEED_OFFSET = 110
POLICE_CODE, POLICE_NAME = "GA-QS", "青山分局"
POLICE_STATIONS = (("GA-QS-1", "富强路派出所", 3), ("GA-QS-2", "幸福路派出所", 3))
POLICE_GRIDS_PER_AREA = 6
# The line between the two stations' parts: across the street from south-south-west to
# north-north-east, so that it cuts through communities and grids alike.
POLICE_STATION_BORDER_M = ((-700.0, -2000.0), (500.0, 2000.0))
POLICE_LEVEL_NAMES = {"district": "分局", "street": "派出所", "community": "警务区", "grid": "警格"}

BUILDINGS = 720  # blocks of flats; with 2,000 residents about three live alone in each
BUILDING_MARGIN_M = 15.0  # buildings stand this far inside their grid
RESIDENT_SPREAD_M = 8.0  # residents sit around their building's point, never further than this
# A building's footprint around its point: a slab of flats, its units side by side along it.
BUILDING_HALF_M = (20.0, 10.0)
UNIT_WIDTH_M = 5.0
MOST_UNITS = 6


@dataclass(frozen=True, slots=True)
class SampleWorker:
    """A grid worker (网格员) responsible for one grid."""

    worker_id: str
    name: str
    grid_code: str
    phone: str


@dataclass(frozen=True, slots=True)
class SampleDistrict:
    """The generated hierarchy (WGS-84, parent codes filled), residents and workers."""

    district: list[GridFeature]
    street: list[GridFeature]
    communities: list[GridFeature]
    grids: list[GridFeature]
    residents: list[ResidentRow]
    workers: list[SampleWorker]
    places: list[PlaceRow] = field(default_factory=list)  # inspected on a schedule
    police: list[GridFeature] = field(default_factory=list)  # 分局, 派出所, 警务区, 警格
    # Below the grids: buildings, their units, and a unit head per unit and a lead per building.
    buildings: list[GridFeature] = field(default_factory=list)
    units: list[UnitRow] = field(default_factory=list)
    contacts: list[ContactRow] = field(default_factory=list)

    def features(self) -> list[GridFeature]:
        """All levels of the management grids, top to bottom."""
        return [*self.district, *self.street, *self.communities, *self.grids]

    def police_grids(self) -> list[GridFeature]:
        """The police grids (警格), the lowest level of the police hierarchy."""
        return [f for f in self.police if f.level == "grid"]


@dataclass(frozen=True, slots=True)
class SampleFiles:
    """Where write_sample_files put each file."""

    district: Path
    streets: Path
    communities: Path
    grids: Path
    residents: Path
    workers: Path
    places: Path
    police: Path  # every level of the police hierarchy, each feature's level in its 层级 field
    buildings: Path
    units: Path
    contacts: Path


def build_sample_district(
    seed: int = DEFAULT_SEED, residents: int = DEFAULT_RESIDENTS, places: int = DEFAULT_PLACES
) -> SampleDistrict:
    """Generate the sample district; the same seed gives the same district every time (the
    places from a stream of their own: the rest is the same with or without them)."""
    if residents < 0:
        raise ValueError(f"residents must be >= 0, got {residents}")
    rng = np.random.default_rng(seed)
    street_m = Polygon(STREET_OUTLINE_M)
    district_m = Polygon(DISTRICT_OUTLINE_M)

    community_cells = _partition(street_m, COMMUNITIES, rng, relax=4)
    community_cells = _in_reading_order(community_cells)
    counts = _apportion(GRIDS, [c.area for c in community_cells])

    district = [_feature(DISTRICT_CODE, DISTRICT_NAME, "district", None, district_m)]
    street = [_feature(STREET_CODE, STREET_NAME, "street", DISTRICT_CODE, street_m)]
    communities: list[GridFeature] = []
    grids: list[GridFeature] = []
    grid_cells_m: list[Polygon | MultiPolygon] = []
    for c, (community_m, count) in enumerate(zip(community_cells, counts, strict=True), 1):
        community_code = f"{STREET_CODE}-{c:02d}"
        short_name = COMMUNITY_NAMES[c - 1]
        communities.append(
            _feature(community_code, f"{short_name}社区", "community", STREET_CODE, community_m)
        )
        cells = _in_reading_order(_partition(community_m, count, rng, relax=2))
        for g, cell in enumerate(cells, 1):
            grids.append(
                _feature(
                    f"{community_code}-{g:02d}",
                    f"{short_name}社区第{g}网格",
                    "grid",
                    community_code,
                    cell,
                )
            )
            grid_cells_m.append(cell)

    sites = _building_sites(grids, grid_cells_m, rng)
    resident_rows = _residents(grids, sites, residents, rng)
    workers = [
        SampleWorker(
            worker_id=f"W{i:03d}",
            name=f"{SURNAMES[rng.integers(len(SURNAMES))]}"
            f"{WORKER_GIVEN_NAMES[rng.integers(len(WORKER_GIVEN_NAMES))]}",
            grid_code=grid.code,
            phone=f"138{i:08d}",
        )
        for i, grid in enumerate(grids, 1)
    ]
    place_rows = _places(grids, grid_cells_m, places, np.random.default_rng([seed, 1]))
    police = _police_hierarchy(
        street_m, district_m, np.random.default_rng(seed + POLICE_SEED_OFFSET)
    )
    # From a stream of their own: the rest of the district is the same with or without them.
    buildings, units, contacts = _below_the_grids(
        grids, grid_cells_m, sites, resident_rows, np.random.default_rng([seed, 2])
    )
    return SampleDistrict(
        district,
        street,
        communities,
        grids,
        resident_rows,
        workers,
        places=place_rows,
        police=police,
        buildings=buildings,
        units=units,
        contacts=contacts,
    )


def _police_hierarchy(
    street_m: Polygon, district_m: Polygon, rng: np.random.Generator
) -> list[GridFeature]:
    """The police branch over the district, two stations sharing the street, their police
    districts and police grids: a hierarchy that cuts across the management grids."""
    (x0, y0), (x1, y1) = POLICE_STATION_BORDER_M
    far = 10_000.0
    west = Polygon([(x0, y0), (x1, y1), (x1 - far, y1), (x0 - far, y0)])
    features = [_feature(POLICE_CODE, POLICE_NAME, "district", None, district_m)]
    for (code, name, areas), part in zip(
        POLICE_STATIONS, (street_m.intersection(west), street_m.difference(west)), strict=True
    ):
        station = _polygonal(part)
        features.append(_feature(code, name, "street", POLICE_CODE, station))
        cells = _in_reading_order(_partition(station, areas, rng, relax=2))
        for a, area in enumerate(cells, 1):
            area_code = f"{code}-{a}"
            features.append(_feature(area_code, f"{name}第{a}警务区", "community", code, area))
            grid_cells = _partition(area, POLICE_GRIDS_PER_AREA, rng, relax=2)
            for g, cell in enumerate(_in_reading_order(grid_cells), 1):
                features.append(
                    _feature(
                        f"{area_code}-{g:02d}",
                        f"{name}第{a}警务区第{g}警格",
                        "grid",
                        area_code,
                        cell,
                    )
                )
    return features


def write_sample_files(directory: Path, district: SampleDistrict | None = None) -> SampleFiles:
    """Write the district as GeoJSON layers (buildings.geojson too) plus residents.csv,
    workers.csv, places.csv, units.csv and contacts.csv."""
    district = district if district is not None else build_sample_district()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = SampleFiles(
        district=directory / "district.geojson",
        streets=directory / "streets.geojson",
        communities=directory / "communities.geojson",
        grids=directory / "grids.geojson",
        residents=directory / "residents.csv",
        workers=directory / "workers.csv",
        places=directory / "places.csv",
        police=directory / "police.geojson",
        buildings=directory / "buildings.geojson",
        units=directory / "units.csv",
        contacts=directory / "contacts.csv",
    )
    files.district.write_text(_geojson(district.district), encoding="utf-8")
    files.streets.write_text(_geojson(district.street), encoding="utf-8")
    files.communities.write_text(_geojson(district.communities), encoding="utf-8")
    files.grids.write_text(_geojson(district.grids), encoding="utf-8")
    files.residents.write_text(residents_csv_text(district.residents), encoding="utf-8")
    files.workers.write_text(_workers_csv(district.workers), encoding="utf-8")
    files.places.write_text(places_csv_text(district.places), encoding="utf-8")
    # As a police office might keep it: one layer, the levels named as it names them.
    police = _geojson(district.police, level_field="层级", level_names=POLICE_LEVEL_NAMES)
    files.police.write_text(police, encoding="utf-8")
    files.buildings.write_text(_geojson(district.buildings), encoding="utf-8")
    files.units.write_text(_units_csv(district.units), encoding="utf-8")
    files.contacts.write_text(_contacts_csv(district.contacts), encoding="utf-8")
    return files


def to_lon_lat(xy: np.ndarray) -> np.ndarray:
    """Local-plane metres (n, 2) to WGS-84 lon/lat (n, 2)."""
    lon = ORIGIN_LON + xy[:, 0] / METRES_PER_DEG_LON
    lat = ORIGIN_LAT + xy[:, 1] / METRES_PER_DEG_LAT
    return np.column_stack([lon, lat])


def _feature(
    code: str, name: str, level: str, parent: str | None, shape_m: BaseGeometry
) -> GridFeature:
    geometry = shapely.transform(shape_m, to_lon_lat)
    if isinstance(geometry, Polygon):
        geometry = MultiPolygon([geometry])
    # Oriented as a grid file reads back (RFC 7946: outer rings counter-clockwise).
    return GridFeature(code, name, level, parent, shapely.orient_polygons(geometry))


def _partition(
    area: Polygon, count: int, rng: np.random.Generator, relax: int
) -> list[Polygon | MultiPolygon]:
    """Cut `area` into `count` Voronoi cells of well-spread seeds, relaxed toward equal size."""
    if count == 1:
        return [area]
    seeds = _spread_seeds(area, count, rng)
    frame = area.envelope.buffer(1000.0, join_style="mitre")
    cells: list[Polygon | MultiPolygon] = []
    for step in range(relax + 1):
        diagram = shapely.voronoi_polygons(
            shapely.multipoints(seeds), extend_to=frame, ordered=True
        )
        cells = [area.intersection(cell) for cell in diagram.geoms]
        if step < relax:  # Lloyd step: move each seed halfway to its cell's centroid
            centroids = shapely.get_coordinates(shapely.centroid(cells))
            seeds = (seeds + centroids) / 2.0
    return [_polygonal(cell) for cell in cells]


def _polygonal(cell: BaseGeometry) -> Polygon | MultiPolygon:
    """The polygonal part of an overlay result (slivers of lines or points dropped)."""
    parts = [p for p in shapely.get_parts(cell) if isinstance(p, Polygon) and p.area > 0]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _spread_seeds(area: Polygon, count: int, rng: np.random.Generator) -> np.ndarray:
    """Best-candidate sampling: each new seed is the candidate farthest from those placed."""
    seeds: list[np.ndarray] = []
    while len(seeds) < count:
        candidates = _points_inside(area, 12, rng)
        if not seeds:
            seeds.append(candidates[0])
            continue
        placed = np.array(seeds)
        gaps = np.linalg.norm(candidates[:, None, :] - placed[None, :, :], axis=2).min(axis=1)
        seeds.append(candidates[int(np.argmax(gaps))])
    return np.array(seeds)


def _points_inside(area: BaseGeometry, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uniform random points strictly inside `area` (rejection sampling)."""
    xmin, ymin, xmax, ymax = area.bounds
    found = np.empty((0, 2))
    shapely.prepare(area)
    while len(found) < count:
        xy = np.column_stack(
            [rng.uniform(xmin, xmax, count * 2), rng.uniform(ymin, ymax, count * 2)]
        )
        found = np.concatenate([found, xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]])
    return found[:count]


def _in_reading_order(cells: list[Polygon | MultiPolygon]) -> list[Polygon | MultiPolygon]:
    """Number cells as a map is read: north to south in 400 m bands, then west to east."""
    points = shapely.get_coordinates([c.point_on_surface() for c in cells])
    order = sorted(range(len(cells)), key=lambda i: (-np.floor(points[i, 1] / 400.0), points[i, 0]))
    return [cells[i] for i in order]


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), at least 1 each."""
    shares = np.array(weights) / sum(weights) * total
    counts = np.maximum(np.floor(shares).astype(int), 1)
    remainders = shares - np.floor(shares)
    for i in np.argsort(-remainders, kind="stable"):
        if counts.sum() >= total:
            break
        counts[i] += 1
    while counts.sum() > total:  # only when the minimum of 1 pushed it over
        counts[int(np.argmax(counts))] -= 1
    return [int(c) for c in counts]


@dataclass(frozen=True, slots=True)
class _Site:
    """A building's place: its grid (index), its point in local metres, its code and name."""

    grid: int
    xy: np.ndarray
    code: str
    name: str  # 富强路12号3栋: the address up to the building


def _building_sites(
    grids: list[GridFeature], cells_m: list[Polygon | MultiPolygon], rng: np.random.Generator
) -> list[_Site]:
    """Buildings clustered in compounds inside each grid."""
    areas = np.array([c.area for c in cells_m])
    per_grid = _apportion(BUILDINGS, list(areas))
    buildings: list[_Site] = []
    for g, (cell, n) in enumerate(zip(cells_m, per_grid, strict=True)):
        inner = cell.buffer(-BUILDING_MARGIN_M)
        if inner.is_empty:  # a very small grid: keep just enough room for the spread
            inner = cell.buffer(-(RESIDENT_SPREAD_M + 1.0))
        if inner.is_empty:
            raise RuntimeError(f"grid {grids[g].code} is too small for a building")
        compounds = _points_inside(inner, int(rng.integers(1, 4)), rng)
        shapely.prepare(inner)
        road = ROADS[int(rng.integers(len(ROADS)))]
        for b in range(n):
            centre = compounds[b % len(compounds)]
            while True:
                xy = centre + rng.normal(0.0, 60.0, 2)
                if shapely.contains_xy(inner, xy[0], xy[1]):
                    break
                centre = _points_inside(inner, 1, rng)[0]
            number = int(rng.integers(1, 300))
            code = f"{grids[g].code}-{b + 1:02d}"
            buildings.append(_Site(g, xy, code, f"{road}路{number}号{b + 1}栋"))
    return buildings


def _residents(
    grids: list[GridFeature], buildings: list[_Site], count: int, rng: np.random.Generator
) -> list[ResidentRow]:
    """Residents in flats of the buildings, naming their building and unit."""
    taken: set[tuple[int, int, int]] = set()
    rows: list[ResidentRow] = []
    for i in range(1, count + 1):
        b = int(rng.integers(len(buildings)))
        site = buildings[b]
        g, xy, address = site.grid, site.xy, f"{DISTRICT_NAME}{site.name}"
        while True:
            unit = int(rng.integers(1, 7))
            room = int(rng.integers(1, 8)) * 100 + int(rng.integers(1, 3))
            if (b, unit, room) not in taken:
                break
        taken.add((b, unit, room))
        offset = rng.normal(0.0, RESIDENT_SPREAD_M / 3, 2)
        offset *= min(1.0, RESIDENT_SPREAD_M / max(float(np.hypot(*offset)), 1e-9))
        lon, lat = np.round(to_lon_lat((xy + offset)[None, :])[0], 6)
        sensors = [f"S{i:05d}-door"]
        if rng.random() < 0.6:
            sensors.append(f"S{i:05d}-curtain")
        if rng.random() < 0.5:
            sensors.append(f"S{i:05d}-light")
        if i % 3 == 0:
            # A pendant with an SOS button and a fall detector, for one resident in three
            # (chosen without the generator, so the rest of the district stays the same).
            sensors.append(f"S{i:05d}-pendant")
        rows.append(
            ResidentRow(
                resident_id=f"R{i:05d}",
                name=_elder_name(rng),
                address=f"{address}{unit}单元{room}室",
                lat=float(lat),
                lon=float(lon),
                grid_code=grids[g].code,
                meter_id=f"M{i:05d}",
                sensor_ids=tuple(sensors),
                phone=f"139{i:08d}",
                living_alone=bool(rng.random() >= 0.03),
                building_code=site.code,
                unit_code=str(unit),
            )
        )
    return rows


def _below_the_grids(
    grids: list[GridFeature],
    cells_m: list[Polygon | MultiPolygon],
    sites: list[_Site],
    residents: list[ResidentRow],
    rng: np.random.Generator,
) -> tuple[list[GridFeature], list[UnitRow], list[ContactRow]]:
    """Each building's footprint (kept inside its grid), its units (those its residents live
    in, and always the first) with their doors along its south side, a unit head for every
    unit and a building lead for every building."""
    hx, hy = BUILDING_HALF_M
    shapes = [
        shapely.box(s.xy[0] - hx, s.xy[1] - hy, s.xy[0] + hx, s.xy[1] + hy).intersection(
            cells_m[s.grid]
        )
        for s in sites
    ]
    features = [
        _feature(s.code, s.name, BUILDING, grids[s.grid].code, _polygonal(shape))
        for s, shape in zip(sites, shapes, strict=True)
    ]
    numbers = {s.code: {1} for s in sites}
    for r in residents:
        if r.building_code and r.unit_code:
            numbers[r.building_code].add(int(r.unit_code))
    units: list[UnitRow] = []
    contacts: list[ContactRow] = []
    for s, shape in zip(sites, shapes, strict=True):
        for n in sorted(numbers[s.code]):
            door = s.xy + np.array([(n - (MOST_UNITS + 1) / 2) * UNIT_WIDTH_M, 1.0 - hy])
            if not shapely.contains_xy(shape, *door):  # cut off by the grid's border
                door = s.xy
            lon, lat = np.round(to_lon_lat(door[None, :])[0], 6)
            units.append(UnitRow(s.code, str(n), f"{n}单元", "", float(lat), float(lon)))
            head = len(units)
            phone = f"135{head:08d}"
            contacts.append(
                ContactRow(f"UH{head:04d}", _person(rng), "unit_head", s.code, str(n), phone, None)
            )
        lead = len(contacts) - len(units) + 1
        contacts.append(
            ContactRow(
                f"BL{lead:04d}", _person(rng), "building_lead", s.code, None, f"136{lead:08d}", None
            )
        )
    return features, units, contacts


def _person(rng: np.random.Generator) -> str:
    """A neighbour's name: a unit head or building lead, often a retired resident."""
    given = WORKER_GIVEN_NAMES + ELDER_GIVEN_NAMES
    return SURNAMES[int(rng.integers(len(SURNAMES)))] + given[int(rng.integers(len(given)))]


def _places(
    grids: list[GridFeature],
    cells_m: list[Polygon | MultiPolygon],
    count: int,
    rng: np.random.Generator,
) -> list[PlaceRow]:
    """Shops, restaurants, workshops and warehouses along the grids' roads, more in larger
    grids, each with the person responsible and how often it is inspected."""
    areas = np.array([c.area for c in cells_m])
    kinds = list(PLACE_KINDS)
    weights = np.array(list(PLACE_KINDS.values()))
    rows: list[PlaceRow] = []
    for i in range(1, count + 1):
        g = int(rng.choice(len(grids), p=areas / areas.sum()))
        inner = cells_m[g].buffer(-BUILDING_MARGIN_M)
        xy = _points_inside(inner if not inner.is_empty else cells_m[g], 1, rng)
        lon, lat = np.round(to_lon_lat(xy)[0], 6)
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        road = ROADS[int(rng.integers(len(ROADS)))]
        names = PLACE_NAMES[kind]
        rows.append(
            PlaceRow(
                place_id=f"P{i:04d}",
                name=f"{road}{names[int(rng.integers(len(names)))]}",
                kind=kind,
                address=f"{DISTRICT_NAME}{road}路{int(rng.integers(1, 300))}号",
                lat=float(lat),
                lon=float(lon),
                grid_code=grids[g].code,
                contact=f"{SURNAMES[int(rng.integers(len(SURNAMES)))]}"
                f"{WORKER_GIVEN_NAMES[int(rng.integers(len(WORKER_GIVEN_NAMES)))]}",
                phone=f"137{i:08d}",
                inspect_every_days=INSPECT_EVERY_DAYS[kind],
            )
        )
    return rows


def _elder_name(rng: np.random.Generator) -> str:
    if rng.random() < 0.06:
        return MONGOLIAN_NAMES[int(rng.integers(len(MONGOLIAN_NAMES)))]
    surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
    return surname + ELDER_GIVEN_NAMES[int(rng.integers(len(ELDER_GIVEN_NAMES)))]


def _geojson(
    features: list[GridFeature],
    *,
    level_field: str = "level",
    level_names: dict[str, str] | None = None,
) -> str:
    """A FeatureCollection (RFC 7946, WGS-84) with code, name, level and parent; the level in
    `level_field`, named by `level_names` when given."""
    names = level_names or {}
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "code": f.code,
                    "name": f.name,
                    level_field: names.get(f.level, f.level),
                    "parent": f.parent_code,
                },
                "geometry": mapping(f.geometry),
            }
            for f in features
        ],
    }
    return json.dumps(collection, ensure_ascii=False)


def _units_csv(units: list[UnitRow]) -> str:
    return _csv(
        ["building_code", "unit_code", "name", "address", "lat", "lon"],
        ([u.building_code, u.unit_code, u.name, u.address, u.lat, u.lon] for u in units),
    )


def _contacts_csv(contacts: list[ContactRow]) -> str:
    return _csv(
        ["contact_id", "name", "role", "building_code", "unit_code", "phone", "webhook_url"],
        (
            [c.contact_id, c.name, c.role, c.building_code, c.unit_code, c.phone, c.webhook_url]
            for c in contacts
        ),
    )


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def _workers_csv(workers: list[SampleWorker]) -> str:
    return _csv(
        ["worker_id", "name", "phone", "grid_codes"],
        ([w.worker_id, w.name, w.phone, w.grid_code] for w in workers),
    )
