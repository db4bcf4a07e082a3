"""Requests in the database: placed in their grid or their street's 待分拨 queue, stored once
per id (a later copy updates them), every step an event, and the request clocks of `gridwatch
alerts` escalating what is not accepted or not resolved in time, each step once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
import shapely

from gridwatch.dispatch.clocks import escalate_requests
from gridwatch.errors import Conflict
from gridwatch.model.records import RequestIntake
from gridwatch.store.grids import load_grid_catalog, load_leaf_grids
from gridwatch.store.requests import (
    get_request,
    hotline_id,
    open_requests,
    place_request,
    request_events,
    transition_request,
)
from tests.support.api import GRID_A, GRID_B, NOW, STREET


@pytest.fixture
def conn(district_database_url):
    with psycopg.connect(district_database_url) as conn:
        yield conn


def _inside(conn, code: str) -> tuple[float, float]:
    wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (code,)).fetchone()[0]
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    return point.x, point.y


def _store(conn, *intakes: RequestIntake, now=NOW):
    catalog, index = load_grid_catalog(conn), load_leaf_grids(conn).index
    placed = []
    for intake in intakes:
        grid = None
        if intake.lon is not None:
            found = int(index.assign([intake.lon], [intake.lat])[0])
            grid = None if found < 0 else found
        placed.append((intake, place_request(intake, catalog, grid)))
    return open_requests(conn, placed, now=now)


def _intake(**fields) -> RequestIntake:
    values = {
        "id": uuid.uuid4(), "source": "open311", "service_code": "noise",
        "description": "楼上装修噪音", "reporter": "app-gateway", "requested_at": NOW,
        "received_at": NOW,
    }  # fmt: skip
    return RequestIntake(**{**values, **fields})


def _actions(conn, request_id) -> list[tuple]:
    return [(e.action, e.to_status, e.level) for e in request_events(conn, request_id)]


def test_a_point_goes_to_its_grid_and_a_named_community_to_its_streets_queue(conn):
    lon, lat = _inside(conn, GRID_A)
    community = conn.execute(
        "SELECT c.name FROM grids c JOIN grids g ON g.parent_id = c.id WHERE g.code = %s",
        (GRID_B,),
    ).fetchone()[0]
    placed, queued, nowhere = _store(
        conn,
        _intake(lon=lon, lat=lat),
        _intake(source="hotline", source_key="GD1", address="某小区3栋", community=community),
        _intake(lon=0.0, lat=0.0),
    )
    assert (placed.request.grid_code, placed.request.status, placed.request.level) == (
        GRID_A, "dispatched", "grid",
    )  # fmt: skip
    assert _actions(conn, placed.request.id) == [
        ("receive", "received", "grid"), ("dispatch", "dispatched", "grid"),
    ]  # fmt: skip
    assert placed.request.accept_by == NOW + timedelta(hours=2)
    assert (queued.request.grid_code, queued.request.status, queued.request.level) == (
        STREET, "received", "street",
    )  # fmt: skip
    assert queued.request.queued and queued.request.lon is None
    [event] = request_events(conn, queued.request.id)
    assert event.note == "待分拨: it has no point and names no grid"
    # Outside every grid and street: the district has one street, whose queue takes it.
    assert (nowhere.request.grid_code, nowhere.request.status) == (STREET, "received")


def test_the_same_work_order_again_is_stored_once_and_a_changed_copy_updates_it(conn):
    order = _intake(id=hotline_id("GD-7"), source="hotline", source_key="GD-7", grid_code=GRID_A)
    [first] = _store(conn, order)
    [again] = _store(conn, order, now=NOW + timedelta(hours=1))
    assert (first.change, again.change) == ("new", "same")
    due = NOW + timedelta(hours=10)
    changed = RequestIntake(**{**_fields(order), "description": "噪音持续到深夜", "due_at": due})
    [later] = _store(conn, changed, now=NOW + timedelta(hours=2))
    assert later.change == "updated"
    assert (later.request.description, later.request.due_at) == ("噪音持续到深夜", due)
    assert later.request.status == "dispatched"  # its place in the loop is the loop's
    assert [a for a, _, _ in _actions(conn, order.id)] == ["receive", "dispatch", "update"]
    [(count,)] = conn.execute("SELECT count(*) FROM requests WHERE source_key = 'GD-7'")
    assert count == 1


def _fields(intake: RequestIntake) -> dict:
    return {name: getattr(intake, name) for name in intake.__dataclass_fields__}


def test_every_step_is_an_event_and_unsatisfied_feedback_reopens_with_fresh_clocks(conn):
    [queued] = _store(conn, _intake(service_code="elderly", address="无门牌"))
    rid = queued.request.id
    grid_b = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_B,)).fetchone()[0]
    later = NOW + timedelta(hours=1)

    def step(action, **kw):
        return transition_request(conn, rid, action, actor="duty", now=later, **kw)

    with pytest.raises(Conflict):
        step("accept")
    dispatched = step("dispatch", grid_id=grid_b, note="派给网格B")
    assert (dispatched.grid_code, dispatched.level) == (GRID_B, "grid")
    assert dispatched.accept_by == later + timedelta(hours=2)  # the grid's clock starts now
    assert step("accept").assignee == "duty"
    assert step("resolve", note="送餐上门", photo_urls=["https://x/1.jpg"]).status == "resolved"
    reopened = step("feedback", rating="unsatisfied", note="饭菜凉了")
    assert (reopened.status, reopened.rating) == ("reopened", "unsatisfied")
    assert reopened.due_at == later + timedelta(hours=48)
    step("accept")
    step("resolve", note="再次送餐")
    step("feedback", rating="satisfied")
    assert step("close", note="回访满意").status == "closed"
    assert [a for a, _, _ in _actions(conn, rid)] == [
        "receive", "dispatch", "accept", "resolve", "feedback", "accept", "resolve", "feedback",
        "close",
    ]  # fmt: skip


def test_request_clocks_escalate_what_is_not_accepted_or_not_resolved_in_time_once(conn):
    lon, lat = _inside(conn, GRID_A)
    [late, taken] = _store(
        conn, _intake(service_code="gas", lon=lon, lat=lat), _intake(service_code="gas", lon=lon,
                                                                      lat=lat),
    )  # fmt: skip
    transition_request(
        conn, taken.request.id, "accept", actor="W001", now=NOW + timedelta(minutes=10)
    )
    at = NOW + timedelta(minutes=45)
    assert escalate_requests(conn, at) == 1
    assert escalate_requests(conn, at) == 0
    waited = get_request(conn, late.request.id)
    assert (waited.level, waited.deadline_at) == ("community", NOW + timedelta(hours=1))
    [event] = [e for e in request_events(conn, late.request.id) if e.action == "escalate"]
    assert event.note.startswith("not accepted in time: deadline")
    assert get_request(conn, taken.request.id).level == "grid"
    # Not resolved by its due time (4 h for gas): the accepted one goes up too.
    assert escalate_requests(conn, NOW + timedelta(hours=4, minutes=1)) == 2
    assert get_request(conn, taken.request.id).level == "community"
    assert get_request(conn, late.request.id).level == "street"


def test_the_sample_requests_come_from_every_source_in_every_step_and_only_once(conn):
    from gridwatch.simulators.sample_activity import seed_requests

    assert seed_requests(conn, count=80, now=NOW) == 80
    assert seed_requests(conn, count=80, now=NOW) == 0
    rows = conn.execute("SELECT source, status, grid_id IS NOT NULL FROM requests").fetchall()
    assert {source for source, _, _ in rows} == {"open311", "hotline", "visit", "app"}
    statuses = {status for _, status, _ in rows}
    assert {"received", "dispatched", "accepted", "resolved", "closed"} <= statuses
    assert all(placed for _, _, placed in rows)
