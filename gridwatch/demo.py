"""`gridwatch demo`: the whole system on embedded defaults, on the sample district.

Starts (or joins) the database and the broker, migrates, loads the sample district once,
runs the ingest worker, publishes a burst of every kind of message, prints what was
stored per table and per level of the hierarchy, then keeps the meters reporting every
minute until Ctrl-C.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import numpy as np

from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.ingest.worker import IngestWorker
from gridwatch.services import Services
from gridwatch.settings import Settings
from gridwatch.store.db import connect, describe_url
from gridwatch.store.migrate import migrate_for
from gridwatch.store.summary import level_counts, table_counts

log = logging.getLogger(__name__)


def run_demo(settings: Settings, *, seconds: float | None = None) -> int:
    """Run until Ctrl-C (or for `seconds`); returns the exit code."""
    from gridwatch.cli import run_until_signal

    with Services(settings) as services:
        database_url = services.database_url()
        mqtt_url = services.mqtt_url()
        print(f"database: {describe_url(database_url)}", flush=True)
        print(f"MQTT broker: {mqtt_url}", flush=True)
        with connect(database_url) as conn:
            report = migrate_for(conn, settings)
            print(f"storage: {report.mode.name} ({report.mode.reason})", flush=True)
            district = _sample_district(conn, settings)
        worker = IngestWorker(
            settings,
            database_url=database_url,
            mqtt_url=mqtt_url,
            client_id=f"{settings.mqtt_client_id}-demo",
        )

        def work(stop: threading.Event) -> None:
            thread = threading.Thread(target=worker.run, args=(stop,), name="ingest")
            thread.start()
            try:
                if not worker.subscribed.wait(30):
                    log.error("the ingest worker did not subscribe within 30 s")
                    stop.set()
                    return
                _traffic(settings, mqtt_url, database_url, district, worker, stop, seconds)
            finally:
                stop.set()
                thread.join()

        run_until_signal(work)
    print("gridwatch demo stopped.", flush=True)
    return 0


def _sample_district(conn, settings: Settings):
    from gridwatch.sample import load_sample_district
    from gridwatch.simulators.district import build_sample_district

    loaded = conn.execute("SELECT count(*) FROM grids").fetchone()[0]
    if loaded:
        print(f"sample district already loaded ({loaded} grids); reusing it", flush=True)
        return build_sample_district()
    print("loading the sample district (青山区, 包头市)...", flush=True)
    result = load_sample_district(conn, settings.data_dir / "sample")
    print(
        f"loaded {result.grids} grids, {result.residents} residents, {result.workers} grid workers",
        flush=True,
    )
    return result.district


def _traffic(settings, mqtt_url, database_url, district, worker, stop, seconds) -> None:
    from gridwatch.simulators.traffic import MeterRegisters, burst, meter_minute

    client = publisher(BrokerAddress.from_url(mqtt_url), f"{settings.mqtt_client_id}-demo-pub")
    started = time.monotonic()
    try:
        now = datetime.now(UTC)
        sent = _publish(client, burst(district, now, prefix=settings.topic_prefix))
        print(
            f"published a burst of {sent} messages (meters, sensors, patrols, hazards, "
            "and a few malformed ones)",
            flush=True,
        )
        deadline = time.monotonic() + 120
        while worker.stats.received < sent and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.2)
        _print_summary(database_url)
        print("meters keep reporting every minute; Ctrl-C stops everything.", flush=True)
        meter_ids = [r.meter_id for r in district.residents if r.meter_id]
        registers = MeterRegisters(meter_ids, np.random.default_rng(11))
        next_minute = time.monotonic() + 60
        while not stop.is_set():
            if seconds is not None and time.monotonic() - started > seconds:
                stop.set()
                break
            if time.monotonic() >= next_minute:
                at = datetime.now(UTC).replace(second=0, microsecond=0)
                _publish(client, meter_minute(district, registers, at, settings.topic_prefix))
                next_minute += 60
                time.sleep(5)
                _print_summary(database_url, brief=True)
            stop.wait(0.5)
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(client, messages) -> int:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    return len(infos)


def _print_summary(database_url: str, *, brief: bool = False) -> None:
    with connect(database_url) as conn:
        counts = table_counts(conn)
        levels = [] if brief else level_counts(conn)
    stamp = datetime.now().astimezone().strftime("%H:%M:%S")
    print(f"[{stamp}] stored: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    for row in levels:
        print(
            f"  {row.level:<10} {row.units:>4} units: {row.residents:>5} residents, "
            f"{row.checkins:>5} patrol check-ins, {row.hazards:>3} hazards",
            flush=True,
        )
