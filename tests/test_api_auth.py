"""Who may do what: tokens and roles, browser sessions, and a walk over every route of the
app as grid A's worker asking for grid B's objects (a route added later without an entry
here fails the walk)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import uuid

import psycopg
import pytest
import shapely
from fastapi.routing import APIRoute
from starlette.routing import Mount

from gridwatch.api_commands import register
from gridwatch.settings import Settings
from tests.support.api import GRID_A, GRID_B, NOW, assert_security_headers, reason, resident_of
from tests.support.databases import point_in_grid, query
from tests.support.photos import jpeg_with_gps
from tests.support.spreadsheets import xlsx_rows


@pytest.fixture(scope="module")
def grid_b(seeded_url, http):
    """One object of every kind in grid B, made by grid B's worker."""
    with psycopg.connect(seeded_url) as conn:
        wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (GRID_B,)).fetchone()[0]
        resident = resident_of(seeded_url, GRID_B)
        alert = conn.execute(
            "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at) "
            "SELECT id, 'bola', grid_id, %s, %s FROM residents WHERE id = %s RETURNING id",
            (NOW, NOW, resident),
        ).fetchone()[0]
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    worker = http["worker_b"]
    hazard = worker.post(
        "/hazards",
        json={
            "id": str(uuid.uuid4()),
            "lat": point.y,
            "lon": point.x,
            "category": "road",
            "severity": "high",
            "description": "grid B's own: 邻居吵架",  # a dispute warning of grid B too
        },
    ).json()
    with psycopg.connect(seeded_url) as conn:
        [(warning,)] = conn.execute(
            "SELECT id FROM warnings WHERE source_id = %s", (hazard["id"],)
        ).fetchall()
    # Posted with a photo, as a phone posts it.
    checkin = worker.post(
        "/checkins",
        data={"payload": json.dumps({"lat": point.y, "lon": point.x})},
        files=[("photos", ("door.jpg", jpeg_with_gps(), "image/jpeg"))],
    ).json()
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            "INSERT INTO places (id, name, kind, lon, lat, grid_id, contact, phone, "
            "inspect_every_days, registered_at, next_due_at) SELECT 'PB-1', 'grid B''s own', "
            "'shop', %s, %s, id, '李伟', '13800000002', 30, %s, %s FROM grids WHERE code = %s",
            (point.x, point.y, NOW, NOW, GRID_B),
        )
    finding = {"category": "fire", "severity": "low", "description": "grid B's own"}
    inspected = worker.post(
        "/checkins",
        json={"ts": "2026-11-23T11:50:00+08:00", "lat": point.y, "lon": point.x,
              "kind": "inspection", "place_id": "PB-1", "result": "findings",
              "findings": [finding]},
    )  # fmt: skip
    assert inspected.status_code == 201, inspected.text
    absence = worker.post(
        "/absences",
        json={
            "resident_id": resident,
            "starts_at": "2026-11-23T08:00",
            "ends_at": "2026-11-25T08:00",
        },
    ).json()
    posted = worker.post(
        "/open311/v2/requests.json",
        data={"service_code": "noise", "lat": str(point.y), "long": str(point.x),
              "description": "grid B's own", "phone": "13912341234"},
    )  # fmt: skip
    return {
        "request": posted.json()[0]["service_request_id"],
        "hazard": hazard["id"],
        "checkin": checkin["id"],
        "alert": alert,
        "warning": warning,
        "resident": resident,
        "absence": absence["id"],
        "place": "PB-1",
        "point": (point.x, point.y),
        "media": checkin["properties"]["photo_urls"][0].removeprefix("/media/"),
    }


# -- the walk: one entry per route ------------------------------------------------------------


def _no_grid_b(response, field="grid"):
    assert response.status_code == 200, response.text
    body = response.json()
    rows = body.get("features", body.get("items", []))
    found = [r for r in rows if (r.get("properties", r)).get(field) == GRID_B]
    assert not found, f"grid B's objects leaked: {found[:1]}"
    return rows


