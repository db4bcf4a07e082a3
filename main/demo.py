"""`gridwatch demo`: the whole system on embedded defaults, on the sample district.

Starts (or joins) the database and the broker, migrates, loads the sample district once,
runs the ingest worker and the alert engine, publishes a burst of every kind of message,
prints what was stored per table and per level of the hierarchy, then lets the simulated
district live in real time — meters every minute, sensors, patrols, hazards — with an SOS
press and a fall a few minutes in, so that alerts appear, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from gridwatch.commands import run_until_signal
from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.services import Services
from gridwatch.settings import Settings
from gridwatch.store.db import connect, describe_url
from gridwatch.store.migrate import migrate_for

if TYPE_CHECKING:
    from gridwatch.commands import Commands

log = logging.getLogger(__name__)
STATUS_EVERY_S = 60
SOS_AFTER = timedelta(minutes=1)
FALL_AFTER = timedelta(minutes=2)
DUTY_OFFICER = "demo duty officer"


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `demo` (`common`: the shared flags)."""
    demo = commands.add_parser(
        "demo", parents=[common], help="run everything on the sample district until Ctrl-C"
    )
    demo.add_argument(
        "--seconds", type=float, help="stop after this many seconds instead of waiting for Ctrl-C"
    )
    demo.set_defaults(run=run_demo)


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or for --seconds); returns the exit code."""
    # Every command imports this module to register `demo`: the heavy parts load when it runs.
    from gridwatch.dispatch.service import run_alerts
    from gridwatch.ingest.worker import IngestWorker

    with Services(settings) as services:
        database_url = services.database_url()
        mqtt_url = services.mqtt_url()
        print(f"database: {describe_url(database_url)}", flush=True)
        print(f"MQTT broker: {mqtt_url}", flush=True)
        if services.broker is not None:
            reading = orjson.dumps({"ts": datetime.now(UTC).isoformat(), "power_w": 120.5})
            example = services.broker.publish_example(
                f"{settings.topic_prefix}/meter/M-DEMO", reading.decode()
            )
            print(f"publish a reading yourself: {example}", flush=True)
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
            threads = [
                threading.Thread(target=worker.run, args=(stop,), name="ingest"),
                threading.Thread(
                    target=run_alerts, args=(settings, database_url, mqtt_url, stop), name="alerts"
                ),
            ]
            api_server = _api_server(settings, database_url, mqtt_url)
            threads.append(threading.Thread(target=api_server.run, name="api"))
            for thread in threads:
                thread.start()
            try:
                _announce_maps(settings, database_url, api_server)
                if not worker.subscribed.wait(30):
                    log.error("the ingest worker did not subscribe within 30 s")
                    return
                _traffic(settings, mqtt_url, database_url, district, worker, stop, args.seconds)
            finally:
                stop.set()
                api_server.should_exit = True
                for thread in threads:
                    thread.join()

        run_until_signal(work)
    print("gridwatch demo stopped.", flush=True)
    return 0


def _api_server(settings: Settings, database_url: str, mqtt_url: str):
    """The API and map pages on GRIDWATCH_API_PORT, or a free port when that one is taken."""
    import socket

    from gridwatch.api.app import create_app
    from gridwatch.api.serving import ApiServer, server_config
    from gridwatch.store.embedded import free_port

    port = settings.api_port
    with socket.socket() as probe:
        if probe.connect_ex((settings.api_host, port)) == 0:
            port = free_port(settings.api_host)
    app = create_app(settings, database_url=database_url, mqtt_url=mqtt_url)
    config = server_config(app, settings, host=settings.api_host, port=port, log_level="warning")
    return ApiServer(config)


def _announce_maps(settings: Settings, database_url: str, server) -> None:
    """Print the map URL and the demo duty officer's token once the server listens."""
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    with connect(database_url) as conn:
        token = duty_officer_token(conn)
    base = f"http://{settings.api_host}:{server.config.port}"
    print(f"maps: {base}/maps/overview   live duty view: {base}/maps/live   API: {base}/docs",
          flush=True)  # fmt: skip
    print(f"duty officer token (log in at {base}/login): {token}", flush=True)


def duty_officer_token(conn) -> str:
    """A new token of the demo's one duty officer (the sample district's street), who is
    created on the first run; an earlier run's token stops working."""
    from gridwatch.errors import NotFound
    from gridwatch.store.users import create_user, reissue_token

    try:
        return reissue_token(conn, DUTY_OFFICER)
    except NotFound:
        return create_user(
            conn, DUTY_OFFICER, role="duty_officer", level="street", grid_codes=("QS-01",)
        )


