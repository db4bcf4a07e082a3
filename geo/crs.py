"""The one place coordinates are converted between WGS-84, GCJ-02 and BD-09.

GCJ-02 (China's "Mars" datum) is what AMap, Tencent and every map published in China use;
BD-09 is Baidu's further offset of GCJ-02. Everything entering gridwatch is turned into
WGS-84 here; nothing else knows the other two exist, except the map layer that converts back
for GCJ-02 tiles. The offsets are the public algorithms (Krasovsky ellipsoid constants)
shared by eviltransform and coordtransform; each inverse iterates its forward transform to
1e-9 degrees instead of the one-step approximation those libraries give, which is metres off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# One point (a float) or many (an array): the formulas below are written once for both.
_Coord = TypeVar("_Coord", float, FloatArray)

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 algorithm
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared

# GCJ→WGS iterates the forward transform; the offset's Jacobian is ~1e-4, so each step
# gains about four digits and three or four steps reach the tolerance.
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_STEPS = 30

SUPPORTED_CRS = ("wgs84", "gcj02", "bd09")

# The spellings apps and files use for each system, compared after lowercasing and dropping
# "-", "_", " " and ":" (so "WGS-84", "wgs_84", "EPSG:4326" and "BD-09" all match).
_CRS_SPELLINGS = {
    "wgs84": "wgs84",
    "epsg4326": "wgs84",
    "gps": "wgs84",
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "mars": "gcj02",
    "bd09": "bd09",
    "bd09ll": "bd09",
    "baidu": "bd09",
}

_BD_X_PI = math.pi * 3000.0 / 180.0  # the published BD-09 constant


@dataclass(frozen=True)
class _Functions(Generic[_Coord]):
    """The functions the formulas need, from `math` for one point or numpy for arrays: the
    same formula, and one point costs a few microseconds instead of numpy's per-call
    overhead on one-element arrays."""

    sin: Callable[[_Coord], _Coord]
    cos: Callable[[_Coord], _Coord]
    sqrt: Callable[[_Coord], _Coord]
    atan2: Callable[[_Coord, _Coord], _Coord]
    larger: Callable[[_Coord, _Coord], _Coord]


_POINT = _Functions[float](math.sin, math.cos, math.sqrt, math.atan2, max)
_ARRAY = _Functions[FloatArray](np.sin, np.cos, np.sqrt, np.arctan2, np.fmax)


def normalize_crs(name: str) -> str:
    """The canonical name ("wgs84", "gcj02", "bd09") of a spelling such as "GCJ-02" or "WGS84".

    Raises ValueError naming the spellings understood.
    """
    key = "".join(ch for ch in name.lower() if ch not in "-_ :")
    try:
        return _CRS_SPELLINGS[key]
    except KeyError:
        raise ValueError(
            f"unknown coordinate system {name[:40]!r}: expected wgs84, gcj02 or bd09 "
            f"(any case, with or without '-')"
        ) from None


def out_of_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where a point lies outside the box in which GCJ-02 applies an offset."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(lon: _Coord, lat: _Coord, m: _Functions[_Coord]) -> tuple[_Coord, _Coord]:
    """The GCJ-02 shift (dlon, dlat) in degrees at a WGS-84 point, ignoring the China box."""
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * math.pi
    y_pi = y * math.pi
    sqrt_abs_x = m.sqrt(abs(x))
    common = (20.0 * m.sin(6.0 * x_pi) + 20.0 * m.sin(2.0 * x_pi)) * 2.0 / 3.0

    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common
    dlat += (20.0 * m.sin(y_pi) + 40.0 * m.sin(y_pi / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * m.sin(y_pi / 12.0) + 320.0 * m.sin(y_pi / 30.0)) * 2.0 / 3.0

    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common
    dlon += (20.0 * m.sin(x_pi) + 40.0 * m.sin(x_pi / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * m.sin(x_pi / 12.0) + 300.0 * m.sin(x_pi / 30.0)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * m.sin(rad_lat) ** 2
    sqrt_magic = m.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * m.cos(rad_lat) * math.pi)
    return dlon, dlat


def _point_outside(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)  # NaN: outside


def _wgs84_to_gcj02_point(lon: float, lat: float) -> tuple[float, float]:
    if _point_outside(lon, lat):
        return lon, lat
    dlon, dlat = _offset(lon, lat, _POINT)
    return lon + dlon, lat + dlat


def _gcj02_to_wgs84_point(lon: float, lat: float) -> tuple[float, float]:
    if _point_outside(lon, lat):
        return lon, lat
    wlon, wlat = lon, lat
    for _ in range(_INVERSE_MAX_STEPS):
        glon, glat = _wgs84_to_gcj02_point(wlon, wlat)
        err_lon, err_lat = glon - lon, glat - lat
        wlon -= err_lon
        wlat -= err_lat
        if max(abs(err_lon), abs(err_lat)) <= _INVERSE_TOLERANCE_DEG:
            break
    return wlon, wlat


def _wgs84_to_gcj02_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _offset(lon, lat, _ARRAY)
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def _gcj02_to_wgs84_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Fixed-point iteration: find w with forward(w) == g by w <- w - (forward(w) - g).
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(_INVERSE_MAX_STEPS):
        glon, glat = _wgs84_to_gcj02_array(wlon, wlat)
        err_lon = glon - lon
        err_lat = glat - lat
        wlon -= err_lon
        wlat -= err_lat
        worst = np.fmax(np.abs(err_lon), np.abs(err_lat))
        if not np.any(worst > _INVERSE_TOLERANCE_DEG):  # NaN inputs never count as unconverged
            break
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, wlon), np.where(outside, lat, wlat)


@dataclass(frozen=True)
class Conversion:
    """A conversion between two of the systems, of one point (floats give floats) or of
    arrays (arrays give arrays, of the same shape)."""

    convert_array: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
    convert_point: Callable[[float, float], tuple[float, float]]

    @overload
    def __call__(self, lon: float, lat: float) -> tuple[float, float]: ...
    @overload
    def __call__(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
    def __call__(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike
    ) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
        if isinstance(lon, float | int) and isinstance(lat, float | int):
            return self.convert_point(float(lon), float(lat))
        lon_array = np.asarray(lon, dtype=np.float64)
        lat_array = np.asarray(lat, dtype=np.float64)
        if lon_array.shape != lat_array.shape:
            raise ValueError(f"lon and lat differ in shape: {lon_array.shape} != {lat_array.shape}")
        if lon_array.ndim == 0:
            return self.convert_point(float(lon_array), float(lat_array))
        return self.convert_array(lon_array, lat_array)


wgs84_to_gcj02 = Conversion(_wgs84_to_gcj02_array, _wgs84_to_gcj02_point)
"""Convert WGS-84 lon/lat to GCJ-02; floats give floats, arrays give arrays."""

gcj02_to_wgs84 = Conversion(_gcj02_to_wgs84_array, _gcj02_to_wgs84_point)
"""Convert GCJ-02 lon/lat to WGS-84 by iterating the forward transform to < 1e-9 degrees."""


def _gcj02_to_bd09(lon: _Coord, lat: _Coord, m: _Functions[_Coord]) -> tuple[_Coord, _Coord]:
    """Baidu's offset of GCJ-02 coordinates."""
    z = m.sqrt(lon * lon + lat * lat) + 0.00002 * m.sin(lat * _BD_X_PI)
    theta = m.atan2(lat, lon) + 0.000003 * m.cos(lon * _BD_X_PI)
    return z * m.cos(theta) + 0.0065, z * m.sin(theta) + 0.006


