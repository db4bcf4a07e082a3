"""Inspections of places (安全巡查) through both doors: over MQTT to a running ingest worker and
over HTTP to a running API. A finding opens a hazard of the place with its severity's
deadline, the place has open findings until the hazard is closed, and a worker inspects only
the places of their grids (a dead letter with the reason on MQTT, 404/403 on HTTP). The places
layer read with OWSLib: its fields, its queryables, contacts masked unless asked and allowed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from owslib import ogcapi
from owslib.ogcapi.features import Features

from gridwatch.cases.inspections import next_due
from tests.support.api import GRID_A, ApiServer, Clock, api_settings, make_users, reason
from tests.support.databases import query, query_one
from tests.support.places import EVERY_DAYS, PLACE_A, PLACE_B, inspection, register_places
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

HOURS = {"critical": 2.0, "high": 24.0, "medium": 72.0, "low": 168.0}
FIRE = {
    "category": "fire",
    "severity": "high",
    "description": "灭火器过期未更换",
    "photos": ["https://photos.example.org/inspections/1.jpg"],
}
FOOD = {"category": "food", "severity": "medium", "description": "生熟食品混放"}


def _findings(url: str, place_id: str) -> list[tuple]:
    """The hazards of a place's inspections, by severity."""
    return query(
        url,
        "SELECT h.id, h.category, h.severity, h.reporter_id, g.code, h.lon, h.lat, "
        "h.received_at, h.deadline_at, h.due_at, h.photo_urls, h.status FROM hazard_reports h "
        "LEFT JOIN grids g ON g.id = h.grid_id WHERE h.place_id = %s ORDER BY h.severity",
        (place_id,),
    )


def _clock(url: str, place_id: str) -> tuple | None:
    statement = "SELECT last_inspected_at, next_due_at, level FROM places WHERE id = %s"
    return query_one(url, statement, (place_id,))


def _dead_reasons(url: str, prefix: str) -> list[str]:
    statement = "SELECT reason FROM dead_letters WHERE topic LIKE %s ORDER BY reason"
    return [r for (r,) in query(url, statement, (f"{prefix}/patrol/%",))]


@pytest.fixture
def site(district_database_url, tmp_path):
    """The district with this test's two places (registered a day ago) and a user of every
    role; (url, tokens, {place: (lon, lat)}, now)."""
    now = datetime.now(UTC).replace(microsecond=0)
    places = register_places(district_database_url, tmp_path, now - timedelta(days=1))
    return district_database_url, make_users(district_database_url), places, now


@pytest.fixture
def api(site, tmp_path) -> Iterator[ApiServer]:
    url, _, _, now = site
    settings = api_settings(tmp_path, url, hazard_deadlines_h=HOURS)
    with ApiServer(settings, url, Clock(now)) as server:
        yield server


