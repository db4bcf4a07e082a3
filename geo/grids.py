"""Grid import from vector files (GeoJSON, Shapefile, GeoPackage, …) and the grid hierarchy."""

from __future__ import annotations

import glob
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import pyproj.exceptions
import shapely
from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gridwatch.encodings import redecode
from gridwatch.errors import InputFileError
from gridwatch.geo.crs import normalize_crs, out_of_china, to_wgs84
from gridwatch.model.vocabulary import GRID_LEVELS

LEVELS = GRID_LEVELS
"""The hierarchy from top to bottom: 区, 街道, 社区, 网格."""

# Level values as they appear in Chinese source files; a police hierarchy (分局, 派出所,
# 警务区, 警格) stands at the same four levels as the management one.
LEVEL_ALIASES = {
    "区": "district",
    "街道": "street",
    "社区": "community",
    "网格": "grid",
    "分局": "district",
    "派出所": "street",
    "警务区": "community",
    "警格": "grid",
}

# Fields read as each feature's level when neither a level nor a level field is given.
LEVEL_FIELDS = ("level", "层级", "级别")

# A grid file may hold buildings (楼栋) too: the level below the grid, stored apart from the
# grids (store/buildings.py), each inside the grid that is its parent.
BUILDING = "building"
FILE_LEVELS = (*LEVELS, BUILDING)
FILE_LEVEL_ALIASES = {**LEVEL_ALIASES, "楼栋": BUILDING}

MAX_LISTED_PROBLEMS = 20

_WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True, slots=True)
class GridFeature:
    """One polygon of the hierarchy; geometry is a MultiPolygon in WGS-84 lon/lat."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geometry: MultiPolygon


class GridFileOptions(TypedDict, total=False):
    """How `read_grid_file` reads a file (its keyword arguments), for a caller that hands
    them on: the level, the fields that hold each part, the layer and the file's CRS."""

    level: str | None
    code_field: str
    name_field: str
    parent_field: str | None
    level_field: str | None
    layer: str | None
    source_crs: str | None


def read_grid_file(
    path: str | Path,
    *,
    level: str | None = "grid",
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str | None = None,
    level_field: str | None = None,
    layer: str | None = None,
    source_crs: str | None = None,
) -> list[GridFeature]:
    """Read polygons from any GDAL vector file, reprojected to WGS-84 and repaired.

    With neither `level` nor `level_field`, a field named in LEVEL_FIELDS gives each
    feature's level, and a file without one is all grids. Raises InputFileError naming the
    file and each bad feature (numbered from 1).
    """
    if level is not None and level not in FILE_LEVELS:
        raise ValueError(f"unknown level {level!r}: expected one of {', '.join(FILE_LEVELS)}")
    path = Path(path)
    label = path.name
    frame = _read_frame(path, label, layer)
    if level is None and level_field is None:
        level_field = next((str(c) for c in frame.columns if str(c).lower() in LEVEL_FIELDS), None)
    # Without a level field, every feature is at `level`, and a file without either is grids.
    default_level = level or "grid"

    fields = {
        "code": code_field,
        "name": name_field,
        "parent": parent_field,
        "level": level_field,
    }
    columns = _resolve_fields(label, frame, fields)
    geometries = _to_wgs84(label, frame, source_crs)

    problems: list[str] = []
    features: list[GridFeature] = []
    features_by_code: dict[str, list[int]] = defaultdict(list)
    for row, geometry in enumerate(geometries):
        number = row + 1
        code = _text(frame[columns["code"]].iat[row])
        where = f"{label}: feature {number}" + (f" (code {code!r})" if code else "")
        feature_problems = []
        if not code:
            feature_problems.append(f"{code_field!r} is empty")
        else:
            features_by_code[code].append(number)

        feature_level = default_level
        if "level" in columns:
            raw_level = _text(frame[columns["level"]].iat[row])
            feature_level = FILE_LEVEL_ALIASES.get(raw_level, raw_level.lower())
            if feature_level not in FILE_LEVELS:
                feature_problems.append(
                    f"level {raw_level!r} is not one of {', '.join(FILE_LEVELS)} "
                    f"({', '.join(FILE_LEVEL_ALIASES)})"
                )

        polygon, geometry_problem = _polygonal(geometry)
        if geometry_problem:
            feature_problems.append(geometry_problem)

        if feature_problems:
            problems.append(f"{where}: {'; '.join(feature_problems)}")
            continue
        name = _text(frame[columns["name"]].iat[row]) or code
        parent = _text(frame[columns["parent"]].iat[row]) if "parent" in columns else ""
        features.append(GridFeature(code, name, feature_level, parent or None, polygon))

    for code, numbers in features_by_code.items():
        if len(numbers) > 1:
            listed = ", ".join(str(n) for n in numbers)
            problems.append(f"{label}: code {code!r} is used by more than one feature ({listed})")
    if problems:
        raise InputFileError(_problem_report(label, problems, "features"))
    if not features:
        raise InputFileError(f"{label}: the file has no features")
    return features


