"""Open311 GeoReport v2 at /open311/v2/ against a real running API: the services read by a
real Open311 client library (georeport), requests posted form-encoded as the specification's
examples post them and followed to closed, the specification's error format, and hostile
posts and reads (huge text, bad coordinates, revoked keys, a device reading others')."""

from __future__ import annotations

from datetime import timedelta

import georeport
import httpx
import psycopg
import pytest
import requests as requests_library
import shapely

from gridwatch.store.users import revoke_user
from tests.support.api import GRID_A, GRID_B, NOW, ApiServer, Clock, api_settings, make_users

BASE = "/open311/v2"


@pytest.fixture
def api(district_database_url, tmp_path):
    url = district_database_url
    tokens = make_users(url)
    with ApiServer(api_settings(tmp_path, url), url, Clock()) as server:
        yield server, tokens, url


def _inside(url: str, code: str) -> tuple[float, float]:
    with psycopg.connect(url) as conn:
        wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (code,)).fetchone()[0]
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    return point.x, point.y


def _post(server, form: dict, **kwargs) -> httpx.Response:
    """A form post as the specification makes it: application/x-www-form-urlencoded."""
    return httpx.post(f"{server.url}{BASE}/requests.json", data=form, timeout=30, **kwargs)


def _spec_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    [error] = response.json()
    assert set(error) == {"code", "description"} and error["code"] == status
    return error["description"]


def test_a_real_open311_client_reads_the_services_with_chinese_names(api):
    server, _, _ = api
    client = georeport.GeoReport(f"{server.url}{BASE}")
    services = {s["service_code"]: s for s in client.get_service_list()}
    assert {"gas", "dispute", "noise", "sanitation", "property", "elderly", "other"} <= set(
        services
    )
    assert services["noise"]["service_name"] == "噪声扰民"
    assert services["elderly"]["metadata"] is True and services["gas"]["metadata"] is False
    assert set(services["gas"]) == {
        "service_code", "service_name", "description", "metadata", "type", "keywords", "group",
    }  # fmt: skip
    definition = client.get_service_definition("elderly")
    [need] = definition["attributes"]
    assert (need["code"], need["required"], need["datatype"]) == ("need", True, "singlevaluelist")
    assert {"key": "meals", "name": "助餐"} in need["values"]
    # Reading requests needs a key, which this library does not send: refused in spec form.
    with pytest.raises(requests_library.HTTPError) as refused:
        client.get_service_requests()
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()[0]["code"] == 401


def test_a_device_posts_as_the_spec_says_and_follows_its_request_to_closed(api):
    server, tokens, url = api
    lon, lat = _inside(url, GRID_A)
    posted = _post(
        server,
        {
            "api_key": tokens.device, "service_code": "noise", "lat": str(lat), "long": str(lon),
            "description": "楼上每晚装修到十二点", "first_name": "秀华", "last_name": "王",
            "phone": "13912341234", "email": "wang@example.cn",
            "media_url": "https://img.example.cn/noise.jpg", "attribute[period]": "night",
        },
    )  # fmt: skip
    assert posted.status_code == 201, posted.text
    [answer] = posted.json()
    rid = answer["service_request_id"]
    assert "已派单至" in answer["service_notice"]
    assert posted.headers["location"] == f"{BASE}/requests/{rid}.json"

    def status() -> dict:
        got = httpx.get(
            f"{server.url}{BASE}/requests/{rid}.json", params={"api_key": tokens.device}
        )
        assert got.status_code == 200, got.text
        [one] = got.json()
        return one

    first = status()
    assert (first["status"], first["service_name"], first["service_code"]) == (
        "open", "噪声扰民", "noise",
    )  # fmt: skip
    assert first["lat"] == pytest.approx(lat) and first["long"] == pytest.approx(lon)
    assert first["media_url"] == "https://img.example.cn/noise.jpg"
    assert first["agency_responsible"].endswith("网格")
    assert first["expected_datetime"] == (NOW + timedelta(hours=48)).isoformat()

    with (
        server.client("worker_a", tokens) as worker,
        server.client("duty_community", tokens) as duty,
    ):
        assert worker.post(f"/requests/{rid}/accept").status_code == 200
        assert worker.post(f"/requests/{rid}/start", json={"note": "上门劝导"}).status_code == 200
        done = worker.post(f"/requests/{rid}/resolve", json={"note": "已与装修方约定晚八点前停工"})
        assert done.json()["properties"]["status"] == "resolved"
        assert status()["status"] == "closed"  # Open311's closed: the work is done
        rated = duty.post(
            f"/requests/{rid}/feedback", json={"rating": "satisfied", "note": "回访满意"}
        )
        assert rated.json()["properties"]["rating"] == "satisfied"
        closed = duty.post(f"/requests/{rid}/close", json={"note": "办结归档"})
        assert closed.json()["properties"]["status"] == "closed"
    last = status()
    assert (last["status"], last["status_notes"]) == ("closed", "办结归档")
    listed = httpx.get(
        f"{server.url}{BASE}/requests.json",
        params={"api_key": tokens.device, "status": "closed", "service_code": "noise,gas"},
    ).json()
    assert [r["service_request_id"] for r in listed] == [rid]
    by_id = httpx.get(
        f"{server.url}{BASE}/requests.json",
        params={"api_key": tokens.device, "service_request_id": f"{rid},not-an-id"},
    ).json()
    assert [r["service_request_id"] for r in by_id] == [rid]


