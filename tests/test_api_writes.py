"""Writes: check-ins and hazards through the MQTT parsers (same reasons for the same bad
input), idempotent hazards, alert acknowledge/resolve, absences, body limits."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import orjson
import psycopg
import pytest
import shapely

from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.ingest.hazard import hazard_from_dict
from gridwatch.ingest.patrol import checkin_from_dict
from gridwatch.ingest.payload import InvalidPayload, ParseContext, decode_object
from tests.support.api import GRID_A, GRID_B, NOW, reason, resident_of


@pytest.fixture(scope="module")
def shapes(seeded_url):
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute("SELECT code, geometry FROM grids WHERE level = 'grid'").fetchall()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def _inside(shapes, code: str) -> tuple[float, float]:
    point = shapes[code].representative_point()
    return point.x, point.y


def _road_report(shapes, code: str) -> dict:
    """A new hazard report, a road of low severity, at a point inside grid `code`."""
    lon, lat = _inside(shapes, code)
    return {"id": str(uuid.uuid4()), "lat": lat, "lon": lon, "category": "road", "severity": "low"}


def _mqtt_reason(kind: str, payload: bytes, module_server) -> str:
    """What the MQTT parser says about a payload: the HTTP reason must be the same words."""
    settings = module_server.state.settings
    ctx = ParseContext(
        received_at=NOW,
        tz=settings.zone,
        max_future=timedelta(seconds=settings.max_future_s),
        max_age=timedelta(days=settings.retention_days),
    )
    with pytest.raises(InvalidPayload) as caught:
        data = decode_object(payload, ctx)
        (checkin_from_dict if kind == "checkin" else hazard_from_dict)("W001", data, ctx)
    return str(caught.value)


def test_checkin_is_stored_in_its_grid_once(http, shapes, seeded_url):
    lon, lat = _inside(shapes, GRID_A)
    body = {"ts": "2026-11-23T11:30:00+08:00", "lat": lat, "lon": lon, "accuracy_m": 8}
    first = http["worker_a"].post("/checkins", json=body)
    assert first.status_code == 201, first.text
    feature = first.json()
    assert feature["properties"]["grid"] == GRID_A
    assert feature["properties"]["worker_id"] == "W001"
    assert first.headers["location"].endswith(feature["id"])
    again = http["worker_a"].post("/checkins", json=body)
    assert again.status_code == 200 and again.json()["id"] == feature["id"]
    with psycopg.connect(seeded_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM patrol_checkins WHERE worker_id = 'W001' AND observed_at = %s",
            ("2026-11-23T11:30:00+08:00",),
        ).fetchone()[0]
    assert stored == 1
    # No ts: the time of receipt, as on MQTT; read back through the layer.
    now = http["worker_a"].post("/checkins", json={"lat": lat, "lon": lon}).json()
    assert datetime.fromisoformat(now["properties"]["observed_at"]) == NOW
    fetched = http["worker_a"].get(f"/collections/checkins/items/{now['id']}")
    assert fetched.status_code == 200


def test_a_fix_worse_than_the_accuracy_limit_is_stored_and_flagged(http, shapes):
    lon, lat = _inside(shapes, GRID_A)
    flags = {}
    for minute, accuracy in ((32, 350), (33, 200), (34, None)):
        body = {"ts": f"2026-11-23T11:{minute}:00+08:00", "lat": lat, "lon": lon}
        posted = http["worker_a"].post("/checkins", json={**body, "accuracy_m": accuracy})
        assert posted.status_code == 201, posted.text
        fetched = http["worker_a"].get(f"/collections/checkins/items/{posted.json()['id']}")
        assert fetched.json()["properties"] == posted.json()["properties"]
        flags[accuracy] = posted.json()["properties"]["low_accuracy"]
    assert flags == {350: True, 200: False, None: False}  # the default limit is 200 m


def test_gcj02_checkin_is_converted_once_on_the_way_in(http, shapes):
    lon, lat = _inside(shapes, GRID_A)
    glon, glat = wgs84_to_gcj02(lon, lat)
    body = {"ts": "2026-11-23T11:31:00+08:00", "lat": glat, "lon": glon, "crs": "gcj02"}
    feature = http["worker_a"].post("/checkins", json=body).json()
    stored_lon, stored_lat = feature["geometry"]["coordinates"]
    assert abs(stored_lon - lon) < 1e-6 and abs(stored_lat - lat) < 1e-6
    assert feature["properties"]["grid"] == GRID_A


@pytest.mark.parametrize(
    "payload",
    [
        b'{"lat": 95, "lon": 109.9}',
        b'{"lat": 40.6}',
        b'{"lat": 40.6, "lon": 109.9, "kind": "visit"}',
        b'{"lat": 40.6, "lon": 109.9, "kind": "dance"}',
        b'{"lat": 40.6, "lon": 109.9, "ts": "2031-01-01T00:00:00Z"}',
        b'{"lat": 40.6, "lon": 109.9, "ts": 1700000000000}',
        b'{"lat": "forty", "lon": 109.9}',
        b'{"lat": 40.6, "lon": 109.9, "crs": "utm50n"}',
        b"not json",
        b"[1, 2]",
        b"",
        b'{"lat": 40.6, "lon": 109.9, "note": "\\u0000"}',
        b'{"lat": 40.6, "lon": 109.9, "needs": "\xe4\xb9\xb0\xe7\xb1\xb3"}',
        b'{"lat": 40.6, "lon": 109.9, "kind": "visit", "resident_id": "R-1", "needs": 7}',
    ],
)
def test_checkin_refusals_are_the_mqtt_parsers_words(http, module_server, payload):
    response = http["worker_a"].post(
        "/checkins", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert reason(response) == _mqtt_reason("checkin", payload, module_server)


@pytest.mark.parametrize(
    "change",
    [
        {"id": "not-a-uuid"},
        {"category": "aliens"},
        {"severity": "apocalyptic"},
        {"photo_urls": ["ftp://x.example/a.jpg"]},
        {"photo_urls": ["https://x.example/\na.jpg"]},
        {"description": "x" * 5000},
        {"lat": None},
    ],
)
def test_hazard_refusals_are_the_mqtt_parsers_words(http, module_server, shapes, change):
    body = {**_road_report(shapes, GRID_A), **change}
    body = {k: v for k, v in body.items() if v is not None}
    payload = orjson.dumps(body)
    response = http["worker_a"].post(
        "/hazards", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert reason(response) == _mqtt_reason("hazard", payload, module_server)


def test_who_a_report_is_from(http, shapes):
    lon, lat = _inside(shapes, GRID_A)
    body = {"ts": "2026-11-23T11:32:00+08:00", "lat": lat, "lon": lon}
    as_other = http["worker_a"].post("/checkins", json={**body, "worker_id": "W002"})
    assert as_other.status_code == 403 and "W001" in reason(as_other)
    by_app = http["device"].post("/checkins", json={**body, "worker_id": "W002"})
    assert by_app.status_code == 201 and by_app.json()["properties"]["worker_id"] == "W002"
    bad_id = http["device"].post("/checkins", json={**body, "worker_id": "a/b"})
    assert bad_id.status_code == 422 and "'/'" in reason(bad_id)
    plain = http["device"].post("/checkins", json=body)
    assert plain.json()["properties"]["worker_id"] == "app-gateway"


def _a_resident_of_each(url: str) -> tuple[str, str]:
    """A resident of grid A and one of grid B."""
    return resident_of(url, GRID_A), resident_of(url, GRID_B)


def test_a_visit_only_to_ones_own_residents(http, seeded_url, shapes):
    own, other = _a_resident_of_each(seeded_url)
    lon, lat = _inside(shapes, GRID_A)
    visit = {
        "lat": lat,
        "lon": lon,
        "kind": "visit",
        "status": "ok",
        "ts": "2026-11-23T11:40:00+08:00",
    }
    ok = http["worker_a"].post("/checkins", json={**visit, "resident_id": own, "needs": "买米"})
    assert ok.status_code == 201 and ok.json()["properties"]["needs"] == "买米"
    again = http["worker_a"].post("/checkins", json={**visit, "resident_id": own, "needs": "买米"})
    assert again.status_code == 200
    other_wish = {**visit, "resident_id": own, "needs": "买面"}
    assert http["worker_a"].post("/checkins", json=other_wish).status_code == 409
    stored = http["worker_a"].get(ok.headers["location"]).json()
    assert stored["properties"]["needs"] == "买米"
    refused = http["worker_a"].post("/checkins", json={**visit, "resident_id": other})
    assert refused.status_code == 404 and other in reason(refused)


def test_a_device_posts_a_visit_only_for_a_worker_of_the_residents_grid(http, seeded_url, shapes):
    own, other = _a_resident_of_each(seeded_url)
    lon, lat = _inside(shapes, GRID_A)
    visit = {"lat": lat, "lon": lon, "kind": "visit", "status": "ok", "worker_id": "W001"}
    device = http["device"]

    def post(second: int, **changes):
        return device.post(
            "/checkins", json={**visit, "ts": f"2026-11-23T11:42:{second:02d}+08:00", **changes}
        )

    assert post(1, resident_id=own).status_code == 201
    foreign = post(2, resident_id=other)
    assert foreign.status_code == 404 and other in reason(foreign)
    nobody = post(3, resident_id="R-NOBODY")
    assert nobody.status_code == 404 and "no resident 'R-NOBODY'" in reason(nobody)
    as_itself = {k: v for k, v in visit.items() if k != "worker_id"}
    unbound = device.post(
        "/checkins", json={**as_itself, "ts": "2026-11-23T11:42:04+08:00", "resident_id": own}
    )
    assert unbound.status_code == 403 and "has no grid" in reason(unbound)
    # The same worker and time with other content: refused, not answered with the first.
    clash = post(1, resident_id=own, status="concern")
    assert clash.status_code == 409, clash.text


def test_hazard_reports_are_idempotent_on_their_id(http, shapes, seeded_url):
    lon, lat = _inside(shapes, GRID_A)
    report = {
        "id": str(uuid.uuid4()),
        "ts": "2026-11-23T11:00:00+08:00",
        "lat": lat,
        "lon": lon,
        "category": "fire",
        "severity": "high",
        "description": "楼道堆放杂物",
        "photo_urls": ["https://photos.example/1.jpg"],
    }
    first = http["worker_a"].post("/hazards", json=report)
    assert first.status_code == 201, first.text
    properties = first.json()["properties"]
    assert properties["grid"] == GRID_A and properties["status"] == "reported"
    assert datetime.fromisoformat(properties["deadline_at"]) == NOW + timedelta(hours=24)
    retry = http["worker_a"].post("/hazards", json=report)
    assert retry.status_code == 200 and retry.json() == first.json()
    changed = http["worker_a"].post("/hazards", json={**report, "severity": "low"})
    assert changed.status_code == 409 and "different report" in reason(changed)
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM hazard_reports WHERE id = %s", (report["id"],)
        ).fetchone()[0]
        events = conn.execute(
            "SELECT action FROM hazard_events WHERE hazard_id = %s", (report["id"],)
        ).fetchall()
    assert rows == 1 and events == [("report",)]


def test_a_grid_worker_reports_hazards_in_their_own_grids(http, shapes):
    report = _road_report(shapes, GRID_B)
    refused = http["worker_a"].post("/hazards", json=report)
    assert refused.status_code == 403 and "outside the grids of worker 'W001'" in reason(refused)
    accepted = http["worker_b"].post("/hazards", json=report)
    assert accepted.status_code == 201
    # The id is taken now; worker A learns nothing about the stored report from a retry.
    lon_a, lat_a = _inside(shapes, GRID_A)
    clash = http["worker_a"].post("/hazards", json={**report, "lon": lon_a, "lat": lat_a})
    assert clash.status_code == 404 and reason(clash) == f"no hazard {report['id']}"
    assert GRID_B not in clash.text


def test_acknowledge_and_resolve_alerts(http, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        alert_id, resident = conn.execute(
            "SELECT a.id, a.resident_id FROM alerts a JOIN grids g ON g.id = a.grid_id "
            "WHERE a.status = 'open' ORDER BY a.id LIMIT 1"
        ).fetchone()
    duty = http["duty_street"]
    acked = duty.post(f"/alerts/{alert_id}/ack", json={"note": "calling her daughter"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["properties"]["status"] == "acknowledged"
    assert acked.json()["properties"]["acknowledged_by"] == "duty-street"
    twice = duty.post(f"/alerts/{alert_id}/ack", json={})
    assert twice.status_code == 409 and "not open" in reason(twice)
    done = duty.post(
        f"/alerts/{alert_id}/resolve", json={"reason": "saw her at home, all well", "checked": True}
    )
    assert done.status_code == 200 and done.json()["properties"]["status"] == "resolved"
    again = duty.post(f"/alerts/{alert_id}/resolve", json={"reason": "again"})
    assert again.status_code == 409 and "already resolved" in reason(again)
    with psycopg.connect(seeded_url) as conn:
        events = conn.execute(
            "SELECT action, actor FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
        ).fetchall()
        checks = conn.execute(
            "SELECT count(*) FROM resident_checks WHERE resident_id = %s AND alert_id = %s",
            (resident, alert_id),
        ).fetchone()[0]
    assert events[-2:] == [("acknowledged", "duty-street"), ("resolved", "duty-street")]
    assert checks == 1, "a check with the person counts as a sign of life"
    for bad in ({"reason": ""}, {"reason": "x", "checked": "maybe"}, {"why": "x"}):
        response = duty.post(f"/alerts/{alert_id}/resolve", json=bad)
        assert response.status_code == 422 and reason(response)
    assert duty.post("/alerts/999999/ack", json={}).status_code == 404


def test_absences_are_registered_listed_and_cancelled(http, seeded_url):
    resident = resident_of(seeded_url, GRID_A)
    worker = http["worker_a"]
    made = worker.post(
        "/absences",
        json={
            "resident_id": resident,
            "starts_at": "2026-11-23T09:00",
            "ends_at": "2026-11-26T18:00",
            "note": "去女儿家",
        },
    )
    assert made.status_code == 201, made.text
    absence = made.json()
    assert absence["starts_at"] == "2026-11-23T01:00:00+00:00"  # a naive time is local
    assert absence["created_by"] == "W001"
    active = worker.get("/absences", params={"active": "true"}).json()["items"]
    assert absence["id"] in [a["id"] for a in active]
    resident_view = worker.get(f"/collections/residents/items/{resident}").json()
    assert resident_view["properties"]["absent"] is True
    assert worker.delete(f"/absences/{absence['id']}").status_code == 204
    assert worker.delete(f"/absences/{absence['id']}").status_code == 404
    active = worker.get("/absences", params={"active": "true"}).json()["items"]
    assert absence["id"] not in [a["id"] for a in active]
    # Backwards, or so long the rules would be silent for her for years.
    for starts, ends, why in (
        ("2026-11-26T09:00", "2026-11-23T18:00", "after"),
        ("2026-11-23T09:00", "2028-11-23T09:00", "at most a year"),
    ):
        refused = worker.post(
            "/absences", json={"resident_id": resident, "starts_at": starts, "ends_at": ends}
        )
        assert refused.status_code == 422 and why in reason(refused), (starts, ends)
    unknown = worker.post(
        "/absences",
        json={
            "resident_id": "R99999",
            "starts_at": "2026-11-23T09:00",
            "ends_at": "2026-11-24T09:00",
        },
    )
    assert unknown.status_code == 404


def test_bodies_have_a_size_limit_and_a_type(http, shapes):
    lon, lat = _inside(shapes, GRID_A)
    big = orjson.dumps({"lat": lat, "lon": lon, "note": "x" * 70_000})
    response = http["worker_a"].post(
        "/checkins", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "65536" in reason(response)

    def chunks():
        for _ in range(20):
            yield b" " * 4096

    chunked = http["worker_a"].post(
        "/checkins", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    text = http["worker_a"].post(
        "/checkins", content=b"lat=1", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415 and reason(text)


def test_a_write_is_committed_before_its_response_goes_out(http, seeded_url):
    """The client that got 201 may read it back at once, from another connection."""
    resident = resident_of(seeded_url, GRID_A, last=True)
    for day in range(1, 21):
        made = http["worker_a"].post(
            "/absences",
            json={
                "resident_id": resident,
                "starts_at": f"2026-12-{day:02d}T08:00",
                "ends_at": f"2026-12-{day:02d}T20:00",
            },
        )
        assert made.status_code == 201
        listed = http["duty_street"].get("/absences", params={"resident_id": resident}).json()
        assert made.json()["id"] in [a["id"] for a in listed["items"]], f"write {day} unseen"
