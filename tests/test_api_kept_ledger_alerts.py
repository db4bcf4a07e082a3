"""The problem ledger (hazards and requests) and the alerts layer kept between changes: answers
equal the database's for every scope, filter and page; conditional GETs; a change (a hazard's
or a request's step, an alert taken, a resident moved) or the clock (a case falling overdue,
its hours late) seen by the next request; one caller's kept answer never served to another,
and every answer that shows residents in clear recorded, kept or not."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from gridwatch.store.ledger import LEDGER_ORDERS
from tests.support.api import GRID_A, GRID_B, NOTICE_S, NOW, every_page, kept_server, plain_server
from tests.support.databases import audit_after, execute, last_audit_id, query
from tests.support.spreadsheets import xlsx_rows
from tests.support.waiting import wait_for

LEDGER = "/ledger"
ALERTS = "/collections/alerts/items"
ROLES = ("admin", "duty_street", "duty_community", "worker_a", "worker_b")


@pytest.fixture(scope="module", name="kept")
def kept_fixture(seeded_url, module_tokens, tmp_path_factory):
    """A server that keeps the ledger and alerts on a clock the test moves, and a client of
    every reading role."""
    for n, code in enumerate((GRID_A, GRID_B)):  # each worker has requests, one overdue
        at = NOW - timedelta(minutes=n + 1)  # times of their own: "found" orders them alone
        _insert_request(seeded_url, code, at=at - timedelta(hours=3), accept_in=timedelta(hours=1))
        _insert_request(seeded_url, code, at=at, accept_in=timedelta(hours=4))
    tmp = tmp_path_factory.mktemp("kept")
    with kept_server(seeded_url, module_tokens, tmp, ROLES) as (server, clients):
        yield server, clients


@pytest.fixture(scope="module", name="plain")
def plain_fixture(kept, module_tokens, seeded_url, tmp_path_factory):
    """A server that keeps nothing (every answer from the database) on the kept one's clock."""
    tmp = tmp_path_factory.mktemp("plain")
    with plain_server(kept[0], seeded_url, module_tokens, tmp, ROLES) as clients:
        yield clients


def _same_pages(kept: httpx.Client, plain: httpx.Client, path: str, params: dict) -> None:
    """The kept server's pages equal the database's, once the notices of writes made meanwhile
    (the escalation job runs on the test's clock) have reached it."""
    wait_for(
        lambda: every_page(kept, path, params) == every_page(plain, path, params),
        timeout=NOTICE_S,
        what=f"{path} {params} as the database answers",
    )


def _same_at_both_limits(
    kept: httpx.Client, plain: httpx.Client, path: str, params: dict, role: str
) -> None:
    """`_same_pages` with pages of 7 and of 1000; the admin's unfiltered ask has more than
    7 rows, so pages follow one another there."""
    for limit in (7, 1000):
        asked = {**params, "limit": limit}
        if role == "admin" and not params:
            assert every_page(plain, path, asked)[0]["numberMatched"] > 7, "pages follow"
        _same_pages(kept, plain, path, asked)


def _insert_hazard(
    url: str,
    code: str | None,
    *,
    due_in: timedelta,
    observed: datetime = NOW,
    severity: str = "low",
) -> str:
    """A reported road hazard in grid `code` (None: outside every grid)."""
    hazard_id = uuid.uuid4()
    [(gid, lon, lat)] = query(
        url, "SELECT id, min_lon, min_lat FROM grids WHERE code = %s", (code or GRID_A,)
    )
    execute(
        url,
        "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
        "grid_id, category, severity, status, deadline_at, due_at) "
        "VALUES (%s, 'W001', %s, %s, %s, %s, %s, 'road', %s, 'reported', %s, %s)",
        (
            hazard_id,
            observed,
            observed,
            lon,
            lat,
            code and gid,
            severity,
            NOW + due_in,
            NOW + due_in,
        ),
    )
    return str(hazard_id)


