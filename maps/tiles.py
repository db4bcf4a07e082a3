"""Base map tiles (GRIDWATCH_TILES) and the coordinates the map must draw in for them.

`none` draws no tiles at all (works with no network); `osm` and `tianditu` are WGS-84 (or
CGCS2000, the same to a few centimetres); `amap` tiles are in GCJ-02, so every geometry is
converted before it is drawn, or points would sit hundreds of metres off their street.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gridwatch.errors import ConfigError
from gridwatch.geo.crs import wgs84_to_gcj02


@dataclass(frozen=True, slots=True)
class TileLayerSpec:
    name: str
    url: str
    attribution: str
    subdomains: str = "abc"
    max_zoom: int = 19
    overlay: bool = False


@dataclass(frozen=True, slots=True)
class Tiles:
    """The tile layers of a provider and the CRS its tiles are drawn in."""

    provider: str
    layers: tuple[TileLayerSpec, ...]
    crs: str  # "wgs84" or "gcj02"

    @property
    def hosts(self) -> tuple[str, ...]:
        """Origins the page may load images from (for the Content-Security-Policy)."""
        origins = []
        for layer in self.layers:
            scheme, _, rest = layer.url.partition("://")
            host = rest.split("/", 1)[0]
            origins.append(f"{scheme}://{host.replace('{s}', '*')}")
        return tuple(dict.fromkeys(origins))


def tiles_for(provider: str, *, tianditu_key: str | None = None) -> Tiles:
    """The tiles of GRIDWATCH_TILES; ConfigError when a needed key is missing."""
    if provider == "none":
        return Tiles("none", (), "wgs84")
    if provider == "osm":
        return Tiles(
            "osm",
            (
                TileLayerSpec(
                    "OpenStreetMap",
                    "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>',
                    subdomains="",
                ),
            ),
            "wgs84",
        )
    if provider == "tianditu":
        if not tianditu_key:
            raise ConfigError("GRIDWATCH_TILES=tianditu needs GRIDWATCH_TIANDITU_KEY")
        base = "https://t{s}.tianditu.gov.cn/DataServer?T=%s&x={x}&y={y}&l={z}&tk=" + tianditu_key
        credit = "&copy; 天地图 Tianditu"
        return Tiles(
            "tianditu",
            (
                TileLayerSpec("天地图矢量", base % "vec_w", credit, "01234567", 18),
                TileLayerSpec("天地图注记", base % "cva_w", credit, "01234567", 18, overlay=True),
            ),
            "wgs84",
        )
    if provider == "amap":
        return Tiles(
            "amap",
            (
                TileLayerSpec(
                    "高德地图",
                    "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                    "&style=8&x={x}&y={y}&z={z}",
                    "&copy; 高德地图 AMap",
                    "1234",
                    18,
                ),
            ),
            "gcj02",
        )
    raise ConfigError(f"unknown tiles {provider!r}: expected none, osm, tianditu or amap")


def display_transform(crs: str) -> Callable[[float, float], tuple[float, float]] | None:
    """lon, lat → the tiles' coordinates; None when they are WGS-84 already."""
    if crs == "gcj02":
        return lambda lon, lat: wgs84_to_gcj02(lon, lat)
    return None


def to_display(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    """A WGS-84 geometry in the coordinates the tiles are drawn in."""
    if crs != "gcj02":
        return geometry

    def shift(xy: np.ndarray) -> np.ndarray:
        lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geometry, shift)


def points_to_display(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if crs != "gcj02" or len(lon) == 0:
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return wgs84_to_gcj02(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
