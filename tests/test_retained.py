"""Retained messages: the broker's copy, sent again at every new subscription, is stored once
(when it carries its device time) or ignored (when it does not); a clear is not a dead letter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from gridwatch.ingest.mqtt import BrokerAddress, publisher
from tests.support.databases import count_rows
from tests.support.ingest_streams import MY_TOPICS, caught_up, my_topics
from tests.support.settings import make_settings


@pytest.fixture
def retain(mqtt_url):
    """Publish retained at QoS 1; every topic used is cleared at the end."""
    client = publisher(BrokerAddress.from_url(mqtt_url), f"gw-test-ret-{uuid.uuid4().hex[:8]}")
    used: set[str] = set()

    def send(topic: str, payload: dict | bytes) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        client.publish(topic, body, qos=1, retain=True).wait_for_publish(10)
        used.add(topic)

    yield send
    for topic in used:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_retained_messages_are_stored_once_however_often_they_are_resubscribed(
    tmp_path, database_url, mqtt_url, start_worker, publish, retain
):
    s = make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=60)
    prefix, user = s.topic_prefix, s.mqtt_client_id
    ts = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    # Retained before any worker subscribed: only the broker's copy exists.
    retain(f"{prefix}/meter/M-R", {"ts": ts, "power_w": 7.0})
    retain(f"owntracks/{user}/phone", {"_type": "location", "lat": 40.6, "lon": 109.9,
                                       "tst": int(datetime.now(UTC).timestamp()) - 60})  # fmt: skip
    retain(f"{prefix}/sensor/S-OLD", {"event": "sos"})  # no ts: when it happened is unknown

    for n in range(3):  # three fresh subscriptions: the retained copies come each time
        running = start_worker(s, client_id=f"{user}-{n}")
        if n == 0:
            # Live, while subscribed: retained without ts, stored at its arrival.
            retain(f"{prefix}/sensor/S-LIVE", {"event": "sos"})
        caught_up(database_url, prefix, publish)
        running.stop()
        # S-OLD's copy each time (>=: the OwnTracks base is shared with other runs).
        assert running.stats.ignored_by.get("retained copy without device time", 0) >= 1

    assert count_rows(database_url, "meter_readings", "meter_id = 'M-R'") == 1
    assert count_rows(database_url, "patrol_checkins", "worker_id = %s", (user,)) == 1
    assert count_rows(database_url, "sensor_events", "device_id = 'S-LIVE'") == 1
    assert count_rows(database_url, "sensor_events", "device_id = 'S-OLD'") == 0
    assert count_rows(database_url, "dead_letters", MY_TOPICS, my_topics(prefix, user)) == 0


def test_clearing_a_retained_message_is_not_a_dead_letter(
    tmp_path, database_url, mqtt_url, start_worker, publish, retain
):
    s = make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=60)
    prefix, user = s.topic_prefix, s.mqtt_client_id
    running = start_worker(s)
    for topic in (f"{prefix}/sensor/S-1", f"owntracks/{user}/phone", f"{prefix}/hazard/W-1"):
        retain(topic, b"")  # an empty retained message: how MQTT clears one
    caught_up(database_url, prefix, publish)
    assert count_rows(database_url, "dead_letters", MY_TOPICS, my_topics(prefix, user)) == 0
    assert running.stats.ignored_by.get("empty (retained clear)", 0) >= 3