def _sample_district(conn, settings: Settings):
    """Load the sample district, or bring an earlier run's copy up to date (an upsert)."""
    from gridwatch.simulators.district import POLICE_LEVEL_NAMES
    from gridwatch.simulators.sample import load_sample_district

    again = conn.execute("SELECT count(*) FROM grids").fetchone()[0] > 0
    print(
        "updating the sample district (青山区, 包头市)..."
        if again
        else "loading the sample district (青山区, 包头市)...",
        flush=True,
    )
    result = load_sample_district(conn, settings.data_dir / "sample", police=True)
    areas = ", ".join(_count(n, level) for level, n in result.areas.items())
    print(
        f"{areas}, {result.residents} residents, {result.workers} grid workers, "
        f"{result.places} places inspected on a schedule",
        flush=True,
    )
    below = result.below
    print(
        f"below the grids: {below['buildings']} buildings (楼栋), {below['units']} units (单元), "
        f"{below['contacts']} unit heads and building leads to call first (单元长, 楼栋长)",
        flush=True,
    )
    police = ", ".join(
        f"{n} {POLICE_LEVEL_NAMES[level]}" for level, n in result.police_areas.items()
    )
    print(f"police grids (警格) over the same street: {police}", flush=True)
    return result.district


def _count(n: int, level: str) -> str:
    """`1 street`, `8 communities`."""
    if n == 1:
        return f"{n} {level}"
    return f"{n} {level[:-1]}ies" if level.endswith("y") else f"{n} {level}s"


def _traffic(settings, mqtt_url, database_url, district, worker, stop, seconds) -> None:
    from gridwatch.simulators.traffic import burst

    client = publisher(
        BrokerAddress.from_url(mqtt_url, settings.mqtt_ca_file),
        f"{settings.mqtt_client_id}-demo-pub",
    )
    started = time.monotonic()
    try:
        now = datetime.now(UTC)
        sent = _publish(client, burst(district, now, prefix=settings.topic_prefix))
        print(
            f"published a burst of {sent} messages (meters, sensors, patrols, inspections, "
            "hazards, and a few malformed ones)",
            flush=True,
        )
        deadline = time.monotonic() + 120
        while worker.stats.received < sent and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.2)
        _print_summary(database_url)
        _sample_requests(database_url, now)
        _sample_inspections(settings, database_url, now)
        start = datetime.now(UTC).replace(microsecond=0)
        with connect(database_url) as conn:
            incidents = demo_incidents(conn, district, start)
        messages = _live_messages(settings, district, start, incidents)
        live = threading.Thread(
            target=_live_district, args=(client, messages, stop), name="simulator"
        )
        live.start()
        print(
            "the district now lives in real time (meters every minute"
            + "".join(f"; {_incident_text(i, start)}" for i in incidents)
            + "); Ctrl-C stops everything.",
            flush=True,
        )
        next_status = time.monotonic() + STATUS_EVERY_S
        while not stop.is_set():
            if seconds is not None and time.monotonic() - started > seconds:
                stop.set()
                break
            if time.monotonic() >= next_status:
                next_status += STATUS_EVERY_S
                _print_summary(database_url, brief=True)
            stop.wait(0.5)
        live.join()
    finally:
        client.disconnect()
        client.loop_stop()


def demo_incidents(conn, district, now: datetime) -> list:
    """An SOS press and a fall soon after `now`, by pendant wearers without an open alert:
    a resident holds one open alert per kind, so an SOS of one whose SOS an earlier run
    left open would open nothing new."""
    from gridwatch.simulators.faults import Fall, Sos
    from gridwatch.store.alerts import residents_with_open_alerts

    alerted = residents_with_open_alerts(conn)
    wearers = [
        r
        for r in district.residents
        if r.resident_id not in alerted and any(s.endswith("-pendant") for s in r.sensor_ids)
    ]
    if len(wearers) < 2:
        return []
    sos, fall = wearers[0], wearers[1]
    pendant = next(s for s in sos.sensor_ids if s.endswith("-pendant"))
    detector = next(s for s in fall.sensor_ids if s.endswith("-pendant"))
    return [
        Sos(sos.resident_id, now + SOS_AFTER, pendant),
        Fall(fall.resident_id, now + FALL_AFTER, detector_id=detector),
    ]


