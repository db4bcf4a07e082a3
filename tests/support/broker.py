"""The tests' MQTT broker (a pytest plugin): its URL, publishing to it and subscribing to it.

The broker is the one named by GRIDWATCH_TEST_MQTT_URL when set, otherwise the in-process
broker. Each test has its own topic prefix and client ids (`tests.support.settings`), so
tests on one broker never see each other's messages.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.ingest.mqtt import BrokerAddress
from tests.support.waiting import wait_for


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a running MQTT broker."""
    url = os.environ.get("GRIDWATCH_TEST_MQTT_URL")
    if url:
        yield url
        return
    from gridwatch.ingest.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def publish(mqtt_url) -> Iterator[Callable[[str, bytes | str | dict], None]]:
    """Publish at QoS 1 and wait until the broker has each message."""
    yield from publishing(mqtt_url)


def publishing(mqtt_url: str) -> Iterator[Callable[[str, bytes | str | dict], None]]:
    """The `publish` fixture's function for the broker at `mqtt_url`, until resumed."""
    import orjson

    from gridwatch.ingest.mqtt import broker_acknowledged, publisher

    client = publisher(BrokerAddress.from_url(mqtt_url), f"gw-test-pub-{uuid.uuid4().hex[:8]}")
    pending = []

    def send(topic: str, payload) -> None:
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        pending.append(client.publish(topic, payload, qos=1))
        if len(pending) >= 200:
            flush()

    def flush() -> None:
        for info in pending:
            wait_for(functools.partial(broker_acknowledged, info), 30, f"the ack of {info.mid}")
        pending.clear()

    send.flush = flush  # type: ignore[attr-defined]
    yield send
    flush()
    client.disconnect()
    client.loop_stop()


class Subscriber:
    """An MQTT client subscribed to `topic`, keeping every message as (topic, payload parsed
    as JSON) and, at the same index, the wall time it arrived (time.time())."""

    def __init__(self, mqtt_url: str, topic: str, client_id: str) -> None:
        address = BrokerAddress.from_url(mqtt_url)
        self.messages: list[tuple[str, dict]] = []
        self.arrived: list[float] = []
        self.ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=mqtt.MQTTv311)
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()
        # Subscribed on every connect, so a reconnect in the middle of a run resubscribes.
        client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *args: self.ready.set()
        client.on_message = self._on_message
        client.connect(address.host, address.port)
        client.loop_start()
        self.client = client
        wait_for(self.ready.is_set, 10, f"a subscription to {topic}")

    def _on_message(self, client, userdata, message) -> None:
        self.arrived.append(time.time())  # first: a message listed has its arrival time
        self.messages.append((message.topic, json.loads(message.payload)))

    def of(self, **fields) -> list[dict]:
        return [p for _, p in self.messages if all(p.get(k) == v for k, v in fields.items())]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
