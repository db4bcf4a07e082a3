"""The layers as OGC API - Features against the real database: collections, items with bbox,
datetime, paging by `next` links, single features, live counts at every level, masking."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import shapely

from gridwatch.api.privacy import mask_address, mask_name, mask_phone
from gridwatch.store.partitions import ensure_partitions
from tests.support.api import COMMUNITY_A, GRID_A, NOW, reason

ZONE = ZoneInfo("Asia/Shanghai")
DISTRICT_BOX = (109.8, 40.55, 110.0, 40.75)  # the sample street sits well inside this


def _all_pages(client, url: str, params: dict) -> tuple[list[dict], list[dict]]:
    """Follow `next` links; returns (features, pages)."""
    features, pages = [], []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        features.extend(page["features"])
        following = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not following:
            return features, pages
        response = client.get(following[0])


def _in_district(lon: float, lat: float) -> bool:
    return DISTRICT_BOX[0] < lon < DISTRICT_BOX[2] and DISTRICT_BOX[1] < lat < DISTRICT_BOX[3]


def test_landing_conformance_and_collections(http):
    admin = http["admin"]
    landing = admin.get("/").json()
    assert {link["rel"] for link in landing["links"]} >= {"service-desc", "conformance", "data"}
    conformance = admin.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/geojson") for c in conformance)
    listed = admin.get("/collections").json()["collections"]
    assert [c["id"] for c in listed] == [
        "grids",
        "hazards",
        "checkins",
        "alerts",
        "requests",
        "places",
        "residents",
        "warnings",
    ]
    for item in listed:
        one = admin.get(f"/collections/{item['id']}").json()
        assert one["itemType"] == "feature"
        bbox = one["extent"]["spatial"]["bbox"][0]
        assert _in_district(bbox[0], bbox[1]) or bbox[0] < 109.9  # the district sketch is larger
        assert any(link["rel"] == "items" for link in one["links"])
    missing = admin.get("/collections/rivers")
    assert missing.status_code == 404 and "rivers" in reason(missing)
    assert admin.get("/collections/rivers/items").status_code == 404


def test_grids_carry_live_counts_rolled_up_through_every_level(http, seeded_url):
    response = http["admin"].get("/collections/grids/items", params={"limit": 1000})
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    by_code = {f["id"]: f for f in body["features"]}
    assert body["numberMatched"] == body["numberReturned"] == 120  # 1 + 1 + 8 + 110
    levels = [f["properties"]["level"] for f in body["features"]]
    assert levels.count("grid") == 110 and levels.count("community") == 8
    with psycopg.connect(seeded_url) as conn:
        residents = conn.execute("SELECT count(*) FROM residents").fetchone()[0]
        open_alerts = conn.execute(
            "SELECT count(*) FROM alerts WHERE status <> 'resolved'"
        ).fetchone()[0]
        open_hazards = conn.execute(
            "SELECT count(*) FROM hazard_reports WHERE status NOT IN ('resolved', 'closed')"
        ).fetchone()[0]
        today = conn.execute(
            "SELECT count(*) FROM patrol_checkins WHERE observed_at >= %s AND observed_at < %s "
            "AND grid_id IS NOT NULL",
            (NOW.replace(hour=0), NOW.replace(hour=0) + timedelta(days=1)),
        ).fetchone()[0]
    street = by_code["QS-01"]["properties"]
    assert street["residents"] == residents == 2000
    assert street["open_alerts"] == open_alerts > 0
    assert street["open_hazards"] == open_hazards > 0
    assert 0 < street["checkins"] == today
    for community in [f for f in body["features"] if f["properties"]["level"] == "community"]:
        children = [
            f["properties"]
            for f in body["features"]
            if f["properties"]["parent"] == community["id"]
        ]
        for key in ("residents", "open_alerts", "open_hazards", "overdue_hazards", "checkins"):
            assert community["properties"][key] == sum(c[key] for c in children), key
    grid = by_code[GRID_A]
    assert grid["geometry"]["type"] == "MultiPolygon"
    lon, lat = grid["geometry"]["coordinates"][0][0][0]
    assert _in_district(lon, lat), "RFC 7946: longitude first"
    assert len(grid["bbox"]) == 4
    only = http["admin"].get("/collections/grids/items", params={"level": "community"}).json()
    assert {f["properties"]["level"] for f in only["features"]} == {"community"}


def test_grid_bbox_uses_stored_boxes_then_exact_shapes(http, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute("SELECT code, geometry FROM grids WHERE level = 'grid'").fetchall()
    shapes = {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}
    inside = shapes[GRID_A].representative_point()
    tiny = (inside.x - 1e-5, inside.y - 1e-5, inside.x + 1e-5, inside.y + 1e-5)
    found = (
        http["admin"]
        .get(
            "/collections/grids/items",
            params={"bbox": ",".join(map(str, tiny)), "level": "grid"},
        )
        .json()
    )
    assert [f["id"] for f in found["features"]] == [GRID_A]
    # A grid's own bounding box overlaps the boxes of several neighbours; only the shapes
    # that really reach into it may come back.
    box = shapes[GRID_A].bounds
    window = shapely.box(*box)
    expected = sorted(code for code, shape in shapes.items() if shape.intersects(window))
    near_by_box = [
        code
        for code, shape in shapes.items()
        if shape.bounds[0] <= box[2]
        and shape.bounds[2] >= box[0]
        and shape.bounds[1] <= box[3]
        and shape.bounds[3] >= box[1]
    ]
    found = (
        http["admin"]
        .get("/collections/grids/items", params={"bbox": ",".join(map(str, box)), "level": "grid"})
        .json()
    )
    assert sorted(f["id"] for f in found["features"]) == expected
    assert len(expected) <= len(near_by_box)


def test_paging_follows_next_links_without_gaps_or_repeats(http):
    features, pages = _all_pages(http["admin"], "/collections/grids/items", {"limit": 50})
    assert [p["numberReturned"] for p in pages] == [50, 50, 20]
    assert len({f["id"] for f in features}) == 120
    features, pages = _all_pages(http["admin"], "/collections/hazards/items", {"limit": 300})
    assert [p["numberReturned"] for p in pages] == [300, 300, 300, 100]
    assert all(p["numberMatched"] == 1000 for p in pages)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == 1000
    received = [f["properties"]["received_at"] for f in features]
    assert received == sorted(received, reverse=True)
    checkins, _ = _all_pages(
        http["admin"], "/collections/checkins/items", {"limit": 5000, "grid": GRID_A}
    )
    keys = [f["id"] for f in checkins]
    assert len(keys) == len(set(keys)) > 150
    assert {f["properties"]["grid"] for f in checkins} == {GRID_A}


def test_limit_is_capped_at_the_server_maximum(http, module_server):
    most = module_server.state.settings.api_max_limit
    body = http["admin"].get("/collections/checkins/items", params={"limit": most * 10}).json()
    assert body["numberReturned"] == most


def test_datetime_instants_intervals_open_ends_and_days(http):
    admin = http["admin"]
    cut = (NOW - timedelta(days=5)).isoformat()
    before = admin.get("/collections/hazards/items", params={"datetime": f"../{cut}"}).json()
    after = admin.get("/collections/hazards/items", params={"datetime": f"{cut}/.."}).json()
    assert before["numberMatched"] + after["numberMatched"] == 1000
    assert before["numberMatched"] > 0 and after["numberMatched"] > 0
    one = after["features"][0]["properties"]["observed_at"]
    instant = admin.get("/collections/hazards/items", params={"datetime": one}).json()
    assert [f["properties"]["observed_at"] for f in instant["features"]] == [one]
    day = admin.get(
        "/collections/checkins/items",
        params={"datetime": NOW.date().isoformat(), "grid": GRID_A, "limit": 1},
    ).json()
    window = admin.get(
        "/collections/checkins/items",
        params={
            "datetime": f"{NOW.replace(hour=0).isoformat()}/"
            f"{(NOW.replace(hour=0) + timedelta(days=1, microseconds=-1)).isoformat()}",
            "grid": GRID_A,
            "limit": 1,
        },
    ).json()
    assert day["numberMatched"] == window["numberMatched"] > 0


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"bbox": "1,2,3"}, 422, "bbox needs 4 numbers"),
        ({"bbox": "109,95,110,96"}, 422, "latitudes"),
        ({"bbox": "a,b,c,d"}, 422, "numbers"),
        ({"bbox": "110,40,109,41"}, 422, "antimeridian"),
        ({"datetime": "yesterday"}, 422, "RFC 3339"),
        ({"datetime": "2026-11-23T08:00:00"}, 422, "offset"),
        ({"datetime": "2026-11-24T00:00:00Z/2026-11-23T00:00:00Z"}, 422, "ends before"),
        ({"datetime": "../.."}, 422, "open at both ends"),
        ({"limit": "0"}, 422, "limit"),
        ({"cursor": "bm90IG91cnM"}, 422, "cursor"),
        ({"bbbox": "1,2,3,4"}, 400, "unknown query parameter 'bbbox'"),
        ({"status": "lost"}, 422, "unknown status"),
        ({"grid": "NOPE"}, 404, "no grid"),
    ],
)
def test_bad_parameters_get_a_reason(http, params, status, words):
    response = http["admin"].get("/collections/hazards/items", params=params)
    assert response.status_code == status, response.text
    assert words in reason(response)


def test_single_features_of_every_layer(http):
    admin = http["admin"]
    grid = admin.get(f"/collections/grids/items/{GRID_A}").json()
    assert grid["id"] == GRID_A and grid["properties"]["parent"] == COMMUNITY_A
    hazards = admin.get("/collections/hazards/items", params={"limit": 1}).json()["features"]
    hazard = admin.get(f"/collections/hazards/items/{hazards[0]['id']}").json()
    assert hazard["properties"]["events"][0]["action"] == "report"
    checkin = admin.get("/collections/checkins/items", params={"limit": 1}).json()["features"][0]
    again = admin.get(f"/collections/checkins/items/{checkin['id']}").json()
    assert again == checkin
    alert = admin.get("/collections/alerts/items", params={"limit": 1}).json()["features"][0]
    full = admin.get(f"/collections/alerts/items/{alert['id']}").json()
    assert full["properties"]["events"][0]["action"] == "open"
    assert full["properties"]["resident"]["masked"] is False  # the admin needs to call them
    resident = admin.get(f"/collections/residents/items/{full['properties']['resident_id']}")
    assert resident.json()["properties"]["masked"] is False
    for path in (
        "/collections/grids/items/NOPE",
        "/collections/hazards/items/not-a-uuid",
        "/collections/hazards/items/00000000-0000-4000-8000-000000000000",
        "/collections/checkins/items/gw:W001@2001-01-01T00:00:00+00:00",
        "/collections/checkins/items/garbage",
        "/collections/alerts/items/999999",
        "/collections/residents/items/R99999",
    ):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert reason(response)


def test_filters_narrow_every_layer(http):
    admin = http["admin"]
    resolved = admin.get("/collections/hazards/items", params={"status": "resolved,closed"})
    assert {f["properties"]["status"] for f in resolved.json()["features"]} <= {
        "resolved",
        "closed",
    }
    critical = admin.get("/collections/hazards/items", params={"severity": "critical"}).json()
    assert {f["properties"]["severity"] for f in critical["features"]} == {"critical"}
    community = admin.get(
        "/collections/hazards/items", params={"grid": COMMUNITY_A, "limit": 1000}
    ).json()
    assert {f["properties"]["grid"][:8] for f in community["features"]} == {COMMUNITY_A}
    active = admin.get("/collections/alerts/items", params={"status": "active"}).json()
    assert active["numberMatched"] == 60
    visits = admin.get("/collections/checkins/items", params={"kind": "visit"}).json()
    assert {f["properties"]["kind"] for f in visits["features"]} == {"visit"}
    alerting = admin.get("/collections/residents/items", params={"alerting": "true"}).json()
    assert alerting["numberMatched"] == 60
    assert all(f["properties"]["open_alerts"] for f in alerting["features"])


def test_residents_layer_is_masked_unless_personal_data_is_asked_for(http):
    masked = http["duty_street"].get("/collections/residents/items", params={"limit": 5}).json()
    first = masked["features"][0]["properties"]
    assert first["masked"] is True
    assert "*" in first["name"] and "****" in first["phone"]
    clear = (
        http["duty_street"]
        .get("/collections/residents/items", params={"limit": 5, "pii": "true"})
        .json()
    )
    assert clear["features"][0]["properties"]["phone"].isdigit()
    own = (
        http["worker_a"]
        .get("/collections/residents/items", params={"pii": "true", "limit": 1000})
        .json()
    )
    assert own["numberMatched"] > 0
    assert {f["properties"]["grid"] for f in own["features"]} == {GRID_A}
    assert all(f["properties"]["masked"] is False for f in own["features"])


def test_a_masked_resident_shows_only_the_cell_of_their_home(http, seeded_url):
    """Masked, a home's point is the centre of its ~50 m cell: the same on every request, and
    a box drawn tight around the exact point does not find it."""
    with psycopg.connect(seeded_url) as conn:
        exact = {
            rid: (lon, lat)
            for rid, lon, lat in conn.execute(
                "SELECT r.id, r.lon, r.lat FROM residents r JOIN grids g ON g.id = r.grid_id "
                "WHERE g.code = %s AND r.lon IS NOT NULL",
                (GRID_A,),
            )
        }

    def positions(**params) -> dict[str, tuple[float, float]]:
        answer = http["worker_a"].get(
            "/collections/residents/items", params={"limit": 10000, **params}
        )
        return {f["id"]: tuple(f["geometry"]["coordinates"]) for f in answer.json()["features"]}

    masked = positions()
    assert masked == positions(), "the same point every time"
    assert set(masked) == set(exact)
    for rid, (lon, lat) in exact.items():
        shown = masked[rid]
        assert (round(lon, 7), round(lat, 7)) != shown
        assert abs(shown[0] - lon) <= 0.00025 + 1e-9 and abs(shown[1] - lat) <= 0.00025 + 1e-9
    assert len(set(masked.values())) < len(masked), "homes share cells"
    assert positions(pii="true") == {r: (round(x, 7), round(y, 7)) for r, (x, y) in exact.items()}
    rid, (lon, lat) = next(iter(exact.items()))
    shown = masked[rid]
    # A box around the exact point that leaves out the centre of its cell.
    tight = (lon - 1e-6, lat - 1e-6, lon + 1e-6, lat + 1e-6)
    if not (tight[0] <= shown[0] <= tight[2] and tight[1] <= shown[1] <= tight[3]):
        found = positions(bbox=",".join(f"{v:.7f}" for v in tight))
        cell_mates = [r for r, p in masked.items() if p == shown]
        assert sorted(found) == sorted(cell_mates), "a tight box finds the whole cell or none"


def test_masks():
    assert mask_name("王秀华") == "王*华"
    assert mask_name("王华") == "王*"
    assert mask_name("巴特尔") == "巴*尔"
    assert mask_name("斯琴图雅") == "斯**雅"
    assert mask_phone("13912341234") == "139****1234"
    assert mask_address("青山区富强路12号3栋2单元301室") == "青山区富强路****"
    assert mask_name(None) is None


def test_ready_only_when_database_and_broker_answer(seeded_url, mqtt_url, tmp_path):
    from tests.support.api import ApiServer, Clock, api_settings
    from tests.support.ports import free_port

    settings = api_settings(tmp_path, seeded_url)
    with ApiServer(settings, seeded_url, Clock(), mqtt_url=mqtt_url) as server:
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready == {"status": "ok", "database": "ok", "broker": "ok"}
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    with ApiServer(settings, seeded_url, Clock(), mqtt_url=nobody) as server:
        response = httpx.get(f"{server.url}/readyz")
        assert response.status_code == 503
        assert response.json()["broker"].startswith("unreachable")
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_served_polygons_follow_rfc_7946_ring_order(http):
    features, _ = _all_pages(http["admin"], "/collections/grids/items", {"limit": 1000})
    rings = 0
    for feature in features:
        for polygon in shapely.geometry.shape(feature["geometry"]).geoms:
            assert polygon.exterior.is_ccw, feature["id"]  # RFC 7946 §3.1.6
            assert not any(hole.is_ccw for hole in polygon.interiors), feature["id"]
            rings += 1
    assert rings >= 120


def test_a_home_whose_meter_never_reported_is_awaiting_installation(http, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        resident, meter = conn.execute(
            "SELECT resident_id, id FROM devices WHERE kind = 'meter' ORDER BY id LIMIT 1"
        ).fetchone()
    path = f"/collections/residents/items/{resident}"
    assert http["admin"].get(path).json()["properties"]["awaiting_installation"] is True
    at = NOW - timedelta(minutes=5)
    with psycopg.connect(seeded_url) as conn:
        ensure_partitions(conn, {at.astimezone(ZONE).date()}, ZONE)
        conn.execute(
            "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w) "
            "VALUES (%s, %s, %s, 40)",
            (meter, at, at),
        )
    try:
        assert http["admin"].get(path).json()["properties"]["awaiting_installation"] is False
    finally:
        with psycopg.connect(seeded_url) as conn:
            conn.execute("DELETE FROM meter_readings WHERE meter_id = %s", (meter,))