def _insert_request(url: str, code: str, *, at: datetime, accept_in: timedelta) -> str:
    """A noise complaint dispatched to grid `code` at `at`, to be accepted within `accept_in`
    and resolved within two days, as another process stores one."""
    request_id = uuid.uuid4()
    [(gid,)] = query(url, "SELECT id FROM grids WHERE code = %s", (code,))
    accept_by, due = at + accept_in, at + timedelta(days=2)
    execute(
        url,
        "INSERT INTO requests (id, source, service_code, description, grid_id, reporter, "
        "requested_at, received_at, status, level, accept_by, due_at, deadline_at, updated_at) "
        "VALUES (%s, 'app', 'noise', '楼上装修太吵', %s, 'W001', %s, %s, 'dispatched', 'grid', "
        "%s, %s, %s, %s)",
        (request_id, gid, at, at, accept_by, due, min(accept_by, due), at),
    )
    return str(request_id)


def _ledger_row(client: httpx.Client, hazard_id: str) -> dict | None:
    answer = client.get(LEDGER, params={"limit": 10000})
    assert answer.status_code == 200, answer.text
    return next((r for r in answer.json()["items"] if r["id"] == hazard_id), None)


def _audit_after(url: str, last: int) -> list[tuple[str, str, set[str]]]:
    return [(e.actor, e.what, set(e.resident_ids)) for e in audit_after(url, last)]


def _in_clear(features: list[dict]) -> set[str]:
    return {
        f["properties"]["resident_id"]
        for f in features
        if not f["properties"]["resident"]["masked"] and f["properties"]["resident"]["name"]
    }


# -- the same answers as the database's ------------------------------------------------------

LEDGER_ASKED = [
    {},
    {"overdue": "true"},
    {"overdue": "false", "status": "reported,assigned"},
    {"level": "community"},
    {"status": "resolved,closed"},
    {"grid": GRID_A},
    {"grid": "QS-01-02", "overdue": "false"},
    {"status": ","},
    {"status": "nope"},
    {"grid": "NO-SUCH-GRID"},
    {"kind": "request"},
    {"kind": "hazard", "overdue": "true"},
    {"kind": "request", "status": "received,dispatched,reopened", "overdue": "true"},
    {"kind": "request", "level": "street"},
    {"kind": "nope"},
]


@pytest.mark.parametrize("role", ROLES)
def test_the_kept_ledger_answers_as_the_database_does(kept, plain, role):
    _, http = kept
    for params in LEDGER_ASKED:
        _same_at_both_limits(http[role], plain[role], LEDGER, params, role)
        got, want = (
            http[role].get(f"{LEDGER}.csv", params=params),
            plain[role].get(f"{LEDGER}.csv", params=params),
        )
        assert (got.status_code, got.content) == (want.status_code, want.content), params
        assert got.headers.get("content-disposition") == want.headers.get("content-disposition")


# The console's filters and orders (categories, sources, found from/to and closed from/to in
# the district's days, sort=).
LEDGER_SORTS = [{"sort": order} for key in LEDGER_ORDERS for order in (key, f"-{key}")]
LEDGER_NARROWED = [
    {"category": "fire"},
    {"category": "gas,flood", "overdue": "true"},
    {"category": "road", "grid": GRID_A, "sort": "-found"},
    {"from": "2026-11-20"},
    {"to": "2026-11-15"},
    {"from": "2026-11-18", "to": "2026-11-18"},
    {"from": "2026-11-17", "category": "road,fire", "status": "reported,assigned", "sort": "-due"},
    {"kind": "request"},
    {"kind": "hazard", "sort": "-due"},
    {"category": "dispute,noise,elderly"},
    {"status": "accepted,feedback"},
    {"kind": "request", "overdue": "false", "sort": "status"},
    {"kind": "request", "from": "2026-11-21", "grid": "QS-01-02"},
    {"closed_from": "2026-11-20", "closed_to": "2026-11-20"},
    {"closed_to": "2026-11-17", "sort": "-found"},
    {"closed_from": "2026-11-21", "kind": "request"},
    {"closed_from": "2026-11-19", "from": "2026-11-18", "grid": "QS-01-01", "sort": "status"},
    {"source": "warning"},
    {"source": "warning", "status": "received,dispatched,accepted,in_progress,reopened"},
    {"source": "app,hotline", "sort": "-found"},
    {"source": "open311,visit,warning", "grid": "QS-01-01", "overdue": "false"},
]
LEDGER_ODD = [
    {"from": "2026-11-21", "to": "2026-11-19"},
    {"category": ","},
    {"category": "nope"},
    {"from": "2026-13-01"},
    {"to": "yesterday"},
    {"sort": "nope"},
    {"sort": "--due"},
    {"closed_from": "2026-11-21", "closed_to": "2026-11-19"},
    {"closed_from": "2026-02-30"},
    {"closed_to": "today"},
    {"source": "nope"},
    {"source": ","},
    {"source": "warning", "kind": "hazard"},
]


