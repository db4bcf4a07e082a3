"""Several ingest workers on one shared subscription split the stream and lose nothing."""

from __future__ import annotations

import os

import pytest

from tests.support.databases import count_rows
from tests.support.settings import make_settings
from tests.support.waiting import wait_for


@pytest.mark.skipif(
    not os.environ.get("GRIDWATCH_TEST_MQTT_URL"),
    reason="the in-process broker (amqtt) has no shared subscriptions; "
    "set GRIDWATCH_TEST_MQTT_URL to a Mosquitto or EMQX broker",
)
def test_two_workers_share_one_subscription(
    tmp_path, database_url, mqtt_url, start_worker, publish
):
    settings = make_settings(tmp_path, database_url, mqtt_url)
    first = start_worker(settings, shared="pool", client_id=f"{settings.mqtt_client_id}-a")
    second = start_worker(settings, shared="pool", client_id=f"{settings.mqtt_client_id}-b")
    total = 600
    for n in range(total):
        publish(
            f"{settings.topic_prefix}/meter/M{n % 50}",
            {"ts": 1763856000 + n, "power_w": float(n)},
        )
    publish.flush()
    wait_for(
        lambda: first.stats.received + second.stats.received >= total,
        what="both workers together to receive every message",
    )
    assert count_rows(database_url, "meter_readings") == total
    # Each message went to one worker, and both took part.
    assert first.stats.received + second.stats.received == total
    assert first.stats.received > 0 and second.stats.received > 0
