"""The places register on screen (/console/places, 场所巡查) over plain HTTP: each filter of the
places layer, the sort by a heading, overdue places in red with how long, contacts masked as
the layer masks them, open findings linking to their cases; scoped like the layer (another
grid's worker sees none of the other grid's places and gets 404 asking for its grid; no
session, a revoked token: the login page). An inspection's finding names the photos posted
with it (upload:N): they are its case's, shown on the case page with the place, and the
ledger (on screen, in JSON, CSV and XLSX) names the place; the phone view holds the places
due an inspection and the findings' cases."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest

from gridwatch.maps.texts import texts_for
from gridwatch.store.users import create_user, revoke_user
from tests.support.api import GRID_A, GRID_B, NOW, english_client, reason
from tests.support.databases import query, query_one
from tests.support.photos import jpeg_with_gps
from tests.support.places import PLACE_A, PLACE_B, inspection, register_places
from tests.support.spreadsheets import csv_rows, xlsx_rows

ZH = texts_for("zh")
ROW = re.compile(r'<tr id="place-([^"]+)"')
FIRE = {"category": "fire", "severity": "high", "description": "灭火器过期未更换"}


def _rows(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text[:300]
    return ROW.findall(response.text)


def _row_of(html: str, place: str) -> str:
    start = html.index(f'<tr id="place-{place}"')
    return html[start : html.index("</tr>", start)]


def _multipart(body: dict, *photos: bytes) -> dict:
    """httpx's arguments for a post of `body` as the form field `payload` with `photos`."""
    return {
        "data": {"payload": json.dumps(body, ensure_ascii=False)},
        "files": [("photos", (f"p{n}.jpg", data, "image/jpeg")) for n, data in enumerate(photos)],
    }


@pytest.fixture(scope="module")
def places(seeded_url, http, tmp_path_factory) -> dict:
    """This module's two places, registered eight days before NOW: PLACE_A (a restaurant of
    grid A, every 7 days: overdue by a day, never inspected) and PLACE_B (a shop of grid B,
    every 30 days), which grid B's worker has just inspected with a finding and two photos:
    the first the finding's (upload:1), the second the check-in's."""
    points = register_places(seeded_url, tmp_path_factory.mktemp("places"), NOW - timedelta(days=8))
    lon, lat = points[PLACE_B]
    at = NOW - timedelta(minutes=10)
    body = inspection(PLACE_B, lon, lat, at, [{**FIRE, "photos": ["upload:1"]}])
    posted = http["worker_b"].post(
        "/checkins", **_multipart(body, jpeg_with_gps(), jpeg_with_gps(colour=(20, 90, 200)))
    )
    assert posted.status_code == 201, posted.text
    [(hazard, photos)] = query(
        seeded_url, "SELECT id, photo_urls FROM hazard_reports WHERE place_id = %s", (PLACE_B,)
    )
    checkin_photos = posted.json()["properties"]["photo_urls"]
    return {"hazard": str(hazard), "photos": photos, "checkin_photos": checkin_photos}


def test_the_register_shows_each_place_with_its_clock_and_findings(http, places):
    page = http["duty_street"].get("/console/places", headers={"Accept": "text/html"})
    assert _rows(page) == [PLACE_A, PLACE_B], "the most overdue first"
    html = page.text
    assert 'href="/console/places" class="on"' in html  # its place in the bar
    overdue = _row_of(html, PLACE_A)
    assert 'class="late"' in overdue and ZH["console"]["overdue_by"].format(h="1天") in overdue
    assert ZH["places"]["never"] in overdue and "小餐饮" in overdue
    # The person responsible and their phone masked, as the layer shows them.
    assert "王*娜 · 138****0001" in overdue
    assert "王丽娜" not in html and "13800000001" not in html
    inspected = _row_of(html, PLACE_B)
    assert 'class="late"' not in inspected and "11-23 11:50" in inspected
    assert f'href="/console/cases/{places["hazard"]}">消防 · 高 <small>已上报</small>' in inspected
    assert "共 2 处场所" in html and "其中 1 处超期未巡查" in html


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"overdue": "true"}, [PLACE_A]),
        ({"overdue": "false"}, [PLACE_B]),
        ({"findings": "true"}, [PLACE_B]),
        ({"findings": "false"}, [PLACE_A]),
        ({"kind": "restaurant"}, [PLACE_A]),
        ({"kind": "warehouse"}, []),
        ({"grid": GRID_B}, [PLACE_B]),
        ({"grid": GRID_A, "overdue": "true", "findings": "false"}, [PLACE_A]),
        ({"kind": "", "grid": "", "overdue": "", "findings": "", "sort": ""}, [PLACE_A, PLACE_B]),
        ({"sort": "name"}, [PLACE_B, PLACE_A]),  # 幸福便利店 before 老王面馆, code point order
        ({"sort": "-name"}, [PLACE_A, PLACE_B]),
        ({"sort": "-findings"}, [PLACE_B, PLACE_A]),
        ({"sort": "-due"}, [PLACE_B, PLACE_A]),
        ({"sort": "last"}, [PLACE_B, PLACE_A]),  # never inspected last
    ],
)
def test_each_filter_and_order(http, places, query, shown):
    assert _rows(http["duty_street"].get("/console/places", params=query)) == shown