def _ids(client: httpx.Client, params: dict) -> list[str]:
    return [r["id"] for page in every_page(client, LEDGER, params) for r in page["items"]]


def test_every_console_filter_and_order_tells(plain):
    """Each filter narrows the sample ledger and each order reorders it: a kept ledger that
    ignored one would answer otherwise than the database."""
    admin = plain["admin"]
    everything = _ids(admin, {"limit": 1000})
    kinds = {
        r["kind"] for page in every_page(admin, LEDGER, {"limit": 1000}) for r in page["items"]
    }
    assert kinds == {"hazard", "request"}
    for params in LEDGER_SORTS:
        ordered = _ids(admin, {**params, "limit": 1000})
        assert sorted(ordered) == sorted(everything) and ordered != everything, params

    def found(order: str) -> list[str]:
        pages = every_page(admin, LEDGER, {"sort": order, "limit": 1000})
        return [r["observed_at"] for page in pages for r in page["items"]]

    # A level-2 warning's case is asked when its text was: ties, broken most urgent first.
    assert found("-found") == found("found")[::-1] == sorted(found("found"), reverse=True)
    for params in LEDGER_NARROWED:
        narrowed = _ids(admin, {**params, "limit": 1000})
        assert 0 < len(narrowed) < len(everything), params


@pytest.mark.parametrize("role", ROLES)
def test_the_kept_ledger_filters_and_sorts_as_the_database_does(kept, plain, role):
    _, http = kept
    for params in LEDGER_SORTS + LEDGER_NARROWED + LEDGER_ODD:
        for limit in (40, 1000):
            _same_pages(http[role], plain[role], LEDGER, {**params, "limit": limit})
        got, want = (
            http[role].get(f"{LEDGER}.csv", params=params),
            plain[role].get(f"{LEDGER}.csv", params=params),
        )
        assert (got.status_code, got.content) == (want.status_code, want.content), params


def test_the_kept_ledger_keeps_to_the_districts_days_and_puts_nulls_last(kept, plain, seeded_url):
    """Hazards found either side of local midnight fall on the day the district calls it; one
    outside every grid, of a severity not on the ladder, sorts last either way."""
    _, http = kept
    day = datetime.fromisoformat("2026-11-20T00:00:00+08:00")
    tick = timedelta(microseconds=1)
    found = [day - tick, day, day + timedelta(days=1) - tick, day + timedelta(days=1)]
    ids = [_insert_hazard(seeded_url, GRID_A, due_in=timedelta(days=3), observed=t) for t in found]
    odd = _insert_hazard(
        seeded_url, None, due_in=timedelta(days=3), observed=day, severity="unrated"
    )
    admin = http["admin"]
    wait_for(lambda: _ledger_row(admin, odd), timeout=NOTICE_S, what="the new hazards")
    that_day = {"from": "2026-11-20", "to": "2026-11-20", "limit": 1000}
    assert set(ids) & set(_ids(admin, that_day)) == {ids[1], ids[2]}
    for role in ("admin", "worker_a"):
        for params in (that_day, {"from": "2026-11-21"}, {"to": "2026-11-19"}, *LEDGER_SORTS):
            _same_pages(http[role], plain[role], LEDGER, {"limit": 1000, **params})
    for order in ("grid", "-grid"):
        assert _ids(admin, {"sort": order, "limit": 1000})[-1] == odd, order
    for order in ("severity", "-severity"):
        assert _ids(admin, {"sort": order, "kind": "hazard", "limit": 1000})[-1] == odd, order
        requests = set(_ids(admin, {"kind": "request", "limit": 1000}))
        ordered = _ids(admin, {"sort": order, "limit": 1000})
        last = set(ordered[-len(requests) - 1 :])  # the requests and the odd hazard
        assert last == requests | {odd}, "a request has no severity: last"


