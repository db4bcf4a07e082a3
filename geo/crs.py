"""The one place coordinates are converted between WGS-84 and GCJ-02 (China's "Mars" datum).

Everything entering gridwatch is turned into WGS-84 here; nothing else knows GCJ-02 exists,
except the map layer that converts back for GCJ-02 tiles. The GCJ-02 offset is the public
algorithm (Krasovsky ellipsoid constants) shared by eviltransform and coordtransform.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 algorithm
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared

# GCJ→WGS iterates the forward transform; the offset's Jacobian is ~1e-4, so each step
# gains about four digits and three or four steps reach the tolerance.
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_STEPS = 30

SUPPORTED_CRS = ("wgs84", "gcj02")


def out_of_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where a point lies outside the box in which GCJ-02 applies an offset."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(lon, lat, m=np):
    """The GCJ-02 shift (dlon, dlat) in degrees at a WGS-84 point, ignoring the China box.

    `m` is numpy for arrays or `math` for one point: the same formula, and one point costs
    a few microseconds instead of numpy's per-call overhead on one-element arrays.
    """
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * m.pi
    y_pi = y * m.pi
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

    rad_lat = lat / 180.0 * m.pi
    magic = 1.0 - _EE * m.sin(rad_lat) ** 2
    sqrt_magic = m.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * m.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * m.cos(rad_lat) * m.pi)
    return dlon, dlat


def _point_outside(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)  # NaN: outside


def _wgs84_to_gcj02_point(lon: float, lat: float) -> tuple[float, float]:
    if _point_outside(lon, lat):
        return lon, lat
    dlon, dlat = _offset(lon, lat, math)
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
    dlon, dlat = _offset(lon, lat)
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


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lon, lat):
    """Convert WGS-84 lon/lat to GCJ-02; floats give floats, arrays give arrays."""
    return _apply(_wgs84_to_gcj02_array, lon, lat, _wgs84_to_gcj02_point)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lon, lat):
    """Convert GCJ-02 lon/lat to WGS-84 by iterating the forward transform to < 1e-9 degrees."""
    return _apply(_gcj02_to_wgs84_array, lon, lat, _gcj02_to_wgs84_point)


@overload
def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]: ...
@overload
def to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(lon, lat, crs):
    """Convert lon/lat given in `crs` ("wgs84" or "gcj02") to WGS-84."""
    if crs == "wgs84":
        return _apply(lambda x, y: (x, y), lon, lat, lambda x, y: (x, y))
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    raise ValueError(f"unknown coordinate system {crs!r}: expected one of {SUPPORTED_CRS}")


def _apply(convert, lon, lat, convert_point):
    if isinstance(lon, float | int) and isinstance(lat, float | int):
        return convert_point(float(lon), float(lat))
    lon_array = np.asarray(lon, dtype=np.float64)
    lat_array = np.asarray(lat, dtype=np.float64)
    if lon_array.shape != lat_array.shape:
        raise ValueError(f"lon and lat differ in shape: {lon_array.shape} != {lat_array.shape}")
    if lon_array.ndim == 0:
        return convert_point(float(lon_array), float(lat_array))
    return convert(lon_array, lat_array)
