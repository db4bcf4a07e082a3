"""The request loop (群众点单、组织派单、党员接单) as pure functions: which step may follow
which, the two clocks of each request (accepted in time, resolved by its due time) and which
late requests go a level up.

受理 received → 派单 dispatched (to the grid of its place, or the street's 待分拨 queue) → 接单
accepted → 处置 in progress → 办结 resolved → 回访 feedback (满意 / 基本满意; 不满意 reopens)
→ closed. The store and the case clocks of `gridwatch alerts` pass requests and the time in
and write what these functions decide; the escalation is the hazards' (`cases.escalation`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridwatch.cases.escalation import climb
from gridwatch.cases.steps import Transitions, follow
from gridwatch.errors import Conflict
from gridwatch.model.services import BY_CODE, Service

SOURCES = ("open311", "hotline", "visit", "app", "warning")
"""Where a request comes from: an Open311 client, a 12345 work order, a need a grid worker
records on a home visit (微心愿), gridwatch's own app, or a level-2 dispute warning (二级预警),
which becomes a case of the community's."""

STATUSES = (
    "received", "dispatched", "accepted", "in_progress", "resolved", "feedback", "closed",
    "reopened",
)  # fmt: skip
WAITING = frozenset({"received", "dispatched", "reopened"})
"""Statuses in which nobody has accepted the request yet: the accept clock runs."""
OPEN_STATUSES = WAITING | {"accepted", "in_progress"}
"""Statuses in which someone still has to act."""
CLOSED_STATUSES = frozenset({"resolved", "feedback", "closed"})
"""What Open311 calls closed: the work is done (回访 may still follow)."""

RATINGS = ("satisfied", "basically_satisfied", "unsatisfied")  # 满意 / 基本满意 / 不满意

TRANSITIONS: Transitions = {
    "dispatch": (frozenset({"received", "dispatched", "reopened"}), "dispatched"),
    "accept": (frozenset({"dispatched", "reopened"}), "accepted"),
    "start": (frozenset({"accepted"}), "in_progress"),
    "resolve": (frozenset({"accepted", "in_progress"}), "resolved"),
    "feedback": (frozenset({"resolved"}), "feedback"),
    "close": (frozenset({"feedback"}), "closed"),
    "reopen": (frozenset({"resolved", "feedback", "closed"}), "reopened"),
}
ACTIONS = tuple(TRANSITIONS)


def next_status(action: str, status: str, rating: str | None = None) -> str:
    """The status `action` leads to from `status` (feedback rated 不满意 reopens); Conflict
    with the reason when it may not follow."""
    target = follow(TRANSITIONS, "request", action, status)
    if action == "feedback":
        if rating not in RATINGS:
            raise Conflict(f"feedback needs a rating: {', '.join(RATINGS)}")
        if rating == "unsatisfied":
            return "reopened"
    return target


def service(code: str) -> Service:
    """The service of `code`; `other` for a code no longer in the table."""
    return BY_CODE.get(code, BY_CODE["other"])


@dataclass(frozen=True, slots=True)
class Clocks:
    """When a request must be accepted by, resolved by (限期), and when it next goes up."""

    accept_by: datetime
    due_at: datetime
    deadline_at: datetime


def clocks_at(code: str, received_at: datetime, due_at: datetime | None = None) -> Clocks:
    """A new (or reopened) request's clocks: its service's periods from `received_at`; a due
    time the source set (a work order's 办理时限) wins over the service's."""
    kind = service(code)
    accept_by = received_at + timedelta(hours=kind.accept_h)
    due = due_at or received_at + timedelta(hours=kind.resolve_h)
    return Clocks(accept_by, due, min(accept_by, due))


def deadline_after(status: str, accept_by: datetime, due_at: datetime) -> datetime:
    """The deadline that runs in `status`: accepting while nobody has, resolving after."""
    return min(accept_by, due_at) if status in WAITING else due_at


@dataclass(frozen=True, slots=True)
class RequestClock:
    """What escalation needs to know of a request."""

    id: object
    service_code: str
    status: str
    level: str
    deadline_at: datetime


@dataclass(frozen=True, slots=True)
class RequestEscalation:
    """Move a request a level up because `passed` went by (not accepted in time, or not
    resolved by its due time); the new level has until `new_deadline`."""

    request_id: object
    from_level: str
    to_level: str
    passed: datetime
    new_deadline: datetime
    reason: str  # "not accepted in time" or "not resolved in time"


def plan_escalations(requests: Iterable[RequestClock], now: datetime) -> list[RequestEscalation]:
    """What the request clocks should write at `now`: an open request past its deadline goes
    up a level per period passed, the period of the clock that ran out."""
    plan = []
    for request in requests:
        if request.status not in OPEN_STATUSES:
            continue
        kind = service(request.service_code)
        waiting = request.status in WAITING
        hours = kind.accept_h if waiting else kind.resolve_h
        reason = "not accepted in time" if waiting else "not resolved in time"
        for step in climb(request.level, request.deadline_at, now, timedelta(hours=hours)):
            plan.append(
                RequestEscalation(
                    request.id, step.from_level, step.to_level, step.passed, step.new_deadline,
                    reason,
                )
            )  # fmt: skip
    return plan


def is_overdue(status: str, due_at: datetime | None, now: datetime) -> bool:
    """An open request past its due time (限期)."""
    return status in OPEN_STATUSES and due_at is not None and due_at <= now