def test_the_kept_ledger_selects_closes_by_the_districts_days(kept, plain, seeded_url):
    """Hazards closed (办结) either side of local midnight fall on the day the district calls
    it; one closed, reopened and closed again the next day is listed on both days, its
    closed_at its last close; a step that leaves a closed case closed closes nothing."""
    _, http = kept
    day = datetime.fromisoformat("2026-11-20T00:00:00+08:00")
    tick, hour = timedelta(microseconds=1), timedelta(hours=1)
    closed = [day - tick, day, day + timedelta(days=1) - tick, day + timedelta(days=1)]
    ids = [_insert_hazard(seeded_url, GRID_A, due_in=timedelta(days=3)) for _ in range(6)]
    twice, still = ids[4], ids[5]
    steps = [
        (case, at, "close", "resolved", "closed") for case, at in zip(ids[:4], closed, strict=True)
    ]
    steps += [
        (twice, day + hour, "close", "resolved", "closed"),
        (twice, day + 2 * hour, "reopen", "closed", "reopened"),
        (twice, day + 3 * hour, "resolve", "reopened", "resolved"),
        (twice, day + timedelta(days=1, hours=3), "close", "resolved", "closed"),
        (still, day - hour, "close", "resolved", "closed"),
        (still, day + hour, "note", "closed", "closed"),
    ]
    for step in steps:
        execute(
            seeded_url,
            "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, actor) "
            "VALUES (%s, %s, %s, %s, %s, 'duty')",
            step,
        )
    execute(seeded_url, "UPDATE hazard_reports SET status = 'closed' WHERE id = ANY(%s)", (ids,))
    admin = http["admin"]
    last = day + timedelta(days=1, hours=3)

    def last_close(client: httpx.Client) -> datetime | None:
        row = _ledger_row(client, twice)
        return datetime.fromisoformat(row["closed_at"]) if row and row["closed_at"] else None

    wait_for(lambda: last_close(admin) == last, timeout=NOTICE_S, what="the closes, kept")
    assert last_close(plain["admin"]) == last
    that_day = {"closed_from": "2026-11-20", "closed_to": "2026-11-20", "limit": 1000}
    next_day = {"closed_from": "2026-11-21", "closed_to": "2026-11-21", "limit": 1000}
    assert set(ids) & set(_ids(admin, that_day)) == {ids[1], ids[2], twice}
    assert set(ids) & set(_ids(admin, next_day)) == {ids[3], twice}
    for role in ("admin", "worker_a", "worker_b"):
        for params in (
            that_day,
            next_day,
            {"closed_to": "2026-11-19"},
            {"closed_from": "2026-11-21"},
        ):
            _same_pages(http[role], plain[role], LEDGER, {"limit": 1000, **params})


ALERTS_ASKED = [
    {},
    {"status": "active"},
    {"status": "resolved"},
    {"level": "grid", "kind": "no_activity"},
    {"grid": GRID_A},
    {"bbox": "109.880,40.636,109.930,40.664"},
    {"bbox": "109.890,40.640,109.900,40.650", "status": "open"},
    {"datetime": "2026-11-20T00:00:00+08:00/2026-11-23T00:00:00+08:00"},
    {"datetime": "2026-11-22"},
    {"cursor": "not-a-cursor"},
    {"grid": GRID_B},
]


@pytest.mark.parametrize("role", ROLES)
def test_the_kept_alerts_answer_as_the_database_does(kept, plain, role):
    _, http = kept
    for params in ALERTS_ASKED:
        _same_at_both_limits(http[role], plain[role], ALERTS, params, role)


@pytest.mark.parametrize("role", ["duty_street", "worker_a"])
def test_the_kept_workbook_holds_what_the_database_gives(kept, plain, role):
    """The workbook's bytes carry the time it was written: its rows are compared."""
    _, http = kept
    for params in ({}, LEDGER_NARROWED[2], LEDGER_NARROWED[6], LEDGER_ODD[-1]):
        got, want = (
            http[role].get(f"{LEDGER}.xlsx", params=params),
            plain[role].get(f"{LEDGER}.xlsx", params=params),
        )
        assert got.status_code == want.status_code, params
        if got.status_code == 200:
            assert xlsx_rows(got.content) == xlsx_rows(want.content), params
        assert got.headers.get("content-disposition") == want.headers.get("content-disposition")


