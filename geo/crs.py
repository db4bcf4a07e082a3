"""The one place coordinates are converted between WGS-84 and GCJ-02 (China's "Mars" datum).

Everything entering gridwatch is turned into WGS-84 here; nothing else knows GCJ-02 exists,
except the map layer that converts back for GCJ-02 tiles. The GCJ-02 offset is the public
algorithm (Krasovsky ellipsoid constants) shared by eviltransform and coordtransform.
"""

from __future__ import annotations

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


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 shift (dlon, dlat) in degrees at a WGS-84 point, ignoring the China box."""
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * np.pi
    y_pi = y * np.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x_pi) + 20.0 * np.sin(2.0 * x_pi)) * 2.0 / 3.0

    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common
    dlat += (20.0 * np.sin(y_pi) + 40.0 * np.sin(y_pi / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y_pi / 12.0) + 320.0 * np.sin(y_pi / 30.0)) * 2.0 / 3.0

    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common
    dlon += (20.0 * np.sin(x_pi) + 40.0 * np.sin(x_pi / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x_pi / 12.0) + 300.0 * np.sin(x_pi / 30.0)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


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
    return _apply(_wgs84_to_gcj02_array, lon, lat)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lon, lat):
    """Convert GCJ-02 lon/lat to WGS-84 by iterating the forward transform to < 1e-9 degrees."""
    return _apply(_gcj02_to_wgs84_array, lon, lat)


@overload
def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]: ...
@overload
def to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(lon, lat, crs):
    """Convert lon/lat given in `crs` ("wgs84" or "gcj02") to WGS-84."""
    if crs == "wgs84":
        return _apply(lambda x, y: (x, y), lon, lat)
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    raise ValueError(f"unknown coordinate system {crs!r}: expected one of {SUPPORTED_CRS}")


def _apply(convert, lon, lat):
    lon_array = np.asarray(lon, dtype=np.float64)
    lat_array = np.asarray(lat, dtype=np.float64)
    if lon_array.shape != lat_array.shape:
        raise ValueError(f"lon and lat differ in shape: {lon_array.shape} != {lat_array.shape}")
    if lon_array.ndim == 0:
        out_lon, out_lat = convert(lon_array.reshape(1), lat_array.reshape(1))
        return float(out_lon[0]), float(out_lat[0])
    return convert(lon_array, lat_array)
