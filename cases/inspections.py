"""Inspections of places (安全巡查) as pure rules: when a place is next due, the cases its
findings open, and where an overdue inspection goes (小事不出网格、大事不出街道).

A place is inspected every `inspect_every_days`; its next inspection is due that long after
the last one (after its registration while it has none). An inspection overdue by a grace
goes up a level like any case — grid → community → street, one level per grace passed —
and is back at its grid once the place is inspected. Each finding of an inspection is a
hazard tied to the place, opened the one way every hazard is; its id comes from the
check-in and its place in the list, so an inspection delivered again opens nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridwatch.cases.escalation import Climb, climb
from gridwatch.model.records import HazardReport, PatrolCheckin, checkin_key
from gridwatch.model.vocabulary import LEVELS

KIND = "inspection"
_FINDINGS = uuid.UUID("6f1d3c2a-5b7e-4c08-9a41-2e6d8f0b7c35")  # the namespace of finding ids


def next_due(last: datetime, every_days: int) -> datetime:
    """When the inspection after one at `last` is due."""
    return last + timedelta(days=every_days)


def finding_id(checkin: PatrolCheckin, n: int) -> uuid.UUID:
    """The hazard id of the `n`th finding (from 0) of an inspection check-in."""
    key = checkin_key(checkin.source, checkin.worker_id, checkin.observed_at)
    return uuid.uuid5(_FINDINGS, f"{key}#{n}")


def finding_reports(
    checkin: PatrolCheckin, lon: float | None, lat: float | None
) -> list[HazardReport]:
    """A hazard report per finding of an inspection, at the place's position (`lon`, `lat`;
    where the inspector stood when the place has none), reported by the inspector."""
    if lon is None or lat is None:
        lon, lat = checkin.lon, checkin.lat
    return [
        HazardReport(
            id=finding_id(checkin, n),
            reporter_id=checkin.worker_id,
            observed_at=checkin.observed_at,
            received_at=checkin.received_at,
            lon=lon,
            lat=lat,
            category=finding.category,
            severity=finding.severity,
            description=finding.description,
            photo_urls=finding.photo_urls,
            place_id=checkin.place_id,
        )
        for n, finding in enumerate(checkin.findings)
    ]


def is_overdue(next_due_at: datetime, now: datetime) -> bool:
    """A place whose next inspection should have been made by `now`."""
    return next_due_at < now


@dataclass(frozen=True, slots=True)
class InspectionClock:
    """What escalation needs to know of a place whose inspection is overdue."""

    place_id: str
    level: str
    next_due_at: datetime


@dataclass(frozen=True, slots=True)
class InspectionEscalation:
    """Move a place's overdue inspection one level up (`climb`), its due time as it was seen
    (an inspection meanwhile makes the step moot)."""

    place_id: str
    next_due_at: datetime
    climb: Climb


def level_deadline(next_due_at: datetime, level: str, grace: timedelta) -> datetime:
    """When an inspection overdue since `next_due_at` leaves `level`: one grace per level."""
    rank = LEVELS.index(level) if level in LEVELS else 0
    return next_due_at + grace * (rank + 1)


def plan_inspection_escalations(
    clocks: Iterable[InspectionClock], now: datetime, grace: timedelta
) -> list[InspectionEscalation]:
    """What the clocks of `gridwatch alerts` should write at `now`: each overdue inspection
    one level up per grace passed beyond its due time (clocks that were down catch up level
    by level). At the street it stays."""
    plan: list[InspectionEscalation] = []
    for clock in clocks:
        deadline = level_deadline(clock.next_due_at, clock.level, grace)
        for step in climb(clock.level, deadline, now, grace):
            plan.append(InspectionEscalation(clock.place_id, clock.next_due_at, step))
    return plan
