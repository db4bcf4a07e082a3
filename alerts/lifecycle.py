"""What happens to alerts: opened once per condition, resolved when the condition ends,
escalated grid → community → street while no one acknowledges them.

Pure: the engine passes in the open alerts and the home's history and applies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gridwatch.alerts.rules import Condition, HomeHistory, Rules, conditions, resolution
from gridwatch.model.vocabulary import LEVELS, METER_OFFLINE

ESCALATE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert not yet resolved, as the engine knows it."""

    id: int
    resident_id: str
    kind: str
    since: datetime
    status: str
    level: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Open:
    resident_id: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class Resolve:
    alert: OpenAlert
    reason: str


@dataclass(frozen=True, slots=True)
class Escalate:
    alert: OpenAlert
    level: str


Action = Open | Resolve | Escalate


def plan_home(
    resident_id: str,
    history: HomeHistory,
    rules: Rules,
    now: datetime,
    zone: ZoneInfo,
    open_alerts: list[OpenAlert],
) -> list[Open | Resolve]:
    """Resolve what is over, open what holds and is not open yet; never two for one condition.

    An alert whose kind still holds stays open even when newer data moved its start (a
    reading that arrived late, stamped after the quiet began but long ago): closing it only
    to open another at once would page everyone twice and drop the acknowledgement.
    """
    holding = conditions(history, rules, now, zone)
    holding_kinds = {condition.kind for condition in holding}
    actions: list[Open | Resolve] = []
    still_open = set()
    for alert in open_alerts:
        reason = resolution(alert.kind, alert.since, history)
        if reason is not None and alert.kind not in holding_kinds:
            actions.append(Resolve(alert, reason))
        else:
            still_open.add(alert.kind)
    for condition in holding:
        if condition.kind not in still_open:
            still_open.add(condition.kind)
            actions.append(Open(resident_id, condition))
    return actions


def escalation(alert: OpenAlert, now: datetime, every: timedelta = ESCALATE_AFTER) -> str | None:
    """The level an unacknowledged alert should be at by now, if higher than where it is.

    A device fault (`meter_offline`) stays with its grid: it is work for the grid worker,
    not a reason to wake the street's duty officer.
    """
    if alert.status != "open" or alert.kind == METER_OFFLINE:
        return None
    if now < alert.opened_at:  # a clock behind the opening: not overdue (int(-1.5) is -1)
        return None
    steps = int((now - alert.opened_at) / every)
    target = LEVELS[min(steps, len(LEVELS) - 1)]
    current = LEVELS.index(alert.level) if alert.level in LEVELS else 0
    return target if LEVELS.index(target) > current else None


def next_escalation(alert: OpenAlert, every: timedelta = ESCALATE_AFTER) -> datetime | None:
    """When an unacknowledged alert goes up its next level; None at the top or once acked."""
    if alert.status != "open" or alert.kind == METER_OFFLINE:
        return None
    current = LEVELS.index(alert.level) if alert.level in LEVELS else 0
    if current >= len(LEVELS) - 1:
        return None
    return alert.opened_at + every * (current + 1)
