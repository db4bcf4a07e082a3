"""What `gridwatch db info` reports: the mode in force and why, the schema, the tables."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from gridwatch.store.migrate import read_meta
from gridwatch.store.mode import StorageMode, detect_storage
from gridwatch.store.partitions import TIMESERIES_TABLES, existing_partition_days

_TABLES = (
    "grids",
    "residents",
    "devices",
    "workers",
    "meter_readings",
    "sensor_events",
    "patrol_checkins",
    "hazard_reports",
    "hazard_events",
    "places",
    "absences",
    "alerts",
    "alert_events",
    "dead_letters",
)


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    server_version: str
    mode_in_force: str | None
    recorded_reason: str | None
    detected: StorageMode
    schema_version: int | None
    tz: str | None
    tables: list[tuple[str, int, str]]
    awaiting_installation: int = 0  # homes whose meter was imported but never reported


def database_info(conn: psycopg.Connection, wanted: str = "auto") -> DatabaseInfo:
    """Read the facts about the database; works before the first migration too."""
    meta = read_meta(conn)
    version: int | None = None
    [(migrations,)] = conn.execute("SELECT to_regclass('schema_migrations')").fetchall()
    if migrations:
        [(version,)] = conn.execute("SELECT max(version) FROM schema_migrations").fetchall()
    tables = []
    if meta:
        for table in _TABLES:
            count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            [(rows,)] = conn.execute(count).fetchall()
            detail = ""
            if table in TIMESERIES_TABLES:
                detail = _layout(conn, table, meta.get("mode"))
            tables.append((table, rows, detail))
    [(server_version,)] = conn.execute("SHOW server_version").fetchall()
    return DatabaseInfo(
        server_version=server_version,
        mode_in_force=meta.get("mode"),
        recorded_reason=meta.get("mode_reason"),
        detected=detect_storage(conn, "auto" if wanted == "timescale" else wanted),
        schema_version=version,
        tz=meta.get("tz"),
        tables=tables,
        awaiting_installation=homes_awaiting_installation(conn) if meta else 0,
    )


def homes_awaiting_installation(conn: psycopg.Connection) -> int:
    """Residents whose meter was imported but has never reported (未接入): not offline, not
    yet installed. One index probe per such meter and partition."""
    [(count,)] = conn.execute(
        """
        SELECT count(DISTINCT d.resident_id) FROM devices d
        WHERE d.kind = 'meter' AND d.resident_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM meter_readings m WHERE m.meter_id = d.id)
        """
    ).fetchall()
    return count


def _layout(conn: psycopg.Connection, table: str, mode: str | None) -> str:
    if mode == "timescale":
        [(chunks,)] = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %s",
            (table,),
        ).fetchall()
        return f"hypertable, {chunks} chunks"
    days = sorted(existing_partition_days(conn, table))
    if not days:
        return "no partitions"
    return f"{len(days)} daily partitions {days[0]} .. {days[-1]}"