def _missing(response):
    assert response.status_code in (403, 404), (response.status_code, response.text)
    assert GRID_B not in reason(response) or response.status_code == 404


def _phone_without_grid_b(response, b):
    _page_without_grid_b(response)
    assert b["hazard"] not in response.text and f"alert:{b['alert']}" not in response.text


def _place_missing(response, b):
    _page_without_grid_b(response)
    assert f"place-{b['place']}" not in response.text


def _case_stream_without_grid_b(c, b, seeded_url):
    """Replay every step of every case from the start: none of grid B's may come (grid B's
    hazard was reported; a fresh report in grid A marks the end of the replay)."""
    lon, lat = point_in_grid(seeded_url, GRID_A)
    marker = str(uuid.uuid4())
    mine = {"id": marker, "lat": lat, "lon": lon, "category": "road", "severity": "low"}
    assert c.post("/hazards", json=mine).status_code == 201
    with c.stream("GET", "/cases/stream", params={"after": "0.0"}) as response:
        assert response.status_code == 200
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if marker in text:
                break
    assert f'"grid":"{GRID_A}"' in text
    assert f'"grid":"{GRID_B}"' not in text and b["hazard"] not in text


def walk_items(c, b, layer, object_id):
    _missing(c.get(f"/collections/{layer}/items", params={"grid": GRID_B}))
    _no_grid_b(c.get(f"/collections/{layer}/items", params={"limit": 10000}))
    _missing(c.get(f"/collections/{layer}/items/{object_id}"))


def _page_without_grid_b(response):
    assert response.status_code == 200
    assert GRID_B not in response.text and GRID_A in response.text


def _stream_without_grid_b(c, b, seeded_url):
    """Replay every event from the start: none of grid B's may come (grid B's alert has an
    event; a fresh one of grid A marks the end of the replay)."""
    from gridwatch.alerts.lifecycle import OpenAlert
    from gridwatch.store.alerts import write_event

    with psycopg.connect(seeded_url) as conn:
        row = conn.execute(
            "SELECT a.id, a.resident_id, a.kind, a.since, a.status, a.level, a.opened_at "
            "FROM alerts a WHERE a.id = %s",
            (b["alert"],),
        ).fetchone()
        write_event(conn, OpenAlert(*row), NOW, "escalated", "test", "grid B's")
        mine = conn.execute(
            "SELECT a.id, a.resident_id, a.kind, a.since, a.status, a.level, a.opened_at "
            "FROM alerts a JOIN grids g ON g.id = a.grid_id WHERE g.code = %s LIMIT 1",
            (GRID_A,),
        ).fetchone()
        marker = write_event(conn, OpenAlert(*mine), NOW, "escalated", "test", "grid A's")
    with c.stream("GET", "/alerts/stream", params={"after": 0}) as response:
        assert response.status_code == 200
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if f"id: {marker}\n" in text:
                break
    assert f'"grid":"{GRID_A}"' in text
    assert f'"grid":"{GRID_B}"' not in text


def _missing_at(method: str, path: str, **kwargs):
    """The attack on a route that must not find grid B's object: `path` names it by the ids
    in `b` ({alert}, {hazard}, ...)."""
    return lambda c, b, u: _missing(c.request(method, path.format(**b), **kwargs))


def _request_step_attack(action: str, body: dict):
    return _missing_at("POST", f"/requests/{{request}}/{action}", json=body)


def _open311_missing(response):
    assert response.status_code == 404, response.text
    assert GRID_B not in response.text


def _open311_post_into_grid_b(c, b):
    """Anyone may pass on a citizen's request, wherever it is; the answer names no object."""
    posted = c.post(
        "/open311/v2/requests.json",
        data={"service_code": "noise", "lat": str(b["point"][1]), "long": str(b["point"][0])},
    )
    assert posted.status_code == 201, posted.text
    assert set(posted.json()[0]) == {"service_request_id", "service_notice", "account_id"}


def _open311_listing_without_grid_b(c, b):
    listed = c.get("/open311/v2/requests.json").json()
    assert b["request"] not in [r["service_request_id"] for r in listed]


