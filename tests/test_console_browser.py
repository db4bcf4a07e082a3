"""The console in headless Chromium, as people use it: a duty officer opens the desk, clicks a
new SOS, reads the resident's week, resolves it after checking with the person; the ledger
filters and exports what it shows; a grid worker of another grid sees none of it. Each page
is photographed at a desk's and a phone's width (GRIDWATCH_SCREENSHOTS: where to keep them,
docs/console for the README)."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from gridwatch.store.partitions import ensure_partitions
from tests.support.api import GRID_A, NOW, SHANGHAI, open_alert
from tests.support.browser import (
    DESK,
    PHONE,
    local_page,
    log_in,
    needs_chromium,
    take_case_step,
)
from tests.support.spreadsheets import csv_rows, xlsx_rows

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser(zh_browser):
    return zh_browser


@pytest.fixture(scope="module")
def sos(seeded_url) -> dict:
    """A resident of grid A with a week of meter readings and sensor events, a visit, and a
    new SOS (its open event written as the engine writes it)."""
    with psycopg.connect(seeded_url) as conn:
        resident, grid = conn.execute(
            "SELECT r.id, r.grid_id FROM residents r JOIN grids g ON g.id = r.grid_id "
            "WHERE g.code = %s AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = r.id) "
            "AND EXISTS (SELECT 1 FROM devices d WHERE d.resident_id = r.id AND d.kind = 'meter')"
            " ORDER BY r.id LIMIT 1",
            (GRID_A,),
        ).fetchone()
        meter = conn.execute(
            "SELECT id FROM devices WHERE resident_id = %s AND kind = 'meter'", (resident,)
        ).fetchone()[0]
        sensors = [
            s
            for (s,) in conn.execute(
                "SELECT id FROM devices WHERE resident_id = %s AND kind = 'sensor' ORDER BY id",
                (resident,),
            )
        ]
        start = NOW - timedelta(days=8)
        ensure_partitions(conn, {(start + timedelta(days=d)).date() for d in range(10)}, SHANGHAI)
        _write_week(conn, meter, sensors, start)
        since = NOW - timedelta(minutes=20)
        alert_id = open_alert(conn, resident, grid, "sos", since)
    return {"alert_id": alert_id, "resident": resident}


def _write_week(conn, meter: str, sensors: list[str], start) -> None:
    """A quiet home's days: a fridge cycling, a kettle at seven, cooking at noon and six, a TV
    in the evening; curtains in the morning and lights at dusk."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY meter_readings (meter_id, observed_at, received_at, power_w) FROM STDIN"
        ) as copy,
    ):
        at = start
        while at < NOW - timedelta(minutes=25):
            local = at.astimezone(SHANGHAI)
            hour = local.hour + local.minute / 60
            watts = 70 + 60 * (math.sin(at.timestamp() / 900) > 0.3)
            if 7 <= hour < 7.1 or 11.5 <= hour < 11.8 or 17.5 <= hour < 17.9:
                watts += 1700
            elif 19 <= hour < 22:
                watts += 140
            copy.write_row((meter, at, at, watts))
            at += timedelta(minutes=2)
    for day in range(8):
        midnight = (start + timedelta(days=day)).astimezone(SHANGHAI).replace(hour=0, minute=0)
        for sensor in sensors:
            event = "light_on" if "light" in sensor else "curtain_open"
            at = midnight + (timedelta(hours=18) if event == "light_on" else timedelta(hours=7.5))
            if at < NOW - timedelta(hours=1):
                conn.execute(
                    "INSERT INTO sensor_events (device_id, observed_at, received_at, event) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (sensor, at, at, event),
                )


def _context(browser, module_server, viewport, token: str):
    context, page, left, errors = local_page(
        browser, viewport=viewport, locale="zh-CN", accept_downloads=True
    )
    log_in(page, module_server.url, token, "/console")
    return context, page, left, errors


