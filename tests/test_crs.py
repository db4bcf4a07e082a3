"""WGS-84 ⇄ GCJ-02 ⇄ BD-09 against published test points, and round-trip properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.geo.crs import (
    bd09_to_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalize_crs,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# (wgs_lon, wgs_lat, gcj_lon, gcj_lat): the test table of googollee/eviltransform
# (python/test.py and go/transform_test.go: Shanghai, Shenzhen, Beijing).
EVILTRANSFORM_POINTS = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
]

# wandergis/coordtransform test/app.js: wgs84togcj02(116.404, 39.915) and its one-step
# gcj02towgs84(116.404, 39.915), which is only an approximation of the inverse.
COORDTRANSFORM_FORWARD = ((116.404, 39.915), (116.41024449916938, 39.91640428150164))
COORDTRANSFORM_ONE_STEP_INVERSE = (116.39775550083061, 39.91359571849836)


def metres_between(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    """Equirectangular distance, plenty for centimetre-level differences."""
    dx = math.radians(lon_a - lon_b) * math.cos(math.radians(lat_a)) * 6_371_000
    dy = math.radians(lat_a - lat_b) * 6_371_000
    return math.hypot(dx, dy)


@pytest.mark.parametrize(("wgs_lon", "wgs_lat", "gcj_lon", "gcj_lat"), EVILTRANSFORM_POINTS)
def test_wgs84_to_gcj02_matches_eviltransform(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize(("wgs_lon", "wgs_lat", "gcj_lon", "gcj_lat"), EVILTRANSFORM_POINTS)
def test_gcj02_to_wgs84_recovers_eviltransform_point_to_a_centimetre(
    wgs_lon, wgs_lat, gcj_lon, gcj_lat
):
    lon, lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert metres_between(lon, lat, wgs_lon, wgs_lat) < 0.01


def test_wgs84_to_gcj02_matches_coordtransform():
    (wgs_lon, wgs_lat), (gcj_lon, gcj_lat) = COORDTRANSFORM_FORWARD
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert (lon, lat) == pytest.approx((gcj_lon, gcj_lat), abs=1e-9)


def test_gcj02_to_wgs84_is_exact_not_the_one_step_approximation():
    gcj = (116.404, 39.915)
    lon, lat = gcj02_to_wgs84(*gcj)
    back = wgs84_to_gcj02(lon, lat)
    assert max(abs(back[0] - gcj[0]), abs(back[1] - gcj[1])) < 1e-7
    # the one-step answer misses by more than our tolerance; ours must not equal it
    one_step_back = wgs84_to_gcj02(*COORDTRANSFORM_ONE_STEP_INVERSE)
    assert max(abs(one_step_back[0] - gcj[0]), abs(one_step_back[1] - gcj[1])) > 1e-7
    assert metres_between(lon, lat, *COORDTRANSFORM_ONE_STEP_INVERSE) < 1.0


@pytest.mark.parametrize(
    ("lon", "lat"), [(-0.1276, 51.5072), (139.6917, 35.6895), (151.2093, -33.8688), (70.0, 30.0)]
)
def test_points_outside_china_are_unchanged(lon, lat):
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)


def test_floats_give_floats_and_arrays_give_arrays():
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    assert type(lon) is float and type(lat) is float
    lons, lats = gcj02_to_wgs84(np.array([116.404, 0.0]), np.array([39.915, 0.0]))
    assert isinstance(lons, np.ndarray) and lons.shape == (2,)
    assert (lons[0], lats[0]) == pytest.approx((lon, lat), abs=1e-12)
    assert (lons[1], lats[1]) == (0.0, 0.0)


def test_nan_stays_nan_and_does_not_stop_the_others_converging():
    lons, lats = gcj02_to_wgs84(np.array([np.nan, 116.404]), np.array([39.9, 39.915]))
    assert np.isnan(lons[0]) and np.isnan(lats[0])
    assert (lons[1], lats[1]) == pytest.approx(gcj02_to_wgs84(116.404, 39.915), abs=1e-12)


def test_to_wgs84_dispatches_on_crs():
    assert to_wgs84(116.404, 39.915, "wgs84") == (116.404, 39.915)
    assert to_wgs84(116.404, 39.915, "gcj02") == gcj02_to_wgs84(116.404, 39.915)
    assert to_wgs84(116.404, 39.915, "bd09") == gcj02_to_wgs84(*bd09_to_gcj02(116.404, 39.915))
    with pytest.raises(ValueError, match="bd09"):
        to_wgs84(116.404, 39.915, "utm")


china_lon = st.floats(min_value=74.0, max_value=135.0)
china_lat = st.floats(min_value=3.0, max_value=53.0)


@given(china_lon, china_lat)
def test_gcj02_round_trip_inside_china(lon, lat):
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    assert (gcj_lon, gcj_lat) != (lon, lat)
    back_lon, back_lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert abs(back_lon - lon) < 1e-7 and abs(back_lat - lat) < 1e-7


@given(st.lists(st.tuples(china_lon, china_lat), min_size=1, max_size=20))
def test_vectorised_equals_scalar(points):
    lons = np.array([p[0] for p in points])
    lats = np.array([p[1] for p in points])
    out_lons, out_lats = gcj02_to_wgs84(lons, lats)
    for i, (lon, lat) in enumerate(points):
        assert (out_lons[i], out_lats[i]) == pytest.approx(gcj02_to_wgs84(lon, lat), abs=1e-8)


# wandergis/coordtransform's README (and hutool's CoordinateUtilTest, which checks against it):
# gcj02tobd09(116.404, 39.915) and its one-step bd09togcj02(116.404, 39.915).
COORDTRANSFORM_GCJ_TO_BD = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))
COORDTRANSFORM_BD_ONE_STEP = ((116.404, 39.915), (116.39762729119315, 39.90865673957631))
# Beijing railway station as Baidu and AMap publish it (the R package cst's example):
# BD-09 (116.43351, 39.90851), GCJ-02 (116.42703, 39.90245), both to five decimals.
BEIJING_STATION_BD, BEIJING_STATION_GCJ = (116.43351, 39.90851), (116.42703, 39.90245)


def test_gcj02_to_bd09_matches_coordtransform():
    gcj, bd = COORDTRANSFORM_GCJ_TO_BD
    assert gcj02_to_bd09(*gcj) == pytest.approx(bd, abs=1e-12)


def test_bd09_to_gcj02_is_exact_not_the_one_step_approximation():
    bd, one_step = COORDTRANSFORM_BD_ONE_STEP
    gcj = bd09_to_gcj02(*bd)
    assert gcj02_to_bd09(*gcj) == pytest.approx(bd, abs=1e-9)
    # the published one-step answer is a few centimetres off; ours must not be it
    assert max(abs(a - b) for a, b in zip(gcj02_to_bd09(*one_step), bd, strict=True)) > 1e-7
    assert metres_between(*gcj, *one_step) < 0.1


def test_bd09_station_lands_on_its_published_gcj02_point():
    gcj = bd09_to_gcj02(*BEIJING_STATION_BD)
    assert metres_between(*gcj, *BEIJING_STATION_GCJ) < 1.5  # published to five decimals


@pytest.mark.parametrize(("wgs_lon", "wgs_lat", "gcj_lon", "gcj_lat"), EVILTRANSFORM_POINTS)
def test_bd09_to_wgs84_recovers_published_points_to_a_centimetre(
    wgs_lon, wgs_lat, gcj_lon, gcj_lat
):
    bd = gcj02_to_bd09(gcj_lon, gcj_lat)
    assert metres_between(*to_wgs84(*bd, "bd09"), wgs_lon, wgs_lat) < 0.01
    assert metres_between(*wgs84_to_bd09(wgs_lon, wgs_lat), *bd) < 0.01


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("wgs84", "wgs84"), ("WGS84", "wgs84"), ("WGS-84", "wgs84"), ("wgs_84", "wgs84"),
        ("EPSG:4326", "wgs84"), ("gcj02", "gcj02"), ("GCJ02", "gcj02"), ("GCJ-02", "gcj02"),
        ("gcj_02", "gcj02"), ("bd09", "bd09"), ("BD-09", "bd09"), ("BD09LL", "bd09"),
    ],
)  # fmt: skip
def test_crs_spellings_apps_use_are_understood(spelling, canonical):
    assert normalize_crs(spelling) == canonical


@pytest.mark.parametrize("spelling", ["", "utm", "gcj03", "bd09mc", "EPSG:3857"])
def test_unknown_crs_names_what_is_understood(spelling):
    with pytest.raises(ValueError, match="expected wgs84, gcj02 or bd09"):
        normalize_crs(spelling)


@given(
    st.floats(min_value=73.7, max_value=134.7),
    st.floats(min_value=18.2, max_value=53.5),
)
def test_bd09_round_trip_within_a_millimetre(lon, lat):
    back = to_wgs84(*wgs84_to_bd09(lon, lat), "BD-09")
    assert metres_between(*back, lon, lat) < 0.001
    lons, lats = to_wgs84(*wgs84_to_bd09(np.array([lon]), np.array([lat])), "bd09")
    assert metres_between(lons[0], lats[0], lon, lat) < 0.001
