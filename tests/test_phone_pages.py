"""The grid worker's phone view over plain HTTP: /m and its list (/m/tasks) hold the caller's
own grids' alerts, actionable cases and residents due a visit, each with the steps it allows
and where they post; another grid's worker sees none of them; residents shown are audited;
nobody without a session gets in."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest

from gridwatch.maps.texts import texts_for
from gridwatch.store.partitions import ensure_partitions
from tests.support.api import (
    GRID_A,
    GRID_B,
    NOW,
    SHANGHAI,
    ApiServer,
    Clock,
    api_settings,
    open_alert,
)
from tests.support.databases import point_in_grid

ZH = texts_for("zh")["phone"]
TASK = re.compile(r'data-key="(\w+):([^"]+)"')


def _task_keys(html: str) -> set[tuple[str, str]]:
    return set(TASK.findall(html))


@pytest.fixture(scope="module")
def grid_a(seeded_url) -> dict:
    """In grid A: an SOS, a request dispatched to the grid, a resident visited long ago who
    asked for something then, and one visited yesterday (not due)."""
    with psycopg.connect(seeded_url) as conn:
        (grid,) = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchone()
        residents = [
            r
            for (r,) in conn.execute(
                "SELECT id FROM residents WHERE grid_id = %s AND living_alone "
                "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = residents.id) "
                "ORDER BY id",
                (grid,),
            )
        ]
        sos = open_alert(conn, residents[0], grid, "sos", NOW - timedelta(minutes=5))
        lon, lat = point_in_grid(seeded_url, GRID_A)
        request = conn.execute(
            "INSERT INTO requests (id, source, service_code, description, lon, lat, grid_id, "
            "reporter, requested_at, received_at, status, level, accept_by, due_at, "
            "deadline_at, updated_at) VALUES (gen_random_uuid(), 'hotline', 'noise', "
            "'楼下广场舞太吵', %s, %s, %s, '12345', %s, %s, 'dispatched', 'grid', %s, %s, %s, "
            "%s) RETURNING id",
            (lon, lat, grid, NOW, NOW, NOW + timedelta(hours=2), NOW + timedelta(days=2), NOW,
             NOW),
        ).fetchone()[0]  # fmt: skip
        long_ago, yesterday = residents[1], residents[2]
        ensure_partitions(conn, {(NOW - timedelta(days=d)).date() for d in (1, 40)}, SHANGHAI)
        for resident, days, needs in ((long_ago, 40, "想要一副老花镜"), (yesterday, 1, None)):
            conn.execute(
                "INSERT INTO patrol_checkins (worker_id, observed_at, received_at, lon, lat, "
                "grid_id, kind, resident_id, status, needs) "
                "VALUES ('W001', %s, %s, %s, %s, %s, 'visit', %s, 'ok', %s)",
                (NOW - timedelta(days=days), NOW, lon, lat, grid, resident, needs),
            )
    return {"sos": sos, "request": str(request), "long_ago": long_ago, "yesterday": yesterday}


def test_the_phone_view_holds_the_workers_own_tasks(http, grid_a):
    page = http["worker_a"].get("/m", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    keys = _task_keys(html)
    assert ("alert", str(grid_a["sos"])) in keys
    assert ("request", grid_a["request"]) in keys
    assert ("visit", grid_a["long_ago"]) in keys
    assert ("visit", grid_a["yesterday"]) not in keys, "visited yesterday: not due"
    assert any(kind == "hazard" for kind, _ in keys)
    assert set(re.findall(r'<p class="gw-task-meta"><span>([^<]+)</span>', html)) == {GRID_A}
    # Each step asks through its form, and posts where the console's does.
    assert f'data-action="accept" data-post="/requests/{grid_a["request"]}/accept"' in html
    assert f'data-action="ack" data-post="/alerts/{grid_a["sos"]}/ack"' in html
    assert f'data-action="resolve-alert" data-post="/alerts/{grid_a["sos"]}/resolve"' in html
    assert f'data-resident="{grid_a["long_ago"]}"' in html
    assert ZH["last_needs"].format(needs="想要一副老花镜") in html
    for action in ("report", "visit", "confirm", "ack", "accept", "start", "resolve"):
        assert f'data-action="{action}"' in html, action
    assert 'accept="image/*" capture="environment" multiple' in html
    # The SOS comes first: an emergency before anything else.
    first = TASK.search(html)
    assert first is not None and first.groups() == ("alert", str(grid_a["sos"]))
    assert 'href="/m" class="on"' in html  # its place in the bar


def test_the_list_alone_is_the_pages_list(http, grid_a):
    page = http["worker_a"].get("/m").text
    part = http["worker_a"].get("/m/tasks")
    assert part.status_code == 200 and part.headers["content-type"].startswith("text/html")
    assert _task_keys(part.text) == _task_keys(page)
    assert "<html" not in part.text


def test_another_grids_worker_sees_none_of_them(http, grid_a):
    theirs = _task_keys(http["worker_b"].get("/m").text)
    mine = _task_keys(http["worker_a"].get("/m").text)
    assert theirs and not theirs & mine
    assert grid_a["long_ago"] not in http["worker_b"].get("/m").text
    page_b = http["worker_b"].get("/m").text
    assert set(re.findall(r'<p class="gw-task-meta"><span>([^<]+)</span>', page_b)) == {GRID_B}


def test_the_residents_shown_are_audited(http, grid_a, seeded_url):
    http["worker_a"].get("/m/tasks")
    with psycopg.connect(seeded_url) as conn:
        shown = conn.execute(
            "SELECT resident_ids FROM personal_data_audit WHERE actor = 'W001' "
            "AND what = 'GET /m/tasks' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    assert grid_a["long_ago"] in shown and str(grid_a["sos"]) not in shown


def test_nobody_without_a_session_or_a_person_gets_in(http):
    page = http["anonymous"].get("/m", headers={"Accept": "text/html"})
    assert page.status_code in (302, 303, 307) and page.headers["location"] == "/login?next=/m"
    assert http["anonymous"].get("/m/tasks").status_code == 401
    assert http["device"].get("/m").status_code == 403
    assert http["device"].get("/m/tasks").status_code == 403


def test_a_visit_with_needs_takes_the_resident_off_the_list(http, grid_a, seeded_url):
    resident = grid_a["long_ago"]
    lon, lat = point_in_grid(seeded_url, GRID_A)
    visit = {"kind": "visit", "resident_id": resident, "status": "ok", "lon": lon, "lat": lat,
             "needs": "想请人帮忙修水龙头", "note": "精神很好"}  # fmt: skip
    assert http["worker_a"].post("/checkins", json=visit).status_code == 201
    assert ("visit", resident) not in _task_keys(http["worker_a"].get("/m/tasks").text)
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute(
            "SELECT worker_id, note FROM patrol_checkins WHERE resident_id = %s AND needs = %s",
            (resident, "想请人帮忙修水龙头"),
        ).fetchall() == [("W001", "精神很好")]


def test_the_phone_view_in_english(seeded_url, module_tokens, grid_a, tmp_path):
    settings = api_settings(tmp_path, seeded_url, lang="en")
    with (
        ApiServer(settings, seeded_url, Clock()) as server,
        server.client("worker_a", module_tokens) as client,
    ):
        page = client.get("/m").text
    assert '<html lang="en">' in page and "My tasks" in page and "Record visit" in page
    assert ">Accept</button>" in page and "Report a hazard" in page and "Wish: what" in page
    for chinese in ("我的任务", "记录走访", "接单", "上报隐患", "微心愿", "提交"):
        assert chinese not in page, chinese
