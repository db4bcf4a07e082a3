"""The sample district: deterministic, nested, non-overlapping, residents inside their grids."""

from __future__ import annotations

import csv
import re
import time

import numpy as np
import pytest
import shapely

from gridwatch.geo.grids import assign_parents, read_grid_file
from gridwatch.geo.index import GridIndex
from gridwatch.imports.contacts import read_contacts_csv
from gridwatch.imports.residents import read_residents_csv
from gridwatch.imports.units import read_units_csv
from gridwatch.simulators.district import build_sample_district, write_sample_files


@pytest.fixture(scope="module")
def district():
    return build_sample_district()


def test_two_builds_are_equal_and_another_seed_differs(district):
    again = build_sample_district()
    assert again == district
    assert [g.geometry.wkb for g in again.grids] == [g.geometry.wkb for g in district.grids]
    other = build_sample_district(seed=7)
    assert [g.geometry.wkb for g in other.grids] != [g.geometry.wkb for g in district.grids]


def test_counts(district):
    assert len(district.district) == 1
    assert len(district.street) == 1
    assert len(district.communities) == 8
    assert len(district.grids) == 110
    assert len(district.residents) == 2000
    assert len(district.workers) == 110
    assert len(build_sample_district(residents=150).residents) == 150


def test_placed_in_qingshan_district_baotou(district):
    west, south, east, north = district.street[0].geometry.bounds
    assert 109.875 <= west < east <= 109.935
    assert 40.625 <= south < north <= 40.675
    # about 4 km by 3 km: 1° of lon is ~84.6 km at 40.65°N, 1° of lat ~111 km
    assert 3.5 < (east - west) * 84.6 < 4.8
    assert 2.5 < (north - south) * 111.0 < 3.5
    assert not shapely.equals(district.street[0].geometry, shapely.box(west, south, east, north))
    assert district.district[0].code == "150204" and district.district[0].name == "青山区"


def test_codes_names_and_parents(district):
    assert district.street[0].parent_code == "150204"
    for community in district.communities:
        assert re.fullmatch(r"QS-01-0[1-8]", community.code)
        assert community.parent_code == "QS-01" and community.name.endswith("社区")
    communities = {c.code: c for c in district.communities}
    for grid in district.grids:
        assert re.fullmatch(r"QS-01-0[1-8]-\d\d", grid.code)
        assert grid.parent_code == grid.code[:8]
        number = int(grid.code[-2:])
        assert grid.name == f"{communities[grid.parent_code].name}第{number}网格"
    assert len({g.code for g in district.grids}) == 110


def test_grids_nest_in_their_community(district):
    communities = {c.code: c.geometry for c in district.communities}
    for grid in district.grids:
        outside = grid.geometry.difference(communities[grid.parent_code]).area
        assert outside < 1e-9 * grid.geometry.area, grid.code
    for community in district.communities:
        outside = community.geometry.difference(district.street[0].geometry).area
        assert outside < 1e-9 * community.geometry.area
    assert district.street[0].geometry.within(district.district[0].geometry)


def test_grids_do_not_overlap_and_cover_the_street(district):
    geometries = [g.geometry for g in district.grids]
    street = district.street[0].geometry
    left, right = shapely.STRtree(geometries).query(geometries, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(
        shapely.intersection(np.take(geometries, left[pairs]), np.take(geometries, right[pairs]))
    )
    assert overlap.sum() < 1e-9 * street.area
    assert pairs.sum() > 110  # neighbours touch: a tessellation, not scattered islands
    uncovered = street.symmetric_difference(shapely.union_all(geometries)).area
    assert uncovered < 1e-9 * street.area


def test_grid_shapes_are_irregular_and_of_similar_size(district):
    areas = np.array([g.geometry.area for g in district.grids])
    assert areas.max() / areas.min() < 6
    vertex_counts = {len(shapely.get_coordinates(g.geometry)) for g in district.grids}
    assert len(vertex_counts) > 3  # not a checkerboard of identical cells


def test_every_resident_is_inside_their_grid(district):
    grids = district.grids
    index = GridIndex(list(range(len(grids))), [g.code for g in grids], [g.geometry for g in grids])
    lon = np.array([r.lon for r in district.residents])
    lat = np.array([r.lat for r in district.residents])
    assigned = [grids[i].code for i in index.assign(lon, lat)]
    assert assigned == [r.grid_code for r in district.residents]
    by_code = {g.code: g.geometry for g in grids}
    for r in district.residents:
        assert by_code[r.grid_code].contains(shapely.Point(r.lon, r.lat)), r.resident_id


def test_residents_look_like_a_register(district):
    residents = district.residents
    assert residents[0].resident_id == "R00001" and residents[0].meter_id == "M00001"
    assert len({r.resident_id for r in residents}) == len(residents)
    assert len({r.address for r in residents}) == len(residents)
    sensors = [s for r in residents for s in r.sensor_ids]
    assert len(set(sensors)) == len(sensors)
    assert all(f"S{r.resident_id[1:]}-door" in r.sensor_ids for r in residents)
    curtains = sum(any(s.endswith("-curtain") for s in r.sensor_ids) for r in residents)
    assert 0.4 * len(residents) < curtains < 0.8 * len(residents)
    alone = sum(r.living_alone for r in residents)
    assert len(residents) - 100 < alone < len(residents)
    for r in residents[:50]:
        assert re.fullmatch(r"青山区.+路\d+号\d+栋\d单元\d0\d室", r.address), r.address
        assert re.fullmatch(r"139\d{8}", r.phone)
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,4}", r.name)
    assert len({r.grid_code for r in residents}) > 100  # spread over nearly every grid


