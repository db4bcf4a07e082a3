"""Dispute warnings over HTTP: `POST /checkins` and `POST /hazards` scan their text as
ingest does, and `/collections/warnings/items` shows the warnings in the caller's grids
only, with its queryables; the item of another grid is not even confirmed to exist."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import shapely

from gridwatch.model.vocabulary import WARNING_SOURCES
from tests.support.api import COMMUNITY_A, GRID_A, GRID_B, reason, resident_of


@pytest.fixture(scope="module")
def places(seeded_url):
    """A point inside grid A and one inside grid B, and a resident of grid A."""
    with psycopg.connect(seeded_url) as conn:
        shapes = dict(
            conn.execute(
                "SELECT code, geometry FROM grids WHERE code IN (%s, %s)", (GRID_A, GRID_B)
            ).fetchall()
        )
    resident = resident_of(seeded_url, GRID_A)
    points = {
        code: shapely.from_wkb(bytes(wkb)).representative_point() for code, wkb in shapes.items()
    }
    return points, resident


@pytest.fixture(scope="module")
def posted(http, places):
    """A visit note of grid A and a hazard of grid B that hit categories, posted once each
    and the hazard once more (a retry)."""
    points, resident = places
    a, b = points[GRID_A], points[GRID_B]
    visit = {"ts": "2026-11-23T11:50:00+08:00", "lat": a.y, "lon": a.x, "kind": "visit",
             "status": "concern", "resident_id": resident,
             "note": "老人说儿女不孝 子女不管"}  # fmt: skip
    created = http["worker_a"].post("/checkins", json=visit)
    assert created.status_code == 201, created.text
    hazard = {"id": str(uuid.uuid4()), "lat": b.y, "lon": b.x, "category": "other",
              "severity": "medium", "description": "工地老板拖欠工资 工人准备集体上访"}  # fmt: skip
    for status in (201, 200):
        answer = http["admin"].post("/hazards", json=hazard)
        assert answer.status_code == status, answer.text
    return created.json()["id"], hazard["id"], resident


def items(client, **params) -> dict:
    answer = client.get("/collections/warnings/items", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def sources(page: dict) -> set[str]:
    return {f["properties"]["source_id"] for f in page["features"]}


def test_posted_texts_become_warnings_each_once(http, posted):
    checkin_id, hazard_id, resident = posted
    mine = [f for f in items(http["admin"])["features"] if f["properties"]["source_id"] in posted]
    got = sorted(
        (f["properties"]["source"], f["properties"]["source_id"], f["properties"]["category"])
        for f in mine
    )
    assert got == [
        ("checkin", checkin_id, "婚姻家庭"),
        ("hazard", hazard_id, "劳资纠纷"),
        ("hazard", hazard_id, "涉稳信访"),
    ]
    [visit] = [f for f in mine if f["properties"]["source"] == "checkin"]
    assert visit["properties"]["resident_id"] == resident
    assert (visit["properties"]["level"], visit["properties"]["reason"]) == (2, "lives_alone")
    assert visit["properties"]["keywords"] == ["子女不管", "儿女不孝"]  # library order
    assert visit["properties"]["grid"] == GRID_A and visit["geometry"]["type"] == "Point"
    assert "note" not in visit["properties"] and "text" not in visit["properties"]


def test_each_caller_sees_the_warnings_of_their_grids(http, posted):
    checkin_id, hazard_id, _ = posted
    seen = {
        role: items(http[role])
        for role in ("admin", "duty_street", "duty_community", "worker_a", "worker_b")
    }
    assert sources(seen["admin"]) == sources(seen["duty_street"]) >= {checkin_id, hazard_id}
    assert checkin_id in sources(seen["worker_a"]) and hazard_id not in sources(seen["worker_a"])
    assert hazard_id in sources(seen["worker_b"]) and checkin_id not in sources(seen["worker_b"])
    assert checkin_id in sources(seen["duty_community"])  # community A holds grid A
    assert {f["properties"]["grid"] for f in seen["worker_a"]["features"]} == {GRID_A}
    assert {f["properties"]["grid"] for f in seen["worker_b"]["features"]} == {GRID_B}
    assert http["anonymous"].get("/collections/warnings/items").status_code == 401
    [own] = [f for f in seen["worker_a"]["features"] if f["properties"]["source_id"] == checkin_id]
    assert http["worker_a"].get(f"/collections/warnings/items/{own['id']}").status_code == 200
    other = http["worker_b"].get(f"/collections/warnings/items/{own['id']}")
    assert other.status_code == 404 and reason(other) == f"no warning {own['id']}"
    missing = http["admin"].get("/collections/warnings/items/999999")
    assert missing.status_code == 404 and reason(missing) == "no warning 999999"


def test_filters_and_queryables(http, posted):
    checkin_id, hazard_id, _ = posted
    admin = http["admin"]
    everything = items(admin)
    assert everything["numberMatched"] == everything["numberReturned"] >= 3
    for params, field, value, included in [
        ({"source": "hazard"}, "source", "hazard", hazard_id),
        ({"category": "婚姻家庭"}, "category", "婚姻家庭", checkin_id),
        ({"grid": GRID_B}, "grid", GRID_B, hazard_id),
        ({"grid": COMMUNITY_A, "level": 2}, "level", 2, checkin_id),
        ({"level": 1}, "level", 1, hazard_id),
    ]:
        page = items(admin, **params)
        assert {f["properties"][field] for f in page["features"]} == {value}, params
        assert included in sources(page), params
    assert not sources(items(admin, datetime="2026-11-22")) & {checkin_id, hazard_id}
    first = items(admin, limit=2)
    seen = [f["id"] for f in first["features"]]
    following = [link["href"] for link in first["links"] if link["rel"] == "next"]
    while following:
        page = admin.get(following[0]).json()
        seen += [f["id"] for f in page["features"]]
        following = [link["href"] for link in page["links"] if link["rel"] == "next"]
    assert len(seen) == len(set(seen)) == everything["numberMatched"]
    assert admin.get("/collections/warnings/items", params={"text": "x"}).status_code == 400
    assert admin.get("/collections/warnings/items", params={"level": 3}).status_code in (400, 422)
    listed = admin.get("/collections").json()
    assert "warnings" in [c["id"] for c in listed["collections"]]
    schema = admin.get("/collections/warnings/queryables").json()
    assert set(schema["properties"]) == {"level", "category", "source", "grid"}
    assert schema["properties"]["source"]["enum"] == list(WARNING_SOURCES)
