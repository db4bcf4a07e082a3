"""Point → grid assignment: one STRtree per grid system built when grids load, queried with
whole arrays; a batch is placed in every system in one pass (its points made once)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gridwatch.model.vocabulary import GRID_SYSTEMS, MANAGEMENT

NO_GRID = -1

# Below this many points a single query beats the cost of handing chunks to threads.
PARALLEL_THRESHOLD = 50_000
_MIN_CHUNK = 25_000


def _usable_cpus() -> int:
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class GridIndex:
    """Grids in an STRtree; `assign` places arrays of lon/lat points in them."""

    def __init__(
        self,
        ids: Sequence[int],
        codes: Sequence[str],
        geometries: Sequence[BaseGeometry],
    ) -> None:
        """Build the index; ids and codes must be unique, geometries in WGS-84 lon/lat."""
        if not len(ids) == len(codes) == len(geometries):
            raise ValueError(
                f"ids, codes and geometries differ in length: "
                f"{len(ids)}, {len(codes)}, {len(geometries)}"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("grid ids are not unique")
        if len(set(codes)) != len(codes):
            raise ValueError("grid codes are not unique")
        # The tree holds the grids in code order, so a tree index is the grid's rank and the
        # tie-break on a shared border (smallest code wins) is a minimum over tree indices.
        order = sorted(range(len(codes)), key=codes.__getitem__)
        self._id_by_rank = np.array([ids[i] for i in order] + [NO_GRID], dtype=np.int64)
        self._code_by_id = {int(ids[i]): codes[i] for i in order}
        self._tree = shapely.STRtree([geometries[i] for i in order])
        # GEOS builds the tree on the first query; do it now, before threads share it.
        self._tree.query(shapely.points(0.0, 0.0))

    @classmethod
    def empty(cls) -> GridIndex:
        """An index with no grids: every point is assigned NO_GRID (-1)."""
        return cls([], [], [])

    def __len__(self) -> int:
        return len(self._code_by_id)

    def code_of(self, grid_id: int) -> str:
        """The code of the grid with this id; KeyError if the index does not hold it."""
        return self._code_by_id[int(grid_id)]

    def assign(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike, *, max_workers: int | None = None
    ) -> npt.NDArray[np.int64]:
        """Grid id per point (-1 outside every grid or NaN); on a border the smallest code wins.

        Large inputs are split over `max_workers` threads (default: the usable CPUs).
        """
        x, y = _coordinates(lon, lat)
        result = np.empty(x.size, dtype=np.int64)

        def fill(part: slice) -> None:
            self.assign_points(_Points.of(x[part], y[part]), result[part])

        _in_chunks(x.size, max_workers, fill)
        return result

    def assign_points(self, points: _Points, out: npt.NDArray[np.int64]) -> None:
        """Fill `out` with the grid id of each of `points` (made once for several indexes)."""
        if not len(self._code_by_id):
            out[:] = NO_GRID
            return
        point_index, rank = self._tree.query(points.geometries, predicate="intersects")

        no_grid_rank = len(self._id_by_rank) - 1
        best_rank = np.full(len(points.geometries), no_grid_rank, dtype=np.int64)
        if point_index.size:
            # GEOS reports hits point by point; sort only if that ever stops being true.
            if point_index.size > 1 and np.any(point_index[1:] < point_index[:-1]):
                order = np.lexsort((rank, point_index))
                point_index, rank = point_index[order], rank[order]
            starts = np.flatnonzero(np.r_[True, point_index[1:] != point_index[:-1]])
            best_rank[point_index[starts]] = np.minimum.reduceat(rank, starts)

        if points.finite is None:
            out[:] = self._id_by_rank[best_rank]
        else:
            out[:] = NO_GRID
            out[points.finite] = self._id_by_rank[best_rank]


class GridSystems:
    """One GridIndex per grid system (model.vocabulary.GRID_SYSTEMS; a system with no grids
    imported has an empty one). `assign` places a batch in every system in the same pass:
    the points are made once and each system's tree is queried with them, so a system with no
    grids costs nothing and the management system's answer is the one it gives alone."""

    def __init__(self, indexes: Mapping[str, GridIndex]) -> None:
        unknown = set(indexes) - set(GRID_SYSTEMS)
        if unknown:
            raise ValueError(f"unknown grid systems: {', '.join(sorted(unknown))}")
        self._indexes: dict[str, GridIndex] = {
            name: indexes.get(name) or GridIndex.empty() for name in GRID_SYSTEMS
        }

    def __getitem__(self, system: str) -> GridIndex:
        return self._indexes[system]

    def __len__(self) -> int:
        """Grids over all systems."""
        return sum(len(index) for index in self._indexes.values())

    @property
    def management(self) -> GridIndex:
        return self._indexes[MANAGEMENT]

    def assign(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike, *, max_workers: int | None = None
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Grid id per point in each system (-1 outside every grid of it), as GridIndex.assign."""
        x, y = _coordinates(lon, lat)
        results: dict[str, npt.NDArray[np.int64]] = {
            name: np.empty(x.size, dtype=np.int64) for name in self._indexes
        }
        used = [(name, index) for name, index in self._indexes.items() if len(index)]
        for name, index in self._indexes.items():
            if not len(index):
                results[name][:] = NO_GRID

        def fill(part: slice) -> None:
            points = _Points.of(x[part], y[part])
            for name, index in used:
                index.assign_points(points, results[name][part])

        if used:
            _in_chunks(x.size, max_workers, fill)
        return results


@dataclass(frozen=True, slots=True)
class _Points:
    """Shapely points of the finite positions of a batch; `finite` None when all are."""

    geometries: npt.NDArray[np.object_]
    finite: npt.NDArray[np.bool_] | None

    @classmethod
    def of(cls, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> _Points:
        finite = np.isfinite(lon) & np.isfinite(lat)
        if bool(finite.all()):
            return cls(shapely.points(lon, lat), None)
        return cls(shapely.points(lon[finite], lat[finite]), finite)


def _coordinates(
    lon: npt.ArrayLike, lat: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    x = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
    y = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"lon and lat differ in length: {x.size} != {y.size}")
    return x, y


def _in_chunks(size: int, max_workers: int | None, fill: Callable[[slice], None]) -> None:
    """`fill` over [0, size): at once, or for large inputs in chunks on `max_workers` threads
    (default: the usable CPUs). Shapely releases the GIL while GEOS builds points and queries
    a tree, so chunks run in parallel; a few chunks per worker even out uneven chunks."""
    workers = _usable_cpus() if max_workers is None else max_workers
    if size <= PARALLEL_THRESHOLD or workers <= 1:
        fill(slice(0, size))
        return
    chunk = max(_MIN_CHUNK, -(-size // (workers * 4)))
    slices = [slice(start, start + chunk) for start in range(0, size, chunk)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fill, s) for s in slices]
        for future in futures:
            future.result()