def _bd09_to_gcj02(lon: _Coord, lat: _Coord, m: _Functions[_Coord]) -> tuple[_Coord, _Coord]:
    # Start from the published one-step inverse, then iterate the forward transform.
    x, y = lon - 0.0065, lat - 0.006
    z = m.sqrt(x * x + y * y) - 0.00002 * m.sin(y * _BD_X_PI)
    theta = m.atan2(y, x) - 0.000003 * m.cos(x * _BD_X_PI)
    glon, glat = z * m.cos(theta), z * m.sin(theta)
    for _ in range(_INVERSE_MAX_STEPS):
        blon, blat = _gcj02_to_bd09(glon, glat, m)
        err_lon, err_lat = blon - lon, blat - lat
        glon = glon - err_lon
        glat = glat - err_lat
        worst = m.larger(abs(err_lon), abs(err_lat))
        if not np.any(worst > _INVERSE_TOLERANCE_DEG):  # NaN never counts as unconverged
            break
    return glon, glat


def _gcj02_to_bd09_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_bd09(lon, lat, _ARRAY)


def _gcj02_to_bd09_point(lon: float, lat: float) -> tuple[float, float]:
    return _gcj02_to_bd09(lon, lat, _POINT)


def _bd09_to_gcj02_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _bd09_to_gcj02(lon, lat, _ARRAY)


def _bd09_to_gcj02_point(lon: float, lat: float) -> tuple[float, float]:
    return _bd09_to_gcj02(lon, lat, _POINT)


def _bd09_to_wgs84_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_wgs84_array(*_bd09_to_gcj02_array(lon, lat))


def _bd09_to_wgs84_point(lon: float, lat: float) -> tuple[float, float]:
    return _gcj02_to_wgs84_point(*_bd09_to_gcj02_point(lon, lat))


def _wgs84_to_bd09_array(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_bd09_array(*_wgs84_to_gcj02_array(lon, lat))


def _wgs84_to_bd09_point(lon: float, lat: float) -> tuple[float, float]:
    return _gcj02_to_bd09_point(*_wgs84_to_gcj02_point(lon, lat))


gcj02_to_bd09 = Conversion(_gcj02_to_bd09_array, _gcj02_to_bd09_point)
"""Convert GCJ-02 lon/lat to Baidu's BD-09."""

bd09_to_gcj02 = Conversion(_bd09_to_gcj02_array, _bd09_to_gcj02_point)
"""Convert BD-09 lon/lat to GCJ-02 exactly (to < 1e-9 degrees)."""

wgs84_to_bd09 = Conversion(_wgs84_to_bd09_array, _wgs84_to_bd09_point)
"""Convert WGS-84 lon/lat to BD-09 (through GCJ-02)."""

_bd09_to_wgs84 = Conversion(_bd09_to_wgs84_array, _bd09_to_wgs84_point)
_same = Conversion(lambda lon, lat: (lon, lat), lambda lon, lat: (lon, lat))


@overload
def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]: ...
@overload
def to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, crs: str
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Convert lon/lat given in `crs` (any spelling `normalize_crs` reads) to WGS-84."""
    crs = normalize_crs(crs)
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if crs == "bd09":
        return _bd09_to_wgs84(lon, lat)
    return _same(lon, lat)
