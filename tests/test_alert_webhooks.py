"""Alert webhooks: a receiver that is down gets every alert change once it is back, once.

The receiver is a stdlib HTTP server on a free local port: first not listening at all, then
answering 503, then 200. The delivery loop (`run_delivery`) retries with backoff; the test
brings each retry forward by setting `next_attempt_at` to now instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from gridwatch.dispatch.service import make_engine, run_delivery
from gridwatch.model.vocabulary import SOS
from gridwatch.store.migrate import read_meta
from gridwatch.store.partitions import ensure_partitions
from tests.support.ports import free_port
from tests.support.settings import make_settings
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver, acknowledge_the_alert


def delivery_row(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT outbox_id, attempts, delivered_at, last_error FROM webhook_deliveries "
            "ORDER BY outbox_id LIMIT 1"
        ).fetchone()


def retry_now(url: str) -> None:
    """Bring the pending deliveries' next attempt forward (instead of waiting the backoff)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL"
        )


@pytest.fixture
def sos_resident(district_database_url) -> str:
    """One monitored resident whose rules leave only emergencies, with an SOS pressed a
    minute ago (stored as the ingest worker would)."""
    url = district_database_url
    with psycopg.connect(url) as conn:
        resident, door = conn.execute(
            "SELECT r.id, d.id FROM residents r JOIN devices d ON d.resident_id = r.id "
            "WHERE r.living_alone AND d.id LIKE '%-door' ORDER BY r.id LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE residents SET living_alone = (id = %s)", (resident,))
        conn.execute(
            "UPDATE residents SET rules = %s WHERE id = %s",
            (Jsonb({"disabled": ["no_activity", "morning", "evening", "meter_offline"]}), resident),
        )
        pressed = datetime.now(UTC) - timedelta(minutes=1)
        zone = ZoneInfo(read_meta(conn).get("tz", "Asia/Shanghai"))  # the partitions' zone
        conn.commit()
        ensure_partitions(conn, {pressed.astimezone(zone).date()}, zone)
        conn.execute(
            "INSERT INTO sensor_events (device_id, observed_at, received_at, event) "
            "VALUES (%s, %s, %s, 'sos')",
            (door, pressed, pressed),
        )
    return resident


def test_a_receiver_down_then_up_gets_each_change_exactly_once(
    tmp_path, district_database_url, mqtt_url, sos_resident
):
    url = district_database_url
    receiver = Receiver(free_port())
    settings = make_settings(tmp_path, url, mqtt_url, alert_webhooks=(receiver.url,))
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        engine = make_engine(settings, conn)
        engine.load(now)
        opened = engine.step(now)
        assert [a.condition.kind for a in opened] == [SOS]
    outbox_id, attempts, delivered_at, _ = delivery_row(url)
    assert (attempts, delivered_at) == (0, None)

    stop = threading.Event()
    delivery = threading.Thread(target=run_delivery, args=(settings, url, mqtt_url, stop))
    delivery.start()
    try:
        # Down: nothing listens on the port.
        wait_for(lambda: delivery_row(url)[1] >= 1, 20, "a first, refused attempt")
        _, attempts, delivered_at, error = delivery_row(url)
        assert delivered_at is None and error.startswith("unreachable"), error
        # Up but failing: 503.
        receiver.start()
        retry_now(url)
        wait_for(lambda: receiver.requests, 20, "a request to the receiver")
        wait_for(lambda: delivery_row(url)[3] == "HTTP 503", 20, "the 503 recorded")
        assert delivery_row(url)[2] is None
        # Up: 200. Delivered, once.
        receiver.status = 200
        retry_now(url)
        wait_for(lambda: delivery_row(url)[2] is not None, 20, "the delivery")
        _, attempts, delivered_at, error = delivery_row(url)
        assert attempts >= 3 and error is None
        time.sleep(1.0)  # two delivery rounds or more: nothing is sent again
        (accepted,) = receiver.accepted()
        headers, body = accepted
        assert headers["Idempotency-Key"] == f"gridwatch-alert-outbox-{outbox_id}"
        assert headers["Content-Type"].startswith("application/json")
        assert (body["state"], body["kind"], body["resident_id"]) == ("open", SOS, sos_resident)
        assert body["severity"] == "critical"
        # Every attempt carried the same key: a receiver that saw a retry can tell.
        keys = {h["Idempotency-Key"] for _, h, _ in receiver.requests}
        assert keys == {f"gridwatch-alert-outbox-{outbox_id}"}

        # The next change (an acknowledgement) goes out once too, under its own key.
        acknowledge_the_alert(url, settings)
        wait_for(lambda: len(receiver.accepted()) == 2, 20, "the acknowledgement delivered")
        time.sleep(1.0)
        bodies = [b for _, b in receiver.accepted()]
        assert [b["state"] for b in bodies] == ["open", "acknowledged"]
        assert len({h["Idempotency-Key"] for h, _ in receiver.accepted()}) == 2
    finally:
        stop.set()
        delivery.join(timeout=15)
        receiver.stop()
    assert not delivery.is_alive()
