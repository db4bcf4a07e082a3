"""`gridwatch alerts`: the alert engine, its delivery and the hazard clocks, running until
stopped.

The engine thread reads new data every second, evaluates the homes it touched and the
deadlines that came due, and writes alerts with their outbox rows; every 5 seconds it looks
at who is to be watched (imports, moves) and at what people did (absences, acknowledgements),
and every minute it saves what it learned of each home. The delivery thread
publishes the outbox to MQTT and posts webhooks, retrying until each is acknowledged. The
hazard clocks thread escalates overdue hazards (`gridwatch.dispatch.clocks`): every clock of
gridwatch runs here, none in the API. A database that goes away is waited for and the
engine reloaded; nothing is lost because the outbox and the alerts live in the database, not
in memory.

With a `Partition` (`gridwatch alerts --partition I/N`) the engine watches only the homes of
its partition (see `gridwatch.alerts.partition`) and the delivery sends only the outbox rows
of its partition's grids, so N processes together do what one does; the hazard clocks run
in the process of partition 0 (hazards are few and the district's, not a home's).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime

import psycopg

from gridwatch.alerts.engine import AlertEngine
from gridwatch.alerts.lifecycle import ESCALATE_AFTER
from gridwatch.alerts.partition import Partition
from gridwatch.alerts.rules import Calendar, public_calendar
from gridwatch.dispatch.clocks import Clock, run_hazard_clocks, wall_clock
from gridwatch.dispatch.delivery import MqttHandover, post_webhook, retry_after
from gridwatch.errors import ServiceUnavailable, first_line
from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.settings import Settings
from gridwatch.store import outbox
from gridwatch.store.alert_store import AlertStore
from gridwatch.store.contacts import send_case_notices
from gridwatch.store.db import connect

log = logging.getLogger(__name__)

POLL_S = 1.0
REFRESH_S = 5.0
PROFILES_SAVE_S = 60.0
LEASE_CHECK_S = 5.0  # how often a lease is checked, and a standby tries to take it
LEASE_LOCK_CLASS = 0x67770003  # advisory lock class of the alert partitions' leases


def settings_calendar(settings: Settings, today: date | None = None) -> Calendar:
    """The rest days the settings name: their country's public calendar from two years back
    to two ahead (a long-running engine crosses New Year), with their own days on top."""
    year = (today or datetime.now(settings.zone).date()).year
    return public_calendar(
        settings.holiday_calendar or None,
        range(year - 2, year + 3),
        holidays=settings.holidays,
        workdays=settings.workdays,
    )


def make_engine(
    settings: Settings, conn: psycopg.Connection, partition: Partition | None = None
) -> AlertEngine:
    """An engine over `conn` with the settings' zone, watching the homes of `partition` (all
    without one); its store sends on the settings' topic prefix and to their webhooks."""
    store = AlertStore(
        conn, partition, topic_prefix=settings.topic_prefix, webhooks=settings.alert_webhooks
    )
    return AlertEngine(
        store,
        zone=settings.zone,
        calendar=settings_calendar(settings),
        escalate_after=ESCALATE_AFTER,
    )


def run_engine(
    settings: Settings,
    database_url: str,
    stop: threading.Event,
    clock: Clock = wall_clock,
    partition: Partition | None = None,
) -> None:
    """Evaluate continuously until `stop`; reconnects and reloads if the database goes away."""
    delay = 1.0
    of_partition = "" if partition is None or partition.count == 1 else f" of {partition}"
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                engine = make_engine(settings, conn, partition)
                engine.load(clock())
                log.info("alert engine watching %d homes%s", len(engine.homes), of_partition)
                delay = 1.0
                _evaluate_until(engine, stop, clock)
                engine.save_profiles()  # stopping: what was learned since the last save
        except (psycopg.OperationalError, psycopg.InterfaceError, ServiceUnavailable) as exc:
            log.warning("alert engine: database unavailable (%s); retrying", first_line(exc))
            stop.wait(delay)
            delay = min(delay * 2, 30.0)


def _evaluate_until(engine: AlertEngine, stop: threading.Event, clock: Clock) -> None:
    last_refresh = last_save = time.monotonic()
    while not stop.is_set():
        engine.poll()
        if time.monotonic() - last_refresh >= REFRESH_S:
            came, left = engine.refresh_homes(clock())
            if came or left:
                log.info("alert engine: %d homes taken in, %d let go", came, left)
            engine.refresh_absences(clock())
            last_refresh = time.monotonic()
        if time.monotonic() - last_save >= PROFILES_SAVE_S:
            engine.save_profiles()
            last_save = time.monotonic()
        if engine.relearn_baselines_if_due(clock()):
            log.info("alert engine: meter baselines learned again from the last 28 nights")
        actions = engine.step(clock())
        if actions:
            log.info("alert engine: %d changes", len(actions))
        due = engine.next_due()
        wait = POLL_S
        if due is not None:
            wait = max(0.0, min(wait, (due - clock()).total_seconds()))
        stop.wait(wait)


