"""Which storage mode is in force: TimescaleDB when it can be used, plain PostgreSQL otherwise.

The extension can only be created when the server preloads it (`shared_preload_libraries`),
so that is checked first: a plain server never sees a `CREATE EXTENSION` that would fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from gridwatch.errors import ConfigError

TIMESCALE = "timescale"
PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class StorageMode:
    name: str
    reason: str
    timescale_version: str | None = None


def detect_storage(conn: psycopg.Connection, wanted: str = "auto") -> StorageMode:
    """Decide the mode from what the server offers and what the settings ask for."""
    installed = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    [(preload,)] = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchall()
    preloaded = preloads_timescale(preload)

    if installed and preloaded:
        found = StorageMode(TIMESCALE, f"timescaledb {installed[0]} is installed", installed[0])
    elif available and preloaded:
        found = StorageMode(
            TIMESCALE,
            f"timescaledb {available[0]} is available and preloaded; it will be created",
            available[0],
        )
    elif available:
        found = StorageMode(
            PLAIN,
            f"timescaledb {available[0]} is available but not in shared_preload_libraries "
            "(add it there and restart PostgreSQL to use it)",
        )
    else:
        found = StorageMode(PLAIN, "the timescaledb extension is not available on this server")

    if wanted == "plain":
        return StorageMode(PLAIN, f"GRIDWATCH_STORAGE=plain ({found.reason})")
    if wanted == TIMESCALE and found.name != TIMESCALE:
        raise ConfigError(f"GRIDWATCH_STORAGE=timescale but {found.reason}")
    return found


def preloads_timescale(shared_preload_libraries: str) -> bool:
    """Whether the setting names the timescaledb loader, however it is written
    ('timescaledb', quoted, or as a path like '$libdir/timescaledb')."""
    names = (
        lib.strip().strip('"').rsplit("/", 1)[-1] for lib in shared_preload_libraries.split(",")
    )
    return "timescaledb" in names
