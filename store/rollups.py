"""Hourly meter rollups on plain PostgreSQL (TimescaleDB keeps a continuous aggregate instead)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import psycopg


def refresh_meter_hourly(conn: psycopg.Connection, *, since: datetime, zone: ZoneInfo) -> int:
    """Recompute the hourly buckets from `since` on; returns the rows written.

    Buckets start at local whole hours (date_bin from a local midnight), which matters in
    zones whose offset is not a whole number of hours. A `since` inside an hour refreshes
    that whole hour: a bucket computed from part of its readings would overwrite a right one.
    """
    origin = datetime.combine(since.astimezone(zone).date(), time(), zone)
    with conn.transaction():
        cur = conn.execute(
            """
            INSERT INTO meter_hourly AS h (meter_id, bucket, readings, power_w_avg, power_w_max,
                energy_kwh_min, energy_kwh_max, water_l_min, water_l_max)
            SELECT meter_id, date_bin(INTERVAL '1 hour', observed_at, %(origin)s) AS bucket,
                   count(*), avg(power_w), max(power_w), min(energy_kwh), max(energy_kwh),
                   min(water_l), max(water_l)
            FROM meter_readings
            WHERE observed_at >= date_bin(INTERVAL '1 hour', %(since)s, %(origin)s)
            GROUP BY 1, 2
            ON CONFLICT (meter_id, bucket) DO UPDATE SET
                readings = EXCLUDED.readings, power_w_avg = EXCLUDED.power_w_avg,
                power_w_max = EXCLUDED.power_w_max, energy_kwh_min = EXCLUDED.energy_kwh_min,
                energy_kwh_max = EXCLUDED.energy_kwh_max, water_l_min = EXCLUDED.water_l_min,
                water_l_max = EXCLUDED.water_l_max
            """,
            {"origin": origin, "since": since},
        )
        return cur.rowcount