def assign_parents(
    children: Sequence[GridFeature], parents: Sequence[GridFeature]
) -> dict[str, str | None]:
    """Parent code per child: its own parent_code, else the next level up containing it.

    The container is the feature of the nearest higher level present in `parents` that
    covers the child's point_on_surface; ties go to the largest overlap, then smallest code.
    """
    by_level: dict[str, list[GridFeature]] = {name: [] for name in FILE_LEVELS}
    for parent in parents:
        by_level[parent.level].append(parent)
    trees = {name: shapely.STRtree([p.geometry for p in group]) for name, group in by_level.items()}

    result: dict[str, str | None] = {}
    for child in children:
        if child.parent_code is not None:
            result[child.code] = child.parent_code
            continue
        higher = reversed(FILE_LEVELS[: FILE_LEVELS.index(child.level)])
        parent_level = next((name for name in higher if by_level[name]), None)
        if parent_level is None:
            result[child.code] = None
            continue
        candidates = by_level[parent_level]
        hits = trees[parent_level].query(child.geometry.point_on_surface(), predicate="intersects")
        if hits.size == 0:
            result[child.code] = None
            continue
        best = min(
            (candidates[i] for i in hits),
            key=lambda p: (-p.geometry.intersection(child.geometry).area, p.code),
        )
        result[child.code] = best.code
    return result


