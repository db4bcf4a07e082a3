"""Deadline → escalation, shared by every kind of case: a case still open when its deadline
passes goes up one level (小事不出网格、大事不出街道), each level with a fresh period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gridwatch.model.vocabulary import LEVELS


@dataclass(frozen=True, slots=True)
class Climb:
    """One level up: from `from_level` to `to_level` because `passed` went by; the new level
    has until `new_deadline`."""

    from_level: str
    to_level: str
    passed: datetime
    new_deadline: datetime


def climb(level: str, deadline: datetime, now: datetime, period: timedelta) -> list[Climb]:
    """The levels an open case past `deadline` goes up by `now`: one per period passed (clocks
    that were down for a while catch up level by level). At the street it stays."""
    steps: list[Climb] = []
    level = level if level in LEVELS else LEVELS[0]
    while deadline <= now and level != LEVELS[-1]:
        higher = LEVELS[LEVELS.index(level) + 1]
        fresh = deadline + period
        steps.append(Climb(level, higher, deadline, fresh))
        level, deadline = higher, fresh
    return steps