def test_written_files_read_back_the_same(district, tmp_path):
    start = time.perf_counter()
    files = write_sample_files(tmp_path, build_sample_district())
    assert time.perf_counter() - start < 2.0

    grids = read_grid_file(files.grids, parent_field="parent")
    assert grids == district.grids
    communities = read_grid_file(files.communities, level="community", parent_field="parent")
    assert communities == district.communities
    (street,) = read_grid_file(files.streets, level="street", parent_field="parent")
    assert street == district.street[0]
    (top,) = read_grid_file(files.district, level_field="level", parent_field="parent")
    assert top == district.district[0]
    assert read_residents_csv(files.residents) == district.residents

    header = files.residents.read_text(encoding="utf-8").splitlines()[0]
    assert (
        header
        == "resident_id,name,address,lat,lon,grid_code,meter_id,sensor_ids,phone,living_alone,"
        "building_code,unit_code"
    )
    buildings = read_grid_file(files.buildings, level="building", parent_field="parent")
    assert buildings == district.buildings
    assert read_units_csv(files.units) == district.units
    assert read_contacts_csv(files.contacts) == district.contacts
    with files.workers.open(encoding="utf-8", newline="") as f:
        workers = list(csv.DictReader(f))
    assert [w["grid_codes"] for w in workers] == [g.code for g in district.grids]
    assert workers[0]["worker_id"] == "W001"


def test_parents_found_by_containment_match_the_codes(district, tmp_path):
    files = write_sample_files(tmp_path, district)
    grids = read_grid_file(files.grids)  # parent field not read: found spatially
    communities = read_grid_file(files.communities, level="community")
    parents = assign_parents(grids, [*communities, *district.street])
    assert parents == {g.code: g.code[:8] for g in grids}


def test_homes_lie_in_their_buildings_and_every_unit_and_building_has_someone_to_call(district):
    buildings = {b.code: b for b in district.buildings}
    grids = {g.code: g.geometry for g in district.grids}
    assert len(buildings) == 720
    for b in buildings.values():
        assert grids[b.parent_code].buffer(1e-9).contains(b.geometry), b.code
    units = {(u.building_code, u.unit_code): u for u in district.units}
    for r in district.residents:
        home = buildings[r.building_code]
        assert home.parent_code == r.grid_code
        assert home.geometry.contains(shapely.Point(r.lon, r.lat)), r.resident_id
        assert (r.building_code, r.unit_code) in units
        assert f"{home.name}{r.unit_code}单元" in r.address
    for u in units.values():
        assert buildings[u.building_code].geometry.contains(shapely.Point(u.lon, u.lat))
    heads = {(c.building_code, c.unit_code) for c in district.contacts if c.role == "unit_head"}
    leads = [c.building_code for c in district.contacts if c.role == "building_lead"]
    assert heads == set(units) and sorted(leads) == sorted(buildings)
    assert len({c.phone for c in district.contacts}) == len(district.contacts)
    # Drawn from a stream of their own: the district above them is what it was before them.
    assert district.residents[0].name == "许兰英" and district.workers[0].name == "邵建华"
