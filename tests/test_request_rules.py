"""The request loop as pure rules: which step follows which, feedback that reopens, the two
clocks (accept, resolve) and escalation a level per period passed; the service table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.cases.hazards import plan_escalations as plan_hazards
from gridwatch.cases.requests import (
    RequestClock,
    clocks_at,
    deadline_after,
    next_status,
    plan_escalations,
)
from gridwatch.errors import Conflict
from gridwatch.model.services import BY_CODE, SERVICES, service_for
from gridwatch.model.vocabulary import HAZARD_CATEGORIES

T0 = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def test_the_whole_loop_and_the_steps_refused_on_the_way():
    status = "dispatched"
    for action, rating in [("accept", None), ("start", None), ("resolve", None)]:
        status = next_status(action, status, rating)
    assert status == "resolved"
    assert next_status("feedback", status, "unsatisfied") == "reopened"
    assert next_status("feedback", status, "basically_satisfied") == "feedback"
    assert next_status("close", "feedback") == "closed"
    with pytest.raises(Conflict, match="cannot close a request that is resolved"):
        next_status("close", "resolved")
    with pytest.raises(Conflict, match="needs a rating"):
        next_status("feedback", "resolved", "so-so")
    with pytest.raises(Conflict, match="cannot accept a request that is received"):
        next_status("accept", "received")  # the queue's: dispatched first
    assert next_status("dispatch", "received") == "dispatched"
    assert next_status("accept", "reopened") == "accepted"


def test_clocks_come_from_the_service_and_a_work_orders_due_time_wins():
    gas = clocks_at("gas", T0)
    assert (gas.accept_by, gas.due_at, gas.deadline_at) == (
        T0 + timedelta(minutes=30), T0 + timedelta(hours=4), T0 + timedelta(minutes=30),
    )  # fmt: skip
    ordered = clocks_at("noise", T0, T0 + timedelta(hours=1))
    assert ordered.due_at == ordered.deadline_at == T0 + timedelta(hours=1)
    assert clocks_at("no-such-code", T0).due_at == T0 + timedelta(hours=120)  # other's
    assert deadline_after("accepted", gas.accept_by, gas.due_at) == gas.due_at


def test_not_accepted_in_time_climbs_a_level_per_accept_period_up_to_the_street():
    waiting = RequestClock(uuid.uuid4(), "gas", "dispatched", "grid", T0)
    plan = plan_escalations([waiting], T0 + timedelta(hours=5))
    assert [(p.from_level, p.to_level, p.new_deadline, p.reason) for p in plan] == [
        ("grid", "community", T0 + timedelta(minutes=30), "not accepted in time"),
        ("community", "street", T0 + timedelta(hours=1), "not accepted in time"),
    ]
    working = RequestClock(uuid.uuid4(), "gas", "in_progress", "community", T0)
    [step] = plan_escalations([working], T0)
    assert (step.to_level, step.new_deadline, step.reason) == (
        "street", T0 + timedelta(hours=4), "not resolved in time",
    )  # fmt: skip
    done = RequestClock(uuid.uuid4(), "gas", "resolved", "grid", T0)
    early = RequestClock(uuid.uuid4(), "gas", "accepted", "grid", T0 + timedelta(seconds=1))
    assert plan_escalations([done, early], T0) == []


def test_hazards_climb_as_before_through_the_shared_rule():
    from gridwatch.cases.hazards import HazardClock

    hazard = HazardClock(1, "critical", "reported", "grid", T0, T0 + timedelta(hours=2))
    plan = plan_hazards([hazard], T0 + timedelta(hours=4), deadlines_from_hours(
        {"critical": 2, "high": 24, "medium": 72, "low": 168}))  # fmt: skip
    assert [(p.from_level, p.to_level, p.new_deadline) for p in plan] == [
        ("grid", "community", T0 + timedelta(hours=4)),
        ("community", "street", T0 + timedelta(hours=6)),
    ]


def test_the_service_table_covers_the_hazard_categories_and_names_them_in_chinese():
    assert set(HAZARD_CATEGORIES) <= set(BY_CODE)
    assert {"dispute", "noise", "sanitation", "property", "facilities", "elderly"} <= set(BY_CODE)
    assert all(s.name and s.accept_h < s.resolve_h for s in SERVICES)
    assert service_for("噪声扰民").code == "noise"
    assert service_for("城市管理-垃圾清运").code == "sanitation"
    assert service_for("物业纠纷").code == "dispute"  # a dispute, whoever it is with
    assert service_for("电梯停运").code == "property"
    assert service_for("咨询") is None
