"""The hazard loop (发现-上报-处置-反馈): every step an event, illegal steps refused with the
reason, escalation grid → community → street on an injected clock (by the hazard clocks of
`gridwatch alerts`, not by the API), the overdue ledger and its CSV as Excel reads it."""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from gridwatch.cases.hazards import (
    Escalation,
    HazardClock,
    SetDeadline,
    deadlines_from_hours,
    next_status,
    plan_escalations,
)
from gridwatch.dispatch.clocks import run_hazard_clocks
from gridwatch.errors import Conflict
from tests.support.api import (
    COMMUNITY_A,
    GRID_A,
    NOW,
    ApiServer,
    Clock,
    api_settings,
    make_users,
    reason,
)
from tests.support.cases import hazard_steps, stored_hazard
from tests.support.databases import point_in_grid
from tests.support.waiting import wait_for

DEADLINES = deadlines_from_hours({"critical": 2, "high": 24, "medium": 72, "low": 168})


@pytest.fixture
def loop(district_database_url, tmp_path):
    """A server, and the hazard clocks of `gridwatch alerts` every 50 ms, on a clock the
    test moves."""
    url = district_database_url
    tokens = make_users(url)
    settings = api_settings(tmp_path, url, hazard_check_s=0.05)
    clock, stop = Clock(), threading.Event()
    clocks = threading.Thread(
        target=run_hazard_clocks, args=(settings, url, stop, clock), name="hazard-clocks"
    )
    clocks.start()
    with ApiServer(settings, url, clock) as server:
        clients = {
            role: server.client(role, tokens) for role in ("admin", "worker_a", "duty_community")
        }
        yield server, clients, url
        for client in clients.values():
            client.close()
        stop.set()
        clocks.join(timeout=10)


def _report(client: httpx.Client, lon: float, lat: float, **fields) -> tuple[str, httpx.Response]:
    """Report a hazard under a new id at (lon, lat); its id and the answer."""
    hazard_id = str(uuid.uuid4())
    body = {"id": hazard_id, "lat": lat, "lon": lon, **fields}
    return hazard_id, client.post("/hazards", json=body)


def _hazard(url: str, hazard_id: str) -> tuple:
    hazard = stored_hazard(url, hazard_id)
    assert hazard is not None, hazard_id
    return hazard.status, hazard.level, hazard.deadline_at, hazard.due_at


def _events(url: str, hazard_id: str) -> list[tuple]:
    return [(e.action, e.from_status, e.to_status, e.actor) for e in hazard_steps(url, hazard_id)]


