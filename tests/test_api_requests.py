"""Requests as an OGC collection: scoped to the caller's grids (and what they entered), the
requester's contact in clear only for those who may see it and every such answer audited,
queryables, filters and pages."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import shapely

from gridwatch.model.records import RequestIntake
from gridwatch.store.grids import load_grid_catalog, load_leaf_grids
from gridwatch.store.requests import open_requests, place_request
from tests.support.api import GRID_A, GRID_B, NOW, ApiServer, Clock, api_settings, make_users


def _inside(conn, code: str) -> tuple[float, float]:
    wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (code,)).fetchone()[0]
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    return point.x, point.y


def _seed(url: str) -> dict[str, str]:
    """A noise request in grid A, a sanitation one in grid B entered by W001 (grid A's)."""
    with psycopg.connect(url) as conn:
        catalog, index = load_grid_catalog(conn), load_leaf_grids(conn).index
        made = {}
        for name, code, service, reporter in [
            ("a", GRID_A, "noise", "app-gateway"), ("b", GRID_B, "sanitation", "W001"),
        ]:  # fmt: skip
            lon, lat = _inside(conn, code)
            intake = RequestIntake(
                id=uuid.uuid4(), source="app", service_code=service, description="请处理",
                reporter=reporter, requested_at=NOW, received_at=NOW, lon=lon, lat=lat,
                address="富强路12号3栋2单元301室", requester_name="王秀华",
                requester_phone="13912341234", requester_email="wang@example.cn",
            )  # fmt: skip
            grid = int(index.assign([lon], [lat])[0])
            [stored] = open_requests(
                conn, [(intake, place_request(intake, catalog, grid))], now=NOW
            )
            made[name] = str(stored.request.id)
    return made


@pytest.fixture
def api(district_database_url, tmp_path):
    url = district_database_url
    tokens = make_users(url)
    made = _seed(url)
    with ApiServer(api_settings(tmp_path, url), url, Clock()) as server:
        yield server, tokens, url, made


def _audited(url: str, request_id: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT actor FROM personal_data_audit WHERE resident_ids @> ARRAY[%s] ORDER BY id",
            (f"request:{request_id}",),
        ).fetchall()
    return [actor for (actor,) in rows]


def test_each_caller_sees_their_grids_requests_with_the_requester_shown_as_allowed(api):
    server, tokens, url, made = api
    with server.client("worker_a", tokens) as worker_a:
        items = worker_a.get("/collections/requests/items").json()["features"]
        by_id = {f["id"]: f["properties"] for f in items}
        assert set(by_id) == {made["a"], made["b"]}  # b: entered by W001, in grid B
        assert by_id[made["a"]]["requester"] == {
            "name": "王秀华", "phone": "13912341234", "email": "wang@example.cn", "masked": False,
        }  # fmt: skip
        assert by_id[made["b"]]["requester"] == {
            "name": "王*华", "phone": "139****1234", "email": "w***@example.cn", "masked": True,
        }  # fmt: skip
        assert by_id[made["b"]]["address"] == "富强路****"
        assert worker_a.get(f"/collections/requests/items/{made['a']}").status_code == 200
    assert _audited(url, made["a"]) == ["W001", "W001"]
    assert _audited(url, made["b"]) == []
    with server.client("worker_b", tokens) as worker_b:
        [only] = worker_b.get("/collections/requests/items").json()["features"]
        assert only["id"] == made["b"] and only["properties"]["requester"]["masked"] is False
        assert worker_b.get(f"/collections/requests/items/{made['a']}").status_code == 404
    with server.client("duty_community", tokens) as duty:
        ids = [f["id"] for f in duty.get("/collections/requests/items").json()["features"]]
        assert ids == [made["a"]]
    with server.client("device", tokens) as device:
        assert device.get("/collections/requests/items").status_code == 403


def test_the_collection_its_queryables_filters_and_pages(api):
    server, tokens, _, made = api
    with server.client("admin", tokens) as admin:
        listed = [c["id"] for c in admin.get("/collections").json()["collections"]]
        assert "requests" in listed
        schema = admin.get("/collections/requests/queryables").json()
        assert "noise" in schema["properties"]["service_code"]["enum"]
        assert set(schema["properties"]) == {"status", "service_code", "source", "level", "grid"}
        noise = admin.get("/collections/requests/items", params={"service_code": "noise"}).json()
        assert [f["id"] for f in noise["features"]] == [made["a"]]
        grid_b = admin.get("/collections/requests/items", params={"grid": GRID_B}).json()
        assert [f["id"] for f in grid_b["features"]] == [made["b"]]
        first = admin.get("/collections/requests/items", params={"limit": 1}).json()
        [following] = [link["href"] for link in first["links"] if link["rel"] == "next"]
        second = admin.get(following).json()
        assert {first["features"][0]["id"], second["features"][0]["id"]} == set(made.values())
        assert (
            admin.get("/collections/requests/items", params={"service_code": "x"}).status_code
            == 422
        )
        assert admin.get("/collections/requests/items", params={"bogus": "1"}).status_code == 400
        assert admin.get("/collections/requests/items/not-a-uuid").status_code == 404