def test_duty_officer_resolves_an_sos_after_checking(
    browser, module_server, module_tokens, seeded_url, sos, shots
):
    context, page, left, errors = _context(browser, module_server, DESK, module_tokens.duty_street)
    alert_id = sos["alert_id"]
    item = page.locator(f"#gw-alert-{alert_id}")
    assert "紧急呼叫" in item.inner_text()
    assert "urgent" in (item.get_attribute("class") or "")
    sos_count = int(page.inner_text("[data-k='kind.sos']"))
    assert sos_count >= 1
    page.wait_for_function("window.gridwatchConsole.stream.readyState === 1")
    page.screenshot(path=str(shots / "desk-1366.png"), full_page=True)
    item.locator("a").click()
    page.wait_for_url(f"**/console/alerts/{alert_id}")
    page.wait_for_function("window.gridwatchChart && window.gridwatchChart.data[0].length > 100")
    assert page.locator("#gw-chart canvas").count() >= 1
    why = page.inner_text(".gw-why")
    assert "紧急呼叫" in why
    assert page.locator("[data-action=ack]").is_visible()
    page.screenshot(path=str(shots / "alert-1366.png"), full_page=True)

    page.click("[data-action=resolve-alert]")
    page.click("#gw-form-resolve [data-action=confirm]")  # the reason is required: no post
    assert page.locator("#gw-form-resolve").is_visible()
    page.fill("#gw-form-resolve textarea[name=reason]", "电话联系本人: 误按, 身体无恙")
    page.check("#gw-form-resolve input[name=checked]")
    page.click("#gw-form-resolve [data-action=confirm]")
    page.wait_for_function("document.querySelector('#gw-state').textContent === '已解除'")
    page.wait_for_selector("#gw-timeline li:nth-child(2)")
    assert "误按" in page.inner_text("#gw-timeline")
    assert page.locator("[data-action=resolve-alert]").is_hidden()
    assert page.locator("#gw-resolved").is_visible()
    with psycopg.connect(seeded_url) as conn:
        status, by, resolution = conn.execute(
            "SELECT status, resolved_by, resolution FROM alerts WHERE id = %s", (alert_id,)
        ).fetchone()
        checks = conn.execute(
            "SELECT count(*) FROM resident_checks WHERE alert_id = %s", (alert_id,)
        ).fetchone()[0]
    assert (status, by, checks) == ("resolved", "duty-street", 1)
    assert "误按" in resolution
    page.screenshot(path=str(shots / "alert-resolved-1366.png"), full_page=True)
    context.close()
    assert left == [] and errors == []


def test_the_ledger_filters_and_exports_what_it_shows(browser, module_server, module_tokens, shots):
    context, page, left, errors = _context(browser, module_server, DESK, module_tokens.duty_street)
    page.goto(f"{module_server.url}/console/ledger")
    page.select_option("select[name=category]", "fire")
    page.select_option("select[name=overdue]", "true")
    page.click("#gw-filters button[type=submit]")
    page.wait_for_url("**category=fire**")
    rows = page.locator("#gw-ledger tbody tr")
    count = rows.count()
    assert count > 0
    assert all(text == "消防" for text in rows.locator("td:nth-child(4)").all_inner_texts())
    assert rows.locator(".gw-late").count() == count  # every row overdue, and says how long
    assert "已超期" in rows.first.inner_text()
    page.click("th[data-sort=severity] a")
    page.wait_for_url("**sort=severity**")
    shown = [a.get_attribute("href").rsplit("/", 1)[1] for a in page.locator(
        "#gw-ledger tbody td:first-child a").all()]  # fmt: skip
    with page.expect_download() as download:
        page.click("#gw-export")
    exported = csv_rows(Path(download.value.path()).read_bytes())
    body = exported[1:]
    assert [row[0] for row in body] == shown
    assert {row[4] for row in body} == {"消防"} and {row[12] for row in body} == {"是"}
    with page.expect_download() as workbook:
        page.click("#gw-export-xlsx")
    assert workbook.value.suggested_filename == "问题台账-20261123.xlsx"
    assert xlsx_rows(Path(workbook.value.path()).read_bytes()) == exported
    page.screenshot(path=str(shots / "ledger-1366.png"), full_page=False)
    page.locator("#gw-ledger tbody td:first-child a").first.click()
    page.wait_for_url("**/console/cases/**")
    page.wait_for_load_state("load")
    assert errors == []
    page.wait_for_function("window.gridwatchCase !== undefined")
    assert page.locator("#gw-timeline li").count() >= 1
    page.screenshot(path=str(shots / "case-1366.png"), full_page=True)
    context.close()
    assert left == [] and errors == []


