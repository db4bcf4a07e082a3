"""Benchmark point → grid assignment against a bare STRtree query.

    python bench/geo.py [--points 1000000] [--polygons 10000] [--repeat 3]

Both timings include turning the lon/lat arrays into shapely points (GridIndex.assign must
do that too), so the ratio is assign's overhead (NaN check, tie-break, chunking) against the
raw query, minus whatever the threads win back. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import shapely

from gridwatch.geo.index import GridIndex

# A Baotou-sized box in lon/lat, so coordinates look like the real thing.
WEST, SOUTH, EAST, NORTH = 109.70, 40.50, 110.10, 40.80


def jittered_voronoi(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` polygons tiling the box: Voronoi cells of jittered lattice seeds."""
    side = math.ceil(math.sqrt(count))
    xs, ys = np.meshgrid(np.arange(side), np.arange(side))
    seeds = np.column_stack([xs.ravel(), ys.ravel()])[:count].astype(float)
    seeds += rng.uniform(0.1, 0.9, seeds.shape)
    seeds[:, 0] = WEST + seeds[:, 0] / side * (EAST - WEST)
    seeds[:, 1] = SOUTH + seeds[:, 1] / side * (NORTH - SOUTH)
    frame = shapely.box(WEST, SOUTH, EAST, NORTH)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    return shapely.intersection(cells, frame)


def sample_points(
    polygons: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mostly uniform points (some outside the box), 2 % exact vertices, 2 % edge midpoints."""
    coords = shapely.get_coordinates(shapely.boundary(polygons))
    n_vertex = count // 50
    n_edge = count // 50
    n_uniform = count - n_vertex - n_edge
    margin = 0.01
    uniform = np.column_stack(
        [
            rng.uniform(WEST - margin, EAST + margin, n_uniform),
            rng.uniform(SOUTH - margin, NORTH + margin, n_uniform),
        ]
    )
    vertices = coords[rng.integers(0, len(coords), n_vertex)]
    starts = rng.integers(0, len(coords) - 1, n_edge)
    midpoints = (coords[starts] + coords[starts + 1]) / 2.0
    points = np.concatenate([uniform, vertices, midpoints])
    rng.shuffle(points)
    return points[:, 0].copy(), points[:, 1].copy()


def best_of(repeat: int, run) -> float:
    """Shortest wall time of `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Build the polygons and points, time both ways, print rates and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--polygons", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    polygons = jittered_voronoi(args.polygons, rng)
    lon, lat = sample_points(polygons, args.points, rng)
    codes = [f"G{i:06d}" for i in rng.permutation(len(polygons))]
    index = GridIndex(list(range(len(polygons))), codes, list(polygons))
    tree = shapely.STRtree(polygons)

    def raw_query():
        return tree.query(shapely.points(lon, lat), predicate="intersects")

    hits = raw_query().shape[1]
    raw_times, assign_times, single_times = [], [], []
    # Interleaved so that a noisy neighbour on the machine hurts all three alike.
    for _ in range(args.repeat):
        raw_times.append(best_of(1, raw_query))
        assign_times.append(best_of(1, lambda: index.assign(lon, lat)))
        single_times.append(best_of(1, lambda: index.assign(lon, lat, max_workers=1)))
    raw_s, assign_s, single_s = min(raw_times), min(assign_times), min(single_times)

    assigned = index.assign(lon, lat)
    if not np.array_equal(assigned, index.assign(lon, lat, max_workers=1)):
        raise SystemExit("threaded and single-threaded grid assignment disagree")
    n = args.points
    print(f"{len(polygons)} polygons, {n} points ({hits} hits, {(assigned >= 0).sum()} in a grid)")
    print(f"raw STRtree.query incl. shapely.points, one call: {n / raw_s:12,.0f} points/s")
    print(f"GridIndex.assign, one thread:                    {n / single_s:12,.0f} points/s")
    print(f"GridIndex.assign, threaded (default):            {n / assign_s:12,.0f} points/s")
    summary = {
        "points_per_s": round(n / assign_s),
        "raw_points_per_s": round(n / raw_s),
        "ratio": round(raw_s / assign_s, 3),
        "single_thread_points_per_s": round(n / single_s),
        "single_thread_ratio": round(raw_s / single_s, 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