def _layer_attacks(layer: str, key: str) -> dict:
    """A layer's routes, its grid B feature's id in b[key]: the listing walked without it,
    and its own page missing."""
    return {
        ("GET", f"/collections/{layer}/items"): lambda c, b, u: walk_items(c, b, layer, b[key]),
        ("GET", f"/collections/{layer}/items/{{{key}_id}}"): _missing_at(
            "GET", f"/collections/{layer}/items/{{{key}}}"
        ),
    }


def _transition_attack(action: str, body: dict):
    return _missing_at("POST", f"/hazards/{{hazard}}/{action}", json=body)


WALK = {
    ("GET", "/"): lambda c, b, u: c.get("/").raise_for_status(),
    ("GET", "/conformance"): lambda c, b, u: c.get("/conformance").raise_for_status(),
    ("GET", "/healthz"): lambda c, b, u: c.get("/healthz").raise_for_status(),
    ("GET", "/readyz"): lambda c, b, u: c.get("/readyz").raise_for_status(),
    ("GET", "/docs"): lambda c, b, u: c.get("/docs").raise_for_status(),
    ("GET", "/favicon.ico"): lambda c, b, u: (
        c.get("/favicon.ico").status_code == 301 or pytest.fail("no favicon")
    ),
    ("GET", "/openapi.json"): lambda c, b, u: c.get("/openapi.json").raise_for_status(),
    ("GET", "/login"): lambda c, b, u: c.get("/login").raise_for_status(),
    ("POST", "/login"): lambda c, b, u: None,  # no grid data: see test_browser_login
    ("POST", "/logout"): lambda c, b, u: None,
    ("GET", "/me"): lambda c, b, u: c.get("/me").json()["grids"] == [GRID_A] or pytest.fail(),
    ("GET", "/collections"): lambda c, b, u: c.get("/collections").raise_for_status(),
    ("GET", "/collections/{collection_id}"): lambda c, b, u: c.get(
        "/collections/grids"
    ).raise_for_status(),
    ("GET", "/collections/{collection_id}/queryables"): lambda c, b, u: (
        GRID_B not in c.get("/collections/grids/queryables").raise_for_status().text
        or pytest.fail("grid B in the queryables")
    ),
    ("GET", "/collections/grids/items"): lambda c, b, u: (
        _missing(c.get("/collections/grids/items", params={"grid": GRID_B})),
        _no_grid_b(c.get("/collections/grids/items"), "code"),
    ),
    ("GET", "/collections/grids/items/{code}"): _missing_at(
        "GET", f"/collections/grids/items/{GRID_B}"
    ),
    **{
        route: attack
        for layer, key in (
            ("hazards", "hazard"),
            ("checkins", "checkin"),
            ("alerts", "alert"),
            ("warnings", "warning"),
            ("residents", "resident"),
            ("requests", "request"),
            ("places", "place"),
        )
        for route, attack in _layer_attacks(layer, key).items()
    },
    ("GET", "/collections/{collection_id}/items"): _missing_at("GET", "/collections/secrets/items"),
    ("GET", "/collections/{collection_id}/items/{feature_id}"): _missing_at(
        "GET", "/collections/secrets/items/{resident}"
    ),
    ("POST", "/checkins"): lambda c, b, u: [
        _missing(c.post("/checkins", json={"lat": b["point"][1], "lon": b["point"][0], **kind}))
        for kind in (
            {"kind": "visit", "resident_id": b["resident"], "status": "ok"},
            {"kind": "inspection", "place_id": b["place"], "result": "ok"},
        )
    ],
    ("POST", "/hazards"): lambda c, b, u: _missing(
        c.post(
            "/hazards",
            json={
                "id": str(uuid.uuid4()),
                "lat": b["point"][1],
                "lon": b["point"][0],
                "category": "road",
                "severity": "low",
            },
        )
    ),
    **{
        ("POST", f"/hazards/{{hazard_id}}/{action}"): _transition_attack(action, body)
        for action, body in (
            ("assign", {"assignee": "W001"}),
            ("start", {}),
            ("resolve", {"note": "done"}),
            ("close", {"note": "ok"}),
            ("reopen", {"note": "no"}),
        )
    },
    **{
        ("POST", f"/requests/{{request_id}}/{action}"): _request_step_attack(action, body)
        for action, body in (
            ("dispatch", {"grid": GRID_A}),
            ("accept", {}),
            ("start", {}),
            ("resolve", {"note": "done"}),
            ("feedback", {"rating": "satisfied", "note": "ok"}),
            ("close", {"note": "ok"}),
            ("reopen", {"note": "no"}),
        )
    },
    ("GET", "/open311/v2/services.json"): lambda c, b, u: c.get(
        "/open311/v2/services.json"
    ).raise_for_status(),
    ("GET", "/open311/v2/services/{service_code}.json"): lambda c, b, u: c.get(
        "/open311/v2/services/noise.json"
    ).raise_for_status(),
    ("POST", "/open311/v2/requests.json"): lambda c, b, u: _open311_post_into_grid_b(c, b),
    ("GET", "/open311/v2/requests.json"): lambda c, b, u: _open311_listing_without_grid_b(c, b),
    ("GET", "/open311/v2/requests/{service_request_id}.json"): lambda c, b, u: _open311_missing(
        c.get(f"/open311/v2/requests/{b['request']}.json")
    ),
    ("GET", "/open311/v2/{anything:path}"): lambda c, b, u: _open311_missing(
        c.get(f"/open311/v2/requests/{b['request']}.xml/x")
    ),
    ("POST", "/open311/v2/{anything:path}"): lambda c, b, u: _open311_missing(
        c.post(f"/open311/v2/requests/{b['request']}")
    ),
    ("GET", "/ledger"): lambda c, b, u: (
        _missing(c.get("/ledger", params={"grid": GRID_B})),
        _no_grid_b(c.get("/ledger", params={"limit": 10000})),
    ),
    ("GET", "/ledger.csv"): lambda c, b, u: (
        _missing(c.get("/ledger.csv", params={"grid": GRID_B})),
        GRID_B not in c.get("/ledger.csv").text or pytest.fail("grid B in the CSV"),
    ),
    ("GET", "/ledger.xlsx"): lambda c, b, u: (
        _missing(c.get("/ledger.xlsx", params={"grid": GRID_B})),
        GRID_B not in str(xlsx_rows(c.get("/ledger.xlsx").content))
        or pytest.fail("grid B in the workbook"),
    ),
    ("POST", "/alerts/{alert_id}/ack"): _missing_at("POST", "/alerts/{alert}/ack", json={}),
    ("POST", "/alerts/{alert_id}/resolve"): _missing_at(
        "POST", "/alerts/{alert}/resolve", json={"reason": "x"}
    ),
    ("GET", "/alerts/stream"): lambda c, b, u: _stream_without_grid_b(c, b, u),
    ("GET", "/absences"): lambda c, b, u: (
        _missing(c.get("/absences", params={"resident_id": b["resident"]})),
        [a for a in c.get("/absences").json()["items"] if a["id"] == b["absence"]] == []
        or pytest.fail("grid B's absence listed"),
    ),
    ("POST", "/absences"): lambda c, b, u: _missing(
        c.post(
            "/absences",
            json={
                "resident_id": b["resident"],
                "starts_at": "2026-11-23T08:00",
                "ends_at": "2026-11-24T08:00",
            },
        )
    ),
    ("DELETE", "/absences/{absence_id}"): _missing_at("DELETE", "/absences/{absence}"),
    ("GET", "/coverage"): lambda c, b, u: (
        _missing(c.get("/coverage", params={"grid": GRID_B})),
        _no_grid_b(c.get("/coverage")),
    ),
    ("GET", "/coverage/tracks"): lambda c, b, u: (
        _missing(c.get("/coverage/tracks", params={"grid": GRID_B})),
        _tracks_stay_home(c.get("/coverage/tracks"), u),
    ),
    ("GET", "/maps/overview"): lambda c, b, u: _page_without_grid_b(c.get("/maps/overview")),
    ("GET", "/maps/grids/{code}"): _missing_at("GET", f"/maps/grids/{GRID_B}"),
    ("GET", "/maps/coverage"): lambda c, b, u: _page_without_grid_b(c.get("/maps/coverage")),
    ("GET", "/maps/live"): lambda c, b, u: _page_without_grid_b(c.get("/maps/live")),
    ("GET", "/audit"): lambda c, b, u: _missing(
        c.get("/audit", params={"resident": b["resident"]})
    ),
    ("GET", "/console"): lambda c, b, u: _without_grid_b(c.get("/console")),
    ("GET", "/console/summary.json"): lambda c, b, u: _without_grid_b(
        c.get("/console/summary.json")
    ),
    ("GET", "/console/alerts/{alert_id}"): _missing_at("GET", "/console/alerts/{alert}"),
    ("GET", "/console/alerts/{alert_id}/week.json"): _missing_at(
        "GET", "/console/alerts/{alert}/week.json"
    ),
    ("GET", "/console/ledger"): lambda c, b, u: (
        _missing(c.get("/console/ledger", params={"grid": GRID_B})),
        _page_without_grid_b(c.get("/console/ledger")),
    ),
    ("GET", "/console/cases/{case_id}"): _missing_at("GET", "/console/cases/{hazard}"),
    ("GET", "/console/places"): lambda c, b, u: (
        _missing(c.get("/console/places", params={"grid": GRID_B})),
        _phone_without_grid_b(c.get("/console/places", params={"sort": "-findings"}), b),
        _place_missing(c.get("/console/places"), b),
    ),
    ("GET", "/cases/stream"): lambda c, b, u: _case_stream_without_grid_b(c, b, u),
    ("GET", "/cases/{case_id}/first-to-call"): lambda c, b, u: [
        _missing(c.get(f"/cases/{case}/first-to-call")) for case in (b["hazard"], b["request"])
    ],
    ("GET", "/residents/{resident_id}/first-to-call"): lambda c, b, u: _missing(
        c.get(f"/residents/{b['resident']}/first-to-call")
    ),
    ("GET", "/m"): lambda c, b, u: _phone_without_grid_b(c.get("/m"), b),
    ("GET", "/m/tasks"): lambda c, b, u: _phone_without_grid_b(c.get("/m/tasks"), b),
    ("GET", "/media/{media_id}"): _missing_at("GET", "/media/{media}"),
    ("GET", "/media/{media_id}/thumb"): _missing_at("GET", "/media/{media}/thumb"),
}