# -- conditional GETs ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LEDGER, f"{LEDGER}.csv", f"{LEDGER}.xlsx", ALERTS])
def test_an_unchanged_answer_is_304_to_the_etag_it_gave(kept, path):
    admin = kept[1]["admin"]
    first = admin.get(path)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    again = admin.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = admin.get(path, headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.content == first.content
    narrower = admin.get(path, params={"grid": GRID_A}, headers={"If-None-Match": etag})
    assert narrower.status_code == 200 and narrower.headers["etag"] != etag


@pytest.mark.parametrize("path", [LEDGER, f"{LEDGER}.csv"])
def test_a_sorted_or_dated_ledger_has_its_own_etag(kept, path):
    admin = kept[1]["admin"]
    etag = admin.get(path).headers["etag"]
    for params in ({"sort": "-found"}, {"from": "2026-11-20"}, {"category": "fire"}):
        first = admin.get(path, params=params, headers={"If-None-Match": etag})
        assert first.status_code == 200 and first.headers["etag"] != etag, params
        again = admin.get(path, params=params, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304, params


# -- changes and the clock -----------------------------------------------------------------------


def test_a_hazards_new_step_is_in_the_next_ledger(kept, seeded_url):
    admin = kept[1]["admin"]
    hazard_id = _insert_hazard(seeded_url, GRID_A, due_in=timedelta(days=2))
    wait_for(lambda: _ledger_row(admin, hazard_id), timeout=NOTICE_S, what="the new hazard")
    etag = admin.get(LEDGER, params={"limit": 10000}).headers["etag"]
    execute(
        seeded_url,
        "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, actor, note) "
        "VALUES (%s, %s, 'assign', 'reported', 'assigned', 'duty', 'to W001')",
        (hazard_id, NOW),
    )
    wait_for(
        lambda: _ledger_row(admin, hazard_id)["last_note"] == "to W001",
        timeout=NOTICE_S,
        what="the hazard's new event in the ledger",
    )
    again = admin.get(LEDGER, params={"limit": 10000}, headers={"If-None-Match": etag})
    assert again.status_code == 200

    # Through this API: in the very next answer.
    moved = admin.post(f"/hazards/{hazard_id}/start", json={"note": "on my way"})
    assert moved.status_code == 200, moved.text
    row = _ledger_row(admin, hazard_id)
    assert (row["status"], row["last_note"]) == ("in_progress", "on my way")


def test_a_requests_new_step_is_in_the_next_ledger(kept, seeded_url):
    server, http = kept
    admin = http["admin"]
    at = server.clock()
    request_id = _insert_request(seeded_url, GRID_A, at=at, accept_in=timedelta(hours=2))
    row = wait_for(lambda: _ledger_row(admin, request_id), timeout=NOTICE_S, what="the request")
    assert (row["kind"], row["category"], row["service_name"]) == ("request", "noise", "噪声扰民")
    assert (row["status"], row["due_kind"], row["severity"]) == ("dispatched", "accept", None)
    assert datetime.fromisoformat(row["due_at"]) == at + timedelta(hours=2)
    execute(
        seeded_url,
        "WITH e AS (INSERT INTO request_events (request_id, at, action, from_status, to_status, "
        "actor, note) VALUES (%s, %s, 'accept', 'dispatched', 'accepted', 'W001', '马上到') "
        "RETURNING request_id) UPDATE requests SET status = 'accepted', assignee = 'W001', "
        "deadline_at = due_at WHERE id IN (SELECT request_id FROM e)",
        (request_id, at),
    )
    row = wait_for(
        lambda: (r := _ledger_row(admin, request_id))["status"] == "accepted" and r,
        timeout=NOTICE_S,
        what="the request's new step in the ledger",
    )
    assert (row["due_kind"], row["assignee"], row["last_note"]) == ("resolve", "W001", "马上到")
    assert datetime.fromisoformat(row["due_at"]) == at + timedelta(days=2)

    # Through this API: in the very next answer, as the database path gives it.
    moved = http["worker_a"].post(f"/requests/{request_id}/start", json={"note": "在处理"})
    assert moved.status_code == 200, moved.text
    row = _ledger_row(admin, request_id)
    assert (row["status"], row["last_note"]) == ("in_progress", "在处理")
    listed = admin.get(f"{LEDGER}.csv", params={"kind": "request", "grid": GRID_A})
    [cells] = [r for r in listed.content.decode("utf-8-sig").splitlines() if request_id in r]
    # no place, never closed, reported in the app
    assert ",噪声扰民," in cells and cells.endswith(",诉求,办结期限,,,应用上报"), cells


def test_a_hazard_falling_overdue_and_its_hours_late_follow_the_clock(kept, plain, seeded_url):
    server, http = kept
    admin = http["admin"]
    hazard_id = _insert_hazard(seeded_url, GRID_B, due_in=timedelta(minutes=30))
    row = wait_for(lambda: _ledger_row(admin, hazard_id), timeout=NOTICE_S, what="the hazard")
    assert (row["overdue"], row["overdue_hours"]) == (False, None)
    server.clock.advance(timedelta(minutes=31))
    row = _ledger_row(admin, hazard_id)
    assert (row["overdue"], row["overdue_hours"]) == (True, 0.0)
    late = admin.get(LEDGER, params={"overdue": "true", "grid": GRID_B}).json()["items"]
    assert hazard_id in {r["id"] for r in late}
    server.clock.advance(timedelta(minutes=5))  # 6 minutes late: a tenth of an hour
    assert _ledger_row(admin, hazard_id)["overdue_hours"] == 0.1
    server.clock.advance(timedelta(minutes=2, seconds=59))
    assert _ledger_row(admin, hazard_id)["overdue_hours"] == 0.1
    server.clock.advance(timedelta(seconds=2))  # past 9 minutes, 0.15 h: a fifth of an hour
    assert _ledger_row(admin, hazard_id)["overdue_hours"] == 0.2
    for asked in ({"overdue": "true", "limit": 1000}, {"overdue": "false", "limit": 1000}):
        _same_pages(admin, plain["admin"], LEDGER, asked)


def test_a_request_not_accepted_in_time_falls_overdue_with_the_clock(kept, plain, seeded_url):
    server, http = kept
    admin = http["admin"]
    request_id = _insert_request(
        seeded_url, GRID_B, at=server.clock(), accept_in=timedelta(minutes=30)
    )
    row = wait_for(lambda: _ledger_row(admin, request_id), timeout=NOTICE_S, what="the request")
    assert (row["overdue"], row["overdue_hours"]) == (False, None)
    server.clock.advance(timedelta(minutes=37))
    row = _ledger_row(admin, request_id)
    assert (row["overdue"], row["overdue_hours"], row["due_kind"]) == (True, 0.1, "accept")
    late = admin.get(LEDGER, params={"overdue": "true", "kind": "request", "limit": 1000})
    assert request_id in {r["id"] for r in late.json()["items"]}
    for asked in ({"overdue": "true", "limit": 1000}, {"kind": "request", "limit": 1000}):
        _same_pages(admin, plain["admin"], LEDGER, asked)


def test_an_alert_taken_or_its_resident_moved_is_in_the_next_answer(kept, seeded_url):
    admin = kept[1]["admin"]
    [(alert_id, resident_id)] = query(
        seeded_url,
        "SELECT id, resident_id FROM alerts WHERE status = 'open' AND resident_id IS NOT NULL "
        "ORDER BY id LIMIT 1",
    )

    def alert() -> dict:
        features = admin.get(ALERTS, params={"limit": 1000}).json()["features"]
        return next(f for f in features if f["id"] == alert_id)

    assert alert()["properties"]["status"] == "open"
    etag = admin.get(ALERTS, params={"limit": 1000}).headers["etag"]
    execute(
        seeded_url,
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, "
        "acknowledged_by = 'duty' WHERE id = %s",
        (NOW, alert_id),
    )
    wait_for(
        lambda: alert()["properties"]["status"] == "acknowledged",
        timeout=NOTICE_S,
        what="the acknowledgement in the alerts layer",
    )
    changed = admin.get(ALERTS, params={"limit": 1000}, headers={"If-None-Match": etag})
    assert changed.status_code == 200

    [lon, lat] = alert()["geometry"]["coordinates"]
    execute(
        seeded_url,
        "UPDATE residents SET lon = lon + 0.001, lat = lat + 0.001 WHERE id = %s",
        (resident_id,),
    )
    wait_for(
        lambda: (
            alert()["geometry"]["coordinates"] == [round(lon + 0.001, 7), round(lat + 0.001, 7)]
        ),
        timeout=NOTICE_S,
        what="the resident's new home in the alerts layer",
    )


# -- one caller's view, and the record of it -----------------------------------------------------


@pytest.fixture(scope="module", name="alert_in_b")
def alert_in_b_fixture(kept, seeded_url) -> int:
    """An open alert in grid B (the sample has none there), seen by the kept server."""
    [(resident, gid)] = query(
        seeded_url,
        "SELECT r.id, r.grid_id FROM residents r JOIN grids g ON g.id = r.grid_id "
        "WHERE g.code = %s AND r.name IS NOT NULL ORDER BY r.id LIMIT 1",
        (GRID_B,),
    )
    [(alert_id,)] = query(
        seeded_url,
        "INSERT INTO alerts (resident_id, kind, grid_id, status, severity, since, opened_at) "
        "VALUES (%s, 'no_activity', %s, 'open', 'high', %s, %s) RETURNING id",
        (resident, gid, NOW - timedelta(hours=13), NOW),
    )
    worker_b = kept[1]["worker_b"]
    wait_for(
        lambda: worker_b.get(ALERTS).json()["numberMatched"] > 0,
        timeout=NOTICE_S,
        what="grid B's alert",
    )
    return alert_id


def test_a_kept_alerts_answer_is_never_served_to_another_caller(
    kept, plain, seeded_url, alert_in_b
):
    _, http = kept
    params = {"limit": 1000}
    seen: dict[str, list] = {}
    for role in ("worker_a", "worker_b", "duty_community", "admin", "worker_b", "worker_a"):
        features = http[role].get(ALERTS, params=params).json()["features"]
        seen.setdefault(role, features)
        assert features == seen[role], f"{role} got another caller's answer"
        assert features == plain[role].get(ALERTS, params=params).json()["features"], role
    in_grid = {
        code: {
            str(a)
            for (a,) in query(
                seeded_url,
                "SELECT a.id FROM alerts a JOIN grids g ON g.id = a.grid_id WHERE g.code = %s",
                (code,),
            )
        }
        for code in (GRID_A, GRID_B)
    }
    for role, grid in (("worker_a", GRID_A), ("worker_b", GRID_B)):
        assert {str(f["id"]) for f in seen[role]} == in_grid[grid], role
    assert seen["worker_a"] and seen["worker_b"], "both workers have alerts to see"
    tag_a = http["worker_a"].get(ALERTS, params=params).headers["etag"]
    as_b = http["worker_b"].get(ALERTS, params=params, headers={"If-None-Match": tag_a})
    assert as_b.status_code == 200 and as_b.json()["features"] == seen["worker_b"]


def test_every_kept_alerts_answer_in_clear_is_recorded_for_its_caller(
    kept, module_tokens, seeded_url, alert_in_b
):
    _, http = kept
    params = {"limit": 1000}
    for role in ("worker_a", "worker_b", "worker_a"):
        last = last_audit_id(seeded_url)
        first = http[role].get(ALERTS, params=params)
        again = http[role].get(
            ALERTS, params=params, headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        shown = _in_clear(first.json()["features"])
        assert shown, f"{role} sees residents in clear"
        actor = module_tokens.names[role]
        assert _audit_after(seeded_url, last) == [(actor, f"GET {ALERTS}", shown)] * 2, role


def test_kept_answers_asked_at_once_are_each_recorded(kept, module_tokens, seeded_url, alert_in_b):
    """Reads of kept answers are written together; none is lost or put on another caller."""
    _, http = kept
    asked = {"worker_a": 12, "worker_b": 8}
    shown = {role: _in_clear(http[role].get(ALERTS).json()["features"]) for role in asked}
    last = last_audit_id(seeded_url)
    roles = [role for role, times in asked.items() for _ in range(times)]
    with ThreadPoolExecutor(max_workers=len(roles)) as pool:
        answers = list(pool.map(lambda role: http[role].get(ALERTS).status_code, roles))
    assert answers == [200] * len(roles)
    entries = _audit_after(seeded_url, last)
    assert len(entries) == len(roles)
    for role, times in asked.items():
        mine = [ids for actor, _, ids in entries if actor == module_tokens.names[role]]
        assert mine == [shown[role]] * times, role
