"""The hazard loop (发现-上报-处置-反馈) as pure functions: which step may follow which, each
severity's deadline, and which overdue hazards go a level up (小事不出网格、大事不出街道).

No web framework and no database here: the store (a hazard's deadline when it is stored)
and the hazard clocks of `gridwatch alerts` pass in hazards and the time, and write what
these functions decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridwatch.cases.escalation import climb
from gridwatch.cases.steps import Transitions, follow
from gridwatch.model.vocabulary import SEVERITIES
from gridwatch.settings import DEADLINE_HOURS

STATUSES = ("reported", "assigned", "in_progress", "resolved", "closed", "reopened")
OPEN_STATUSES = frozenset({"reported", "assigned", "in_progress", "reopened"})
"""Statuses in which someone still has to act, so the deadline runs."""

TRANSITIONS: Transitions = {
    "assign": (frozenset({"reported", "assigned", "in_progress", "reopened"}), "assigned"),
    "start": (frozenset({"reported", "assigned", "reopened"}), "in_progress"),
    "resolve": (frozenset({"reported", "assigned", "in_progress", "reopened"}), "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
    "reopen": (frozenset({"resolved", "closed"}), "reopened"),
}
ACTIONS = tuple(TRANSITIONS)


def next_status(action: str, status: str) -> str:
    """The status `action` leads to from `status`; Conflict with the reason when not allowed."""
    return follow(TRANSITIONS, "hazard", action, status)


def deadlines_from_hours(hours: Mapping[str, float]) -> dict[str, timedelta]:
    """Settings' hours per severity as timedeltas."""
    return {severity: timedelta(hours=float(hours[severity])) for severity in SEVERITIES}


DEFAULT_DEADLINES = deadlines_from_hours(DEADLINE_HOURS)


def deadline_after(severity: str, start: datetime, deadlines: Mapping[str, timedelta]) -> datetime:
    """When a hazard of `severity` must be handled if its clock starts at `start`."""
    return start + deadlines.get(severity, deadlines["medium"])


def is_overdue(status: str, deadline_at: datetime | None, now: datetime) -> bool:
    """An open hazard whose deadline has passed."""
    return status in OPEN_STATUSES and deadline_at is not None and deadline_at <= now


@dataclass(frozen=True, slots=True)
class HazardClock:
    """What escalation needs to know of a hazard."""

    id: object
    severity: str
    status: str
    level: str
    received_at: datetime
    deadline_at: datetime | None


@dataclass(frozen=True, slots=True)
class Escalation:
    """Move a hazard from `from_level` to `to_level` because `passed` went by; the new level
    gets a fresh period until `new_deadline`."""

    hazard_id: object
    from_level: str
    to_level: str
    passed: datetime
    new_deadline: datetime


@dataclass(frozen=True, slots=True)
class SetDeadline:
    """A hazard stored without a deadline (before deadlines were set when a hazard is
    stored) gets the one its severity sets."""

    hazard_id: object
    deadline_at: datetime


def plan_escalations(
    hazards: Iterable[HazardClock], now: datetime, deadlines: Mapping[str, timedelta]
) -> list[Escalation | SetDeadline]:
    """What the hazard clocks should write at `now`.

    An open hazard past its deadline goes up one level per deadline passed (clocks that
    were down for a while catch up level by level), each level with a fresh period. At
    the street it stays, overdue, in the ledger.
    """
    plan: list[Escalation | SetDeadline] = []
    for hazard in hazards:
        if hazard.status not in OPEN_STATUSES:
            continue
        deadline = hazard.deadline_at
        if deadline is None:
            deadline = deadline_after(hazard.severity, hazard.received_at, deadlines)
            plan.append(SetDeadline(hazard.id, deadline))
        period = deadlines.get(hazard.severity, deadlines["medium"])
        for step in climb(hazard.level, deadline, now, period):
            plan.append(
                Escalation(
                    hazard.id, step.from_level, step.to_level, step.passed, step.new_deadline
                )
            )
    return plan
