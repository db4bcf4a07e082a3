"""The duty desk's figures kept between changes: the same figures as the database gives for
every caller and kind; conditional GETs; a change (an alert, a hazard, a visit, a meter
installed and then heard from, a request, a dispute warning's case) in the next answer; the
clock (a hazard or a request falling overdue, local midnight) turning them without a change;
one caller's answer never served to another, and every answer that shows residents in clear
recorded, kept or not."""

from __future__ import annotations

import random
import re
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from gridwatch.api.console import LIVE_ROWS
from gridwatch.store.alerts import (
    ACTIVE_STATUSES,
    alert_page,
    alerts_opened_daily,
    open_alert_tally,
)
from gridwatch.store.filters import Filters, local_day_bounds
from gridwatch.store.ledger import CaseDay, case_days, median_as_percentile_cont
from gridwatch.store.requests import transition_request
from gridwatch.store.residents import awaiting_installation
from gridwatch.store.users import principal_for_token
from tests.support.api import (
    GRID_A,
    GRID_B,
    NOTICE_S,
    NOW,
    ApiServer,
    Clock,
    api_settings,
    hotline_request,
    make_users,
    warning_cases,
)
from tests.support.databases import audit_after, execute, last_audit_id, query
from tests.support.waiting import wait_for

SUMMARY = "/console/summary.json"
ROLES = ("admin", "duty_street", "duty_community", "worker_a", "worker_b")
KINDS = (None, "", "no_activity", "fall", "meter_offline", "nope")


@pytest.fixture(scope="module", name="tokens")
def tokens_fixture(seeded_url):
    return make_users(seeded_url)


@pytest.fixture(scope="module", name="kept")
def kept_fixture(seeded_url, tokens, tmp_path_factory):
    """A server that keeps the desk's figures, on a clock the test moves."""
    settings = api_settings(tmp_path_factory.mktemp("kept"), seeded_url, api_counts_ttl_s=60)
    with ApiServer(settings, seeded_url, Clock()) as server:
        assert server.state.changes.live, "the API hears change notices"
        clients = {role: server.client(role, tokens) for role in ROLES}
        yield server, clients
        for client in clients.values():
            client.close()


@pytest.fixture(scope="module", name="plain")
def plain_fixture(kept, tokens, seeded_url, tmp_path_factory):
    """A server that keeps nothing (every answer from the database) on the kept one's clock."""
    server, _ = kept
    settings = api_settings(tmp_path_factory.mktemp("plain"), seeded_url)
    with ApiServer(settings, seeded_url, server.clock) as plain:
        clients = {role: plain.client(role, tokens) for role in ROLES}
        yield plain, clients
        for client in clients.values():
            client.close()


def _summary(client: httpx.Client, kind: str | None = None) -> dict:
    answer = client.get(SUMMARY, params={} if kind is None else {"kind": kind})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    body.pop("now")
    return body


def _same(kept: httpx.Client, plain: httpx.Client, kind: str | None = None) -> dict:
    """The kept server's figures, once equal to the database's (the notices of writes made
    meanwhile, the escalation job's on the test's clock among them, have reached it)."""
    return wait_for(
        lambda: (got := _summary(kept, kind)) == _summary(plain, kind) and got,
        timeout=NOTICE_S,
        what=f"the desk's figures of {kind!r} as the database gives them",
    )


def _grid_id(url: str, code: str) -> int:
    return query(url, "SELECT id FROM grids WHERE code = %s", (code,))[0][0]


def _resident_in(url: str, code: str) -> str:
    """A named resident of grid `code` with no alert."""
    return query(
        url,
        "SELECT r.id FROM residents r JOIN grids g ON g.id = r.grid_id WHERE g.code = %s "
        "AND r.name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = r.id)"
        " ORDER BY r.id",
        (code,),
    )[0][0]


def _open_alert(url: str, code: str, kind: str = "no_activity") -> int:
    resident = _resident_in(url, code)
    return query(
        url,
        "INSERT INTO alerts (resident_id, kind, grid_id, status, severity, since, opened_at) "
        "VALUES (%s, %s, %s, 'open', 'high', %s, %s) RETURNING id",
        (resident, kind, _grid_id(url, code), NOW - timedelta(hours=13), NOW),
    )[0][0]