def run_delivery(
    settings: Settings,
    database_url: str,
    mqtt_url: str,
    stop: threading.Event,
    partition: Partition | None = None,
) -> None:
    """Publish the outbox (the partition's rows) and post webhooks until `stop`."""
    client = None
    # One client id per partition: a broker disconnects a client whose id connects again.
    client_id = f"{settings.mqtt_client_id}-alerts"
    if partition is not None and partition.count > 1:
        client_id = f"{client_id}-{partition.index}-of-{partition.count}"
    handover: MqttHandover | None = None
    # The first partition's loop also turns cases' steps into notices for the contacts of
    # their building (a pass over an empty queue is one cheap query).
    first = partition is None or partition.index == 0
    notices = settings.topic_prefix if first else None
    while not stop.is_set():
        try:
            if handover is None:
                client = publisher(
                    BrokerAddress.from_url(mqtt_url, settings.mqtt_ca_file), client_id
                )
                handover = MqttHandover(client)
            with connect(database_url) as conn:
                while not stop.is_set():
                    busy = _deliver_once(conn, handover, partition, notices)
                    stop.wait(0.05 if busy else 0.5)
        except (psycopg.OperationalError, psycopg.InterfaceError, ServiceUnavailable) as exc:
            log.warning("alert delivery: %s; retrying", first_line(exc))
            stop.wait(2.0)
    if client is not None:
        client.disconnect()
        client.loop_stop()


def _deliver_once(
    conn: psycopg.Connection,
    handover: MqttHandover,
    partition: Partition | None,
    notices_prefix: str | None = None,
) -> bool:
    noticed = 0
    if notices_prefix is not None:
        noticed = send_case_notices(conn, topic_prefix=notices_prefix, now=datetime.now(UTC))
    rows = outbox.unpublished(conn, partition=partition)
    handed = handover.hand_over(rows)
    done = handover.acknowledged()
    if done:
        outbox.mark_published(conn, done, datetime.now(UTC))
    due = outbox.due_webhooks(conn, datetime.now(UTC), partition=partition)
    for outbox_id, url, attempts, payload in due:
        error = post_webhook(url, outbox_id, payload)
        now = datetime.now(UTC)
        if error is not None:
            log.warning("webhook %s: %s (attempt %d)", url, error, attempts + 1)
        outbox.record_webhook_attempt(
            conn,
            outbox_id,
            url,
            delivered_at=None if error else now,
            error=error,
            next_attempt_at=retry_after(attempts, now),
        )
    return bool(handed) or bool(done) or bool(due) or bool(noticed)


def run_alerts(
    settings: Settings,
    database_url: str,
    mqtt_url: str,
    stop: threading.Event,
    partition: Partition | None = None,
    clock: Clock = wall_clock,
) -> None:
    """The engine, the delivery (of `partition`, or of everything) and, in partition 0, the
    hazard clocks side by side until `stop`, while this process holds the partition's
    lease; without it, it stands by. `clock` is injected so tests can move time."""
    partition = partition or Partition(0, 1)
    while not stop.is_set():
        lease = hold_lease(database_url, partition, stop)
        if lease is None:
            return
        beside = [
            threading.Thread(
                target=run_delivery,
                args=(settings, database_url, mqtt_url, lease, partition),
                name="alert-delivery",
            )
        ]
        if partition.index == 0:
            beside.append(
                threading.Thread(
                    target=run_hazard_clocks,
                    args=(settings, database_url, lease, clock),
                    name="hazard-clocks",
                )
            )
        for thread in beside:
            thread.start()
        try:
            run_engine(settings, database_url, lease, clock, partition)
        finally:
            lease.set()
            for thread in beside:
                thread.join()


def hold_lease(
    database_url: str, partition: Partition, stop: threading.Event
) -> threading.Event | None:
    """Wait until this process holds the partition: a PostgreSQL advisory lock on a
    connection of its own, so a second process started for the same partition (a standby,
    or a mistake) waits instead of sending every alert twice, and takes over when the
    holder's connection ends. Returns an event set when the lease is lost or `stop` is set
    (None if `stop` came first)."""
    announced = False
    while not stop.is_set():
        try:
            conn = connect(database_url, autocommit=True)
        except ServiceUnavailable as exc:
            log.warning("alert lease: %s; retrying", exc)
            stop.wait(LEASE_CHECK_S)
            continue
        try:
            [(held,)] = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)",
                (LEASE_LOCK_CLASS, partition.count * 65536 + partition.index),
            ).fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            held = False
        if held:
            lost = threading.Event()
            threading.Thread(
                target=_keep_lease, args=(conn, lost, stop), name="alert-lease", daemon=True
            ).start()
            return lost
        conn.close()
        if not announced:
            log.info("alert partition %s is held by another process; standing by", partition)
            announced = True
        stop.wait(LEASE_CHECK_S)
    return None


def _keep_lease(conn: psycopg.Connection, lost: threading.Event, stop: threading.Event) -> None:
    """Check the lease's connection until `stop` or its loss; then end it (and the lock)."""
    try:
        while not stop.wait(LEASE_CHECK_S) and not lost.is_set():
            conn.execute("SELECT 1")
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        log.warning("alert lease lost (%s); stopping this partition's work", first_line(exc))
    finally:
        lost.set()
        conn.close()