def test_a_closed_bar_opens_the_ledger_of_that_days_closes(browser, module_server, module_tokens):
    """The desk's latest 办结案件 bar with a case opens the ledger with that day in the closed
    dates of its form, as many cases as the bar counts, each showing its last close under its
    status; on a phone the form and the cards stay within the screen."""
    context, page, left, errors = _context(browser, module_server, DESK, module_tokens.duty_street)
    bars = page.locator(".gw-spark a[href*='closed_from=']")
    assert bars.count() == 14
    titles = [bars.nth(i).get_attribute("title") or "" for i in range(14)]
    last = max(i for i, title in enumerate(titles) if not title.endswith(": 0"))
    day, count = titles[last].split(": ")
    bars.nth(last).click()
    page.wait_for_url("**closed_from=**")
    assert page.input_value("input[name=closed_from]") == day
    assert page.input_value("input[name=closed_to]") == day
    assert page.inner_text("#gw-count").startswith(f"共 {count} 条")
    rows = page.locator("#gw-ledger tbody tr")
    assert rows.count() == min(int(count), 200)
    assert rows.locator(".gw-closed").count() == rows.count(), "each was closed"
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate("document.querySelector('.gw-table-wrap').scrollWidth") <= PHONE["width"]
    context.close()
    assert left == [] and errors == []