def test_a_heading_sorts_and_a_second_click_sorts_back(http, places):
    html = http["duty_street"].get("/console/places", params={"overdue": "true"}).text
    assert 'href="/console/places?overdue=true&amp;sort=name"' in html
    again = http["duty_street"].get("/console/places", params={"sort": "name"}).text
    assert 'href="/console/places?sort=-name">场所 ▲' in again


@pytest.mark.parametrize(
    "query",
    [{"kind": "ufo"}, {"overdue": "maybe"}, {"findings": "1"}, {"sort": "price"}, {"offset": -1}],
)
def test_a_bad_filter_is_refused_with_its_reason(http, places, query):
    refused = http["duty_street"].get("/console/places", params=query)
    assert refused.status_code == 422, refused.text
    assert reason(refused)


def test_each_caller_sees_their_grids_places_only(http, places, seeded_url, module_server):
    assert _rows(http["worker_a"].get("/console/places")) == [PLACE_A]
    assert _rows(http["worker_b"].get("/console/places")) == [PLACE_B]
    assert _rows(http["duty_community"].get("/console/places")) == [PLACE_A]
    assert places["hazard"] not in http["worker_a"].get("/console/places").text
    # Another grid's grid is not even confirmed to exist.
    hidden = http["worker_b"].get("/console/places", params={"grid": GRID_A})
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    grids = re.findall(r'<option value="([^"]+)"', http["worker_b"].get("/console/places").text)
    assert GRID_A not in grids and GRID_B in grids
    assert http["device"].get("/console/places").status_code == 403
    assert http["anonymous"].get("/console/places").status_code == 401
    page = http["anonymous"].get("/console/places", headers={"Accept": "text/html"})
    assert page.status_code in (302, 303, 307) and "/login" in page.headers["location"]
    # A worker logged in in a browser, then revoked: sent to log in again.
    name = f"W-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, name, role="grid_worker", grid_codes=(GRID_A,))
    with httpx.Client(base_url=module_server.url) as browser:
        login = browser.post("/login", data={"token": token, "next": "/console/places"})
        assert login.status_code == 303 and login.headers["location"] == "/console/places"
        assert _rows(browser.get("/console/places")) == [PLACE_A]
        with psycopg.connect(seeded_url) as conn:
            revoke_user(conn, name, now=NOW)
        page = browser.get("/console/places?overdue=true", headers={"Accept": "text/html"})
        assert page.status_code in (302, 303, 307)
        assert page.headers["location"].startswith("/login")
        assert browser.get("/console/places").status_code == 401
    with httpx.Client(base_url=module_server.url) as revoked:
        bearer = revoked.get("/console/places", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 401


def test_the_desk_links_its_overdue_inspections_to_the_register(http, places):
    desk = http["duty_street"].get("/console").text
    link = re.search(
        r'<a href="/console/places\?overdue=true">[^<]*<b data-k="inspections.overdue">(\d+)</b>',
        desk,
    )
    assert link and link.group(1) == "1"
    summary = http["worker_b"].get("/console/summary.json").json()
    assert summary["inspections"]["overdue"] == 0


def test_a_findings_photos_are_its_cases_and_its_page_names_the_place(http, places, seeded_url):
    [photo] = places["photos"]
    [checkin_photo] = places["checkin_photos"]
    assert photo.startswith("/media/") and checkin_photo.startswith("/media/")
    assert photo != checkin_photo
    step, owner = query_one(
        seeded_url, "SELECT step, hazard_id FROM media WHERE id = %s", (photo.split("/")[-1],)
    )
    assert (step, str(owner)) == ("report", places["hazard"])
    assert query_one(
        seeded_url, "SELECT step FROM media WHERE id = %s", (checkin_photo.split("/")[-1],)
    ) == ("checkin",)
    case = http["worker_b"].get(f"/console/cases/{places['hazard']}").text
    assert f'<img src="{photo}/thumb"' in case and checkin_photo not in case
    assert f'href="/console/places?grid={GRID_B}#place-{PLACE_B}">幸福便利店</a> · 商铺' in case
    assert http["worker_b"].get(photo).status_code == 200
    assert http["worker_a"].get(photo).status_code == 404
    assert http["worker_a"].get(f"/console/cases/{places['hazard']}").status_code == 404
    ledger = http["duty_street"].get("/console/ledger", params={"grid": GRID_B}).text
    assert f'<b class="gw-place">幸福便利店</b> · {FIRE["description"]}' in ledger


def test_the_ledgers_json_and_files_name_a_findings_place(http, places):
    """场所 in the JSON and as a column of the CSV and the workbook (the 20th, after 期限类别):
    the place's name for the finding, empty (null in JSON) for a hazard no inspection found."""
    duty = http["duty_street"]
    items = duty.get("/ledger", params={"grid": GRID_B, "limit": 1000}).json()["items"]
    named = {item["id"]: item["place"] for item in items}
    assert named.pop(places["hazard"]) == "幸福便利店"
    assert named and set(named.values()) == {None}
    for path in ("/ledger.csv", "/ledger.xlsx"):
        file = duty.get(path, params={"grid": GRID_B})
        assert file.status_code == 200, file.text[:300]
        read = csv_rows if path.endswith(".csv") else xlsx_rows
        [header, *rows] = read(file.content)
        assert header[19] == ZH["ledger_columns"][19] == "场所"
        places_of = {row[0]: row[19] for row in rows}
        assert places_of.pop(places["hazard"]) == "幸福便利店", path
        assert set(places_of.values()) == {""}, path


def test_a_photo_named_wrong_is_refused(http, places, seeded_url):
    lon, lat = query_one(seeded_url, "SELECT lon, lat FROM places WHERE id = %s", (PLACE_A,))
    at = NOW - timedelta(minutes=3)
    for names, photos, words in (
        (["upload:2"], 1, "'upload:2' names no photo of this post (1 sent in 'photos')"),
        (["upload:1", "upload:1"], 1, "'upload:1' is named twice"),
        (["upload:0"], 1, "'upload:0' names no photo"),
        (["upload:x"], 1, "'upload:x' names no photo"),
        (["upload:1"], 0, "'upload:1' names no photo of this post (0 sent in 'photos')"),
    ):
        body = inspection(PLACE_A, lon, lat, at, [{**FIRE, "photos": names}])
        refused = http["worker_a"].post(
            "/checkins", **_multipart(body, *[jpeg_with_gps()] * photos)
        )
        assert refused.status_code == 422, refused.text
        assert f"finding 1: {words}" in reason(refused)
    assert query(seeded_url, "SELECT 1 FROM hazard_reports WHERE place_id = %s", (PLACE_A,)) == []


def test_the_phone_holds_the_places_due_and_the_findings_cases(http, places):
    mine = http["worker_a"].get("/m").text
    assert f'data-key="inspection:{PLACE_A}"' in mine
    assert f'data-action="inspect" data-post="/checkins" data-task="inspection:{PLACE_A}"' in mine
    assert f'data-place="{PLACE_A}"' in mine and 'id="gw-form-inspect"' in mine
    theirs = http["worker_b"].get("/m/tasks").text
    assert f"inspection:{PLACE_B}" not in theirs, "inspected: not due for 30 days"
    assert f"inspection:{PLACE_A}" not in theirs and places["hazard"] not in mine
    finding = theirs[theirs.index(f'data-key="hazard:{places["hazard"]}"') :]
    assert f"幸福便利店 · {FIRE['description']}" in finding[: finding.index("</li>")]


def test_the_register_in_english(seeded_url, module_tokens, places, tmp_path):
    with english_client(seeded_url, module_tokens, tmp_path, "duty_street") as client:
        page = client.get("/console/places").text
    assert '<html lang="en">' in page and "Place inspections" in page
    assert "Small eatery" in page and "overdue by 1 d" in page and "Fire · High" in page
    for chinese in ("场所巡查", "小餐饮", "已超期", "从未巡查", "未整改问题"):
        assert chinese not in page, chinese