def _incident_text(incident, start: datetime) -> str:
    minutes = round((incident.at - start).total_seconds() / 60)
    what = "an SOS press by" if incident.kind == "sos" else "a fall of"
    return f"{what} {incident.resident_id} in {minutes} min"


def _live_messages(settings: Settings, district, now: datetime, incidents) -> Iterator:
    """The simulated district's messages from `now` on, with `incidents`; its first day is
    worked out here, before the demo says it lives (a few seconds of numpy that Ctrl-C could
    not interrupt)."""
    from gridwatch.simulators.faults import FaultRates
    from gridwatch.simulators.scenario import Scenario

    scenario = Scenario(
        district,
        now,
        days=30,
        seed=int(now.timestamp()),
        tz=settings.tz,
        prefix=settings.topic_prefix,
        rates=FaultRates.none(),
        incidents=incidents,
    )
    messages = scenario.messages()
    first = next(messages)
    return itertools.chain([first], messages)


def _live_district(client, messages: Iterator, stop: threading.Event) -> None:
    """The simulated district in real time, until `stop`."""
    from gridwatch.simulators.publish import AckWindow, publish_paced

    try:
        publish_paced(AckWindow(client), messages, speed=1.0, stop=stop)
    except Exception:  # the demo goes on without the live district rather than die
        log.exception("the simulated district stopped")


def _publish(client, messages) -> int:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    return len(infos)


def _sample_requests(database_url: str, now: datetime) -> None:
    """Citizens' requests in every step of their loop, so that the layers and the ledger show
    some (the same ones each run: a second run adds none)."""
    from gridwatch.simulators.sample_activity import seed_requests

    with connect(database_url) as conn:
        made = seed_requests(conn, count=40, now=now)
    print(f"stored {made} sample requests (诉求: Open311, 12345 work orders, home visits)")


def _sample_inspections(settings: Settings, database_url: str, now: datetime) -> None:
    """Past inspections of the places the burst did not inspect (安全巡查), some missed, some
    with findings, so that the places layer and the desk show places overdue and findings
    being corrected (a second run adds none)."""
    from gridwatch.cases.hazards import deadlines_from_hours
    from gridwatch.simulators.sample_activity import seed_inspections

    with connect(database_url) as conn:
        made = seed_inspections(
            conn,
            now=now,
            zone=settings.zone,
            deadlines=deadlines_from_hours(settings.hazard_deadlines_h),
        )
    print(
        f"stored {made.inspections} sample inspections of places (安全巡查): {made.findings} "
        f"findings opened as cases, {made.overdue} places overdue for inspection",
        flush=True,
    )


def _print_summary(database_url: str, *, brief: bool = False) -> None:
    from gridwatch.simulators.district import POLICE_LEVEL_NAMES
    from gridwatch.store.summary import (
        below_grid_counts,
        level_counts,
        open_alert_counts,
        table_counts,
    )

    with connect(database_url) as conn:
        counts = table_counts(conn)
        alerts = open_alert_counts(conn)
        levels = [] if brief else [*level_counts(conn), *below_grid_counts(conn)]
        police = [] if brief else level_counts(conn, "police")
    stamp = datetime.now().astimezone().strftime("%H:%M:%S")
    print(f"[{stamp}] stored: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    if alerts:
        print("  open alerts: " + ", ".join(f"{k} {n}" for k, n in alerts.items()), flush=True)
    # The police's grids (警格) hold the same points, cut another way: a table of their own,
    # each level by its police name.
    for heading, rows, names in (("level", levels, {}), ("police", police, POLICE_LEVEL_NAMES)):
        if rows:
            print(
                f"  {heading:<10} {'areas':>5}   {'residents per area':<22} "
                f"{'check-ins per area':<22} hazards per area",
                flush=True,
            )
        for row in rows:
            print(
                f"  {_cell(names.get(row.level, row.level), 10)} {row.areas:>5}   "
                f"{_spread(row.residents):<22} {_spread(row.checkins):<22} "
                f"{_spread(row.hazards)}",
                flush=True,
            )


def _cell(text: str, width: int) -> str:
    """`text` padded to `width` columns of a terminal, where a Chinese character takes two."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(width - used, 0)


def _spread(spread) -> str:
    """`2000` for one value; `9-27 (mean 18.2)` for a level's areas that differ; `-` where
    the level does not count it."""
    if spread is None:
        return "-"
    if spread.least == spread.most:
        return str(spread.least)
    return f"{spread.least}-{spread.most} (mean {round(spread.mean, 1):g})"