def test_an_inspection_over_mqtt_opens_a_case_per_finding_until_each_is_closed(
    site, api, tmp_path, mqtt_url, start_worker, publish
):
    url, tokens, places, now = site
    settings = make_settings(tmp_path, url, mqtt_url, hazard_deadlines_h=HOURS)
    worker = start_worker(settings)
    prefix = settings.topic_prefix
    (a_lon, a_lat), (b_lon, b_lat) = places[PLACE_A], places[PLACE_B]
    at = now - timedelta(minutes=10)
    found = inspection(PLACE_A, a_lon + 2e-5, a_lat, at, [FIRE, FOOD])
    other = tokens.names["worker_b"]
    publish(f"{prefix}/patrol/W001", found)
    publish(f"{prefix}/patrol/W001", found)  # the app again, after a lost acknowledgement
    publish(f"{prefix}/patrol/{other}", inspection(PLACE_A, a_lon, a_lat, at))
    publish(f"{prefix}/patrol/{other}", inspection("T-NONE", b_lon, b_lat, at))
    publish(f"{prefix}/patrol/W-NOBODY", inspection(PLACE_A, a_lon, a_lat, at))
    publish(f"{prefix}/patrol/{other}", inspection(PLACE_B, b_lon, b_lat, at))
    publish.flush()
    wait_for(lambda: len(_dead_reasons(url, prefix)) == 3, 30, "three dead letters")
    wait_for(lambda: _clock(url, PLACE_B)[0] is not None, 30, "the inspection of place B")

    # Each finding is a hazard of the place, in its grid, at its point, with its deadline.
    rows = _findings(url, PLACE_A)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("fire", "high", "W001", GRID_A),
        ("food", "medium", "W001", GRID_A),
    ]
    for _, _, severity, _, _, lon, lat, received, deadline, due, _, status in rows:
        assert (lon, lat) == (a_lon, a_lat) and status == "reported"
        assert deadline == due == received + timedelta(hours=HOURS[severity])
    assert rows[0][10] == FIRE["photos"]
    assert worker.stats.findings == 2 and worker.stats.duplicates >= 1
    assert _clock(url, PLACE_A) == (at, next_due(at, EVERY_DAYS), "grid")
    # Another grid's worker, a place nobody registered, and an id of no one: refused, saying why.
    assert _dead_reasons(url, prefix) == sorted(
        [
            f"no place {PLACE_A!r} in the grids of worker {other!r}",
            "no place 'T-NONE'",
            "worker 'W-NOBODY' has no grid: an inspection is the record that the place was "
            "inspected, so only a worker of the place's grid may record one",
        ]
    )
    assert _clock(url, PLACE_B)[0] == at  # their own place: stored
    assert _findings(url, PLACE_B) == []

    # The place has open findings until each case is closed (resolved is not yet closed).
    with api.client("worker_a", tokens) as client:
        ids = {str(r[0]) for r in rows}

        def open_findings() -> set[str]:
            answer = client.get(f"/collections/places/items/{PLACE_A}")
            assert answer.status_code == 200, answer.text
            return set(answer.json()["properties"]["open_finding_ids"])

        assert open_findings() == ids
        hazard = client.get(f"/collections/hazards/items/{rows[0][0]}").json()
        assert hazard["properties"]["place_id"] == PLACE_A
        for n, hazard_id in enumerate(sorted(ids)):
            resolved = client.post(f"/hazards/{hazard_id}/resolve", json={"note": "已整改"})
            assert resolved.status_code == 200, resolved.text
            assert open_findings() == set(sorted(ids)[n:])
            closed = client.post(f"/hazards/{hazard_id}/close", json={"note": "复查合格"})
            assert closed.status_code == 200, closed.text
            assert open_findings() == set(sorted(ids)[n + 1 :])
        listed = client.get("/collections/places/items", params={"findings": "false"}).json()
        assert [f["id"] for f in listed["features"]] == [PLACE_A]


def test_an_inspection_over_http_follows_the_same_rule(site, api):
    url, tokens, places, now = site
    (a_lon, a_lat), (b_lon, b_lat) = places[PLACE_A], places[PLACE_B]
    at = now - timedelta(minutes=5)
    body = inspection(PLACE_A, a_lon, a_lat, at, [{**FOOD, "severity": "low"}])
    with api.client("worker_a", tokens) as own:
        first = own.post("/checkins", json=body)
        assert first.status_code == 201, first.text
        properties = first.json()["properties"]
        assert (properties["kind"], properties["place_id"], properties["result"]) == (
            "inspection",
            PLACE_A,
            "findings",
        )
        again = own.post("/checkins", json=body)  # the same check-in: no second case
        assert again.status_code == 200, again.text
        [row] = _findings(url, PLACE_A)
        assert row[8] == row[7] + timedelta(hours=HOURS["low"])
        assert _clock(url, PLACE_A)[:2] == (at, next_due(at, EVERY_DAYS))
        # A different result under the same key is a conflict, as for any check-in.
        clash = own.post("/checkins", json={**body, "result": "ok", "findings": None})
        assert clash.status_code == 409, clash.text
        # Bad payloads are refused with the parser's reason.
        no_findings = own.post("/checkins", json={**body, "findings": []})
        assert no_findings.status_code == 422
        assert "result 'findings' needs at least one finding" in reason(no_findings)
        bad_finding = own.post("/checkins", json={**body, "findings": [{"category": "fun"}]})
        assert bad_finding.status_code == 422
        assert "finding 1: unknown category 'fun'" in reason(bad_finding)
        not_a_visit = own.post("/checkins", json={**body, "kind": "visit", "resident_id": "R1"})
        assert not_a_visit.status_code == 422
        assert "place_id belongs to a check-in of kind 'inspection'" in reason(not_a_visit)

    other = inspection(PLACE_A, a_lon, a_lat, at + timedelta(seconds=1))
    with api.client("worker_b", tokens) as client:
        refused = client.post("/checkins", json=other)
        assert refused.status_code == 404
        assert f"no place {PLACE_A!r} in the grids of worker" in reason(refused)
        unknown = client.post("/checkins", json={**other, "place_id": "T-NONE"})
        assert unknown.status_code == 404 and "no place 'T-NONE'" in reason(unknown)
        assert client.get(f"/collections/places/items/{PLACE_A}").status_code == 404
        listed = client.get("/collections/places/items").json()
        assert [f["id"] for f in listed["features"]] == [PLACE_B]
    with api.client("device", tokens) as device:
        as_itself = device.post("/checkins", json=other)
        assert as_itself.status_code == 403 and "has no grid" in reason(as_itself)
        for_worker = device.post("/checkins", json={**other, "worker_id": "W001"})
        assert for_worker.status_code == 201, for_worker.text
    with api.client("admin", tokens) as admin:
        unknown = admin.post("/checkins", json={**other, "place_id": "T-NONE"})
        assert unknown.status_code == 404 and "no place 'T-NONE'" in reason(unknown)
        here = admin.post("/checkins", json=inspection(PLACE_B, b_lon, b_lat, at))
        assert here.status_code == 201, here.text
    assert len(_findings(url, PLACE_A)) == 1


