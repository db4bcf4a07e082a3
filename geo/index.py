"""Point → grid assignment: one STRtree built when grids load, queried with whole arrays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

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
        lon = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
        lat = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
        if lon.shape != lat.shape:
            raise ValueError(f"lon and lat differ in length: {lon.size} != {lat.size}")
        result = np.empty(lon.size, dtype=np.int64)
        workers = _usable_cpus() if max_workers is None else max_workers
        if lon.size <= PARALLEL_THRESHOLD or workers <= 1:
            self._assign_into(lon, lat, result)
            return result
        # Shapely releases the GIL while GEOS builds points and queries the tree, so chunks
        # run in parallel; a few chunks per worker even out uneven chunks.
        chunk = max(_MIN_CHUNK, -(-lon.size // (workers * 4)))
        slices = [slice(start, start + chunk) for start in range(0, lon.size, chunk)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._assign_into, lon[s], lat[s], result[s]) for s in slices]
            for future in futures:
                future.result()
        return result

    def _assign_into(
        self,
        lon: npt.NDArray[np.float64],
        lat: npt.NDArray[np.float64],
        out: npt.NDArray[np.int64],
    ) -> None:
        finite = np.isfinite(lon) & np.isfinite(lat)
        all_finite = bool(finite.all())
        if all_finite:
            points = shapely.points(lon, lat)
        else:
            points = shapely.points(lon[finite], lat[finite])
        point_index, rank = self._tree.query(points, predicate="intersects")

        no_grid_rank = len(self._id_by_rank) - 1
        best_rank = np.full(len(points), no_grid_rank, dtype=np.int64)
        if point_index.size:
            # GEOS reports hits point by point; sort only if that ever stops being true.
            if point_index.size > 1 and np.any(point_index[1:] < point_index[:-1]):
                order = np.lexsort((rank, point_index))
                point_index, rank = point_index[order], rank[order]
            starts = np.flatnonzero(np.r_[True, point_index[1:] != point_index[:-1]])
            best_rank[point_index[starts]] = np.minimum.reduceat(rank, starts)

        if all_finite:
            out[:] = self._id_by_rank[best_rank]
        else:
            out[:] = NO_GRID
            out[finite] = self._id_by_rank[best_rank]
