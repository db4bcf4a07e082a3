"""Patrol coverage (每日双巡): patrols cut at pauses, the area within 50 m of the tracks in
metres, home visits against residents due one; as pure functions and over the API."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from api_support import (
    GRID_A,
    GRID_B,
    NOW,
    http_fixture,  # noqa: F401
    module_server_fixture,  # noqa: F401
    module_tokens_fixture,  # noqa: F401
    reason,
    seeded_url_fixture,  # noqa: F401
)
from shapely.geometry import MultiPolygon, Polygon

from gridwatch.maps.coverage import covered_area, grid_coverage, split_patrols

LON0, LAT0 = 109.905, 40.65
M_PER_DEG_LAT = 111_047.0
M_PER_DEG_LON = 84_579.0  # at 40.65°N


def _lonlat(x_m, y_m):
    return LON0 + np.asarray(x_m) / M_PER_DEG_LON, LAT0 + np.asarray(y_m) / M_PER_DEG_LAT


def _square_grid(size_m: float = 200.0) -> MultiPolygon:
    xs, ys = _lonlat([0, size_m, size_m, 0], [0, 0, size_m, size_m])
    return MultiPolygon([Polygon(list(zip(xs, ys, strict=True)))])


def _walk(x_m, y_m, start_s=0.0, every_s=30.0, worker="W1", grid=1):
    lon, lat = _lonlat(x_m, y_m)
    n = len(lon)
    return (
        np.array([worker] * n, dtype=object),
        start_s + every_s * np.arange(n),
        lon,
        lat,
        np.full(n, grid),
    )


def _join(*walks):
    return tuple(np.concatenate(parts) for parts in zip(*walks, strict=True))


def test_a_pause_longer_than_the_gap_starts_a_new_patrol():
    morning = _walk(np.linspace(0, 200, 20), np.full(20, 100.0))
    afternoon = _walk(np.linspace(200, 0, 20), np.full(20, 100.0), start_s=6 * 3600)
    other = _walk(np.full(5, 50.0), np.linspace(0, 200, 5), worker="W2")
    patrols = split_patrols(*_join(morning, afternoon, other), gap_s=1800)
    assert [(p.worker_id, len(p.lon)) for p in patrols] == [("W1", 20), ("W1", 20), ("W2", 5)]
    one = split_patrols(*_join(morning), gap_s=1800)
    assert len(one) == 1 and one[0].end_s - one[0].start_s == 19 * 30
    assert split_patrols(*(np.array([]) for _ in range(5)), gap_s=1800) == []


def test_covered_share_is_measured_in_metres():
    grid = _square_grid(200.0)
    # A walk straight through the middle covers a 100 m band: half of a 200 m square.
    middle = split_patrols(*_walk(np.linspace(-20, 220, 49), np.full(49, 100.0)), gap_s=1800)
    coverage = grid_coverage({1: grid}, middle, buffer_m=50.0)[1]
    assert coverage.covered_share == pytest.approx(0.5, abs=0.01)
    assert coverage.track_m == pytest.approx(200.0, rel=0.01)
    assert coverage.patrols == 1
    # A walk looping back over itself covers no more than once.
    loop_x = np.concatenate([np.linspace(-20, 220, 49), np.linspace(220, -20, 49)] * 3)
    loop = split_patrols(*_walk(loop_x, np.full(len(loop_x), 100.0)), gap_s=1800)
    assert grid_coverage({1: grid}, loop, buffer_m=50.0)[1].covered_share == pytest.approx(
        0.5, abs=0.01
    )
    # Nobody came: nothing covered; a walk elsewhere covers nothing either.
    far = split_patrols(*_walk(np.linspace(1000, 1200, 9), np.full(9, 0.0), grid=2), gap_s=1800)
    assert grid_coverage({1: grid}, far, buffer_m=50.0)[1].covered_share == 0.0
    assert grid_coverage({1: grid}, [], buffer_m=50.0)[1].patrols == 0
    drawn = covered_area(grid, middle, buffer_m=50.0)
    assert drawn.area / grid.area == pytest.approx(0.5, abs=0.01)
    assert shapely.within(drawn, grid.buffer(1e-9))


def test_coverage_of_the_sample_day(http):
    day = NOW.date().isoformat()
    body = http["admin"].get("/coverage", params={"date": day}).json()
    by_grid = {item["grid"]: item for item in body["items"]}
    assert len(by_grid) == 110 and body["buffer_m"] == 50.0
    patrolled = [g for g in by_grid.values() if g["patrols"] >= 2]
    assert len(patrolled) >= 100, "每日双巡: two rounds in (nearly) every grid"
    assert all(0 < g["covered_share"] <= 1 for g in patrolled)
    assert sum(g["visits_made"] for g in by_grid.values()) > 200
    assert all(g["due_visited"] <= min(g["visits_made"], g["residents_due"]) for g in patrolled)
    community = http["admin"].get("/coverage", params={"date": day, "level": "community"}).json()
    assert sum(c["visits_made"] for c in community["items"]) == sum(
        g["visits_made"] for g in by_grid.values()
    )
    nothing = http["admin"].get("/coverage", params={"date": "2026-01-01"}).json()
    assert {g["patrols"] for g in nothing["items"]} == {0}
    bad = http["admin"].get("/coverage", params={"date": "tomorrow"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in reason(bad)


def test_a_worker_sees_the_coverage_and_tracks_of_their_own_grid(http):
    day = NOW.date().isoformat()
    own = http["worker_a"].get("/coverage", params={"date": day}).json()["items"]
    assert [item["grid"] for item in own] == [GRID_A]
    assert http["worker_a"].get("/coverage", params={"grid": GRID_B}).status_code == 404
    tracks = http["worker_a"].get("/coverage/tracks", params={"date": day}).json()["features"]
    assert tracks and {t["properties"]["worker_id"] for t in tracks} >= {"W001"}
    everyone = http["admin"].get("/coverage/tracks", params={"date": day}).json()["features"]
    assert len(everyone) >= 220


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2026-02-30", "x"])
@pytest.mark.parametrize("path", ["/coverage", "/coverage/tracks", "/maps/coverage"])
def test_a_day_out_of_range_is_refused_with_the_reason(http, path, day):
    response = http["admin"].get(path, params={"date": day})
    assert response.status_code == 422, (path, day, response.status_code)
    assert day in reason(response) and "YYYY-MM-DD" in reason(response)