def test_the_whole_loop_with_escalation_on_an_injected_clock(loop):
    server, http, url = loop
    worker, duty = http["worker_a"], http["duty_community"]
    lon, lat = point_in_grid(url, GRID_A)
    hazard_id, made = _report(
        worker, lon, lat, category="gas", severity="critical", description="楼道燃气味"
    )
    assert made.status_code == 201
    two_hours = NOW + timedelta(hours=2)
    assert _hazard(url, hazard_id) == ("reported", "grid", two_hours, two_hours)

    refused = worker.post(f"/hazards/{hazard_id}/close", json={"note": "done?"})
    assert refused.status_code == 409
    assert reason(refused) == "cannot close a hazard that is reported: close needs it resolved"
    assert worker.post(f"/hazards/{hazard_id}/assign", json={"assignee": "W001"}).status_code == 200
    started = worker.post(f"/hazards/{hazard_id}/start", json={"note": "on my way"})
    assert started.json()["properties"]["status"] == "in_progress"

    # Two hours pass without a resolution: the community takes it over.
    server.clock.advance(timedelta(hours=2, minutes=30))
    wait_for(lambda: _hazard(url, hazard_id)[1] == "community", 10, "escalation to community")
    status, _, deadline, due = _hazard(url, hazard_id)
    assert (status, deadline, due) == ("in_progress", NOW + timedelta(hours=4), two_hours)
    overdue = duty.get("/ledger", params={"overdue": "true", "level": "community"}).json()
    assert [row["id"] for row in overdue["items"]] == [hazard_id]
    assert overdue["items"][0]["overdue_hours"] == 0.5
    assert overdue["items"][0]["due_at"] == two_hours.astimezone(UTC).isoformat()
    # And two more: the street.
    server.clock.advance(timedelta(hours=2))
    wait_for(lambda: _hazard(url, hazard_id)[1] == "street", 10, "escalation to street")
    server.clock.advance(timedelta(hours=5))
    before = len(_events(url, hazard_id))
    time.sleep(0.3)  # six runs of the job
    assert len(_events(url, hazard_id)) == before
    escalations = [e for e in _events(url, hazard_id) if e[0] == "escalate"]
    assert len(escalations) == 2, "the street is the top: no third escalation"

    resolved = worker.post(
        f"/hazards/{hazard_id}/resolve",
        json={"note": "阀门已关闭并报修", "photo_urls": ["https://photos.example/valve.jpg"]},
    )
    assert resolved.status_code == 200
    assert resolved.json()["properties"]["overdue"] is False
    reopened = duty.post(f"/hazards/{hazard_id}/reopen", json={"note": "居民反映仍有气味"})
    assert reopened.json()["properties"]["status"] == "reopened"
    assert _hazard(url, hazard_id)[2:] == (server.clock() + timedelta(hours=2),) * 2
    bad = duty.post(f"/hazards/{hazard_id}/close", json={"note": "x"})
    assert bad.status_code == 409 and "resolved" in reason(bad)
    worker.post(f"/hazards/{hazard_id}/resolve", json={"note": "更换了软管"})
    closed = duty.post(f"/hazards/{hazard_id}/close", json={"note": "回访居民满意"})
    assert closed.json()["properties"]["status"] == "closed"
    # The ledger of the day's closes (办结) lists it, with when it was closed; the day before's not.
    day = server.clock().astimezone(NOW.tzinfo).date()
    that_day = {"closed_from": day.isoformat(), "closed_to": day.isoformat()}
    listed = duty.get("/ledger", params=that_day).json()["items"]
    assert [r["id"] for r in listed] == [hazard_id]
    assert listed[0]["closed_at"] == server.clock().astimezone(UTC).isoformat()
    yesterday = (day - timedelta(days=1)).isoformat()
    assert duty.get("/ledger", params={"closed_to": yesterday}).json()["numberMatched"] == 0
    assert [(a, f, t) for a, f, t, _ in _events(url, hazard_id)] == [
        ("report", None, "reported"),
        ("assign", "reported", "assigned"),
        ("start", "assigned", "in_progress"),
        ("escalate", "in_progress", "in_progress"),
        ("escalate", "in_progress", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("reopen", "resolved", "reopened"),
        ("resolve", "reopened", "resolved"),
        ("close", "resolved", "closed"),
    ]
    history = worker.get(f"/collections/hazards/items/{hazard_id}").json()["properties"]
    assert history["events"][5]["photo_urls"] == ["https://photos.example/valve.jpg"]
    assert history["events"][-1]["actor"] == "duty-community"


def test_a_hazard_stored_without_a_deadline_gets_one_from_the_clocks(loop):
    url = loop[2]
    lon, lat = point_in_grid(url, GRID_A)
    hazard_id = uuid.uuid4()
    with psycopg.connect(url) as conn:  # as stored before deadlines were set at insert
        conn.execute(
            "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
            "grid_id, category, severity) SELECT %s, 'W001', %s, %s, %s, %s, id, 'road', 'low' "
            "FROM grids WHERE code = %s",
            (hazard_id, NOW, NOW, lon, lat, GRID_A),
        )
    wait_for(lambda: _hazard(url, str(hazard_id))[2] is not None, 10, "a deadline")
    week = NOW + timedelta(days=7)
    assert _hazard(url, str(hazard_id)) == ("reported", "grid", week, week)


def test_the_api_alone_sets_deadlines_but_escalates_nothing(district_database_url, tmp_path):
    url = district_database_url
    tokens = make_users(url)
    settings = api_settings(tmp_path, url, hazard_check_s=0.05)
    with ApiServer(settings, url, Clock()) as server:
        worker = server.client("worker_a", tokens)
        lon, lat = point_in_grid(url, GRID_A)
        hazard_id, made = _report(worker, lon, lat, category="gas", severity="critical")
        assert made.status_code == 201
        server.clock.advance(timedelta(hours=9))
        time.sleep(0.5)  # ten checks of the hazard clocks, had the API run them
        worker.close()
    two_hours = NOW + timedelta(hours=2)
    assert _hazard(url, hazard_id) == ("reported", "grid", two_hours, two_hours)
    assert [e[0] for e in _events(url, hazard_id)] == ["report"]


def test_ledger_filters_and_csv_that_excel_opens(loop):
    server, http, url = loop
    admin = http["admin"]
    lon, lat = point_in_grid(url, GRID_A)
    ids = []
    for severity, description in (("high", '=HYPERLINK("x")'), ("low", "路面坑洼")):
        hazard_id, _ = _report(
            admin, lon, lat, category="road", severity=severity, description=description
        )
        ids.append(hazard_id)
    server.clock.advance(timedelta(hours=25))  # the high one is overdue now, the low one not
    wait_for(lambda: _hazard(url, ids[0])[1] == "community", 10, "escalation")
    everything = admin.get("/ledger").json()
    assert everything["numberMatched"] == 2
    assert [r["id"] for r in everything["items"]][:1] == [ids[0]], "most urgent first"
    late = admin.get("/ledger", params={"overdue": "true"}).json()["items"]
    assert [r["id"] for r in late] == [ids[0]]
    on_time = admin.get("/ledger", params={"overdue": "false"}).json()["items"]
    assert [r["id"] for r in on_time] == [ids[1]]
    in_community = admin.get("/ledger", params={"grid": COMMUNITY_A}).json()
    assert in_community["numberMatched"] == 2
    assert admin.get("/ledger", params={"grid": "QS-01-02"}).json()["numberMatched"] == 0
    assert admin.get("/ledger", params={"level": "street"}).json()["numberMatched"] == 0
    assert admin.get("/ledger", params={"status": "nope"}).status_code == 422

    response = admin.get("/ledger.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, or Excel shows mojibake"
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["编号", "网格编码", "网格", "社区"]
    assert len(rows) == 3
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id[ids[0]][12] == "是" and by_id[ids[1]][12] == "否"
    assert by_id[ids[0]][15] == '\'=HYPERLINK("x")', "no formula injection"
    assert by_id[ids[1]][4] == "道路" and by_id[ids[1]][5] == "低"
    deadline = datetime.fromisoformat(everything["items"][0]["due_at"])
    assert by_id[ids[0]][11] == deadline.astimezone(NOW.tzinfo).strftime("%Y-%m-%d %H:%M")


def test_no_ledger_cell_starts_a_formula(loop):
    """Reporter ids and assignees are typed by people too: none of them reaches Excel as a
    formula (the description was already guarded, the other cells were written raw)."""
    _, http, url = loop
    admin = http["admin"]
    lon, lat = point_in_grid(url, GRID_A)
    people = {"=1-2": "@SUM(A1)", "-2": "+cmd", "@me": "=HYPERLINK(1)"}
    for reporter, assignee in people.items():
        hazard_id, posted = _report(
            admin, lon, lat, reporter_id=reporter, category="road", severity="low", description="坑"
        )
        assert posted.status_code == 201, posted.text
        assigned = admin.post(f"/hazards/{hazard_id}/assign", json={"assignee": assignee})
        assert assigned.status_code == 200, assigned.text
    raw = admin.get("/ledger.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(raw)))[1:]
    assert {(row[8], row[9]) for row in rows} == {
        ("'" + reporter, "'" + assignee) for reporter, assignee in people.items()
    }
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@")]


def test_transitions_table():
    assert next_status("assign", "reported") == "assigned"
    assert next_status("resolve", "reported") == "resolved", "小事: fixed on the spot"
    assert next_status("reopen", "closed") == "reopened"
    for action, status in (("start", "resolved"), ("close", "in_progress"), ("reopen", "reported")):
        with pytest.raises(Conflict):
            next_status(action, status)


def test_escalation_plan_catches_up_level_by_level():
    t0 = datetime(2026, 11, 23, tzinfo=UTC)

    def clock(status="reported", level="grid", deadline=t0 + timedelta(hours=2)):
        return HazardClock("h", "critical", status, level, t0, deadline)

    assert plan_escalations([clock()], t0 + timedelta(hours=1), DEADLINES) == []
    late = plan_escalations([clock()], t0 + timedelta(hours=5), DEADLINES)
    assert late == [
        Escalation("h", "grid", "community", t0 + timedelta(hours=2), t0 + timedelta(hours=4)),
        Escalation("h", "community", "street", t0 + timedelta(hours=4), t0 + timedelta(hours=6)),
    ]
    assert plan_escalations([clock(level="street")], t0 + timedelta(days=9), DEADLINES) == []
    assert plan_escalations([clock(status="resolved")], t0 + timedelta(days=9), DEADLINES) == []
    fresh = plan_escalations([clock(deadline=None)], t0, DEADLINES)
    assert fresh == [SetDeadline("h", t0 + timedelta(hours=2))]


def test_steps_refuse_bad_bodies_with_a_reason(loop):
    _, http, url = loop
    lon, lat = point_in_grid(url, GRID_A)
    hazard_id, _ = _report(http["worker_a"], lon, lat, category="road", severity="low")
    for action, body, words in (
        ("resolve", {}, "note"),
        ("resolve", {"note": "   "}, "blank"),
        ("resolve", {"note": "ok", "photo_urls": ["javascript:alert(1)"]}, "http(s) URL"),
        ("assign", {"assignee": "W001", "priority": "high"}, "priority"),
        ("close", {"note": "x" * 5000}, "note"),
    ):
        response = http["worker_a"].post(f"/hazards/{hazard_id}/{action}", json=body)
        assert response.status_code == 422, (action, body, response.text)
        assert words in reason(response), (action, reason(response))
    assert http["worker_a"].post(f"/hazards/{uuid.uuid4()}/start", json={}).status_code == 404
    assert http["worker_a"].post("/hazards/not-a-uuid/start", json={}).status_code == 404
