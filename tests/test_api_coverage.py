"""Patrol coverage (每日双巡): patrols cut at pauses, the area within 50 m of the tracks in
metres, home visits against residents due one; as pure functions and over the API."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from gridwatch.maps.coverage import covered_area, grid_coverage, low_accuracy, split_patrols
from gridwatch.simulators.district import build_sample_district
from tests.support.api import GRID_A, GRID_B, NOW, SHANGHAI, reason
from tests.support.databases import count_rows
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

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


def test_low_accuracy_is_worse_than_the_limit_and_unknown_is_not():
    flags = low_accuracy([None, float("nan"), 0.0, 35.0, 200.0, 200.5, 5000.0], 200.0)
    assert flags.tolist() == [False, False, False, False, False, True, True]
    assert bool(low_accuracy(350, 200.0)) and not bool(low_accuracy(None, 200.0))


def _android(user: str, p: Point, tst: int, acc: int) -> tuple[str, dict]:
    """A location as OwnTracks for Android publishes it (fields gridwatch ignores included)."""
    return "phone", {
        "_type": "location", "_id": "8c1f2a7e", "acc": acc, "alt": 1052, "batt": 78, "bs": 1,
        "conn": "m", "created_at": tst + 1, "lat": round(p.y, 7), "lon": round(p.x, 7), "m": 1,
        "t": "p", "tid": user[-2:], "tst": tst, "vac": 12, "vel": 4,
        "topic": f"owntracks/{user}/phone",
    }  # fmt: skip


def _ios(user: str, p: Point, tst: int, acc: int) -> tuple[str, dict]:
    """A location as OwnTracks for iOS publishes it."""
    return "iPhone", {
        "_type": "location", "BSSID": "a4:2b:b0:11:22:33", "SSID": "CMCC-5G", "acc": acc,
        "alt": 1050, "batt": 64, "bs": 2, "cog": 90, "conn": "w", "created_at": tst,
        "inregions": ["居委会"], "inrids": ["5f3a9c"], "lat": p.y, "lon": p.x, "m": 2, "p": 89.7,
        "t": "u", "tid": user[-2:], "topic": f"owntracks/{user}/iPhone", "tst": tst, "vac": 10,
        "vel": 1,
    }  # fmt: skip


def test_fixes_worse_than_the_accuracy_limit_are_stored_but_are_no_coverage(
    http, seeded_url, mqtt_url, start_worker, publish, tmp_path
):
    settings = make_settings(tmp_path, seeded_url, mqtt_url)
    prefix, owntracks = settings.topic_prefix, f"ot{settings.topic_prefix}"
    settings = settings.model_copy(update={"owntracks_topic": owntracks})
    assert settings.owntracks_max_accuracy_m == 200.0
    running = start_worker(settings)
    grid = next(g for g in build_sample_district().grids if g.code == GRID_B)
    start = grid.geometry.representative_point()
    walk = [Point(start.x + 0.00002 * k, start.y) for k in range(20)]
    walk = [p for p in walk if grid.geometry.contains(p)]
    assert len(walk) >= 10
    # A day of its own, well inside the ingest window and away from the sample day.
    day = datetime.now(SHANGHAI).date() - timedelta(days=3)
    day = day - timedelta(days=1) if day == NOW.date() else day
    t0 = int(datetime.combine(day, time(10), SHANGHAI).timestamp())

    def gw_app(user: str, p: Point, tst: int, acc: int) -> tuple[str, dict]:
        return "", {"ts": tst, "lat": p.y, "lon": p.x, "accuracy_m": acc}

    def patrol(app, user: str, acc: int) -> None:
        stored = running.stats.stored + len(walk)
        for n, p in enumerate(walk):
            device, body = app(user, p, t0 + 30 * n, acc)
            topic = f"{owntracks}/{user}/{device}" if device else f"{prefix}/patrol/{user}"
            publish(topic, body)
        publish.flush()
        wait_for(lambda: running.stats.stored >= stored, what=f"{stored} check-ins stored")

    def grid_b() -> dict:
        items = http["admin"].get("/coverage", params={"date": day.isoformat()}).json()["items"]
        return next(item for item in items if item["grid"] == GRID_B)

    # Android, iOS and the gw app, each a whole patrol of fixes 350 m wide: one rule for all.
    for app, user in ((_android, "W-LOW-A"), (_ios, "W-LOW-I"), (gw_app, "W-LOW-G")):
        patrol(app, user, 350)
    stored = count_rows(seeded_url, "patrol_checkins", "worker_id LIKE %s AND accuracy_m = 350",
                        ("W-LOW-%",))  # fmt: skip
    assert stored == 3 * len(walk), "kept, not dropped"
    assert (grid_b()["patrols"], grid_b()["covered_share"], grid_b()["track_m"]) == (0, 0.0, 0.0)

    patrol(_ios, "W-GOOD", 200)  # at the limit: counted
    counted = grid_b()
    assert counted["patrols"] == 1 and counted["covered_share"] > 0 and counted["track_m"] > 0