@pytest.fixture(scope="module", name="alert_in_b")
def alert_in_b_fixture(seeded_url) -> int:
    """An open alert in grid B (the sample has none there): both workers have one to see."""
    return _open_alert(seeded_url, GRID_B)


# -- the same figures as the database's ---------------------------------------------------------


def test_the_sample_shows_every_kind_of_figure(plain, alert_in_b):
    """Figures a kept desk could get wrong are there to get wrong: medians of several closes,
    alerts in clear and masked, coverage, homes awaiting installation."""
    http = plain[1]
    admin = _summary(http["admin"])
    assert any(d["cases_closed"] >= 2 and d["median_close_h"] for d in admin["trend"])
    assert any(d["alerts_opened"] for d in admin["trend"]) and admin["hazards"]["overdue"]
    assert admin["coverage"]["visits_made"] and admin["awaiting_installation"]
    assert admin["live"] and not any(a["resident"]["masked"] for a in admin["live"])
    community = _summary(http["duty_community"])["live"]
    street = _summary(http["duty_street"])["live"]
    assert community and len(street) > len(community)
    assert _summary(http["worker_b"])["live"], "grid B's worker has an alert to see"


@pytest.mark.parametrize("role", ROLES)
def test_the_kept_desk_answers_as_the_database_does(kept, plain, role, alert_in_b):
    server, http = kept
    for kind in KINDS:
        _same(http[role], plain[1][role], kind)
    made = datetime.fromisoformat(http[role].get(SUMMARY).json()["now"])
    assert made <= server.clock(), "the time the figures were read"


@pytest.mark.parametrize("role", ROLES)
def test_the_figures_summed_over_grids_are_the_scopes_own(plain, tokens, seeded_url, role):
    """Kept or not, the desk reads every grid's figures and sums the caller's (api/desk.py);
    the database asked for the caller's scope at once (police grids too) counts the same."""
    summary = _summary(plain[1][role])
    zone = ZoneInfo(summary["zone"])
    days = [date.fromisoformat(d["day"]) for d in summary["trend"]]
    start, end = local_day_bounds(days[0], zone)[0], local_day_bounds(days[-1], zone)[1]
    with psycopg.connect(seeded_url) as conn:
        principal = principal_for_token(conn, getattr(tokens, role))
        assert principal is not None
        scope = None if principal.sees_all else principal.scope_param()
        police = principal.police_scope_param()
        filters = Filters(scope=scope, police_scope=police)
        tally = open_alert_tally(conn, filters)
        opened = alerts_opened_daily(conn, filters, start=start, end=end, zone=zone)
        cases = case_days(conn, scope=scope, start=start, end=end, zone=zone, police_scope=police)
        awaiting = awaiting_installation(conn, scope=scope)
        live = alert_page(conn, filters, limit=LIVE_ROWS, statuses=list(ACTIVE_STATUSES)).rows
    by_kind: dict[str, int] = {}
    for row in tally:
        by_kind[row.kind] = by_kind.get(row.kind, 0) + row.count
    alerts = summary["alerts"]
    assert {k["kind"]: k["open"] for k in alerts["by_kind"] if k["open"]} == by_kind
    assert alerts["unacked"] == sum(row.count for row in tally if row.status == "open")
    assert [d["alerts_opened"] for d in summary["trend"]] == [opened.get(d, 0) for d in days]
    shown = [(d["cases_opened"], d["cases_closed"], d["median_close_h"]) for d in summary["trend"]]
    counted = [cases.get(day, CaseDay(day)) for day in days]
    assert shown == [
        (c.opened, c.closed, None if c.median_close_h is None else round(c.median_close_h, 1))
        for c in counted
    ]
    assert summary["awaiting_installation"] == awaiting
    assert [a["alert_id"] for a in summary["live"]] == [row.id for row in live]


def test_a_median_is_percentile_conts_to_the_last_bit(seeded_url):
    rng = random.Random(15)  # noqa: S311 - sample values, not a secret
    samples = [[rng.uniform(0, 200) for _ in range(rng.randint(1, 9))] for _ in range(300)]
    samples += [[0.1, 0.2], [1e-9, 1e9], [3.3, 3.3, 7.7, 1.1]]
    with psycopg.connect(seeded_url) as conn:
        for values in samples:
            [(want,)] = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(%s::float8[]) v",
                (values,),
            ).fetchall()
            assert median_as_percentile_cont(values) == want, values


