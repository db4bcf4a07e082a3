"""The console over plain HTTP: each page and its JSON for its callers only (another grid's
alert or case is not even confirmed to exist), residents masked as on every read, the
ledger's new filters the same on screen, in JSON and in the CSV."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest

from gridwatch.cases.requests import OPEN_STATUSES as REQUEST_OPEN
from gridwatch.maps.console import duration_text
from gridwatch.maps.texts import texts_for
from gridwatch.store.users import create_user, revoke_user
from tests.support.api import (
    GRID_A,
    GRID_B,
    NOW,
    english_client,
    hotline_request,
    open_alert,
    reason,
    warning_cases,
)
from tests.support.databases import execute
from tests.support.spreadsheets import csv_rows, xlsx_rows

ZH = texts_for("zh")["console"]
EN = texts_for("en")["console"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DAY = timedelta(days=1)


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
    assert sum(d["cases_opened"] for d in street["trend"]) > 0
    falls = http["duty_street"].get("/console/summary.json", params={"kind": "fall"}).json()
    assert {a["kind"] for a in falls["live"]} == {"fall"}


def _desk_counts(client: httpx.Client) -> dict:
    summary = client.get("/console/summary.json").json()
    return {"requests": summary["requests"], "warnings": summary["warnings"]}


def _card_links(page: str, kinds: str = "requests|warnings") -> dict[str, str]:
    """The ledger each figure of the desk page of `kinds` (a regex) opens."""
    links = dict(re.findall(rf'<a href="([^"]+)"[^>]*data-k="((?:{kinds})\.\w+)"', page))
    links |= dict(re.findall(rf'<a href="([^"]+)">[^<]*<b data-k="((?:{kinds})\.open)"', page))
    return {key: html.unescape(href) for href, key in links.items()}


def test_the_hazard_figures_open_the_hazards_they_count(http, seeded_url):
    """超期隐患 and 未办结隐患 open the ledger of hazards alone (not the requests beside
    them), listing as many as the figure says, for a duty officer as for a grid worker, and
    for one who sees every grid: a hazard reported outside every grid too."""
    with psycopg.connect(seeded_url) as conn:
        [(outside,)] = conn.execute(
            "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
            "category, severity, status, deadline_at, due_at) VALUES (gen_random_uuid(), "
            "'W001', %s, %s, 0.5, 0.5, 'road', 'low', 'reported', %s, %s) RETURNING id",
            (NOW - DAY, NOW - DAY, NOW - timedelta(hours=1), NOW - timedelta(hours=1)),
        ).fetchall()
    try:
        _hazard_figures_are_their_ledgers(http)
    finally:
        execute(seeded_url, "DELETE FROM hazard_reports WHERE id = %s", (outside,))


def _hazard_figures_are_their_ledgers(http) -> None:
    for client in (http["admin"], http["duty_street"], http["worker_b"]):
        page = client.get("/console").text
        summary = client.get("/console/summary.json").json()
        links = _card_links(page, "hazards")
        assert set(links) == {"hazards.overdue", "hazards.open"}
        assert all(href.startswith("/console/ledger?kind=hazard&") for href in links.values())
        assert _matched(client, links["hazards.overdue"])[0] == summary["hazards"]["overdue"]
        assert _matched(client, links["hazards.open"])[0] == summary["hazards"]["open"]
        assert 'class="gw-big late"><a href="/console/ledger?kind=hazard&amp;overdue=true"' in page


def _matched(client: httpx.Client, console_href: str) -> tuple[int, set[str]]:
    """How many cases the ledger a desk figure opens lists for `client`, and their ids."""
    query = parse_qs(urlsplit(console_href).query)
    found = client.get("/ledger", params={**query, "limit": 1000}).json()
    return found["numberMatched"], {item["id"] for item in found["items"]}


def test_the_desk_counts_requests_and_warnings_of_the_callers_grids(
    http, seeded_url, module_tokens, tmp_path
):
    """诉求 open and overdue (the ledger's overdue: past the deadline that runs) and 预警 (a
    level-2 warning whose case is open) of grid A count on the duty officer's desk, each
    figure the number its ledger lists; grid B's worker counts its own and none of A's."""
    officer, worker_b = http["duty_street"], http["worker_b"]
    before, before_b = _desk_counts(officer), _desk_counts(worker_b)
    with psycopg.connect(seeded_url) as conn:
        grid, grid_b = (
            conn.execute("SELECT id FROM grids WHERE code = %s", (code,)).fetchone()[0]
            for code in (GRID_A, GRID_B)
        )
        late = hotline_request(conn, grid, "dispatched", NOW - timedelta(hours=1), NOW + DAY)
        on_time = hotline_request(conn, grid, "accepted", NOW - timedelta(hours=1), NOW + DAY)
        done = hotline_request(conn, grid, "closed", NOW - DAY, NOW - timedelta(hours=1))
        cases = warning_cases(conn, grid, "gw:desk@1")
        hotline_request(conn, grid_b, "dispatched", NOW + DAY, NOW + 2 * DAY)
    assert cases, "the warning opened a case"
    after = _desk_counts(officer)
    assert after == {
        "requests": {
            "open": before["requests"]["open"] + 3 + len(cases),
            "overdue": before["requests"]["overdue"] + 1,
        },
        "warnings": {"open": before["warnings"]["open"] + len(cases)},
    }
    after_b = _desk_counts(worker_b)
    assert after_b["requests"] == {**before_b["requests"], "open": before_b["requests"]["open"] + 1}
    assert after_b["warnings"] == before_b["warnings"], "grid A's are not on grid B's desk"

    page = officer.get("/console").text
    assert all(f"<h2>{ZH[key]}</h2>" in page for key in ("requests", "warnings"))
    shown = dict(re.findall(r'data-k="((?:requests|warnings)\.\w+)"[^>]*>([^<]*)<', page))
    assert shown == {
        "requests.overdue": str(after["requests"]["overdue"]),
        "requests.open": str(after["requests"]["open"]),
        "warnings.open": str(after["warnings"]["open"]),
    }
    assert 'class="gw-big late"><a href="/console/ledger?kind=request&amp;overdue=true"' in page
    links = _card_links(page)
    assert set(links) == set(shown)
    for key, href in links.items():
        opens = "source=warning" if key == "warnings.open" else "kind=request"
        assert href.startswith(f"/console/ledger?{opens}&"), key
        assert officer.get(href).status_code == 200, href
        if "status" in parse_qs(urlsplit(href).query):
            assert set(parse_qs(urlsplit(href).query)["status"][0].split(",")) == REQUEST_OPEN
    overdue, overdue_ids = _matched(officer, links["requests.overdue"])
    assert overdue == after["requests"]["overdue"] and late in overdue_ids
    assert on_time not in overdue_ids
    listed, open_ids = _matched(officer, links["requests.open"])
    assert listed == after["requests"]["open"]
    assert {late, on_time, *cases} <= open_ids and done not in open_ids
    warned, warned_ids = _matched(officer, links["warnings.open"])
    assert set(cases) <= warned_ids, "the warning's case is in the ledger it opens"
    assert warned == after["warnings"]["open"], "the warnings' cases alone"
    rows = officer.get("/ledger", params={"source": "warning", "limit": 1000}).json()["items"]
    assert rows and {row["source"] for row in rows} == {"warning"}, "each row says its source"
    mine = _desk_counts(worker_b)
    assert (mine["requests"]["open"], mine["requests"]["overdue"], mine["warnings"]["open"]) == (
        _matched(worker_b, links["requests.open"])[0],
        _matched(worker_b, links["requests.overdue"])[0],
        _matched(worker_b, links["warnings.open"])[0],
    )
    with english_client(seeded_url, module_tokens, tmp_path, "duty_street") as english:
        page = english.get("/console").text
    assert all(f"<h2>{EN[key]}</h2>" in page for key in ("requests", "warnings"))
    assert EN["overdue_requests"] in page and EN["open_warnings"] in page


def _trend(client: httpx.Client) -> dict[str, dict]:
    return {d["day"]: d for d in client.get("/console/summary.json").json()["trend"]}


def test_the_trend_counts_requests_as_cases(http, seeded_url, tmp_path, module_tokens):
    """A request asked on the trend's first day and closed (回访后关闭) just after midnight on
    a day with no close yet in grid A counts as a case opened and closed on those days, its
    hours from received to closed the day's median; a later copy of it, still closed,
    closes nothing again; grid B's worker counts none of it."""
    worker_a, worker_b, officer = http["worker_a"], http["worker_b"], http["duty_street"]
    before, before_b, before_street = _trend(worker_a), _trend(worker_b), _trend(officer)
    first = min(before)
    closing = next(day for day in sorted(before)[1:] if not before[day]["cases_closed"])
    asked = datetime.fromisoformat(first).replace(hour=12, tzinfo=NOW.tzinfo)
    closed_at = datetime.fromisoformat(closing).replace(minute=30, tzinfo=NOW.tzinfo)
    with psycopg.connect(seeded_url) as conn:
        [(grid,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchall()
        case = hotline_request(conn, grid, "closed", NOW + DAY, NOW + DAY)
        conn.execute(
            "UPDATE requests SET requested_at = %(at)s, received_at = %(at)s WHERE id = %(id)s",
            {"at": asked, "id": case},
        )
        conn.execute(
            "INSERT INTO request_events (request_id, at, action, from_status, to_status, actor) "
            "VALUES (%s, %s, 'close', 'feedback', 'closed', 'duty'), "
            "(%s, %s, 'update', 'closed', 'closed', 'gridwatch')",
            (case, closed_at, case, closed_at + timedelta(hours=2)),
        )
    after, after_street = _trend(worker_a), _trend(officer)
    hours = (closed_at - asked).total_seconds() / 3600
    assert after[first]["cases_opened"] == before[first]["cases_opened"] + 1
    assert after[closing]["cases_closed"] == 1
    assert after[closing]["median_close_h"] == round(hours, 1)
    assert after[closing]["median_close_h_text"] == duration_text(round(hours, 1), ZH)
    unchanged = {day: d for day, d in after.items() if day not in (first, closing)}
    assert unchanged == {day: before[day] for day in unchanged}
    assert after_street[first]["cases_opened"] == before_street[first]["cases_opened"] + 1
    assert after_street[closing]["cases_closed"] == before_street[closing]["cases_closed"] + 1
    assert _trend(worker_b) == before_b, "grid A's request is not on grid B's desk"

    page = worker_a.get("/console").text
    for key in ("cases_opened", "cases_closed", "median_close"):
        assert f'<span class="gw-spark-label">{ZH[key]}</span>' in page
    assert ZH["trend_hint"] in page and "隐患和诉求" in ZH["trend_hint"]
    with english_client(seeded_url, module_tokens, tmp_path, "worker_a") as english:
        page_en = english.get("/console").text
    assert EN["cases_opened"] == "Cases opened" and EN["cases_opened"] in page_en


def test_a_case_closed_twice_in_a_day_is_one_case_closed(http, seeded_url):
    """A hazard of grid A closed, reopened and closed again on one day is one case closed that
    day, on the desk and in the ledger of that day's closes (办结), which shows its last close;
    grid B's worker counts and lists none of it."""
    worker_a, worker_b, officer = http["worker_a"], http["worker_b"], http["duty_street"]
    before, before_b, before_street = _trend(worker_a), _trend(worker_b), _trend(officer)
    day = sorted(before)[-2]
    at = datetime.fromisoformat(day).replace(tzinfo=NOW.tzinfo)
    steps = [  # (hour, action, from, to)
        (9, "close", "resolved", "closed"),
        (10, "reopen", "closed", "reopened"),
        (11, "resolve", "reopened", "resolved"),
        (15, "close", "resolved", "closed"),
    ]
    with psycopg.connect(seeded_url) as conn:
        [(grid, lon, lat)] = conn.execute(
            "SELECT id, min_lon, min_lat FROM grids WHERE code = %s", (GRID_A,)
        ).fetchall()
        found = NOW - 20 * DAY  # before the trend: it changes no day's cases found
        [(case,)] = conn.execute(
            "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
            "grid_id, category, severity, status, deadline_at, due_at) VALUES "
            "(gen_random_uuid(), 'W001', %s, %s, %s, %s, %s, 'road', 'low', 'closed', %s, %s) "
            "RETURNING id::text",
            (found, found, lon, lat, grid, found + DAY, found + DAY),
        ).fetchall()
        for hour, action, from_status, to_status in steps:
            conn.execute(
                "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, actor) "
                "VALUES (%s, %s, %s, %s, %s, 'duty')",
                (case, at.replace(hour=hour), action, from_status, to_status),
            )
    after, after_street = _trend(worker_a), _trend(officer)
    assert after[day]["cases_closed"] == before[day]["cases_closed"] + 1
    assert after_street[day]["cases_closed"] == before_street[day]["cases_closed"] + 1
    assert _trend(worker_b) == before_b
    that_day = {"closed_from": day, "closed_to": day, "limit": 1000}
    listed = worker_a.get("/ledger", params=that_day).json()
    assert listed["numberMatched"] == after[day]["cases_closed"]
    [row] = [r for r in listed["items"] if r["id"] == case]
    assert datetime.fromisoformat(row["closed_at"]) == at.replace(hour=15)
    assert case not in _matched(worker_b, "/console/ledger?" + urlencode(that_day))[1]
    page = worker_a.get("/console/ledger", params={**that_day, "kind": "hazard"}).text
    assert f"{ZH['closed_on']} {day[5:]} 15:00" in page, "its last close, under its status"


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [("cases_opened", "from", "to"), ("cases_closed", "closed_from", "closed_to")],
)
def test_a_case_bar_opens_the_cases_it_counts(http, key, first, last):
    """Each day's 新增案件 bar opens the ledger of the cases found that day, each 办结案件 bar
    the ledger of those closed that day; either lists as many cases, hazards and requests, as
    the bar counts, for each caller."""
    counted = 0
    for role in ("duty_street", "worker_a", "worker_b"):
        client = http[role]
        trend = _trend(client)
        page = client.get("/console").text
        pattern = rf'<a href="(/console/ledger\?{first}=[^"]+)" title="([\d-]+): (\d+)"'
        bars = re.findall(pattern, page)
        assert len(bars) == len(trend) == 14, role
        for href, day, count in bars:
            href = html.unescape(href)
            assert parse_qs(urlsplit(href).query) == {first: [day], last: [day]}
            matched, _ = _matched(client, href)
            assert matched == int(count) == trend[day][key], (role, day)
            counted += matched
    assert counted, "some bar counts a case"


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
    rows = csv_rows(exported.content)[1:]
    assert [r[0] for r in rows] == ids
    workbook = http["duty_street"].get("/ledger.xlsx", params=query)
    assert workbook.status_code == 200 and workbook.headers["content-type"] == XLSX
    assert xlsx_rows(workbook.content) == csv_rows(exported.content), "the CSV's rows, in order"
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
    keys = ("level", "grid", "overdue", "status", "category", "from", "to")
    empty = {k: "" for k in (*keys, "closed_from", "closed_to")}
    page = http["duty_street"].get("/console/ledger", params=empty)
    assert page.status_code == 200
    assert http["duty_street"].get("/console/ledger", params={"level": "moon"}).status_code == 422


def test_a_day_of_closes_not_written_as_a_day_is_refused_with_why(http):
    officer = http["duty_street"]
    for params in ({"closed_from": "2026-13-01"}, {"closed_to": "yesterday"}):
        for path in ("/ledger", "/ledger.csv", "/ledger.xlsx"):
            refused = officer.get(path, params=params)
            assert refused.status_code == 422 and "YYYY-MM-DD" in reason(refused), path
        assert officer.get("/console/ledger", params=params).status_code == 422


def test_a_source_asked_by_a_link_is_kept_and_an_unknown_one_refused_with_why(http):
    """The page has no control for `source`: its form, sort links, pages and exports keep the
    source asked; a source not among the requests' is 422 with the ones there are."""
    officer = http["duty_street"]
    page = officer.get("/console/ledger", params={"source": "warning"})
    assert page.status_code == 200
    assert '<input type="hidden" name="source" value="warning">' in page.text
    chip = re.search(r'<a class="gw-chip" id="gw-source" href="([^"]*)">([^<]*)</a>', page.text)
    assert chip and "来源 · 矛盾纠纷二级预警" in chip[2], "the page says a source narrows it"
    assert chip[1] == "/console/ledger", "its ✕ shows the ledger without it"
    assert 'id="gw-source"' not in officer.get("/console/ledger").text
    links = [html.unescape(h) for h in re.findall(r'href="(/(?:console/)?ledger[^"]*)"', page.text)]
    kept = [h for h in links if "sort=" in h or h.startswith(("/ledger.csv", "/ledger.xlsx"))]
    assert len(kept) > 2 and all("source=warning" in h for h in kept), links
    ids = re.findall(r'href="/console/cases/([0-9a-f-]{36})"', page.text)
    listed = officer.get("/ledger", params={"source": "warning", "limit": 1000}).json()["items"]
    assert ids == [i["id"] for i in listed][: len(ids)] and ids
    assert {i["kind"] for i in listed} == {"request"}
    for path in ("/ledger", "/ledger.csv", "/ledger.xlsx", "/console/ledger"):
        refused = officer.get(path, params={"source": "hotline,fax"})
        assert refused.status_code == 422, path
        if path != "/console/ledger":
            assert "unknown source 'fax'" in reason(refused) and "warning" in reason(refused)


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
    [row] = [r for r in csv_rows(exported.content) if r[0] == request_in_a]
    assert (row[4], row[6], row[12], row[15]) == ("噪声扰民", "已派单", "是", "'=楼上夜间装修")
    # kind, deadline kind, no place (场所), never closed (办结时间), its source (来源)
    assert row[17:] == ["诉求", "接单期限", "", "", "12345热线"]
    page = http["worker_a"].get(f"/console/cases/{request_in_a}")
    assert page.status_code == 200
    assert "诉求详情" in page.text and "12345热线" in page.text
    no_photos = f'<p class="gw-hint" id="gw-photos">{ZH["no_photos"]}</p>'
    assert no_photos in page.text and '<ul class="gw-photos"' not in page.text  # a line, no list
    assert f'data-post="/requests/{request_in_a}/accept"' in page.text
    assert 'data-form="dispatch"' not in page.text  # a worker does not dispatch (派单)
    assert 'data-form="dispatch"' in http["duty_street"].get(f"/console/cases/{request_in_a}").text
    hidden = http["worker_b"].get(f"/console/cases/{request_in_a}")
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    assert http["worker_b"].post(f"/requests/{request_in_a}/accept").status_code == 404
    assert http["device"].get("/ledger", params={"kind": "request"}).status_code == 403
    assert http["device"].get("/ledger.csv").status_code == 403
    assert http["device"].get("/ledger.xlsx").status_code == 403


def test_the_excel_button_exports_what_the_page_shows(http):
    """Beside 导出 CSV, 导出 Excel links the workbook of the page's own filters and order."""
    query = {"kind": "hazard", "overdue": "true", "category": "fire", "sort": "severity"}
    page = http["duty_street"].get("/console/ledger", params=query).text
    [csv_href] = re.findall(r'id="gw-export" href="([^"]+)"', page)
    [xlsx_href] = re.findall(r'id="gw-export-xlsx" href="([^"]+)"', page)
    assert ZH["export_xlsx"] in page and ZH["export"] in page
    assert xlsx_href == csv_href.replace("/ledger.csv", "/ledger.xlsx")
    assert parse_qs(urlsplit(html.unescape(xlsx_href)).query) == {
        key: [value] for key, value in query.items()
    }
    shown = re.findall(r'href="/console/cases/([0-9a-f-]{36})"', page)
    workbook = http["duty_street"].get(html.unescape(xlsx_href))
    assert [row[0] for row in xlsx_rows(workbook.content)[1:]] == shown
    assert workbook.headers["content-disposition"] == (
        'attachment; filename="ledger-20261123.xlsx"; '
        "filename*=UTF-8''%E9%97%AE%E9%A2%98%E5%8F%B0%E8%B4%A6-20261123.xlsx"
    )
    bare = http["duty_street"].get("/console/ledger").text
    assert 'id="gw-export-xlsx" href="/ledger.xlsx"' in bare


def test_the_workbook_keeps_to_the_callers_grids(http, request_in_a):
    """Another grid's worker gets none of grid A's rows and a 404 for grid A; an unknown
    parameter or order is refused as for the CSV."""
    mine = xlsx_rows(http["worker_b"].get("/ledger.xlsx").content)
    assert len(mine) > 1 and {row[1] for row in mine[1:]} == {GRID_B}
    assert request_in_a not in {row[0] for row in mine}
    assert http["worker_b"].get("/ledger.xlsx", params={"grid": GRID_A}).status_code == 404
    own = xlsx_rows(http["worker_a"].get("/ledger.xlsx").content)
    assert request_in_a in {row[0] for row in own} and {row[1] for row in own[1:]} == {GRID_A}
    assert http["anonymous"].get("/ledger.xlsx").status_code == 401
    assert http["worker_a"].get("/ledger.xlsx", params={"limit": 5}).status_code == 400
    assert http["worker_a"].get("/ledger.xlsx", params={"sort": "price"}).status_code == 422


def test_a_revoked_token_gets_no_workbook(module_server, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, "duty-revoked", role="duty_officer", grid_codes=(GRID_A,))
    with httpx.Client(
        base_url=module_server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        assert client.get("/ledger.xlsx").status_code == 200
        with psycopg.connect(seeded_url) as conn:
            revoke_user(conn, "duty-revoked", now=NOW)
        refused = client.get("/ledger.xlsx")
        assert refused.status_code == 401 and "spreadsheetml" not in refused.headers["content-type"]
