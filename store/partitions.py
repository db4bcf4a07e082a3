"""Daily range partitions of the time-series tables on plain PostgreSQL.

Partitions are cut at local midnight of the zone recorded at migration, made ahead of time
by maintenance and on demand by the writer for any day a batch touches (a device with a
wrong clock, a backfill), and dropped when they fall out of the retention window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from gridwatch.store.changes import CHANNEL

TIMESERIES_TABLES = ("meter_readings", "sensor_events", "patrol_checkins")
_LOCK_KEY = 0x67770002  # advisory lock serialising partition DDL across workers
_SUFFIX = re.compile(r"_p(\d{8})$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def existing_partition_days(conn: psycopg.Connection, table: str) -> set[date]:
    """The days that already have a partition of `table`."""
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = %s AND p.relnamespace = to_regnamespace(current_schema())::oid
        """,
        (table,),
    ).fetchall()
    days = set()
    for (name,) in rows:
        match = _SUFFIX.search(name)
        if match:
            days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
    return days


def ensure_partitions(
    conn: psycopg.Connection, days: Iterable[date], zone: ZoneInfo, tables=TIMESERIES_TABLES
) -> int:
    """Create the missing daily partitions for `days` in one short transaction; returns count."""
    wanted = sorted(set(days))
    if not wanted:
        return 0
    created = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table in tables:
            have = existing_partition_days(conn, table)
            for day in wanted:
                if day in have:
                    continue
                start = datetime.combine(day, time(), zone)
                end = datetime.combine(day + timedelta(days=1), time(), zone)
                conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(partition_name(table, day)),
                        sql.Identifier(table),
                        sql.Literal(start),
                        sql.Literal(end),
                    )
                )
                created += 1
    return created


def ensure_days_ahead(
    conn: psycopg.Connection, zone: ZoneInfo, ahead_days: int, now: datetime | None = None
) -> int:
    """Partitions from yesterday to `ahead_days` after today, so writes never wait on DDL."""
    today = (now or datetime.now(zone)).astimezone(zone).date()
    return ensure_partitions(
        conn, [today + timedelta(days=n) for n in range(-1, ahead_days + 1)], zone
    )


def drop_expired_partitions(
    conn: psycopg.Connection, *, retention_days: int, today: date, tables=TIMESERIES_TABLES
) -> list[str]:
    """Drop partitions whose whole day is older than the retention window; returns their names."""
    cutoff = today - timedelta(days=retention_days)
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table in tables:
            for day in sorted(existing_partition_days(conn, table)):
                if day < cutoff:
                    name = partition_name(table, day)
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
                    # No trigger sees a partition go: what was kept from the table is stale.
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, table))
    return dropped
