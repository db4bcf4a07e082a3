"""One home's recent days as a duty officer reads them beside an alert: the meter's power
against the night baseline the alert engine learns, the signs of life the engine sees in
it, sensor events, visits and checks by people, and registered absences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

import psycopg

from gridwatch.alerts.activity import Baseline, MeterTracker, learn_baseline

BASELINE_DAYS = 28  # the nights the engine learns a baseline from
NIGHT_HOURS = (1, 4)  # local hours 01:00-04:59, as the engine reads them


@dataclass(frozen=True, slots=True)
class PersonSeen:
    """A person saw the resident: a home visit (入户走访) or a check after an alert."""

    at: datetime
    actor: str | None
    what: str  # "visit" or "check"
    note: str | None


@dataclass(frozen=True, slots=True)
class HomeWeek:
    resident_id: str
    meter_id: str | None
    readings: list[tuple[datetime, float | None]]  # (observed_at, power_w), in time order
    baseline: Baseline
    meter_signs: list[datetime]  # readings the engine counts as someone up and about
    sensor_events: list[tuple[datetime, str]]
    seen: list[PersonSeen]
    absences: list[tuple[datetime, datetime]]


def home_week(
    conn: psycopg.Connection, resident_id: str, *, start: datetime, end: datetime, zone
) -> HomeWeek:
    """The home of `resident_id` over [start, end); the baseline from the nights before `end`."""
    meters = _devices(conn, resident_id, "meter")
    meter_id = meters[0] if meters else None
    raw = []
    if meter_id is not None:
        raw = conn.execute(
            "SELECT observed_at, power_w, energy_kwh, water_l FROM meter_readings "
            "WHERE meter_id = %s AND observed_at >= %s AND observed_at < %s ORDER BY observed_at",
            (meter_id, start, end),
        ).fetchall()
    baseline = night_baseline(conn, meter_id, until=end, zone=zone) if meter_id else Baseline()
    tracker = MeterTracker(baseline)
    signs = [at for at, power, energy, water in raw if tracker.observe(at, power, energy, water)]
    events = conn.execute(
        "SELECT observed_at, event FROM sensor_events WHERE device_id = ANY(%s) "
        "AND observed_at >= %s AND observed_at < %s ORDER BY observed_at",
        (_devices(conn, resident_id, "sensor"), start, end),
    ).fetchall()
    seen = [
        PersonSeen(*row)
        for row in conn.execute(
            "SELECT observed_at, worker_id, 'visit', coalesce(status, note) FROM patrol_checkins "
            "WHERE resident_id = %(r)s AND kind = 'visit' "
            "AND observed_at >= %(start)s AND observed_at < %(end)s "
            "UNION ALL SELECT at, actor, 'check', note FROM resident_checks "
            "WHERE resident_id = %(r)s AND at >= %(start)s AND at < %(end)s ORDER BY 1",
            {"r": resident_id, "start": start, "end": end},
        ).fetchall()
    ]
    absences = conn.execute(
        "SELECT starts_at, ends_at FROM absences WHERE resident_id = %s "
        "AND ends_at > %s AND starts_at < %s ORDER BY starts_at",
        (resident_id, start, end),
    ).fetchall()
    return HomeWeek(
        resident_id,
        meter_id,
        [(at, power) for at, power, _, _ in raw],
        baseline,
        signs,
        [(at, event) for at, event in events],
        seen,
        [(a, b) for a, b in absences],
    )


def night_baseline(conn: psycopg.Connection, meter_id: str, *, until: datetime, zone) -> Baseline:
    """The meter's baseline as the engine learns it: hourly means and peaks of the night hours
    of the BASELINE_DAYS before `until`."""
    since = until - timedelta(days=BASELINE_DAYS)
    origin = datetime.combine(since.astimezone(zone).date(), time(), zone)
    rows = conn.execute(
        "SELECT avg(power_w), max(power_w) FROM meter_readings "
        "WHERE meter_id = %(m)s AND observed_at >= %(since)s AND observed_at < %(until)s "
        "AND power_w IS NOT NULL "
        "AND extract(hour FROM observed_at AT TIME ZONE %(tz)s) BETWEEN %(h0)s AND %(h1)s "
        "GROUP BY date_bin(INTERVAL '1 hour', observed_at, %(origin)s)",
        {
            "m": meter_id,
            "since": since,
            "until": until,
            "tz": zone.key,
            "h0": NIGHT_HOURS[0],
            "h1": NIGHT_HOURS[1],
            "origin": origin,
        },
    ).fetchall()
    return learn_baseline([r[0] for r in rows], [r[1] for r in rows])


def _devices(conn: psycopg.Connection, resident_id: str, kind: str) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM devices WHERE resident_id = %s AND kind = %s ORDER BY id",
        (resident_id, kind),
    ).fetchall()
    return [device for (device,) in rows]
