"""`gridwatch ingest`: the MQTT ingest worker, run until stopped."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gridwatch.commands import run_until_signal
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `ingest` (`common`: the shared flags)."""
    ingest = commands.add_parser(
        "ingest", parents=[common], help="run the MQTT ingest worker until stopped"
    )
    ingest.add_argument(
        "--shared", metavar="NAME", help="join shared subscription $share/NAME (scale out)"
    )
    ingest.add_argument("--client-id", help="stable MQTT client id (persistent session)")
    ingest.set_defaults(run=run_ingest)


def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.ingest.worker import IngestWorker
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    with Services(settings) as services:
        database_url = services.database_url()
        with connect(database_url) as conn:
            migrate_for(conn, settings)
        mqtt_url = services.mqtt_url()
        if services.embedded_broker:
            print(f"embedded MQTT broker listening at {mqtt_url}", flush=True)
        worker = IngestWorker(
            settings,
            database_url=database_url,
            mqtt_url=mqtt_url,
            shared=args.shared,
            client_id=args.client_id,
        )
        run_until_signal(worker.run)
    return 0