def _page_figures(server: ApiServer, token: str) -> dict:
    """The figures the desk page shows, and its live list, for a browser signed in."""
    with httpx.Client(base_url=server.url) as browser:
        signed_in = browser.post("/login", data={"token": token, "next": "/console"})
        assert signed_in.status_code == 303
        page = browser.get("/console")
        assert page.status_code == 200
    shown = dict(re.findall(r'data-k="([^"]+)"[^>]*>([^<]*)<', page.text))
    shown["live"] = re.findall(r'href="/console/alerts/(\d+)"', page.text)
    return shown


@pytest.mark.parametrize("role", ["admin", "duty_community", "worker_b"])
def test_the_desk_page_shows_the_same_figures(kept, plain, tokens, role, alert_in_b):
    token = getattr(tokens, role)
    wait_for(
        lambda: _page_figures(kept[0], token) == _page_figures(plain[0], token),
        timeout=NOTICE_S,
        what="the desk page's figures as the database gives them",
    )
    assert _page_figures(kept[0], token)["alerts.open"] != "0"


# -- conditional GETs -----------------------------------------------------------------------------


def test_an_unchanged_summary_is_304_to_the_etag_it_gave(kept):
    admin = kept[1]["admin"]
    first = admin.get(SUMMARY)
    etag = first.headers["etag"]
    again = admin.get(SUMMARY, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    narrower = admin.get(SUMMARY, params={"kind": "fall"}, headers={"If-None-Match": etag})
    assert narrower.status_code == 200 and narrower.headers["etag"] != etag


# -- changes and the clock ------------------------------------------------------------------------


def test_a_change_is_in_the_next_answer(kept, plain, seeded_url, alert_in_b):
    http = kept[1]
    worker_a, plain_a = http["worker_a"], plain[1]["worker_a"]
    before = _same(worker_a, plain_a)
    etag = worker_a.get(SUMMARY).headers["etag"]

    alert_id = _open_alert(seeded_url, GRID_A, "fall")
    after = _same(worker_a, plain_a)
    assert after["alerts"]["unacked"] == before["alerts"]["unacked"] + 1
    assert after["live"][0]["alert_id"] == alert_id
    assert worker_a.get(SUMMARY, headers={"If-None-Match": etag}).status_code == 200

    execute(
        seeded_url,
        "INSERT INTO residents (id, name, grid_id, lon, lat, living_alone) "
        "SELECT 'R-DESK-1', '王秀英', id, min_lon, min_lat, true FROM grids WHERE code = %s",
        (GRID_A,),
    )
    execute(
        seeded_url,
        "INSERT INTO devices (kind, id, resident_id) VALUES ('meter', 'M-DESK-1', 'R-DESK-1')",
    )
    installed = _same(worker_a, plain_a)
    assert installed["awaiting_installation"] == before["awaiting_installation"] + 1
    execute(
        seeded_url,
        "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w) "
        "VALUES ('M-DESK-1', %s, %s, 40)",
        (NOW - timedelta(minutes=1), NOW),
    )
    assert _same(worker_a, plain_a)["awaiting_installation"] == before["awaiting_installation"]

    resident = _resident_in(seeded_url, GRID_A)
    [(lon, lat)] = query(seeded_url, "SELECT lon, lat FROM residents WHERE id = %s", (resident,))
    execute(
        seeded_url,
        "INSERT INTO patrol_checkins (worker_id, observed_at, received_at, lon, lat, grid_id, "
        "kind, resident_id, status) VALUES ('W001', %s, %s, %s, %s, %s, 'visit', %s, 'ok')",
        (NOW - timedelta(minutes=5), NOW, lon, lat, _grid_id(seeded_url, GRID_A), resident),
    )
    visited = _same(worker_a, plain_a)
    assert visited["coverage"]["visits_made"] == before["coverage"]["visits_made"] + 1

    # Through this API: in the very next answer.
    taken = worker_a.post(f"/alerts/{alert_id}/ack", json={"note": "on my way"})
    assert taken.status_code == 200, taken.text
    assert _summary(worker_a)["alerts"]["unacked"] == before["alerts"]["unacked"]


def test_a_hazard_falling_overdue_turns_the_figures(kept, plain, seeded_url):
    server, http = kept
    worker_b = http["worker_b"]
    before = _same(worker_b, plain[1]["worker_b"])
    due = server.clock() + timedelta(minutes=30)
    execute(
        seeded_url,
        "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
        "grid_id, category, severity, status, deadline_at, due_at) "
        "SELECT gen_random_uuid(), 'W001', %s, %s, min_lon, min_lat, id, 'road', 'low', "
        "'reported', %s, %s FROM grids WHERE code = %s",
        (NOW, NOW, due, due, GRID_B),
    )
    reported = _same(worker_b, plain[1]["worker_b"])
    assert reported["hazards"]["open"] == before["hazards"]["open"] + 1
    assert reported["hazards"]["overdue"] == before["hazards"]["overdue"]
    server.clock.advance(timedelta(minutes=31))
    late = _summary(worker_b)  # no change came: the clock alone
    assert late["hazards"]["overdue"] == before["hazards"]["overdue"] + 1
    _same(worker_b, plain[1]["worker_b"])


def test_requests_and_warnings_turn_on_a_notice_and_a_deadline(kept, plain, seeded_url):
    """A request and a dispute warning's case of grid A count after their notice; the
    request's accept deadline passing turns the kept figures with no change; closing them
    takes them off; grid B's desk counts none of it."""
    server, http = kept
    worker_a, plain_a = http["worker_a"], plain[1]["worker_a"]
    worker_b, plain_b = http["worker_b"], plain[1]["worker_b"]
    before = _same(worker_a, plain_a)
    before_b = _same(worker_b, plain_b)
    accept_by = server.clock() + timedelta(minutes=1)
    grid = _grid_id(seeded_url, GRID_A)
    with psycopg.connect(seeded_url) as conn:
        request = hotline_request(conn, grid, "dispatched", accept_by, NOW + timedelta(days=2))
        cases = warning_cases(conn, grid, "gw:kept-desk@1", server.clock())
    assert cases, "the warning opened a case"
    arrived = _same(worker_a, plain_a)
    assert arrived["requests"] == {
        "open": before["requests"]["open"] + 1 + len(cases),
        "overdue": before["requests"]["overdue"],
    }
    assert arrived["warnings"]["open"] == before["warnings"]["open"] + len(cases)

    server.clock.advance(timedelta(minutes=1, seconds=1))
    late = _summary(worker_a)  # no change came: the request's accept deadline alone
    assert late["requests"]["overdue"] == before["requests"]["overdue"] + 1
    assert late == _summary(plain_a)

    execute(seeded_url, "UPDATE requests SET status = 'closed' WHERE id = %s", (request,))
    closed = _same(worker_a, plain_a)
    assert closed["requests"] == {
        "open": before["requests"]["open"] + len(cases),
        "overdue": before["requests"]["overdue"],
    }
    execute(seeded_url, "UPDATE requests SET status = 'resolved' WHERE id = ANY(%s)", (cases,))
    resolved = _same(worker_a, plain_a)
    assert resolved["warnings"] == before["warnings"]
    assert resolved["requests"] == before["requests"]
    now_b = _same(worker_b, plain_b)
    assert (now_b["requests"], now_b["warnings"]) == (before_b["requests"], before_b["warnings"])


def test_a_request_closed_turns_the_trend(kept, plain, seeded_url):
    """A request of grid A asked today and closed after its feedback counts in today's cases
    opened and closed on grid A's kept desk as the database counts them, and on no other
    grid's; closed again after a reopening, it is still one case closed today."""
    server, http = kept
    worker_a, plain_a = http["worker_a"], plain[1]["worker_a"]
    worker_b, plain_b = http["worker_b"], plain[1]["worker_b"]
    before = _same(worker_a, plain_a)["trend"]
    before_b = _same(worker_b, plain_b)["trend"]
    with psycopg.connect(seeded_url) as conn:
        request = hotline_request(
            conn, _grid_id(seeded_url, GRID_A), "feedback", NOW, NOW + timedelta(days=2)
        )
    opened = _same(worker_a, plain_a)["trend"]
    assert opened[-1]["cases_opened"] == before[-1]["cases_opened"] + 1
    assert opened[-1]["cases_closed"] == before[-1]["cases_closed"]
    with psycopg.connect(seeded_url) as conn:
        transition_request(conn, uuid.UUID(request), "close", actor="duty", now=server.clock())
    closed = _same(worker_a, plain_a)["trend"]
    assert closed[-1]["cases_closed"] == before[-1]["cases_closed"] + 1
    assert closed[-1]["median_close_h"] is not None
    assert closed[:-1] == before[:-1]
    assert _same(worker_b, plain_b)["trend"] == before_b
    with psycopg.connect(seeded_url) as conn:  # reopened and closed again the same day
        for action in ("reopen", "accept", "resolve", "feedback", "close"):
            rating = "satisfied" if action == "feedback" else None
            transition_request(
                conn, uuid.UUID(request), action, actor="duty", now=server.clock(), rating=rating
            )
    again = _same(worker_a, plain_a)["trend"]
    assert again[-1]["cases_closed"] == closed[-1]["cases_closed"], "one case closed today"


def test_today_turns_at_local_midnight(kept, plain):
    server, http = kept
    now = server.clock()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    server.clock.advance(midnight - now - timedelta(microseconds=1))
    for role in ("admin", "worker_a"):
        evening = _same(http[role], plain[1][role])
        assert evening["trend"][-1]["day"] == (midnight - timedelta(days=1)).date().isoformat()
    server.clock.advance(timedelta(microseconds=1))
    for role in ("admin", "worker_a"):
        morning = _summary(http[role])  # no change came: midnight alone
        assert morning["trend"][-1]["day"] == midnight.date().isoformat(), role
        _same(http[role], plain[1][role])


# -- one caller's view, and the record of it ------------------------------------------------------


def _in_clear(summary: dict) -> set[str]:
    return {a["resident_id"] for a in summary["live"] if not a["resident"]["masked"]}


def test_a_kept_summary_is_never_served_to_another_caller(kept, plain, alert_in_b):
    http = kept[1]
    seen: dict[str, dict] = {}
    for role in ("worker_a", "worker_b", "duty_community", "admin", "duty_street", "worker_b"):
        got = _summary(http[role])
        seen.setdefault(role, got)
        assert got == seen[role], f"{role} got another caller's answer"
        assert got == _summary(plain[1][role]), role
    assert seen["worker_a"]["live"] != seen["worker_b"]["live"]
    masked = [a for a in seen["duty_street"]["live"] if a["resident"]["masked"]]
    assert not masked, "a duty officer sees their street's residents"
    tag_a = http["worker_a"].get(SUMMARY).headers["etag"]
    as_b = http["worker_b"].get(SUMMARY, headers={"If-None-Match": tag_a})
    assert as_b.status_code == 200
    assert {**as_b.json(), "now": None} == {**seen["worker_b"], "now": None}


def test_every_summary_in_clear_is_recorded_for_its_caller(kept, tokens, seeded_url, alert_in_b):
    http = kept[1]
    for role in ("worker_a", "worker_b", "admin"):
        last = last_audit_id(seeded_url)
        first = http[role].get(SUMMARY)
        again = http[role].get(SUMMARY, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        shown = _in_clear(first.json())
        assert shown, f"{role} sees residents in clear"
        actor = tokens.names.get(role, role)
        read = [(e.actor, e.what, set(e.resident_ids)) for e in audit_after(seeded_url, last)]
        assert read == [(actor, f"GET {SUMMARY}", shown)] * 2


def test_the_figures_alone_show_and_record_no_resident(kept, plain, seeded_url, alert_in_b):
    """What the desk's page reads on each event and each minute (?live=false): the same
    figures without the live list, so no resident is shown and none recorded as read, kept
    or read from the database."""
    for http in (kept[1], plain[1]):
        for role in ("worker_b", "admin"):
            last = last_audit_id(seeded_url)
            whole = http[role].get(SUMMARY).json()
            alone = http[role].get(SUMMARY, params={"live": "false"}).json()
            assert _in_clear(whole), role
            assert alone["live"] == []
            assert {**alone, "live": None, "now": None} == {**whole, "live": None, "now": None}
            read = [e.what for e in audit_after(seeded_url, last)]
            assert read == [f"GET {SUMMARY}"], "only the whole summary was a read in clear"
