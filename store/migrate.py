"""Numbered SQL migrations, applied once each, in order, under an advisory lock.

A file `NNN_name.sql` applies in every mode; `NNN_name.plain.sql` and
`NNN_name.timescale.sql` only in theirs. The mode chosen at the first migration is
recorded and kept: switching a database between modes is a data migration, not a flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.errors import ConfigError
from gridwatch.settings import Settings
from gridwatch.store.mode import PLAIN, TIMESCALE, StorageMode, detect_storage
from gridwatch.store.partitions import ensure_days_ahead

_LOCK_KEY = 0x67770001
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    mode: str | None
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationReport:
    mode: StorageMode
    applied: list[str]
    tz: str


def migrations_for(mode: str) -> list[Migration]:
    """The migration files that apply in `mode`, in order."""
    found = []
    for entry in resources.files("gridwatch.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match and match.group(3) in (None, mode):
            found.append(
                Migration(int(match.group(1)), match.group(2), match.group(3), entry.read_text())
            )
    return sorted(found, key=lambda m: (m.version, m.mode or ""))


def read_meta(conn: psycopg.Connection) -> dict[str, str]:
    """The recorded facts about this database (mode, zone); empty before the first migration."""
    [(exists,)] = conn.execute("SELECT to_regclass('gridwatch_meta')").fetchall()
    if exists is None:
        return {}
    return dict(conn.execute("SELECT key, value FROM gridwatch_meta").fetchall())


def migrate(
    conn: psycopg.Connection,
    *,
    storage: str = "auto",
    tz: str = "Asia/Shanghai",
    retention_days: int = 400,
    partitions_ahead_days: int = 7,
) -> MigrationReport:
    """Bring the schema up to date; safe to run twice and from several processes at once."""
    if conn.autocommit is False:
        conn.commit()
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        meta = read_meta(conn)
        mode = _mode_in_force(conn, meta, storage)
        zone = meta.get("tz", tz)
        if mode.name == TIMESCALE:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in migrations_for(mode.name):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(_render(migration.sql, mode.name, retention_days, zone))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied.append(f"{migration.version:03d}_{migration.name}")
        with conn.transaction():
            for key, value in (("mode", mode.name), ("mode_reason", mode.reason), ("tz", zone)):
                conn.execute(
                    """
                    INSERT INTO gridwatch_meta (key, value) VALUES (%s, %s)
                    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                    WHERE gridwatch_meta.key = 'mode_reason'
                    """,
                    (key, value),
                )
        if mode.name == PLAIN:
            ensure_days_ahead(conn, ZoneInfo(zone), partitions_ahead_days)
        return MigrationReport(mode, applied, zone)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def migrate_for(conn: psycopg.Connection, settings: Settings) -> MigrationReport:
    """`migrate` with the storage, zone, retention and partition settings of a run."""
    return migrate(
        conn,
        storage=settings.storage,
        tz=settings.tz,
        retention_days=settings.retention_days,
        partitions_ahead_days=settings.partitions_ahead_days,
    )


def _mode_in_force(conn: psycopg.Connection, meta: dict[str, str], storage: str) -> StorageMode:
    recorded = meta.get("mode")
    if recorded is None:
        return detect_storage(conn, storage)
    if storage not in ("auto", recorded):
        raise ConfigError(
            f"this database was set up for {recorded} storage; GRIDWATCH_STORAGE={storage} "
            "cannot switch it (use a new database)"
        )
    return StorageMode(recorded, meta.get("mode_reason", "recorded at the first migration"))


def _render(text: str, mode: str, retention_days: int, zone: str) -> str:
    """Fill a migration's placeholders: partitioning, retention and the zone of local hours."""
    from zoneinfo import ZoneInfo

    ZoneInfo(zone)  # a known zone name, never free text, goes into the SQL
    partition_by = "PARTITION BY RANGE (observed_at)" if mode == PLAIN else ""
    return (
        text.replace("{partition_by}", partition_by)
        .replace("{retention_days}", str(int(retention_days)))
        .replace("{tz}", zone)
    )