def test_an_address_without_a_point_waits_in_the_streets_queue_until_dispatched(api):
    server, tokens, _ = api
    posted = _post(
        server,
        {"service_code": "elderly", "address_string": "富强路12号3栋2单元301室",
         "description": "独居老人需要助餐", "attribute[need]": "meals"},
        headers={"Authorization": f"Bearer {tokens.device}"},
    )  # fmt: skip
    assert posted.status_code == 201, posted.text
    [answer] = posted.json()
    rid = answer["service_request_id"]
    assert "待分拨" in answer["service_notice"]
    with (
        server.client("duty_street", tokens) as duty,
        server.client("worker_a", tokens) as worker_a,
        server.client("worker_b", tokens) as worker_b,
    ):
        assert worker_a.post(f"/requests/{rid}/accept").status_code == 404  # not their grid
        refused = worker_a.post(f"/requests/{rid}/dispatch", json={"grid": GRID_A})
        assert refused.status_code == 403  # 组织派单: the duty officer dispatches
        item = duty.get(f"/collections/requests/items/{rid}").json()
        assert (item["properties"]["status"], item["properties"]["queued"]) == ("received", True)
        assert item["geometry"] is None
        dispatched = duty.post(f"/requests/{rid}/dispatch", json={"grid": GRID_B, "note": "派单"})
        assert dispatched.status_code == 200, dispatched.text
        assert dispatched.json()["properties"]["grid"] == GRID_B
        assert worker_a.post(f"/requests/{rid}/accept").status_code == 404
        assert worker_b.post(f"/requests/{rid}/accept").status_code == 200


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"service_code": "noise", "description": "吵" * 4001, "address_string": "x"},
         "description is 4001 characters long"),
        ({"service_code": "noise", "description": "a\x00b", "address_string": "x"},
         "U+0000"),
        ({"service_code": "noise", "lat": "91", "long": "110"}, "within ±90"),
        ({"service_code": "noise", "lat": "nan", "long": "110"}, "within ±90"),
        ({"service_code": "noise", "lat": "四十", "long": "110"}, "decimal degrees"),
        ({"service_code": "noise", "lat": "40.6"}, "go together"),
        ({"service_code": "noise"}, "a location is required"),
        ({"service_code": "pothole", "address_string": "x"}, "not a service"),
        ({"address_string": "x"}, "service_code is required"),
        ({"service_code": "elderly", "address_string": "x"}, "attribute[need] is required"),
        ({"service_code": "elderly", "address_string": "x", "attribute[need]": "money"},
         "must be one of"),
        ({"service_code": "noise", "address_string": "x", "attribute[evil]": "1"},
         "not a question"),
        ({"service_code": "noise", "address_string": "x", "media_url": "javascript:alert(1)"},
         "not an http(s) URL"),
        ({"service_code": "noise", "address_string": "x", "phone": "1" * 200},
         "phone is 200 characters long"),
        ({"service_code": "noise", "lat": "40.6", "long": "110", "crs": "utm50"},
         "unknown coordinate system"),
    ],
)  # fmt: skip
def test_bad_posts_are_refused_in_the_specs_error_format(api, form, words):
    server, tokens, _ = api
    answer = _post(server, {"api_key": tokens.device, **form})
    assert words in _spec_error(answer, 400)


def test_keys_bodies_and_formats_the_spec_does_not_allow(api):
    server, tokens, url = api
    form = {"service_code": "noise", "address_string": "x", "description": "吵"}
    assert "api_key" in _spec_error(_post(server, form), 401)
    assert "revoked" in _spec_error(_post(server, {**form, "api_key": "gw_nonsense"}), 401)
    as_json = httpx.post(
        f"{server.url}{BASE}/requests.json",
        json=form,
        headers={"Authorization": f"Bearer {tokens.device}"},
    )
    assert "x-www-form-urlencoded" in _spec_error(as_json, 415)
    xml = httpx.get(f"{server.url}{BASE}/services.xml")
    assert "JSON only" in _spec_error(xml, 400)
    assert _spec_error(httpx.get(f"{server.url}{BASE}/services/nope.json"), 404)
    too_long = {"api_key": tokens.device, "start_date": "2026-01-01T00:00:00Z",
                "end_date": "2026-11-01T00:00:00Z"}  # fmt: skip
    listed = httpx.get(f"{server.url}{BASE}/requests.json", params=too_long)
    assert "90 days" in _spec_error(listed, 400)
    with psycopg.connect(url) as conn:
        revoke_user(conn, "app-gateway", now=NOW)
    assert "revoked" in _spec_error(_post(server, {**form, "api_key": tokens.device}), 401)


