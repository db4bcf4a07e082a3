"""Periodic upkeep on plain PostgreSQL: partitions ahead, expired ones dropped, rollups refreshed.

TimescaleDB does all three with its own background jobs (policies made by migration 003);
there this only refreshes nothing and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.store.migrate import read_meta
from gridwatch.store.mode import PLAIN
from gridwatch.store.partitions import drop_expired_partitions, ensure_days_ahead
from gridwatch.store.rollups import refresh_meter_hourly


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    mode: str
    partitions_created: int
    partitions_dropped: list[str]
    hourly_rows: int

    def __str__(self) -> str:
        if self.mode != PLAIN:
            return f"{self.mode}: partitions, retention and rollups are TimescaleDB policies"
        return (
            f"plain: {self.partitions_created} partitions created, "
            f"{len(self.partitions_dropped)} expired dropped, "
            f"{self.hourly_rows} hourly rollup rows refreshed"
        )


def maintain(
    conn: psycopg.Connection, *, retention_days: int, ahead_days: int, now: datetime | None = None
) -> MaintenanceReport:
    """Do the upkeep once; safe to run from several processes at once."""
    meta = read_meta(conn)
    conn.commit()
    mode = meta.get("mode", PLAIN)
    if mode != PLAIN:
        return MaintenanceReport(mode, 0, [], 0)
    zone = ZoneInfo(meta.get("tz", "Asia/Shanghai"))
    today = (now or datetime.now(zone)).astimezone(zone).date()
    created = ensure_days_ahead(conn, zone, ahead_days, now)
    dropped = drop_expired_partitions(conn, retention_days=retention_days, today=today)
    since = datetime.combine(today - timedelta(days=2), datetime.min.time(), zone)
    hourly = refresh_meter_hourly(conn, since=since, zone=zone)
    return MaintenanceReport(mode, created, dropped, hourly)