def _read_frame(path: Path, label: str, layer: str | None) -> gpd.GeoDataFrame:
    if not path.exists():
        raise InputFileError(f"{label}: no such file ({path})")
    _check_parts(path, label)
    try:
        layers = pyogrio.list_layers(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InputFileError(_unreadable(label, path, exc)) from exc
    if len(layers) == 0:
        raise InputFileError(f"{label}: the file has no layers")
    if layer is None and len(layers) > 1:
        polygonal = [name for name, kind in layers if kind and "Polygon" in kind]
        if len(polygonal) != 1:
            listed = ", ".join(str(name) for name, _ in layers)
            raise InputFileError(f"{label}: the file has several layers ({listed}); choose one")
        layer = polygonal[0]
    elif layer is not None and layer not in {str(name) for name, _ in layers}:
        listed = ", ".join(str(name) for name, _ in layers)
        raise InputFileError(f"{label}: no layer {layer!r}; the layers are: {listed}")
    try:
        try:
            frame = _read(path, layer)
            undeclared = _latin1_by_default(path, layer)
        except UnicodeDecodeError:
            # Text that is not what the file says it is (GeoJSON must be UTF-8; a .cpg may
            # be wrong): read each byte as a character and decode the text again below.
            frame = _read(path, layer, encoding="latin-1")
            undeclared = True
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InputFileError(_unreadable(label, path, exc)) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.active_geometry_name is None:
        raise InputFileError(f"{label}: the file has no geometry (a table, not a map layer)")
    if len(frame) == 0:
        raise InputFileError(f"{label}: the file has no features")
    if undeclared:
        frame = _redecoded(label, frame)
    return frame


def _read(path: Path, layer: str | None, encoding: str | None = None) -> gpd.GeoDataFrame:
    with warnings.catch_warnings():
        # GDAL warns of what it repairs (unclosed rings) and shapely of NaN coordinates;
        # what cannot be used is reported per feature instead.
        warnings.simplefilter("ignore", RuntimeWarning)
        return gpd.read_file(
            path, engine="pyogrio", layer=layer, encoding=encoding, on_invalid="fix"
        )


def _check_parts(path: Path, label: str) -> None:
    """A shapefile is several files; name the ones that did not come along."""
    if path.suffix.lower() != ".shp":
        return
    present = {p.suffix.lower() for p in path.parent.glob(f"{glob.escape(path.stem)}.*")}
    missing = [part for part in (".shx", ".dbf") if part not in present]
    if missing:
        raise InputFileError(
            f"{label}: the shapefile's {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; copy the .shp, .shx, .dbf, "
            ".prj and .cpg files together"
        )


def _latin1_by_default(path: Path, layer: str | None) -> bool:
    """A shapefile that declares no encoding (no .cpg, no code page in the .dbf): GDAL reads
    its text as Latin-1, though in China it is mostly GBK, or UTF-8."""
    if path.suffix.lower() != ".shp":
        return False
    if any(path.parent.glob(f"{glob.escape(path.stem)}.[cC][pP][gG]")):
        return False
    info: dict[str, object] = pyogrio.read_info(path, layer=layer)
    return info.get("encoding") == "ISO-8859-1"


def _redecoded(label: str, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The frame's text (field names and values) read as Latin-1, decoded again as UTF-8 or
    GBK when one of them fits; as it was when the text is ASCII or really Latin-1."""
    geometry = frame.geometry.name
    names = [str(c) for c in frame.columns if c != geometry]
    cells = [
        (column, row, value)
        for column in names
        for row, value in enumerate(frame[column])
        if isinstance(value, str)
    ]
    decoded = redecode([*names, *(value for _, _, value in cells)])
    if decoded is None:
        return frame
    texts, _encoding = decoded
    frame = frame.copy()
    for (column, row, _), text in zip(cells, texts[len(names) :], strict=True):
        frame.iat[row, frame.columns.get_loc(column)] = text
    return frame.rename(columns=dict(zip(names, texts[: len(names)], strict=True)))


def _unreadable(label: str, path: Path, exc: Exception) -> str:
    """Say the file cannot be read, with GDAL's reason unless it only repeats that."""
    message = f"{label}: not a vector file that can be read (GeoJSON, Shapefile, GeoPackage…)"
    reason = str(exc).split(";")[0].replace(f"'{path}'", "").replace(str(path), "").strip(" :")
    if reason and "not recognized as being in a supported file format" not in reason:
        message += f": {reason}"
    return message


def _resolve_fields(
    label: str, frame: gpd.GeoDataFrame, fields: dict[str, str | None]
) -> dict[str, str]:
    """Map each wanted field to its column; Shapefiles often upper-case names, so case is
    ignored when there is exactly one case-insensitive match."""
    available = [c for c in frame.columns if c != frame.geometry.name]
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for role, field in fields.items():
        if field is None:
            continue
        if field in available:
            resolved[role] = field
            continue
        folded = [c for c in available if str(c).lower() == field.lower()]
        if len(folded) == 1:
            resolved[role] = folded[0]
        else:
            missing.append(f"{field!r} (the {role} field)")
    if missing:
        have = ", ".join(repr(str(c)) for c in available) or "none"
        raise InputFileError(f"{label}: no field {' or '.join(missing)}; the fields are: {have}")
    return resolved


def _to_wgs84(
    label: str, frame: gpd.GeoDataFrame, source_crs: str | None = None
) -> list[BaseGeometry | None]:
    """Geometries in WGS-84 lon/lat.

    `source_crs` says what the coordinates are, overriding or supplying the file's own CRS:
    "gcj02" or "bd09" (lon/lat drawn on AMap/Tencent or Baidu basemaps, converted exactly),
    "wgs84", or anything pyproj reads ("EPSG:4547"). Without it, a file with no CRS passes
    only when its coordinates are longitude/latitude inside China.
    """
    series = frame.geometry
    datum = _china_datum(source_crs)
    if datum is not None:
        series = series.set_crs(_WGS84, allow_override=True)
        if datum != "wgs84":
            series = gpd.GeoSeries(
                shapely.transform(
                    series.values, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], datum))
                ),
                crs=_WGS84,
            )
    elif source_crs is not None:
        try:
            crs = CRS.from_user_input(source_crs)
        except pyproj.exceptions.CRSError as exc:
            raise InputFileError(
                f"{label}: --source-crs {source_crs!r} is not a coordinate system ({exc}); "
                f"give gcj02, bd09, wgs84 or an EPSG code such as EPSG:4547"
            ) from None
        series = series.set_crs(crs, allow_override=True)
    elif series.crs is None:
        xmin, ymin, xmax, ymax = _bounds(series.values)
        if not (-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90):
            raise InputFileError(
                f"{label}: the file has no coordinate reference system (no .prj?) and its "
                f"coordinates (x {xmin:.6g}…{xmax:.6g}, y {ymin:.6g}…{ymax:.6g}) are not "
                f"longitude/latitude; give --source-crs EPSG:NNNN (the code of its projection), "
                f"add the CRS to the file or export it in WGS-84"
            )
        if out_of_china([xmin, xmax], [ymin, ymax]).any():
            raise InputFileError(
                f"{label}: the file has no coordinate reference system (no .prj?) and its "
                f"coordinates (x {xmin:.6g}…{xmax:.6g}, y {ymin:.6g}…{ymax:.6g}) lie outside "
                f"China; give --source-crs (wgs84, gcj02, bd09 or EPSG:NNNN) to say what they are"
            )
    if series.crs is not None and not series.crs.equals(_WGS84):
        series = series.to_crs(_WGS84)
    return list(series.values)


