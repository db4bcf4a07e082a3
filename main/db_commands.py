"""`gridwatch db`: the schema, the storage mode in force, and the upkeep of partitions."""

from __future__ import annotations

import argparse
from functools import partial
from typing import TYPE_CHECKING

from gridwatch.commands import command_group
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `db migrate|info|maintain` (`common`: the shared flags)."""
    db_commands = command_group(commands, "db", "database schema and storage mode")
    db_commands.add_parser(
        "migrate", parents=[common], help="create or update the schema (safe to repeat)"
    ).set_defaults(run=run_db_migrate)
    db_commands.add_parser(
        "info", parents=[common], help="storage mode in force and why, table sizes"
    ).set_defaults(run=run_db_info)
    db_commands.add_parser(
        "maintain",
        parents=[common],
        help="make partitions ahead, drop expired ones, refresh hourly rollups",
    ).set_defaults(run=run_db_maintain)


def run_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    with Services(settings) as services, connect(services.database_url()) as conn:
        report = migrate_for(conn, settings)
    applied = ", ".join(report.applied) if report.applied else "none (already up to date)"
    print(f"storage: {report.mode.name} ({report.mode.reason})")
    print(f"migrations applied: {applied}")
    return 0


def run_db_info(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect, describe_url
    from gridwatch.store.info import database_info

    with Services(settings) as services:
        url = services.database_url()
        with connect(url) as conn:
            info = database_info(conn, settings.storage)
    print(f"database: {describe_url(url)}{' (embedded)' if services.embedded_database else ''}")
    print(f"server: {info.server_version}")
    print(f"storage mode in force: {info.mode_in_force or 'none (run gridwatch db migrate)'}")
    if info.recorded_reason:
        print(f"  chosen because: {info.recorded_reason}")
    print(f"detected now: {info.detected.name} ({info.detected.reason})")
    print(f"schema version: {info.schema_version or 'none'}; time zone: {info.tz or '-'}")
    for table, rows, detail in info.tables:
        print(f"  {table:<16} {rows:>12,} rows  {detail}")
    if info.tables:
        print(f"awaiting installation (未接入): {info.awaiting_installation} homes")
    return 0


def run_db_maintain(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from gridwatch.media.blobs import delete_photos, media_store
    from gridwatch.store.db import connect
    from gridwatch.store.maintenance import maintain
    from gridwatch.store.media import delete_expired_checkin_media

    store = media_store(settings)

    with Services(settings) as services, connect(services.database_url()) as conn:
        report = maintain(
            conn, retention_days=settings.retention_days, ahead_days=settings.partitions_ahead_days
        )
        # In either mode: check-ins past retention go with their day, their photos here.
        expired = delete_expired_checkin_media(
            conn,
            before=datetime.now(UTC) - timedelta(days=settings.retention_days),
            remove_photos=partial(delete_photos, store),
        )
    print(report)
    print(f"{expired} photo(s) of check-ins past retention deleted from {store.describe()}")
    return 0
