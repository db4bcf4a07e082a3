"""The case clocks of `gridwatch alerts`: overdue hazards, late requests and overdue
inspections go a level up.

Every GRIDWATCH_HAZARD_CHECK_S an open hazard past its deadline goes up a level (grid →
community → street) with an `escalate` event and a fresh period, and a hazard stored
without a deadline (before deadlines were set when a hazard is stored) gets the one its
severity sets. The rules are `gridwatch.cases.hazards`; this is their loop. It runs beside
the alert engine, not in the API, so hazards escalate whichever door they came through and
whether or not an API runs. Requests (诉求) run on the same pass: one not accepted
(接单) in time or not resolved (办结) by its due time goes a level up with an `escalate`
event (`gridwatch.cases.requests`; their periods are their service's), and so does a place's
inspection overdue by more than GRIDWATCH_INSPECTION_GRACE_DAYS, one level per grace, with
an `escalate` event of the place (`gridwatch.cases.inspections`). Several alert processes may
run them at once: an advisory lock and a check of the level each update expects
(`store.hazards.apply_escalations`, `store.requests.apply_request_escalations`,
`store.places.apply_inspection_escalations`) keep every step to one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from gridwatch.cases import requests
from gridwatch.cases.hazards import deadlines_from_hours, plan_escalations
from gridwatch.cases.inspections import plan_inspection_escalations
from gridwatch.settings import Settings
from gridwatch.store.db import connect
from gridwatch.store.hazards import apply_escalations, open_hazard_clocks
from gridwatch.store.places import apply_inspection_escalations, overdue_inspection_clocks
from gridwatch.store.requests import apply_request_escalations, open_request_clocks

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RETRY_MAX_S = 30.0


def wall_clock() -> datetime:
    return datetime.now(UTC)


def escalate_hazards(
    conn: psycopg.Connection, now: datetime, deadlines: Mapping[str, timedelta]
) -> int:
    """Give hazards without one their deadline and escalate the overdue; returns escalations."""
    plan = plan_escalations(open_hazard_clocks(conn, now=now), now, deadlines)
    return _write(conn, plan, now, apply_escalations, "hazards")


def escalate_requests(conn: psycopg.Connection, now: datetime) -> int:
    """Escalate the requests not accepted or not resolved in time; returns escalations."""
    plan = requests.plan_escalations(open_request_clocks(conn, now=now), now)
    return _write(conn, plan, now, apply_request_escalations, "requests")


def escalate_inspections(conn: psycopg.Connection, now: datetime, grace: timedelta) -> int:
    """Escalate the inspections overdue by more than `grace`; returns escalations."""
    clocks = overdue_inspection_clocks(conn, now=now, grace=grace)
    plan = plan_inspection_escalations(clocks, now, grace)
    return _write(conn, plan, now, apply_inspection_escalations, "inspections")


def _write(
    conn: psycopg.Connection,
    plan: Sequence[object],
    now: datetime,
    apply: Callable[..., int],
    cases: str,
) -> int:
    """Write a non-empty `plan` with `apply` (no transaction for nothing); returns and logs
    how many escalations it wrote."""
    if not plan:
        return 0
    done = apply(conn, plan, now=now)
    if done:
        log.info("%s escalated: %d", cases, done)
    return done


def run_hazard_clocks(
    settings: Settings, database_url: str, stop: threading.Event, clock: Clock = wall_clock
) -> None:
    """Escalate hazards, requests and overdue inspections every GRIDWATCH_HAZARD_CHECK_S until
    `stop`; a failure (the database away) is logged and the next pass made on a new
    connection."""
    deadlines = deadlines_from_hours(settings.hazard_deadlines_h)
    grace = timedelta(days=settings.inspection_grace_days)
    delay = settings.hazard_check_s
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                while not stop.is_set():
                    now = clock()
                    escalate_hazards(conn, now, deadlines)
                    escalate_requests(conn, now)
                    escalate_inspections(conn, now, grace)
                    delay = settings.hazard_check_s
                    stop.wait(delay)
        except Exception:  # a database hiccup must not end the clocks; they try again
            log.warning("hazard clocks failed; trying again", exc_info=True)
            stop.wait(delay)
            delay = min(delay * 2, max(RETRY_MAX_S, settings.hazard_check_s))
