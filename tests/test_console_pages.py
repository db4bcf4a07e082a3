"""The console over plain HTTP: each page and its JSON for its callers only (another grid's
alert or case is not even confirmed to exist), residents masked as on every read, the
ledger's new filters the same on screen, in JSON and in the CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import psycopg
import pytest

from gridwatch.maps.console import duration_text
from gridwatch.maps.texts import texts_for
from tests.support.api import GRID_A, GRID_B, NOW, open_alert

ZH = texts_for("zh")["console"]
EN = texts_for("en")["console"]


@pytest.fixture(scope="module")
def fall_in_a(seeded_url) -> int:
    """A fall alert of a resident of grid A."""
    with psycopg.connect(seeded_url) as conn:
        resident, grid = conn.execute(
            "SELECT r.id, r.grid_id FROM residents r JOIN grids g ON g.id = r.grid_id "
            "WHERE g.code = %s AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = r.id)"
            " ORDER BY r.id DESC LIMIT 1",
            (GRID_A,),
        ).fetchone()
        return open_alert(conn, resident, grid, "fall", NOW)


@pytest.fixture(scope="module")
def hazard_in_a(seeded_url) -> str:
    with psycopg.connect(seeded_url) as conn:
        return str(
            conn.execute(
                "SELECT h.id FROM hazard_reports h JOIN grids g ON g.id = h.grid_id "
                "WHERE g.code = %s ORDER BY h.id LIMIT 1",
                (GRID_A,),
            ).fetchone()[0]
        )


def test_another_grids_alert_and_case_are_not_found(http, fall_in_a, hazard_in_a):
    worker_b = http["worker_b"]
    for path in (
        f"/console/alerts/{fall_in_a}",
        f"/console/alerts/{fall_in_a}/week.json",
        f"/console/cases/{hazard_in_a}",
    ):
        response = worker_b.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        assert http["worker_a"].get(path).status_code == 200, path
    assert http["device"].get("/console/summary.json").status_code == 403
    assert http["anonymous"].get("/console/summary.json").status_code == 401
    page = http["anonymous"].get("/console", headers={"Accept": "text/html"})
    assert page.status_code in (302, 303, 307) and "/login" in page.headers["location"]


def test_the_desk_counts_only_the_callers_grids(http, fall_in_a):
    mine = http["worker_b"].get("/console/summary.json").json()
    street = http["duty_street"].get("/console/summary.json").json()
    assert {a["grid"] for a in mine["live"]} <= {GRID_B}
    assert fall_in_a not in [a["alert_id"] for a in mine["live"]]
    assert fall_in_a in [a["alert_id"] for a in street["live"]]
    assert mine["alerts"]["open"] < street["alerts"]["open"]
    assert mine["hazards"]["open"] < street["hazards"]["open"]
    assert mine["coverage"]["grids"] == 1
    assert len(street["trend"]) == 14 and street["trend"][-1]["day"] == "2026-11-23"
    assert sum(d["hazards_opened"] for d in street["trend"]) > 0
    falls = http["duty_street"].get("/console/summary.json", params={"kind": "fall"}).json()
    assert {a["kind"] for a in falls["live"]} == {"fall"}


def test_residents_are_masked_for_those_who_may_not_see_them(http, fall_in_a, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        name = conn.execute(
            "SELECT r.name FROM alerts a JOIN residents r ON r.id = a.resident_id WHERE a.id = %s",
            (fall_in_a,),
        ).fetchone()[0]
    own = http["worker_a"].get(f"/console/alerts/{fall_in_a}").text
    assert name in own and ZH["masked"] not in own
    admin = http["admin"].get("/console/summary.json").json()
    shown = next(a for a in admin["live"] if a["alert_id"] == fall_in_a)
    assert shown["resident"]["name"] == name and not shown["resident"]["masked"]


def test_the_week_of_an_alert(http, fall_in_a):
    week = http["duty_street"].get(f"/console/alerts/{fall_in_a}/week.json").json()
    assert week["zone"] == "Asia/Shanghai"
    assert week["end"] - week["start"] == 7 * 86400
    assert week["span"][0] == NOW.timestamp()
    assert set(week) >= {"power", "baseline", "meter_signs", "sensor_events", "seen", "absences"}


def test_the_ledger_page_and_its_export_agree(http):
    query = {"category": "road", "status": "reported,assigned", "sort": "-found"}
    page = http["duty_street"].get("/console/ledger", params=query)
    assert page.status_code == 200
    ids = re.findall(r'href="/console/cases/([0-9a-f-]{36})"', page.text)
    assert ids
    exported = http["duty_street"].get("/ledger.csv", params=query)
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))[1:]
    assert [r[0] for r in rows] == ids
    assert {r[4] for r in rows} == {"道路"} and {r[6] for r in rows} <= {"已上报", "已派单"}
    found = [r[10] for r in rows]
    assert found == sorted(found, reverse=True)
    items = http["duty_street"].get("/ledger", params={**query, "limit": 1000}).json()["items"]
    assert [i["id"] for i in items] == ids
    day = http["duty_street"].get("/ledger", params={"from": "2026-11-20", "to": "2026-11-20"})
    assert {i["observed_at"][:10] for i in day.json()["items"]} <= {"2026-11-20", "2026-11-19"}
    assert http["duty_street"].get("/ledger", params={"sort": "price"}).status_code == 422
    assert http["duty_street"].get("/ledger", params={"category": "ufo"}).status_code == 422
    assert http["worker_b"].get("/console/ledger", params={"grid": GRID_A}).status_code == 404


def test_durations_read_as_people_say_them():
    assert duration_text(0.75, ZH) == "45分钟"
    assert duration_text(27, ZH) == "1天 3小时"
    assert duration_text(27, EN) == "1 d 3 h"
    assert duration_text(5, EN) == "5 h"
    assert duration_text(None, ZH) == ""


def test_a_filter_left_empty_in_the_form_is_no_filter(http):
    empty = {k: "" for k in ("level", "grid", "overdue", "status", "category", "from", "to")}
    page = http["duty_street"].get("/console/ledger", params=empty)
    assert page.status_code == 200
    assert http["duty_street"].get("/console/ledger", params={"level": "moon"}).status_code == 422


@pytest.fixture(scope="module")
def request_in_a(seeded_url) -> str:
    """A noise complaint dispatched to grid A, with no point (only an address)."""
    with psycopg.connect(seeded_url) as conn:
        [(grid,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchall()
        return str(
            conn.execute(
                "INSERT INTO requests (id, source, service_code, description, address, grid_id, "
                "reporter, requested_at, received_at, status, level, accept_by, due_at, "
                "deadline_at, updated_at) VALUES (gen_random_uuid(), 'hotline', 'noise', "
                "'=楼上夜间装修', '富强路1号', %s, '12345', %s, %s, 'dispatched', 'grid', %s, "
                "%s, %s, %s) RETURNING id",
                (grid, NOW, NOW, NOW, NOW + timedelta(days=2), NOW, NOW),
            ).fetchone()[0]
        )


def test_a_request_stands_in_the_ledger_and_has_its_page(http, request_in_a):
    """Its kind, service and status in words on screen and in the CSV (its text guarded
    against formulas); its page shows its steps; another grid's worker gets 404."""
    requests = http["duty_street"].get("/console/ledger", params={"kind": "request"})
    assert requests.status_code == 200
    assert f'href="/console/cases/{request_in_a}"' in requests.text
    assert 'data-kind="hazard"' not in requests.text and "噪声扰民" in requests.text
    exported = http["duty_street"].get("/ledger.csv", params={"kind": "request", "grid": GRID_A})
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    [row] = [r for r in rows if r[0] == request_in_a]
    assert (row[4], row[6], row[12], row[15]) == ("噪声扰民", "已派单", "是", "'=楼上夜间装修")
    assert row[-2:] == ["诉求", "接单期限"]
    page = http["worker_a"].get(f"/console/cases/{request_in_a}")
    assert page.status_code == 200
    assert "诉求详情" in page.text and "12345热线" in page.text
    assert f'data-post="/requests/{request_in_a}/accept"' in page.text
    assert 'data-form="dispatch"' not in page.text  # a worker does not dispatch (派单)
    assert 'data-form="dispatch"' in http["duty_street"].get(f"/console/cases/{request_in_a}").text
    hidden = http["worker_b"].get(f"/console/cases/{request_in_a}")
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    assert http["worker_b"].post(f"/requests/{request_in_a}/accept").status_code == 404
    assert http["device"].get("/ledger", params={"kind": "request"}).status_code == 403
    assert http["device"].get("/ledger.csv").status_code == 403
