"""Grid import from GeoJSON, Shapefile and GeoPackage files written here, and parent lookup."""

from __future__ import annotations

import math
import zipfile

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from gridwatch.errors import InputFileError
from gridwatch.geo.crs import to_wgs84, wgs84_to_bd09, wgs84_to_gcj02
from gridwatch.geo.grids import GridFeature, assign_parents, read_grid_file
from tests.support.import_files import BAOTOU, baotou_rows, write_layer


@pytest.mark.parametrize("filename", ["grids.geojson", "grids.shp", "grids.gpkg"])
def test_reads_each_format(tmp_path, filename):
    path = write_layer(tmp_path / filename, baotou_rows())
    features = read_grid_file(path)
    assert [f.code for f in features] == [c for c, _, _ in BAOTOU]
    assert [f.name for f in features] == [n for _, n, _ in BAOTOU]
    assert all(f.level == "grid" and f.parent_code is None for f in features)
    for feature, (_, _, polygon) in zip(features, BAOTOU, strict=True):
        assert isinstance(feature.geometry, MultiPolygon)
        assert feature.geometry.symmetric_difference(polygon).area < 1e-12


def test_reads_a_zipped_shapefile(tmp_path):
    write_layer(tmp_path / "grids.shp", baotou_rows())
    archive = tmp_path / "grids.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in tmp_path.glob("grids.*"):
            if part != archive:
                zf.write(part, part.name)
    assert [f.code for f in read_grid_file(archive)] == [c for c, _, _ in BAOTOU]


def test_web_mercator_file_comes_back_to_lon_lat(tmp_path):
    lon, lat = 109.9, 40.65
    radius = 6378137.0  # EPSG:3857 spherical radius: x = R·λ, y = R·ln tan(π/4 + φ/2)
    x = radius * math.radians(lon)
    y = radius * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    square = box(x, y, x + 1000, y + 1000)
    rows = [{"code": "A", "name": "a", "geometry": square}]
    (feature,) = read_grid_file(write_layer(tmp_path / "mercator.gpkg", rows, crs="EPSG:3857"))
    west, south, east, _ = feature.geometry.bounds
    assert west == pytest.approx(lon, abs=1e-9)
    assert south == pytest.approx(lat, abs=1e-9)
    assert east == pytest.approx(lon + math.degrees(1000 / radius), abs=1e-9)


def test_cgcs2000_gauss_kruger_file_comes_back_to_lon_lat(tmp_path):
    # EPSG:4547, CGCS2000 / 3-degree Gauss-Kruger CM 114E: the central meridian has
    # easting 500000, and the northing at 30°N is the GRS 80 meridian arc, 3 320 113.398 m.
    corner = (500_000.0, 3_320_113.398)
    square = box(corner[0], corner[1], corner[0] + 500, corner[1] + 500)
    rows = [{"code": "W", "name": "武汉", "geometry": square}]
    (feature,) = read_grid_file(write_layer(tmp_path / "gk.shp", rows, crs="EPSG:4547"))
    distances = [math.dist(xy, (114.0, 30.0)) for xy in shapely.get_coordinates(feature.geometry)]
    assert min(distances) < 1e-7
    assert feature.geometry.bounds == pytest.approx((114.0, 30.0, 114.0052, 30.0045), abs=1e-4)


def test_file_without_crs_in_lon_lat_is_taken_as_wgs84(tmp_path):
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = write_layer(tmp_path / "nocrs.shp", baotou_rows(), crs=None)
    features = read_grid_file(path)
    assert features[0].geometry.bounds == pytest.approx(BAOTOU[0][2].bounds)


def test_file_without_crs_in_metres_is_refused(tmp_path):
    rows = [
        {"code": "A", "name": "a", "geometry": box(37_500_000, 4_500_000, 37_501_000, 4_501_000)}
    ]
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = write_layer(tmp_path / "projected.shp", rows, crs=None)
    with pytest.raises(InputFileError, match=r"projected\.shp: .*no coordinate reference system"):
        read_grid_file(path)