def _china_datum(source_crs: str | None) -> str | None:
    """ "wgs84", "gcj02" or "bd09" when `source_crs` names one of them, else None."""
    if source_crs is None:
        return None
    try:
        return normalize_crs(source_crs)
    except ValueError:
        return None


def _bounds(geometries: Iterable[BaseGeometry | None]) -> tuple[float, float, float, float]:
    coords = shapely.get_coordinates(np.array(list(geometries), dtype=object))
    finite = coords[np.isfinite(coords).all(axis=1)]
    if finite.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (*finite.min(axis=0), *finite.max(axis=0))


def _polygonal(geometry: BaseGeometry | None) -> tuple[MultiPolygon, str | None]:
    """The feature as a valid 2-D MultiPolygon, or a reason it cannot be one."""
    empty = MultiPolygon()
    if geometry is None:
        return empty, "has no geometry, or one that cannot be read"
    if geometry.is_empty:
        return empty, "geometry is empty"
    if not isinstance(geometry, Polygon | MultiPolygon):
        return empty, f"geometry is a {geometry.geom_type}, expected a polygon"
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        return empty, "coordinates cannot be converted to WGS-84 longitude/latitude"
    if not ((np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()):
        return empty, "coordinates are outside longitude/latitude range (is the file's CRS right?)"
    geometry = shapely.force_2d(geometry)
    if not geometry.is_valid:
        geometry = _polygonal_part(shapely.make_valid(geometry))
        if geometry.is_empty:
            return empty, "polygon has no area (it collapses to a line or point)"
    if isinstance(geometry, Polygon):
        geometry = MultiPolygon([geometry])
    return shapely.orient_polygons(geometry), None  # RFC 7946: outer rings counter-clockwise


def _polygonal_part(geometry: BaseGeometry) -> MultiPolygon:
    """Keep the polygons of what make_valid returned (it may add stray lines and points)."""
    polygons: list[Polygon] = []
    for part in shapely.get_parts(geometry):
        if isinstance(part, Polygon):
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(part.geoms)
        elif part.geom_type == "GeometryCollection":
            polygons.extend(_polygonal_part(part).geoms)
    polygons = [p for p in polygons if not p.is_empty and p.area > 0]
    multipolygon = MultiPolygon(polygons)
    if not multipolygon.is_valid:
        merged = shapely.union_all(polygons)
        multipolygon = merged if isinstance(merged, MultiPolygon) else MultiPolygon([merged])
    return multipolygon


def _text(value: object) -> str:
    """A field value as text: missing → "", 150204.0 → "150204", whitespace stripped."""
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _problem_report(label: str, problems: list[str], what: str) -> str:
    """One line per problem, at most MAX_LISTED_PROBLEMS, then how many more there are."""
    lines = problems[:MAX_LISTED_PROBLEMS]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"{label}: … and {len(problems) - MAX_LISTED_PROBLEMS} more bad {what}")
    return "\n".join(lines)