def test_a_device_reads_back_only_what_it_posted_and_workers_only_their_grids(api):
    server, tokens, url = api
    lon, lat = _inside(url, GRID_B)
    with server.client("worker_b", tokens) as worker_b:
        theirs = worker_b.post(
            f"{BASE}/requests.json",
            data={"service_code": "sanitation", "lat": str(lat), "long": str(lon),
                  "description": "垃圾三天没清运", "phone": "13800001111"},
        )  # fmt: skip
        assert theirs.status_code == 201, theirs.text
    rid = theirs.json()[0]["service_request_id"]
    device = {"api_key": tokens.device}
    assert _spec_error(httpx.get(f"{server.url}{BASE}/requests/{rid}.json", params=device), 404)
    assert httpx.get(f"{server.url}{BASE}/requests.json", params=device).json() == []
    with server.client("worker_a", tokens) as worker_a, server.client("device", tokens) as dev:
        assert worker_a.get(f"{BASE}/requests/{rid}.json").status_code == 404
        assert worker_a.get(f"/collections/requests/items/{rid}").status_code == 404
        assert worker_a.post(f"/requests/{rid}/accept").status_code == 404
        assert dev.get(f"/collections/requests/items/{rid}").status_code == 403
        assert dev.post(f"/requests/{rid}/accept").status_code == 403
    with server.client("worker_b", tokens) as worker_b:
        [mine] = worker_b.get(f"{BASE}/requests.json").json()
        assert mine["service_request_id"] == rid
        with psycopg.connect(url) as conn:
            revoke_user(conn, tokens.names["worker_b"], now=NOW)
        server.state.forget_tokens()
        assert worker_b.post(f"/requests/{rid}/accept").status_code == 401


def test_posted_dispute_phrases_are_warnings_and_the_third_a_case_of_the_community(api):
    """The description goes through the keyword hook as it is stored: a warning of source
    `request` naming the request, in its grid (a quiet text makes none); the third in the
    grid is level 2 and opens a case in the ledger that only that grid's people see and act
    on, and that a device cannot read."""
    server, tokens, url = api
    lon, lat = _inside(url, GRID_A)
    ids = []
    for text in ("楼上每晚装修到十二点", *["邻居吵架，已经动手了"] * 3):  # noqa: RUF001
        posted = _post(
            server,
            {"api_key": tokens.device, "service_code": "dispute", "lat": str(lat),
             "long": str(lon), "description": text},
        )  # fmt: skip
        assert posted.status_code == 201, posted.text
        ids.append(posted.json()[0]["service_request_id"])
    with psycopg.connect(url) as conn:
        warnings = conn.execute(
            "SELECT w.source_id, w.category, w.level, w.keywords, g.code FROM warnings w "
            "JOIN grids g ON g.id = w.grid_id WHERE w.source = 'request' ORDER BY w.id"
        ).fetchall()
        [(case_id, source_key)] = conn.execute(
            "SELECT id::text, source_key FROM requests WHERE source = 'warning'"
        ).fetchall()
        [(third,)] = conn.execute("SELECT id FROM warnings WHERE level = 2").fetchall()
    assert warnings == [(i, "邻里纠纷", level, ["邻居吵架"], GRID_A)
                        for i, level in zip(ids[1:], (1, 1, 2), strict=True)]  # fmt: skip
    assert source_key == str(third)
    with (
        server.client("worker_a", tokens) as mine,
        server.client("worker_b", tokens) as other,
        server.client("device", tokens) as device,
    ):
        ledger = mine.get("/ledger", params={"kind": "request", "category": "dispute"}).json()
        [row] = [r for r in ledger["items"] if r["id"] == case_id]
        assert (row["kind"], row["level"], row["status"], row["grid"]) == (
            "request", "community", "dispatched", GRID_A,
        )  # fmt: skip
        assert case_id not in {r["id"] for r in other.get("/ledger").json()["items"]}
        assert other.get(f"/console/cases/{case_id}").status_code == 404
        assert other.post(f"/requests/{case_id}/accept").status_code == 404
        assert device.get("/ledger").status_code == 403
        assert device.get("/ledger.csv").status_code == 403
        assert mine.get(f"/console/cases/{case_id}").status_code == 200
        accepted = mine.post(f"/requests/{case_id}/accept", json={"note": "上门调解"})
        assert accepted.json()["properties"]["status"] == "accepted"