def _without_grid_b(response):
    assert response.status_code == 200
    assert GRID_B not in response.text


def _tracks_stay_home(response, seeded_url):
    """Worker A sees only track points in grid A (or their own)."""
    assert response.status_code == 200
    with psycopg.connect(seeded_url) as conn:
        wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (GRID_A,)).fetchone()[0]
    home = shapely.from_wkb(bytes(wkb)).buffer(1e-9)
    for feature in response.json()["features"]:
        shape = shapely.geometry.shape(feature["geometry"])
        assert feature["properties"]["worker_id"] == "W001" or home.contains(shape)


def _routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, hidden ones included."""
    found = set()
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods}
        elif isinstance(route, Mount):
            continue  # /static: the vendored assets, no grid data
        elif hasattr(route, "original_router"):  # a router included lazily (FastAPI >= 0.12x)
            pending.extend(route.original_router.routes)
        elif hasattr(route, "methods"):  # /openapi.json and the like
            found |= {(m, route.path) for m in route.methods if m != "HEAD"}
    return found


def test_every_route_is_walked(module_server):
    routes = _routes(module_server.app)
    assert routes - set(WALK) == set(), "a route with no entry in WALK: add one"
    assert set(WALK) - routes == set(), "WALK names a route the app no longer has"


def test_grid_a_worker_gets_nothing_of_grid_b_anywhere(http, grid_b, seeded_url):
    failures = []
    for (method, path), attack in WALK.items():
        try:
            attack(http["worker_a"], grid_b, seeded_url)
        except Exception as exc:  # collect them all: one report names every leaky route
            failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_community_duty_officer_stays_in_their_community(http, grid_b):
    duty = http["duty_community"]
    assert duty.get(f"/collections/hazards/items/{grid_b['hazard']}").status_code == 404
    assert duty.post(f"/alerts/{grid_b['alert']}/ack", json={}).status_code == 404
    grids = duty.get("/collections/grids/items", params={"limit": 1000}).json()["features"]
    assert {f["id"][:8] for f in grids} == {"QS-01-01"}
    assert http["duty_street"].get(f"/collections/hazards/items/{grid_b['hazard']}").is_success


PUBLIC = {
    "/",
    "/conformance",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/login",
    "/logout",
    "/favicon.ico",
    "/open311/v2/services.json",  # names no one: public, as GeoReport v2 has it
    "/open311/v2/services/{service_code}.json",
    "/open311/v2/{anything:path}",  # the specification's 404
}
POSTERS = {("POST", "/checkins"), ("POST", "/hazards"), ("POST", "/open311/v2/requests.json")}
# Read with a device's token, these answer only what the device posted itself.
DEVICE_READS = {
    ("GET", "/open311/v2/requests.json"),
    ("GET", "/open311/v2/requests/{service_request_id}.json"),
}


def _sample_path(path: str, b: dict) -> str:
    return (
        path.replace("{collection_id}", "grids")
        .replace("{code}", GRID_A)
        .replace("{hazard_id}", b["hazard"])
        .replace("{checkin_id}", b["checkin"])
        .replace("{alert_id}", str(b["alert"]))
        .replace("{warning_id}", str(b["warning"]))
        .replace("{resident_id}", b["resident"])
        .replace("{feature_id}", "x")
        .replace("{absence_id}", str(b["absence"]))
        .replace("{request_id}", b["request"])
        .replace("{service_request_id}", b["request"])
        .replace("{media_id}", b["media"])
        .replace("{place_id}", b["place"])
    )


def test_no_token_is_401_and_a_device_only_posts(http, grid_b, module_server):
    for method, path in sorted(_routes(module_server.app)):
        if path in PUBLIC:
            continue
        url = _sample_path(path, grid_b)
        anonymous = http["anonymous"].request(method, url, json={})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert_security_headers(anonymous)
        if (method, path) in POSTERS or path == "/me":
            continue
        if (method, path) in DEVICE_READS:
            device = http["device"].request(method, url)
            assert device.status_code in (200, 404), (method, path, device.text)
            assert "grid B's own" not in device.text, (method, path)
            continue
        device = http["device"].request(method, url, json={})
        assert device.status_code == 403, (method, path, device.text)
        assert "device tokens may only post" in reason(device)
        assert_security_headers(device)


def test_bad_credentials(module_server):
    import httpx

    with httpx.Client(base_url=module_server.url) as client:
        for header in ("Bearer gw_nope", "Basic dXNlcjpwYXNz", "Bearer", "Token gw_x"):
            response = client.get("/me", headers={"Authorization": header})
            assert response.status_code == 401 and reason(response)


def test_users_command_prints_the_token_alone_and_stores_only_its_hash(
    seeded_url, module_server, capsys, tmp_path
):
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    register(parser.add_subparsers(), common)
    settings = Settings(database_url=seeded_url, data_dir=tmp_path)
    args = parser.parse_args(
        [
            "users",
            "add",
            "duty-zhao",
            "--role",
            "duty_officer",
            "--grid",
            "QS-01-01",
            "--level",
            "community",
        ]
    )
    assert args.run(settings, args) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("gw_") and " " not in token and len(token) > 40
    with psycopg.connect(seeded_url) as conn:
        stored = conn.execute(
            "SELECT token_sha256 FROM api_users WHERE name = 'duty-zhao'"
        ).fetchone()[0]
        assert bytes(stored) == hashlib.sha256(token.encode()).digest()
        everything = conn.execute("SELECT api_users::text FROM api_users").fetchall()
    assert not any(token in row[0] for row in everything)
    import httpx

    with httpx.Client(base_url=module_server.url) as client:
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me == {
        "name": "duty-zhao",
        "role": "duty_officer",
        "level": "community",
        "grids": ["QS-01-01"],
        "sees_all_grids": False,
    }
    for bad in (
        ["users", "add", "x", "--role", "grid_worker"],
        ["users", "add", "x", "--role", "admin", "--grid", GRID_A],
        ["users", "add", "x", "--role", "duty_officer", "--grid", GRID_A, "--level", "street"],
        ["users", "add", "x", "--role", "grid_worker", "--grid", "NOPE"],
        ["users", "add", "duty-zhao", "--role", "admin"],
    ):
        args = parser.parse_args(bad)
        with pytest.raises(Exception) as caught:
            args.run(settings, args)
        assert str(caught.value), bad
    args = parser.parse_args(["users", "revoke", "duty-zhao"])
    assert args.run(settings, args) == 0
    with httpx.Client(base_url=module_server.url) as client:
        gone = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


def test_browser_login_sets_an_httponly_session(module_server, module_tokens):
    import httpx

    with httpx.Client(base_url=module_server.url) as browser:
        page = browser.get("/maps/overview", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/maps/overview"
        wrong = browser.post("/login", data={"token": "gw_wrong", "next": "/maps/live"})
        assert wrong.status_code == 401 and "gw_wrong" not in wrong.text
        device = browser.post("/login", data={"token": module_tokens.device})
        assert device.status_code == 401
        good = browser.post(
            "/login", data={"token": module_tokens.worker_a, "next": "//evil.example/x"}
        )
        assert good.status_code == 303 and good.headers["location"] == "/maps/overview"
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert module_tokens.worker_a.lower() not in cookie, (
            "the cookie is a session, not the token"
        )
        assert browser.get("/maps/overview").status_code == 200
        assert browser.get(f"/maps/grids/{GRID_B}").status_code == 404
        forged = browser.post("/absences", json={})
        assert forged.status_code == 403 and "X-Requested-With" in reason(forged)
        same_site = browser.post("/absences", json={}, headers={"X-Requested-With": "gridwatch"})
        assert same_site.status_code == 422
        assert browser.post("/logout").status_code == 303
        assert browser.get("/maps/overview", headers={"Accept": "text/html"}).status_code == 303


def test_personal_information_never_reaches_the_log(http, seeded_url, caplog):
    [(name, phone)] = query(
        seeded_url,
        "SELECT r.name, r.phone FROM residents r JOIN grids g ON g.id = r.grid_id "
        "WHERE g.code = %s ORDER BY r.id LIMIT 1",
        (GRID_A,),
    )
    caplog.set_level(logging.DEBUG)
    http["worker_a"].get("/collections/residents/items", params={"pii": "true"})
    http["worker_a"].get("/maps/grids/" + GRID_A)
    http["worker_a"].post("/absences", json={"resident_id": name, "note": phone})
    assert name not in caplog.text and phone not in caplog.text


def test_reusing_another_grids_hazard_id_is_404_like_a_missing_one(http, grid_b, seeded_url):
    """Grid A's worker posting a report of their own grid under grid B's hazard id learns
    nothing of it: 404 with the words of a missing hazard, not 409 "already used"."""
    lon, lat = point_in_grid(seeded_url, GRID_A)
    report = {"lat": lat, "lon": lon, "category": "road", "severity": "low"}
    taken = http["worker_a"].post("/hazards", json={**report, "id": grid_b["hazard"]})
    assert taken.status_code == 404, taken.text
    assert reason(taken) == f"no hazard {grid_b['hazard']}"
    assert (
        grid_b["hazard"]
        in http["worker_b"].get("/collections/hazards/items/" + grid_b["hazard"]).text
    )
    # One's own grid keeps the 409 for an id taken by a different report.
    first = http["worker_a"].post("/hazards", json={**report, "id": str(uuid.uuid4())}).json()
    again = http["worker_a"].post(
        "/hazards", json={**report, "id": first["id"], "severity": "high"}
    )
    assert again.status_code == 409
