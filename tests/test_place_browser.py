"""An inspection of a place (安全巡查) in headless Chromium, in Chinese, from a grid worker's
phone (390 px, the phone's GPS) to closed: the worker inspects a place due on /m with one
finding and a photo from the camera; the register (/console/places) shows the place
inspected with an open finding; the finding's case is in the ledger with the place's name
and its photo; the worker resolves it on the phone, the duty officer closes it on its page,
and the place has no open findings left. Another grid's worker sees none of it. The register
and the inspection form are photographed (GRIDWATCH_SCREENSHOTS: where to keep them,
docs/console for the README)."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest

from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.simulators.sample_activity import seed_inspections
from tests.support import browser as web
from tests.support.api import COMMUNITY_A, GRID_A, NOW, SHANGHAI, api_settings
from tests.support.databases import point_in_grid, query
from tests.support.photos import jpeg_with_gps
from tests.support.places import import_places

pytestmark = web.needs_chromium

PLACE, NAME = "T-INS", "老街坊小吃"
PROBLEM = "生熟食品混放 冷柜无温度记录"
ROWS = "l => l.map(e => e.id.replace('place-', ''))"


@pytest.fixture(scope="module")
def place(seeded_url, tmp_path_factory) -> dict:
    """The sample district's places with their past inspections as of NOW (some overdue,
    some with open findings), and this test's own: a small eatery in grid A registered eight
    days ago, inspected every 7 days, so overdue by a day. Where the phone stands: beside it."""
    tmp = tmp_path_factory.mktemp("places")
    deadlines = deadlines_from_hours(api_settings(tmp, seeded_url).hazard_deadlines_h)
    with psycopg.connect(seeded_url) as conn:
        seed_inspections(conn, now=NOW, zone=SHANGHAI, deadlines=deadlines)
    lon, lat = (round(x, 6) for x in point_in_grid(seeded_url, GRID_A))
    row = f"{PLACE},{NAME},restaurant,青山区钢铁大街8号,{lat!r},{lon!r},{GRID_A},赵强,13900000003,7"
    import_places(seeded_url, tmp / "place.csv", NOW - timedelta(days=8), row)
    return {"where": {"longitude": lon + 0.0003, "latitude": lat, "accuracy": 10}}


def _findings(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT id, category, severity, status, photo_urls FROM hazard_reports WHERE place_id = %s",
        (PLACE,),
    )


def _register(page, base_url: str, query: str = "") -> list[str]:
    page.goto(f"{base_url}/console/places{query}")
    return page.eval_on_selector_all("#gw-places tbody tr[id]", ROWS)


def test_a_worker_inspects_a_place_and_its_finding_is_followed_to_closed(
    zh_browser, module_server, module_tokens, seeded_url, place, shots
):
    base = module_server.url
    context, page, left, errors = web.phone_view(
        zh_browser, base, module_tokens.worker_a, place["where"]
    )
    task = web.phone_task(page, "inspection", PLACE)
    assert task.is_visible() and "已超期 1天" in task.inner_text()
    page.wait_for_function("document.querySelector('#gw-where').textContent.includes('已定位')")
    assert task.locator(".gw-dist").is_visible()

    # 记录巡查: problems found, one finding with a photo from the camera.
    task.locator("[data-action=inspect]").click()
    form = task.locator("#gw-form-inspect")
    assert form.is_visible() and form.locator(".gw-finding").count() == 0
    form.locator("label:has(input[value=findings])").click()
    finding = form.locator(".gw-finding").first
    finding.wait_for()
    form.locator("[data-add-finding]").click()  # a second, then taken away again
    assert form.locator(".gw-finding").count() == 2
    form.locator(".gw-finding").nth(1).locator("[data-remove-finding]").click()
    assert form.locator(".gw-finding").count() == 1
    assert finding.locator("[data-remove-finding]").is_hidden()  # the last one stays
    finding.locator("[data-field=category]").select_option("food")
    finding.locator("label:has(input[value=high])").click()
    finding.locator("[data-field=description]").fill(PROBLEM)
    finding.locator("input[type=file]").set_input_files(
        files=[{"name": "kitchen.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}]
    )
    assert finding.locator(".gw-photos-chosen").inner_text() == "已选 1 张"
    form.locator("textarea[name=note]").fill("后厨及仓储检查")
    assert page.evaluate(web.WIDE_ENOUGH) and page.evaluate(web.SMALL_TARGETS) == []
    task.screenshot(path=str(shots / "phone-inspect-390.png"))  # the place with its form
    web.confirm_form(page, "inspect")
    task.wait_for(state="detached")  # inspected: no longer due
    assert "1 个问题已立案" in page.inner_text("#gw-result")
    [(hazard, category, severity, status, photos)] = _findings(seeded_url)
    assert (category, severity, status, len(photos)) == ("food", "high", "reported", 1)
    [(result, note)] = query(
        seeded_url,
        "SELECT result, note FROM patrol_checkins WHERE place_id = %s AND worker_id = 'W001'",
        (PLACE,),
    )
    assert (result, note) == ("findings", "后厨及仓储检查")
    case = web.phone_task(page, "hazard", str(hazard))
    case.wait_for()  # the finding's case is a task now, with its place
    assert NAME in case.inner_text() and PROBLEM in case.inner_text()

    # The register shows it inspected, with its open finding; the finding's case has its
    # place and photo and stands in the ledger.
    desk_context, desk, desk_left, desk_errors = web.local_page(
        zh_browser, viewport=web.DESK, locale="zh-CN"
    )
    web.log_in(desk, base, module_tokens.duty_street, "/console")
    assert PLACE in _register(desk, base, f"?grid={GRID_A}")
    row = desk.locator(f'tr[id="place-{PLACE}"]')
    assert "late" not in (row.get_attribute("class") or "")
    assert "11-23" in row.locator("td").nth(4).inner_text()
    assert PLACE in _register(desk, base, f"?grid={GRID_A}&findings=true")
    row.locator(f"a[href='/console/cases/{hazard}']").click()
    desk.wait_for_url(f"**/console/cases/{hazard}")
    assert NAME in desk.inner_text("#gw-place")
    assert desk.locator("#gw-photos img").count() == 1
    desk.goto(f"{base}/console/ledger?grid={GRID_A}&category=food")
    assert desk.locator(f"#gw-ledger a[href='/console/cases/{hazard}']").count() == 1
    assert NAME in desk.inner_text(f"#gw-ledger tr[data-id='{hazard}']")

    # The worker takes it on and resolves it on the phone; the duty officer closes it.
    case.locator("[data-action=start]").click()
    web.take_task_step(page, "start", f"hazard:{hazard}", "处置中")
    case = web.phone_task(page, "hazard", str(hazard))
    case.locator("[data-action=resolve]").click()
    case.locator("#gw-form-resolve textarea[name=note]").fill("已分区存放 补记温度")
    web.confirm_form(page, "resolve")
    case.wait_for(state="detached")
    desk.goto(f"{base}/console/cases/{hazard}")
    closing = {"textarea[name=note]": "复查合格 整改完成"}
    web.take_case_step(desk, "close", "close", closing, "已办结")
    assert PLACE not in _register(desk, base, f"?grid={GRID_A}&findings=true")
    assert PLACE in _register(desk, base, f"?grid={GRID_A}&findings=false")
    assert _findings(seeded_url)[0][3] == "closed"
    context.close()
    desk_context.close()
    assert left == [] and errors == [] and desk_left == [] and desk_errors == []


def test_another_grids_worker_sees_none_of_it(zh_browser, module_server, module_tokens, place):
    base = module_server.url
    elsewhere = place["where"] | {"longitude": place["where"]["longitude"] + 0.01}
    worker_b = module_tokens.worker_b
    context, page, left, errors = web.phone_view(zh_browser, base, worker_b, elsewhere)
    keys = page.eval_on_selector_all("#gw-tasks li[data-key]", "l => l.map(e => e.dataset.key)")
    assert keys and f"inspection:{PLACE}" not in keys
    assert NAME not in page.inner_text("#gw-tasks")
    places = _register(page, base)
    assert places and PLACE not in places
    assert NAME not in page.inner_text("#gw-places")
    context.close()
    assert left == [] and errors == []


def test_the_register_at_a_desk_and_on_a_phone(zh_browser, module_server, module_tokens, shots):
    base = module_server.url
    context, page, left, errors = web.local_page(zh_browser, viewport=web.DESK, locale="zh-CN")
    web.log_in(page, base, module_tokens.duty_street, "/console")
    # The desk's count of places overdue for inspection opens the register filtered to them.
    overdue = int(page.inner_text("[data-k='inspections.overdue']"))
    page.click("a[href='/console/places?overdue=true']")
    page.wait_for_url("**/console/places?overdue=true")
    assert len(page.eval_on_selector_all("#gw-places tbody tr[id]", ROWS)) == overdue > 0
    assert page.locator("#gw-places tbody tr.late").count() == overdue
    assert re.search(r"已超期 \d+天", page.inner_text("#gw-places tbody tr.late >> nth=0"))
    page.goto(f"{base}/console/places?grid={COMMUNITY_A}")
    page.screenshot(path=str(shots / "places-1366.png"))
    page.set_viewport_size(web.PHONE)
    page.reload()
    assert page.evaluate(web.WIDE_ENOUGH), "wider than a 390 px phone"
    page.screenshot(path=str(shots / "places-390.png"))
    context.close()
    assert left == [] and errors == []
