"""Every message kind through the real broker into the real database."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from conftest import count_rows, make_settings, wait_for

from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.simulators.district import build_sample_district

TS = "2026-11-23T08:15:00+08:00"


@pytest.fixture(scope="module")
def district():
    return build_sample_district()


@pytest.fixture
def district_settings(tmp_path, district_database_url, mqtt_url):
    # Its own OwnTracks base, so points of other runs on a shared broker stay out.
    settings = make_settings(tmp_path, district_database_url, mqtt_url)
    return settings.model_copy(update={"owntracks_topic": f"ot{settings.topic_prefix}"})


def _grid_code_of(url: str, table: str, where: str, params: tuple) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT g.code FROM {table} t LEFT JOIN grids g ON g.id = t.grid_id WHERE t.{where}",
            params,
        ).fetchone()
    assert row is not None, f"no row in {table} where {where} {params}"
    return row[0]


def test_every_kind_is_stored_with_its_grid(district, district_settings, start_worker, publish):
    s = district_settings
    url = s.database_url
    grid = district.grids[17]
    inside = grid.geometry.representative_point()
    gcj_lon, gcj_lat = wgs84_to_gcj02(inside.x, inside.y)
    hazard_id = str(uuid.uuid4())
    running = start_worker(s)

    publish(f"{s.topic_prefix}/meter/M-1", {"ts": TS, "power_w": 120.5, "energy_kwh": 1234.5})
    publish(f"{s.topic_prefix}/sensor/S-1", {"ts": 1763856900, "event": "curtain_open"})
    publish(f"{s.topic_prefix}/patrol/W-1", {"ts": TS, "lat": inside.y, "lon": inside.x})
    publish(
        f"{s.topic_prefix}/patrol/W-2",
        {"ts": TS, "lat": gcj_lat, "lon": gcj_lon, "crs": "gcj02", "kind": "patrol"},
    )
    publish(
        f"{s.topic_prefix}/hazard/W-1",
        {"id": hazard_id, "ts": TS, "lat": gcj_lat, "lon": gcj_lon, "crs": "gcj02",
         "category": "structural", "severity": "high", "description": "墙体开裂"},
    )  # fmt: skip
    publish(
        f"{s.owntracks_topic}/W-3/phone",
        {"_type": "location", "lat": inside.y, "lon": inside.x, "tst": 1763856900},
    )
    publish(f"{s.owntracks_topic}/W-3/phone", {"_type": "transition", "event": "enter"})
    publish(f"{s.topic_prefix}/patrol/W-4", {"ts": TS, "lat": 0.5, "lon": 0.5})
    publish.flush()
    wait_for(lambda: running.stats.received >= 8, what="8 messages ingested")

    assert count_rows(url, "meter_readings", "meter_id = %s AND power_w = 120.5", ("M-1",)) == 1
    assert count_rows(url, "sensor_events", "event = 'curtain_open'") == 1
    for worker in ("W-1", "W-2", "W-3"):
        assert _grid_code_of(url, "patrol_checkins", "worker_id = %s", (worker,)) == grid.code
    # A point outside every grid is kept, without a grid.
    assert _grid_code_of(url, "patrol_checkins", "worker_id = %s", ("W-4",)) is None
    assert _grid_code_of(url, "hazard_reports", "id = %s", (hazard_id,)) == grid.code
    assert count_rows(url, "hazard_events", "hazard_id = %s AND to_status = 'reported'",
                      (hazard_id,)) == 1  # fmt: skip
    assert running.stats.ignored == 1
    assert count_rows(url, "dead_letters") == 0