def test_a_hazard_walks_its_steps_on_its_page(browser, module_server, module_tokens, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        hazard = conn.execute(
            "SELECT h.id FROM hazard_reports h JOIN grids g ON g.id = h.grid_id "
            "WHERE h.status = 'reported' AND g.code LIKE 'QS-01-%%' ORDER BY h.id LIMIT 1"
        ).fetchone()[0]
    context, page, left, errors = _context(browser, module_server, DESK, module_tokens.duty_street)
    page.goto(f"{module_server.url}/console/cases/{hazard}")
    assert page.locator("[data-action=close]").is_hidden()  # a reported hazard cannot close
    take_case_step(page, "dispatch", "assign", {"input[name=assignee]": "W001"}, "已派单")
    take_case_step(page, "resolve", "resolve", {"textarea[name=note]": "已清理楼道杂物"}, "已处置")
    assert page.locator("[data-action=close]").is_visible()
    assert page.locator("[data-action=resolve]").is_hidden()
    assert "已清理楼道杂物" in page.inner_text("#gw-timeline")
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute(
            "SELECT status, assignee FROM hazard_reports WHERE id = %s", (hazard,)
        ).fetchone() == ("resolved", "W001")
    context.close()
    assert left == [] and errors == []


def test_a_request_from_the_ledger_walks_its_steps_on_its_page(
    browser, module_server, module_tokens, seeded_url
):
    """A 12345 order waiting in the street's queue (no point: its street's outline is the
    map) is dispatched to a grid, accepted and rated on its page."""
    with psycopg.connect(seeded_url) as conn:
        request = conn.execute(
            "SELECT r.id FROM requests r JOIN grids g ON g.id = r.grid_id "
            "WHERE r.status = 'received' AND r.lon IS NULL AND g.code LIKE 'QS-01%%' "
            "ORDER BY r.id LIMIT 1"
        ).fetchone()[0]
    context, page, left, errors = _context(browser, module_server, DESK, module_tokens.duty_street)
    page.goto(f"{module_server.url}/console/ledger?kind=request&status=received")
    page.locator(f"#gw-ledger a[href='/console/cases/{request}']").click()
    page.wait_for_url(f"**/console/cases/{request}")
    page.wait_for_function("window.gridwatchCase !== undefined")
    assert page.locator("[data-action=accept]").is_hidden()  # to be dispatched first
    take_case_step(page, "dispatch", "dispatch", {"select[name=grid]": GRID_A}, "已派单")
    take_case_step(page, "accept", "accept", {}, "已接单")
    take_case_step(page, "resolve", "resolve", {"textarea[name=note]": "已协调物业处理"}, "已办结")
    rating = {
        "select[name=rating]": "basically_satisfied",
        "textarea[name=note]": "居民表示基本满意",
    }
    take_case_step(page, "feedback", "feedback", rating, "已回访")
    assert "居民表示基本满意" in page.inner_text("#gw-timeline")
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute(
            "SELECT r.status, r.rating, g.code FROM requests r JOIN grids g ON g.id = r.grid_id "
            "WHERE r.id = %s",
            (request,),
        ).fetchone() == ("feedback", "basically_satisfied", GRID_A)
    context.close()
    assert left == [] and errors == []


MAP_BESIDE_LIST = """() => {
    const map = document.querySelector('.folium-map').getBoundingClientRect();
    const list = document.querySelector('#gw-panel').getBoundingClientRect();
    return map.right <= list.left + 1 || map.bottom <= list.top + 1;
}"""
EMERGENCY_GRIDS = "document.querySelectorAll('path.leaflet-interactive[stroke=\"#b0003a\"]').length"


CURRENT_IN_VIEW = """(() => {
  const nav = document.querySelector('.gw-bar nav').getBoundingClientRect();
  const on = document.querySelector('.gw-bar nav a.on').getBoundingClientRect();
  return on.left >= nav.left - 1 && on.right <= nav.right + 1;
})()"""


def test_phone_width_screenshots(browser, module_server, module_tokens, sos, shots, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        case = conn.execute(  # a hazard that has gone through a few steps: a long timeline
            "SELECT h.id FROM hazard_reports h JOIN grids g ON g.id = h.grid_id "
            "WHERE g.code LIKE 'QS-01-%%' AND h.status = 'in_progress' ORDER BY h.id LIMIT 1"
        ).fetchone()[0]
    context, page, left, errors = _context(browser, module_server, PHONE, module_tokens.duty_street)
    widths = {}
    for name, path in (
        ("desk", "/console"),
        ("alert", f"/console/alerts/{sos['alert_id']}"),
        ("ledger", "/console/ledger?overdue=true"),
        ("case", f"/console/cases/{case}"),
        ("live", "/maps/live"),
    ):
        page.goto(f"{module_server.url}{path}")
        if name == "alert":
            page.wait_for_function("window.gridwatchChart !== undefined")
        if name == "case":
            page.wait_for_function("window.gridwatchCase !== undefined")
            assert page.locator("#gw-timeline li").count() >= 2
        page.wait_for_load_state("networkidle") if name != "live" else page.wait_for_timeout(800)
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        if name == "ledger":  # a card a row: nothing scrolls sideways inside the table either
            widths["ledger table"] = page.evaluate(
                "document.querySelector('.gw-table-wrap').scrollWidth"
            )
            assert page.locator("#gw-ledger thead").is_hidden()
            assert page.locator("#gw-ledger tr.late .gw-late").count() > 0
        clip = None
        if name == "desk":  # the figures and the trend, above the live list
            trend = page.locator(".gw-trend").bounding_box()
            assert trend is not None
            clip = {"x": 0, "y": 0, "width": PHONE["width"], "height": trend["y"] + trend["height"]}
        page.screenshot(
            path=str(shots / f"{name}-390.png"),
            full_page=name in ("alert", "case", "desk"),
            clip=clip,
        )
    assert page.evaluate(MAP_BESIDE_LIST), "the list covers the map on a phone"
    assert page.evaluate(EMERGENCY_GRIDS) > 0, "no grid with an SOS or a fall stands out"
    for path in ("/maps/coverage", "/m", "/console"):  # the bar's strip shows where one is
        page.goto(f"{module_server.url}{path}")
        assert page.evaluate(CURRENT_IN_VIEW), path
    page.set_viewport_size(DESK)
    page.goto(f"{module_server.url}/maps/live")
    page.wait_for_timeout(800)
    assert page.evaluate(MAP_BESIDE_LIST), "the list covers the map at a desk"
    page.screenshot(path=str(shots / "live-1366.png"))
    page.evaluate("window.gridwatchLive.map.setZoom(17)")
    page.wait_for_timeout(400)
    assert page.locator(".gw-grid-label").count() > 0, "no grid names when zoomed in"
    context.close()
    assert left == [] and errors == []
    assert all(width <= PHONE["width"] for width in widths.values()), widths
