"""The phone view in headless Chromium at a phone's size, in Chinese, with the phone's GPS:
a grid worker accepts a request and starts a hazard, resolves both with a note (the request
with a photo from the camera); the duty officer's desk hears each step without a reload and
closes both; the ledger shows them closed. A worker reports a hazard where they stand and
records a visit with what the resident asks for; another grid's worker sees none of it; a
revoked worker is sent to log in. Each page is photographed (GRIDWATCH_SCREENSHOTS: where to
keep them, docs/console for the README)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest

from gridwatch.store.users import create_user, revoke_user
from tests.support.api import GRID_A, GRID_B, NOW
from tests.support.browser import (
    DESK,
    PHONE,
    SMALL_TARGETS,
    WIDE_ENOUGH,
    confirm_form,
    local_page,
    log_in,
    needs_chromium,
    phone_task,
    phone_view,
    take_task_step,
)
from tests.support.databases import point_in_grid
from tests.support.photos import jpeg_with_gps

NARROW = {"width": 360, "height": 740}

pytestmark = needs_chromium

LATIN = re.compile(r"[A-Za-z]{3,}")


@pytest.fixture(scope="module")
def where(seeded_url) -> dict:
    """Where the phone stands: a point inside grid A."""
    lon, lat = point_in_grid(seeded_url, GRID_A)
    return {"longitude": lon, "latitude": lat, "accuracy": 12}


@pytest.fixture(scope="module")
def cases(seeded_url, module_server, module_tokens, where) -> dict:
    """In grid A: a request dispatched to the grid and a hazard just reported, both near
    the phone."""
    lon, lat = where["longitude"], where["latitude"]
    with module_server.client("worker_a", module_tokens) as worker:
        hazard = str(uuid.uuid4())
        report = {"id": hazard, "lon": lon + 0.0004, "lat": lat, "category": "sanitation",
                  "severity": "medium", "description": "小区门口垃圾满溢"}  # fmt: skip
        assert worker.post("/hazards", json=report).status_code == 201
    with psycopg.connect(seeded_url) as conn:
        (grid,) = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchone()
        request = conn.execute(
            "INSERT INTO requests (id, source, service_code, description, lon, lat, grid_id, "
            "reporter, requested_at, received_at, status, level, accept_by, due_at, "
            "deadline_at, updated_at) VALUES (gen_random_uuid(), 'hotline', 'noise', "
            "'楼下商铺音响太吵', %s, %s, %s, '12345', %s, %s, 'dispatched', 'grid', %s, %s, %s, "
            "%s) RETURNING id",
            (lon, lat + 0.0002, grid, NOW, NOW, NOW + timedelta(hours=2),
             NOW + timedelta(days=2), NOW, NOW),
        ).fetchone()[0]  # fmt: skip
    return {"hazard": hazard, "request": str(request)}


def _phone(browser, module_server, token: str, where: dict, viewport=PHONE):
    return phone_view(browser, module_server.url, token, where, viewport)


def _keys(page) -> set[str]:
    return set(
        page.eval_on_selector_all("#gw-tasks li[data-key]", "l => l.map(e => e.dataset.key)")
    )


OPEN_FIGURES = ("hazards.open", "requests.open")  # the desk's figures a resolve lowers


def test_a_worker_takes_cases_on_the_phone_and_the_desk_closes_them(
    zh_browser, module_server, module_tokens, seeded_url, cases, where, shots
):
    desk_context, desk, desk_left, desk_errors = local_page(
        zh_browser, viewport=DESK, locale="zh-CN"
    )
    log_in(desk, module_server.url, module_tokens.duty_street, "/console")
    desk.wait_for_function("window.gridwatchConsole.cases.readyState === 1")
    still_open = {key: int(desk.inner_text(f"[data-k='{key}']")) for key in OPEN_FIGURES}
    context, page, left, errors = _phone(zh_browser, module_server, module_tokens.worker_a, where)
    request, hazard = (
        phone_task(page, "request", cases["request"]),
        phone_task(page, "hazard", cases["hazard"]),
    )
    assert request.is_visible() and hazard.is_visible()
    page.wait_for_function("document.querySelector('#gw-where').textContent.includes('已定位')")
    assert request.locator(".gw-dist").is_visible(), "no distance with the phone's position"
    assert page.evaluate(WIDE_ENOUGH)
    assert page.evaluate(SMALL_TARGETS) == []
    page.screenshot(path=str(shots / "phone-390.png"))

    # 接单: the request's accept asks for an optional note, then posts.
    request.locator("[data-action=accept]").click()
    assert request.locator("#gw-form-accept").is_visible()
    request.locator("#gw-form-accept input[name=note]").fill("马上到")
    take_task_step(page, "accept", f"request:{cases['request']}", "已接单")
    # 办结 with a note and a photo from the camera; the note is required first.
    request = phone_task(page, "request", cases["request"])
    request.locator("[data-action=resolve]").click()
    confirm_form(page, "resolve")
    assert request.locator("#gw-form-resolve").is_visible(), "posted without its note"
    request.locator("#gw-form-resolve textarea[name=note]").fill("已与商铺沟通 音量调小")
    request.locator("#gw-form-resolve input[type=file]").set_input_files(
        files=[{"name": "shop.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}]
    )
    assert request.locator(".gw-photos-chosen").inner_text() == "已选 1 张"
    assert page.evaluate(WIDE_ENOUGH) and page.evaluate(SMALL_TARGETS) == []
    request.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "phone-resolve-390.png"))
    confirm_form(page, "resolve")
    request.wait_for(state="detached")  # done: no longer a task
    assert page.inner_text("#gw-result") == "已提交"
    # The hazard: 开始处置 from the phone, then 处置完成.
    hazard.locator("[data-action=start]").click()
    take_task_step(page, "start", f"hazard:{cases['hazard']}", "处置中")
    hazard = phone_task(page, "hazard", cases["hazard"])
    hazard.locator("[data-action=resolve]").click()
    hazard.locator("#gw-form-resolve textarea[name=note]").fill("已清运")
    confirm_form(page, "resolve")
    hazard.wait_for(state="detached")
    with psycopg.connect(seeded_url) as conn:
        status, photos = conn.execute(
            "SELECT r.status, e.photo_urls FROM requests r JOIN request_events e "
            "ON e.request_id = r.id AND e.action = 'resolve' WHERE r.id = %s",
            (cases["request"],),
        ).fetchone()
    assert status == "resolved" and len(photos) == 1 and photos[0].startswith("/media/")

    # The desk heard every step without a reload; the duty officer closes both.
    for case, label in ((cases["hazard"], "已处置"), (cases["request"], "已办结")):
        desk.wait_for_function(
            f"(document.querySelector('#gw-case-{case}') || {{}}).textContent?.includes('{label}')"
        )
    assert "已清运" in desk.inner_text(f"#gw-case-{cases['hazard']}")
    for key, count in still_open.items():  # resolved is no longer open: the figures follow
        desk.wait_for_function(
            f"document.querySelector(\"[data-k='{key}']\").textContent === '{count - 1}'"
        )
    desk.screenshot(path=str(shots / "desk-cases-1366.png"))
    desk.click(f"#gw-case-{cases['hazard']} a")
    desk.wait_for_url(f"**/console/cases/{cases['hazard']}")
    desk.click("[data-action=close]")
    desk.fill("#gw-form-close textarea[name=note]", "回访居民: 已清理干净")
    desk.click("#gw-form-close [data-action=confirm]")
    desk.wait_for_function("document.querySelector('#gw-state').textContent === '已办结'")
    desk.goto(f"{module_server.url}/console/cases/{cases['request']}")
    assert desk.locator("#gw-photos img, #gw-photos a[href^='/media/']").count() >= 1
    desk.click("[data-action=feedback]")
    desk.select_option("#gw-form-feedback select[name=rating]", "satisfied")
    desk.fill("#gw-form-feedback textarea[name=note]", "居民满意")
    desk.click("#gw-form-feedback [data-action=confirm]")
    desk.wait_for_function("document.querySelector('#gw-state').textContent === '已回访'")
    desk.click("[data-action=close]")
    desk.fill("#gw-form-close textarea[name=note]", "办结归档")
    desk.click("#gw-form-close [data-action=confirm]")
    desk.wait_for_function("document.querySelector('#gw-state').textContent === '已关闭'")
    desk.goto(f"{module_server.url}/console/ledger?status=closed&sort=-found")
    ledger = desk.inner_html("#gw-ledger")
    assert f"/console/cases/{cases['hazard']}" in ledger
    assert f"/console/cases/{cases['request']}" in ledger
    context.close()
    desk_context.close()
    assert left == [] and errors == [] and desk_left == [] and desk_errors == []


def test_a_worker_reports_a_hazard_where_they_stand_and_records_a_visit(
    zh_browser, module_server, module_tokens, seeded_url, where, shots
):
    context, page, left, errors = _phone(zh_browser, module_server, module_tokens.worker_a, where)
    page.click(".gw-tabs [data-action=report]")
    form = page.locator("#gw-form-report")
    form.locator("select[name=category]").select_option("fire")
    form.locator("label:has(input[value=high])").click()
    form.locator("textarea[name=description]").fill("楼道堆放杂物堵住消防通道")
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "stairs.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}]
    )
    page.wait_for_function(
        "document.querySelector('#gw-form-report [data-position]').textContent.includes('12')"
    )
    assert page.evaluate(WIDE_ENOUGH) and page.evaluate(SMALL_TARGETS) == []
    page.screenshot(path=str(shots / "phone-report-390.png"))
    confirm_form(page, "report")
    page.wait_for_function("document.querySelector('#gw-result').textContent.includes('已上报')")
    with psycopg.connect(seeded_url) as conn:
        hazard, lon, lat, photos, reporter = conn.execute(
            "SELECT id, lon, lat, photo_urls, reporter_id FROM hazard_reports "
            "WHERE description = '楼道堆放杂物堵住消防通道'"
        ).fetchone()
    assert reporter == "W001" and len(photos) == 1
    assert abs(lon - where["longitude"]) < 1e-6 and abs(lat - where["latitude"]) < 1e-6
    phone_task(page, "hazard", str(hazard)).wait_for()  # the report is a task now

    # A visit: the first resident due one, with what they ask for (微心愿).
    visit = page.locator("#gw-tasks li.kind-visit").first
    resident = visit.get_attribute("data-key").removeprefix("visit:")
    visit.locator("[data-action=visit]").click()
    form = visit.locator("#gw-form-visit")
    assert form.locator("select[name=resident_id]").input_value() == resident
    form.locator("label:has(input[value=concern])").click()
    form.locator("textarea[name=needs]").fill("想要一副老花镜 冬天需要电热毯")
    form.locator("textarea[name=note]").fill("腿脚不便 需常来看看")
    assert page.evaluate(WIDE_ENOUGH) and page.evaluate(SMALL_TARGETS) == []
    form.locator("textarea[name=needs]").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "phone-visit-390.png"))
    confirm_form(page, "visit")
    phone_task(page, "visit", resident).wait_for(state="detached")
    with psycopg.connect(seeded_url) as conn:
        stored = conn.execute(
            "SELECT status, needs, note, lon FROM patrol_checkins "
            "WHERE resident_id = %s AND kind = 'visit' AND needs IS NOT NULL",
            (resident,),
        ).fetchall()
    assert stored == [("concern", "想要一副老花镜 冬天需要电热毯", "腿脚不便 需常来看看",
                       where["longitude"])]  # fmt: skip
    # Chinese throughout: no English word leaks into the page people read.
    words = LATIN.findall(page.inner_text(".gw-phone"))
    assert set(words) <= {"QS"}, words
    context.close()
    assert left == [] and errors == []


def test_the_phone_view_fits_a_narrow_phone_and_a_desk(
    zh_browser, module_server, module_tokens, where, shots
):
    context, page, left, errors = _phone(
        zh_browser, module_server, module_tokens.worker_a, where, NARROW
    )
    assert page.evaluate(WIDE_ENOUGH), "wider than a 360 px phone"
    assert page.evaluate(SMALL_TARGETS) == []
    page.screenshot(path=str(shots / "phone-360.png"))
    page.set_viewport_size(DESK)
    page.reload()
    page.wait_for_selector("#gw-tasks li")
    page.screenshot(path=str(shots / "phone-1366.png"))
    context.close()
    assert left == [] and errors == []


def test_another_grids_worker_sees_none_of_these_tasks(
    zh_browser, module_server, module_tokens, where
):
    context, page, _, errors = _phone(zh_browser, module_server, module_tokens.worker_a, where)
    mine = _keys(page)
    context.close()
    elsewhere = where | {"longitude": where["longitude"] + 0.01}
    context, page, left, more = _phone(zh_browser, module_server, module_tokens.worker_b, elsewhere)
    theirs = _keys(page)
    grids = set(
        page.eval_on_selector_all(
            ".gw-task-meta > span:first-child", "l => l.map(e => e.textContent)"
        )
    )
    context.close()
    assert mine and theirs and not mine & theirs
    assert grids == {GRID_B}
    assert left == [] and errors == [] and more == []


def test_a_revoked_worker_is_sent_to_log_in(zh_browser, module_server, seeded_url, where):
    name = f"W-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, name, role="grid_worker", grid_codes=(GRID_A,))
    context, page, left, errors = _phone(zh_browser, module_server, token, where)
    step = page.locator("#gw-tasks button.gw-step[data-action=start]").first
    with psycopg.connect(seeded_url) as conn:
        revoke_user(conn, name, now=NOW)
    step.click()
    page.click("#gw-tasks [data-action=confirm]")
    page.wait_for_url("**/login?next=/m")
    assert page.locator("input[name=token]").is_visible()
    page.goto(f"{module_server.url}/m")
    page.wait_for_url("**/login?next=/m")
    with httpx.Client(base_url=module_server.url) as anonymous:
        assert anonymous.get("/m/tasks").status_code == 401
    context.close()
    assert left == [] and errors == []
