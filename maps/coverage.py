"""Patrol coverage (每日双巡): patrols cut from track points, and the share of each grid's
area within reach of the tracks, measured in metres on a local projection. A fix less
accurate than the setting is no evidence of where the worker walked: it is left out.

Pure: arrays and shapely geometries in, numbers and geometries out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike
from pyproj import Transformer
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry

CHUNK_SEGMENTS = 8
MIN_POINTS_IN_GRID = 3
"""A patrol counts for a grid when at least this many of its points lie in it (a walk that
grazes a neighbour's corner on the way is not a patrol of that grid)."""


def low_accuracy(accuracy_m: ArrayLike | None, max_accuracy_m: float) -> np.ndarray:
    """Which fixes are less accurate than `max_accuracy_m` metres (GRIDWATCH_OWNTRACKS_MAX_
    ACCURACY_M): kept and shown, flagged `low_accuracy`, never counted as coverage. The one
    rule for OwnTracks `acc` and gw `accuracy_m` alike; an unknown accuracy (None, NaN) is
    not low, as OwnTracks leaves `acc` out when it is 0."""
    return np.asarray(accuracy_m, dtype=float) > max_accuracy_m


@dataclass(frozen=True, slots=True)
class Patrol:
    """One patrol: a run of a worker's track points with no pause longer than the gap."""

    worker_id: str
    start_s: float
    end_s: float
    lon: np.ndarray
    lat: np.ndarray
    grid_ids: np.ndarray

    def points_in(self, grid_id: int) -> int:
        return int(np.count_nonzero(self.grid_ids == grid_id))

    def line(self) -> BaseGeometry:
        """The track as a WGS-84 line (a point when it has only one distinct position)."""
        coords = np.column_stack([self.lon, self.lat])
        if len(coords) < 2 or not np.ptp(coords, axis=0).any():
            return Point(coords[0])
        return LineString(coords)


@dataclass(frozen=True, slots=True)
class GridCoverage:
    grid_id: int
    patrols: int
    covered_share: float  # 0..1 of the grid's area within the buffer of any track
    track_m: float  # length of all tracks inside the grid


def split_patrols(
    worker: np.ndarray,
    t: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    grid_id: np.ndarray,
    *,
    gap_s: float,
) -> list[Patrol]:
    """Cut points (sorted by worker, then time) into patrols at pauses longer than `gap_s`."""
    if len(t) == 0:
        return []
    new_worker = np.concatenate([[True], worker[1:] != worker[:-1]])
    long_pause = np.concatenate([[True], np.diff(t) > gap_s])
    starts = np.flatnonzero(new_worker | long_pause)
    ends = np.concatenate([starts[1:], [len(t)]])
    return [
        Patrol(
            str(worker[a]),
            float(t[a]),
            float(t[b - 1]),
            lon[a:b],
            lat[a:b],
            grid_id[a:b],
        )
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def local_metric(lon0: float, lat0: float) -> Transformer:
    """WGS-84 → metres on a transverse Mercator centred on (lon0, lat0): at district scale
    its distances and areas are true to well under 0.1 %."""
    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=tmerc +lat_0={lat0:.6f} +lon_0={lon0:.6f} +k=1 +x_0=0 +y_0=0 "
        "+ellps=WGS84 +units=m +no_defs",
        always_xy=True,
    )


def project(geometry: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, forward)


def reach_of(lines: list[BaseGeometry], buffer_m: float) -> np.ndarray:
    """Buffers of the tracks, cut into runs of a few segments first: a walk that loops back
    over itself makes one buffer slow to compute (every crossing is work for GEOS), while
    short runs buffer fast and their union is the same area."""
    parts = []
    for line in lines:
        coords = shapely.get_coordinates(line)
        if len(coords) < 2:
            parts.append(shapely.points(coords[0]))
            continue
        for i in range(0, len(coords) - 1, CHUNK_SEGMENTS):
            parts.append(shapely.linestrings(coords[i : i + CHUNK_SEGMENTS + 1]))
    if not parts:
        return np.array([], dtype=object)
    return shapely.buffer(np.array(parts, dtype=object), buffer_m, quad_segs=4)


def grid_coverage(
    grids: Mapping[int, BaseGeometry],
    patrols: list[Patrol],
    *,
    buffer_m: float,
) -> dict[int, GridCoverage]:
    """For each grid: patrols in it, the share of its area within `buffer_m` of any track
    (any worker's: a neighbour walking the border road covers that strip too), track length."""
    if not grids:
        return {}
    bounds = shapely.total_bounds(list(grids.values()))
    transformer = local_metric((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    lines = [project(p.line(), transformer) for p in patrols]
    reach = reach_of(lines, buffer_m)
    patrols_in: dict[int, int] = {}
    for patrol in patrols:
        grid_ids, counts = np.unique(patrol.grid_ids, return_counts=True)
        for grid_id in grid_ids[counts >= MIN_POINTS_IN_GRID].tolist():
            patrols_in[grid_id] = patrols_in.get(grid_id, 0) + 1
    reach_tree = shapely.STRtree(reach) if len(reach) else None
    line_tree = shapely.STRtree(lines) if lines else None
    result = {}
    for grid_id, geometry in grids.items():
        area = project(geometry, transformer)
        patrol_count = patrols_in.get(grid_id, 0)
        share = length = 0.0
        if reach_tree is not None and line_tree is not None and area.area > 0:
            near = reach_tree.query(area, predicate="intersects")
            if len(near):
                covered = shapely.union_all(reach[near]).intersection(area)
                share = min(covered.area / area.area, 1.0)
            crossing = line_tree.query(area, predicate="intersects")
            length = float(sum(lines[i].intersection(area).length for i in crossing))
        result[grid_id] = GridCoverage(grid_id, patrol_count, share, length)
    return result


def covered_area(
    grid: BaseGeometry, patrols: list[Patrol], *, buffer_m: float
) -> BaseGeometry | None:
    """The part of `grid` within `buffer_m` of the tracks, in WGS-84 (for drawing)."""
    if not patrols:
        return None
    centre = grid.centroid
    transformer = local_metric(centre.x, centre.y)
    area = project(grid, transformer)
    reach = reach_of([project(p.line(), transformer) for p in patrols], buffer_m)
    covered = shapely.union_all(reach).intersection(area)
    if covered.is_empty:
        return None

    def back(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1], direction="INVERSE")
        return np.column_stack([x, y])

    return shapely.transform(covered, back)
