"""GridIndex.assign against a brute-force check, borders and vertices included."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, box

from gridwatch.geo.index import NO_GRID, PARALLEL_THRESHOLD, GridIndex


def brute_force(
    ids: list[int], codes: list[str], geometries: list, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """Per point: the id of the smallest-code polygon that intersects it, -1 if none."""
    expected = []
    for x, y in zip(lon, lat, strict=True):
        if not (np.isfinite(x) and np.isfinite(y)):
            expected.append(NO_GRID)
            continue
        point = Point(x, y)
        hits = [(codes[i], ids[i]) for i, g in enumerate(geometries) if g.intersects(point)]
        expected.append(min(hits)[1] if hits else NO_GRID)
    return np.array(expected, dtype=np.int64)


@st.composite
def voronoi_tessellations(draw):
    """Voronoi cells of random seeds in a box, possibly with a few cells dropped (gaps)."""
    n = draw(st.integers(min_value=2, max_value=25))
    # seeds on a 1/100 lattice: arbitrary floats (denormals) make GEOS's Voronoi degenerate
    coordinate = st.integers(0, 1000).map(lambda k: k / 100.0)
    seeds = draw(st.lists(st.tuples(coordinate, coordinate), min_size=n, max_size=n, unique=True))
    frame = box(0.0, 0.0, 10.0, 10.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    cells = [c for c in shapely.intersection(cells, frame) if not c.is_empty and c.area > 0]
    dropped = draw(st.sets(st.integers(0, len(cells) - 1), max_size=len(cells) // 3))
    return [c for i, c in enumerate(cells) if i not in dropped]


@st.composite
def rectangle_partitions(draw):
    """A box cut into rectangles on integer lines (exact borders), maybe a multipolygon."""
    pieces = [(0, 0, 8, 8)]
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        i = draw(st.integers(0, len(pieces) - 1))
        x0, y0, x1, y1 = pieces[i]
        vertical = draw(st.booleans())
        lo, hi = (x0, x1) if vertical else (y0, y1)
        if hi - lo < 2:
            continue
        cut = draw(st.integers(lo + 1, hi - 1))
        pieces[i : i + 1] = (
            [(x0, y0, cut, y1), (cut, y0, x1, y1)]
            if vertical
            else [(x0, y0, x1, cut), (x0, cut, x1, y1)]
        )
    polygons = [box(*p) for p in pieces]
    if len(polygons) >= 3 and draw(st.booleans()):
        # a multipolygon grid: two pieces under one code
        a, b = draw(
            st.lists(st.integers(0, len(polygons) - 1), min_size=2, max_size=2, unique=True)
        )
        merged = MultiPolygon([polygons[a], polygons[b]])
        polygons = [p for i, p in enumerate(polygons) if i not in (a, b)] + [merged]
    if draw(st.booleans()):
        polygons.append(box(2.5, 2.5, 5.5, 5.5))  # overlaps others: the smallest code must win
    return polygons


@st.composite
def grids_and_points(draw):
    """Polygons with shuffled codes and ids, and points: random, on vertices, on edges, NaN."""
    polygons = draw(st.one_of(voronoi_tessellations(), rectangle_partitions()))
    n = len(polygons)
    codes = [f"G-{c:03d}" for c in draw(st.permutations(range(n)))]
    ids = [100 + i for i in draw(st.permutations(range(n)))]

    vertices = shapely.get_coordinates(shapely.boundary(polygons))
    coordinate = st.floats(min_value=-1.0, max_value=11.0, allow_nan=False)
    free = draw(st.lists(st.tuples(coordinate, coordinate), max_size=40))
    picks = st.integers(0, len(vertices) - 2)
    on_vertex = [tuple(vertices[i]) for i in draw(st.lists(picks, max_size=20))]
    on_edge = [
        tuple((vertices[i] + vertices[i + 1]) / 2.0) for i in draw(st.lists(picks, max_size=20))
    ]
    half_integers = st.integers(0, 16).map(lambda k: k / 2.0)
    lattice = draw(st.lists(st.tuples(half_integers, half_integers), max_size=20))
    nan_points = [(np.nan, 1.0), (1.0, np.nan)] if draw(st.booleans()) else []
    points = free + on_vertex + on_edge + lattice + nan_points
    draw(st.randoms()).shuffle(points)
    lon = np.array([p[0] for p in points], dtype=np.float64)
    lat = np.array([p[1] for p in points], dtype=np.float64)
    return ids, codes, polygons, lon, lat


@settings(max_examples=150, deadline=None)
@given(grids_and_points())
def test_assign_equals_brute_force(case):
    ids, codes, polygons, lon, lat = case
    index = GridIndex(ids, codes, polygons)
    assert np.array_equal(index.assign(lon, lat), brute_force(ids, codes, polygons, lon, lat))


def test_shared_border_and_vertex_go_to_the_smallest_code():
    left, right = box(0, 0, 1, 1), box(1, 0, 2, 1)
    above = box(0, 1, 2, 2)
    index = GridIndex([1, 2, 3], ["B", "A", "C"], [left, right, above])
    lon = np.array([0.5, 1.0, 1.0, 0.5, 5.0])
    lat = np.array([0.5, 0.5, 1.0, 1.0, 5.0])
    # inside left; left|right border; the vertex of all three; left|above border; outside
    assert index.assign(lon, lat).tolist() == [1, 2, 2, 1, NO_GRID]


def test_nan_and_empty_input():
    index = GridIndex([7], ["G"], [box(0, 0, 1, 1)])
    assert index.assign([np.nan, 0.5], [0.5, np.inf]).tolist() == [NO_GRID, NO_GRID]
    assert index.assign(np.array([]), np.array([])).shape == (0,)
    assert index.assign(np.array([]), np.array([])).dtype == np.int64


def test_empty_index_assigns_nothing():
    index = GridIndex.empty()
    assert len(index) == 0
    assert index.assign([0.5, 1.0], [0.5, 1.0]).tolist() == [NO_GRID, NO_GRID]


def test_len_and_code_of():
    index = GridIndex([5, 9], ["QS-01-01-02", "QS-01-01-01"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])
    assert len(index) == 2
    assert index.code_of(9) == "QS-01-01-01"
    with pytest.raises(KeyError):
        index.code_of(6)


def test_duplicate_codes_or_ids_are_refused():
    with pytest.raises(ValueError, match="codes"):
        GridIndex([1, 2], ["A", "A"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])
    with pytest.raises(ValueError, match="ids"):
        GridIndex([1, 1], ["A", "B"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])


def test_threaded_path_equals_single_thread_on_a_large_input():
    rng = np.random.default_rng(3)
    side = 20
    polygons = [box(x, y, x + 1, y + 1) for x in range(side) for y in range(side)]
    codes = [f"G{i:04d}" for i in rng.permutation(len(polygons))]
    index = GridIndex(list(range(len(polygons))), codes, polygons)
    n = PARALLEL_THRESHOLD * 3
    # half the points on the integer lattice lines, where two or four grids meet
    lon = np.where(rng.random(n) < 0.5, rng.integers(0, side, n), rng.uniform(-1, side + 1, n))
    lat = np.where(rng.random(n) < 0.5, rng.integers(0, side, n), rng.uniform(-1, side + 1, n))
    lon[::1000] = np.nan
    threaded = index.assign(lon, lat, max_workers=4)
    assert np.array_equal(threaded, index.assign(lon, lat, max_workers=1))
    sample = rng.choice(n, 300, replace=False)
    expected = brute_force(list(range(len(polygons))), codes, polygons, lon[sample], lat[sample])
    assert np.array_equal(threaded[sample], expected)