@pytest.fixture
def owslib_for(api, site, monkeypatch):
    """OWSLib's client of the server with a role's token (OWSLib keeps the headers of every
    client in a dictionary of the module: a copy stands in for it during the test)."""
    monkeypatch.setattr(ogcapi, "REQUEST_HEADERS", dict(ogcapi.REQUEST_HEADERS))
    tokens = site[1]

    def client(role: str) -> Features:
        return Features(api.url, headers=tokens.header(role))

    return client


def test_owslib_reads_the_places_layer_with_contacts_masked_unless_asked(site, api, owslib_for):
    url, _, places, now = site
    (a_lon, a_lat) = places[PLACE_A]
    admin = owslib_for("admin")
    queryables = admin.collection_queryables("places")
    assert set(queryables["properties"]) == {"kind", "level", "grid"}
    assert queryables["properties"]["kind"]["enum"] == [
        "shop",
        "restaurant",
        "workshop",
        "warehouse",
        "other",
    ]
    page = admin.collection_items("places")
    assert page["numberMatched"] == 2
    feature = next(f for f in page["features"] if f["id"] == PLACE_A)
    assert feature["geometry"] == {"type": "Point", "coordinates": [a_lon, a_lat]}
    properties = feature["properties"]
    registered = now - timedelta(days=1)
    assert properties == {
        "name": "老王面馆",
        "kind": "restaurant",
        "kind_label": "小餐饮",
        "address": "青山区富强路12号",
        "grid": GRID_A,
        "building": None,  # its point lies in no building, and its row names none
        "unit": None,
        "contact": "王*娜",
        "phone": "138****0001",
        "masked": True,
        "inspect_every_days": EVERY_DAYS,
        "registered_at": properties["registered_at"],
        "last_inspected_at": None,
        "next_due_at": properties["next_due_at"],
        "overdue": False,
        "level": "grid",
        "open_findings": 0,
        "open_finding_ids": [],
        "updated_at": properties["updated_at"],
    }
    assert datetime.fromisoformat(properties["registered_at"]) == registered
    due = datetime.fromisoformat(properties["next_due_at"])
    assert due == next_due(registered, EVERY_DAYS)
    restaurants = admin.collection_items("places", kind="restaurant", level="grid", grid=GRID_A)
    assert [f["id"] for f in restaurants["features"]] == [PLACE_A]
    assert admin.collection_items("places", overdue="true")["numberMatched"] == 0

    clear = admin.collection_items("places", pii="true")
    shown = next(f for f in clear["features"] if f["id"] == PLACE_A)["properties"]
    assert (shown["contact"], shown["phone"], shown["masked"]) == ("王丽娜", "13800000001", False)
    audited = query(
        url,
        "SELECT actor, resident_ids FROM personal_data_audit WHERE %s = ANY(resident_ids)",
        (f"place:{PLACE_A}",),
    )
    assert audited == [("admin", [f"place:{PLACE_A}", f"place:{PLACE_B}"])]

    with api.client("device", site[1]) as device:
        assert device.get("/collections/places/items").status_code == 403
    with api.client() as anonymous:
        assert anonymous.get("/collections/places/items").status_code == 401
    with api.client("admin", site[1]) as client:
        unknown = client.get("/collections/places/items", params={"kind": "casino"})
        assert unknown.status_code == 422 and "unknown kind 'casino'" in reason(unknown)
        stray = client.get("/collections/places/items", params={"datetime": "2026-11-23"})
        assert stray.status_code == 400 and "unknown query parameter" in reason(stray)
