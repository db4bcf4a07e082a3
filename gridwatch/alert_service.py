"""`gridwatch alerts`: the alert engine and its delivery, running until stopped.

The engine thread reads new data every second, evaluates the homes it touched and the
deadlines that came due, and writes alerts with their outbox rows. The delivery thread
publishes the outbox to MQTT and posts webhooks, retrying until each is acknowledged. A
database that goes away is waited for and the engine reloaded; nothing is lost because the
outbox and the alerts live in the database, not in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from gridwatch.alerts.delivery import post_webhook, publish_all, retry_after
from gridwatch.alerts.engine import AlertEngine
from gridwatch.alerts.lifecycle import ESCALATE_AFTER
from gridwatch.errors import ServiceUnavailable, first_line
from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.settings import Settings
from gridwatch.store import alert_store
from gridwatch.store.alert_store import AlertStore
from gridwatch.store.db import connect

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
POLL_S = 1.0
REFRESH_S = 5.0


def wall_clock() -> datetime:
    return datetime.now(UTC)


def make_engine(settings: Settings, conn: psycopg.Connection) -> AlertEngine:
    """An engine over `conn` with the settings' zone, topic prefix and webhooks."""
    return AlertEngine(
        AlertStore(conn),
        zone=settings.zone,
        topic_prefix=settings.topic_prefix,
        webhooks=settings.alert_webhooks,
        escalate_after=ESCALATE_AFTER,
    )


def run_engine(
    settings: Settings, database_url: str, stop: threading.Event, clock: Clock = wall_clock
) -> None:
    """Evaluate continuously until `stop`; reconnects and reloads if the database goes away."""
    delay = 1.0
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                engine = make_engine(settings, conn)
                engine.load(clock())
                log.info("alert engine watching %d homes", len(engine.homes))
                delay = 1.0
                _evaluate_until(engine, stop, clock)
        except (psycopg.OperationalError, psycopg.InterfaceError, ServiceUnavailable) as exc:
            log.warning("alert engine: database unavailable (%s); retrying", first_line(exc))
            stop.wait(delay)
            delay = min(delay * 2, 30.0)


def _evaluate_until(engine: AlertEngine, stop: threading.Event, clock: Clock) -> None:
    last_refresh = time.monotonic()
    while not stop.is_set():
        engine.poll()
        if time.monotonic() - last_refresh >= REFRESH_S:
            engine.refresh_absences(clock())
            last_refresh = time.monotonic()
        actions = engine.step(clock())
        if actions:
            log.info("alert engine: %d changes", len(actions))
        due = engine.next_due()
        wait = POLL_S
        if due is not None:
            wait = max(0.0, min(wait, (due - clock()).total_seconds()))
        stop.wait(wait)


def run_delivery(
    settings: Settings, database_url: str, mqtt_url: str, stop: threading.Event
) -> None:
    """Publish the outbox and post webhooks until `stop`."""
    client = None
    while not stop.is_set():
        try:
            if client is None:
                client = publisher(
                    BrokerAddress.from_url(mqtt_url, settings.mqtt_ca_file),
                    f"{settings.mqtt_client_id}-alerts",
                )
            with connect(database_url) as conn:
                while not stop.is_set():
                    busy = _deliver_once(conn, client)
                    stop.wait(0.05 if busy else 0.5)
        except (psycopg.OperationalError, psycopg.InterfaceError, ServiceUnavailable) as exc:
            log.warning("alert delivery: %s; retrying", first_line(exc))
            stop.wait(2.0)
    if client is not None:
        client.disconnect()
        client.loop_stop()


def _deliver_once(conn: psycopg.Connection, client) -> bool:
    rows = alert_store.unpublished(conn)
    if rows:
        done = publish_all(client, rows)
        if done:
            alert_store.mark_published(conn, done, datetime.now(UTC))
    due = alert_store.due_webhooks(conn, datetime.now(UTC))
    for outbox_id, url, attempts, payload in due:
        error = post_webhook(url, outbox_id, payload)
        now = datetime.now(UTC)
        if error is not None:
            log.warning("webhook %s: %s (attempt %d)", url, error, attempts + 1)
        alert_store.record_webhook_attempt(
            conn,
            outbox_id,
            url,
            delivered_at=None if error else now,
            error=error,
            next_attempt_at=retry_after(attempts, now),
        )
    return bool(rows) or bool(due)


def run_alerts(settings: Settings, database_url: str, mqtt_url: str, stop: threading.Event) -> None:
    """The engine and the delivery side by side until `stop`."""
    delivery = threading.Thread(
        target=run_delivery, args=(settings, database_url, mqtt_url, stop), name="alert-delivery"
    )
    delivery.start()
    try:
        run_engine(settings, database_url, stop)
    finally:
        stop.set()
        delivery.join()
