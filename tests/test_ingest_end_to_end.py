"""Every message kind through the real broker into the real database."""

from __future__ import annotations

import logging
import time
import uuid

import psycopg
import pytest

from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.simulators.district import build_sample_district
from tests.support.databases import count_rows
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

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


def _owntracks_other_types(tst: int) -> list[dict]:
    """Each OwnTracks `_type` gridwatch does not store, shaped as the apps send it (the
    booklet's JSON format), once each; `lwt` twice (the broker publishes the will of each
    ungraceful disconnect)."""
    waypoint = {"_type": "waypoint", "desc": "居委会", "lat": 40.651, "lon": 109.905,
                "rad": 100, "tst": tst - 86400, "rid": "5f3a9c"}  # fmt: skip
    return [
        {"_type": "lwt", "tst": tst - 600},
        {"_type": "lwt", "tst": tst - 60},
        {"_type": "transition", "wtst": tst - 86400, "lat": 40.651, "lon": 109.905,
         "tst": tst, "acc": 14, "tid": "W5", "event": "enter", "desc": "居委会", "t": "c",
         "rid": "5f3a9c"},
        waypoint,
        {"_type": "waypoints", "waypoints": [waypoint]},
        {"_type": "card", "name": "王丽", "face": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAf",
         "tid": "W5"},
        {"_type": "status", "android": {"wifi": 1, "ps": 0, "bo": 1, "loc": 0, "hib": 0}},
        {"_type": "cmd", "action": "reportLocation"},
        {"_type": "steps", "tst": tst, "steps": 4312, "from": tst - 3600, "to": tst},
        {"_type": "beacon", "desc": "门禁", "uuid": "CA271EAE-5FA8-4E80-8F08-2A302A95A959",
         "major": 1, "minor": 2, "tst": tst, "acc": 3, "rssi": -60, "prox": 1},
        {"_type": "configuration", "mode": 0, "host": "broker.example", "port": 8883},
        {"_type": "request", "request": "tour"},
        {"_type": "location-v2", "lat": 40.651, "lon": 109.905, "tst": tst},
    ]  # fmt: skip


def test_each_ignored_message_is_counted_under_why(
    district_settings, start_worker, publish, caplog
):
    caplog.set_level(logging.INFO, logger="gridwatch.ingest.worker")
    s = district_settings
    tst = int(time.time()) - 120
    running = start_worker(s)
    others = _owntracks_other_types(tst)
    for payload in others:
        publish(f"{s.owntracks_topic}/W-5/phone", payload)
    publish(f"{s.topic_prefix}/sensor/S-5", b"")  # how MQTT clears a retained message
    publish(f"{s.owntracks_topic}/W-5/phone", b"")
    publish.flush()
    sent = len(others) + 2
    wait_for(lambda: running.stats.received >= sent, what=f"{sent} messages ingested")

    kinds = ("transition", "waypoint", "waypoints", "card", "status", "cmd", "steps", "beacon")
    assert running.stats.ignored_by == {
        "owntracks lwt": 2,
        **{f"owntracks {kind}": 1 for kind in (*kinds, "configuration", "request")},
        "owntracks unknown _type": 1,
        "empty (retained clear)": 2,
    }
    assert running.stats.ignored == sent
    assert count_rows(s.database_url, "dead_letters") == 0
    assert count_rows(s.database_url, "patrol_checkins") == 0
    running.stop()  # the worker's last report line says what it ignored, and why
    report = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest:")]
    assert f"{sent} ignored {{'owntracks lwt': 2, " in report[-1]