def test_self_intersecting_polygon_is_repaired_into_its_two_triangles(tmp_path):
    bowtie = Polygon([(109.88, 40.64), (109.89, 40.65), (109.89, 40.64), (109.88, 40.65)])
    assert not bowtie.is_valid
    path = write_layer(
        tmp_path / "bowtie.geojson", [{"code": "B", "name": "b", "geometry": bowtie}]
    )
    (feature,) = read_grid_file(path)
    assert feature.geometry.is_valid
    assert len(feature.geometry.geoms) == 2
    assert feature.geometry.area == pytest.approx(0.01 * 0.01 / 2)


def test_garbage_bytes_are_refused_with_the_file_name(tmp_path):
    path = tmp_path / "grids.geojson"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputFileError, match=r"^grids\.geojson: not a vector file"):
        read_grid_file(path)


def test_missing_file_is_refused_with_the_file_name(tmp_path):
    with pytest.raises(InputFileError, match=r"^absent\.gpkg: no such file"):
        read_grid_file(tmp_path / "absent.gpkg")


def test_a_table_without_geometry_is_refused(tmp_path):
    path = tmp_path / "grids.csv"
    path.write_text("code,name\nA,a\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"grids\.csv: the file has no geometry"):
        read_grid_file(path)


def test_every_bad_feature_is_named_in_one_error(tmp_path):
    rows = [
        *baotou_rows(),
        {"code": "G-017", "name": "x", "geometry": LineString([(109.9, 40.6), (109.91, 40.61)])},
        {"code": "G-018", "name": "y", "geometry": Point(109.9, 40.6)},
        {"code": "G-019", "name": "z", "geometry": None},
        {"code": "", "name": "no code", "geometry": box(109.9, 40.6, 109.91, 40.61)},
    ]
    path = write_layer(tmp_path / "grids.geojson", rows)
    with pytest.raises(InputFileError) as caught:
        read_grid_file(path)
    lines = str(caught.value).splitlines()
    assert lines == [
        "grids.geojson: feature 4 (code 'G-017'): geometry is a LineString, expected a polygon",
        "grids.geojson: feature 5 (code 'G-018'): geometry is a Point, expected a polygon",
        "grids.geojson: feature 6 (code 'G-019'): has no geometry, or one that cannot be read",
        "grids.geojson: feature 7: 'code' is empty",
    ]


def test_long_lists_of_problems_are_cut_with_a_count(tmp_path):
    rows = [{"code": f"L{i}", "name": "", "geometry": Point(109.9, 40.6)} for i in range(25)]
    path = write_layer(tmp_path / "points.geojson", rows)
    with pytest.raises(InputFileError) as caught:
        read_grid_file(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 21
    assert lines[-1] == "points.geojson: … and 5 more bad features"


def test_missing_code_field_names_the_field_and_those_present(tmp_path):
    rows = [{"bianma": "A", "name": "a", "geometry": box(0, 0, 1, 1)}]
    path = write_layer(tmp_path / "grids.gpkg", rows)
    with pytest.raises(InputFileError) as caught:
        read_grid_file(path)
    message = str(caught.value)
    assert message.startswith("grids.gpkg: no field 'code'")
    assert "'bianma', 'name'" in message


def test_field_names_match_regardless_of_case(tmp_path):
    rows = [{"CODE": "A", "NAME": "甲", "geometry": box(0, 0, 1, 1)}]
    (feature,) = read_grid_file(write_layer(tmp_path / "upper.shp", rows))
    assert (feature.code, feature.name) == ("A", "甲")


def test_duplicate_codes_are_listed(tmp_path):
    again = {"code": "QS-01-01-02", "name": "again", "geometry": box(0, 0, 1, 1)}
    path = write_layer(tmp_path / "grids.geojson", [*baotou_rows(), again])
    expected = r"code 'QS-01-01-02' is used by more than one feature \(2, 4\)"
    with pytest.raises(InputFileError, match=expected):
        read_grid_file(path)


def test_numeric_codes_become_text_and_blank_names_fall_back_to_the_code(tmp_path):
    rows = [{"code": 150204, "name": None, "geometry": box(109.8, 40.6, 110.0, 40.7)}]
    path = write_layer(tmp_path / "district.geojson", rows)
    (feature,) = read_grid_file(path, level="district")
    assert (feature.code, feature.name, feature.level) == ("150204", "150204", "district")


def test_level_and_parent_fields(tmp_path):
    rows = [
        {"code": "QS-01", "name": "街", "lvl": "街道", "up": None, "geometry": box(0, 0, 2, 2)},
        {
            "code": "QS-01-01",
            "name": "社",
            "lvl": "community",
            "up": "QS-01",
            "geometry": box(0, 0, 1, 1),
        },
    ]
    path = write_layer(tmp_path / "mixed.geojson", rows)
    street, community = read_grid_file(path, level=None, level_field="lvl", parent_field="up")
    assert (street.level, street.parent_code) == ("street", None)
    assert (community.level, community.parent_code) == ("community", "QS-01")


def test_unknown_level_is_refused(tmp_path):
    rows = [{"code": "X", "name": "x", "lvl": "province", "geometry": box(0, 0, 1, 1)}]
    path = write_layer(tmp_path / "levels.geojson", rows)
    with pytest.raises(InputFileError, match=r"feature 1 \(code 'X'\): level 'province'"):
        read_grid_file(path, level_field="lvl")


def test_several_layers_need_a_choice(tmp_path):
    path = tmp_path / "two.gpkg"
    write_layer(path, baotou_rows(), layer="grids")
    write_layer(path, baotou_rows()[:1], layer="old_grids")
    with pytest.raises(InputFileError, match=r"several layers \(grids, old_grids\)"):
        read_grid_file(path)
    assert len(read_grid_file(path, layer="old_grids")) == 1


def feature(code: str, level: str, geometry, parent: str | None = None) -> GridFeature:
    if not isinstance(geometry, MultiPolygon):
        geometry = MultiPolygon([geometry])
    return GridFeature(code, code, level, parent, geometry)


def test_parents_assigned_by_containment():
    street = feature("S", "street", box(0, 0, 4, 2))
    west = feature("C-W", "community", box(0, 0, 2, 2))
    east = feature("C-E", "community", box(2, 0, 4, 2))
    grids = [
        feature("G1", "grid", box(0, 0, 1, 1)),
        feature("G2", "grid", box(3, 1, 4, 2)),
        # straddles the border: 0.75 of its area is in the east community
        feature("G3", "grid", box(1.5, 1, 3.5, 1.5)),
        feature("G4", "grid", box(10, 10, 11, 11)),  # outside everything
        feature("G5", "grid", box(0, 1, 1, 2), parent="C-E"),  # given parent is kept
    ]
    parents = assign_parents(grids, [street, west, east])
    assert parents == {"G1": "C-W", "G2": "C-E", "G3": "C-E", "G4": None, "G5": "C-E"}
    assert assign_parents([west, east], [street, west, east]) == {"C-W": "S", "C-E": "S"}


def test_parent_level_skips_levels_that_are_absent():
    district = feature("150204", "district", box(-1, -1, 5, 5))
    grid = feature("G1", "grid", box(0, 0, 1, 1))
    assert assign_parents([grid], [district]) == {"G1": "150204"}
    assert assign_parents([district], [district, grid]) == {"150204": None}


def test_equal_overlap_goes_to_the_smallest_code():
    a = feature("B", "community", box(0, 0, 1, 1))
    b = feature("A", "community", box(1, 0, 2, 1))
    # centred on the border: point_on_surface lies on it and both overlaps are equal
    grid = feature("G", "grid", box(0.5, 0.25, 1.5, 0.75))
    assert shapely.intersects(grid.geometry.point_on_surface(), a.geometry)
    assert assign_parents([grid], [a, b]) == {"G": "A"}


def _shifted(polygon: Polygon, convert) -> Polygon:
    """The polygon with every vertex moved by `convert(lon_array, lat_array)`."""
    return shapely.transform(polygon, lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1])))


# Points 15 m inside either side of the border between the first two grids (x = 109.890).
BORDER_POINTS = {"QS-01-01-01": Point(109.88982, 40.645), "QS-01-01-02": Point(109.89018, 40.645)}


def _grid_of(features, point: Point) -> list[str]:
    return [f.code for f in features if f.geometry.contains(point)]


@pytest.mark.parametrize(
    ("source_crs", "forward"),
    [("gcj02", wgs84_to_gcj02), ("GCJ-02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)],
)
def test_grids_drawn_on_amap_or_baidu_come_back_exactly_with_source_crs(
    tmp_path, source_crs, forward
):
    # What a district's file drawn on an AMap or Baidu basemap holds: the offset coordinates,
    # labelled WGS-84 by the tool that exported them.
    rows = [{"code": c, "name": n, "geometry": _shifted(g, forward)} for c, n, g in BAOTOU]
    path = write_layer(tmp_path / "amap.geojson", rows)

    offset = read_grid_file(path)  # read as it says: hundreds of metres off
    assert any(_grid_of(offset, point) != [code] for code, point in BORDER_POINTS.items())

    features = read_grid_file(path, source_crs=source_crs)
    for feature, (_, _, polygon) in zip(features, BAOTOU, strict=True):
        assert feature.geometry.symmetric_difference(polygon).area < 1e-14
    for code, point in BORDER_POINTS.items():
        assert _grid_of(features, point) == [code]


def test_source_crs_supplies_a_projection_the_file_lacks(tmp_path):
    projected = gpd.GeoDataFrame(baotou_rows(), geometry="geometry", crs="EPSG:4326")
    projected = projected.to_crs("EPSG:4547")  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
    projected = projected.set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        projected.to_file(tmp_path / "cgcs.shp", engine="pyogrio")
    with pytest.raises(InputFileError, match="--source-crs EPSG:NNNN"):
        read_grid_file(tmp_path / "cgcs.shp")
    features = read_grid_file(tmp_path / "cgcs.shp", source_crs="EPSG:4547")
    assert features[0].geometry.bounds == pytest.approx(BAOTOU[0][2].bounds, abs=1e-9)


def test_a_file_without_crs_outside_china_is_refused_with_a_hint(tmp_path):
    rows = [{"code": "A", "name": "a", "geometry": box(2.30, 48.85, 2.31, 48.86)}]  # Paris
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = write_layer(tmp_path / "paris.shp", rows, crs=None)
    with pytest.raises(InputFileError, match=r"paris\.shp: .*outside China; give --source-crs"):
        read_grid_file(path)
    assert read_grid_file(path, source_crs="wgs84")[0].geometry.bounds == pytest.approx(
        (2.30, 48.85, 2.31, 48.86)
    )


def test_an_unknown_source_crs_is_named(tmp_path):
    path = write_layer(tmp_path / "grids.geojson", baotou_rows())
    with pytest.raises(InputFileError, match=r"grids\.geojson: --source-crs 'mars-2' is not"):
        read_grid_file(path, source_crs="mars-2")


def test_the_level_field_is_read_when_no_level_is_given(tmp_path):
    rows = [
        {"code": "QS", "name": "青山区", "level": "区", "geometry": box(109.8, 40.6, 110.0, 40.7)},
        *({**row, "level": "网格"} for row in baotou_rows()),
    ]
    path = write_layer(tmp_path / "all.geojson", rows)
    features = read_grid_file(path, level=None)
    assert [f.level for f in features] == ["district", "grid", "grid", "grid"]
    assert {
        f.level
        for f in read_grid_file(write_layer(tmp_path / "g.geojson", baotou_rows()), level=None)
    } == {"grid"}


# The boundary of Qingshan District, Baotou (青山区, 150204) as DataV.GeoAtlas publishes it
# from AMap's data, in GCJ-02: every fourth vertex or so of the published ring (48 of 200),
# which is how district grid files drawn on AMap come.
QINGSHAN_GCJ02 = [
    (109.843036, 40.61765), (109.838955, 40.640019), (109.848866, 40.648732),
    (109.8508, 40.673885), (109.855725, 40.684626), (109.866891, 40.685996),
    (109.859962, 40.694214), (109.863811, 40.700275), (109.851613, 40.705946),
    (109.839264, 40.732417), (109.858304, 40.730371), (109.883443, 40.740831),
    (109.936669, 40.733209), (110.002457, 40.744259), (110.037271, 40.730785),
    (110.091514, 40.733718), (110.090282, 40.711003), (110.072298, 40.697166),
    (110.040195, 40.653559), (110.022679, 40.635723), (110.013099, 40.65249),
    (109.998605, 40.653961), (109.990382, 40.645855), (109.974326, 40.649338),
    (109.958378, 40.640867), (109.94612, 40.618472), (109.913289, 40.636034),
    (109.883703, 40.643576), (109.898718, 40.612248), (109.91172, 40.605474),
    (109.921908, 40.597743), (109.927159, 40.591927), (109.969832, 40.584693),
    (109.973625, 40.568873), (109.987377, 40.557053), (109.98694, 40.532125),
    (109.9306, 40.53097), (109.873925, 40.514528), (109.844445, 40.505408),
    (109.8349, 40.525213), (109.852741, 40.538654), (109.853347, 40.554268),
    (109.877447, 40.553831), (109.881127, 40.568878), (109.885995, 40.577566),
    (109.880911, 40.59051), (109.869062, 40.597007), (109.843816, 40.604928),
]  # fmt: skip


def _near_the_border(ring: list[tuple[float, float]], metres: float) -> list[tuple[Point, bool]]:
    """Points `metres` inside and outside the ring, across the middle of each edge, in the
    ring's own coordinates, each with whether it is inside."""
    polygon = Polygon(ring)
    points = []
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        # The edge's normal in metres, turned back into degrees at this latitude.
        dx, dy = (x1 - x0) * math.cos(math.radians(my)), y1 - y0
        length = math.hypot(dx, dy)
        nx, ny = -dy / length, dx / length
        step_x = nx * metres / (111_320 * math.cos(math.radians(my)))
        step_y = ny * metres / 110_574
        for sign in (1, -1):
            point = Point(mx + sign * step_x, my + sign * step_y)
            points.append((point, polygon.contains(point)))
    return points


def test_a_published_gcj02_district_boundary_comes_in_where_the_district_is(tmp_path):
    path = write_layer(
        tmp_path / "150204.geojson",
        [{"code": "150204", "name": "青山区", "geometry": Polygon(QINGSHAN_GCJ02)}],
    )
    (district,) = read_grid_file(path, level="district", source_crs="gcj02")
    (as_labelled,) = read_grid_file(path, level="district")
    # Exactly the inverse: each imported vertex goes back onto the published one.
    ring = shapely.get_coordinates(district.geometry)
    back = np.column_stack(wgs84_to_gcj02(ring[:, 0], ring[:, 1]))
    published = {(round(x, 6), round(y, 6)) for x, y in QINGSHAN_GCJ02}
    assert {(round(x, 6), round(y, 6)) for x, y in back} == published

    # Positions 30 m either side of the border, as a phone reports them (WGS-84): with the
    # file's coordinates taken as GCJ-02 every one lands on its side; read as the file
    # labels them, the district is some 500 m off and many land on the wrong side.
    wrong_with, wrong_without, points = 0, 0, _near_the_border(QINGSHAN_GCJ02, 30.0)
    for point, inside in points:
        phone = Point(*to_wgs84(point.x, point.y, "gcj02"))
        wrong_with += district.geometry.contains(phone) != inside
        wrong_without += as_labelled.geometry.contains(phone) != inside
    assert len(points) == 96
    assert wrong_with == 0
    assert wrong_without > 10
