"""The embedded broker and persistent sessions: what the ingest worker's at-least-once delivery
relies on when no GRIDWATCH_MQTT_URL is set (`gridwatch demo`, `gridwatch ingest`)."""

from __future__ import annotations

import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from conftest import wait_for
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.ingest.embedded_broker import EmbeddedBroker


@pytest.fixture
def embedded_broker():
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.stop()


class Subscriber:
    """A persistent MQTT 3.1.1 subscriber, as the ingest worker is on amqtt."""

    def __init__(self, port: int, client_id: str) -> None:
        self.connected = threading.Event()
        self.session_present: bool | None = None
        self.received: list[bytes] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        client.username_pw_set("gridwatch")  # as the broker's URL says: no user, no session
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, message: self.received.append(message.payload)
        client.on_subscribe = lambda *args: self.connected.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        wait_for(self.connected.is_set, 10, "the subscription")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.session_present = flags.session_present
        client.subscribe("sessions/+", qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set("gridwatch")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish("sessions/x", payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_the_embedded_broker_delivers_to_a_connected_subscriber(embedded_broker):
    subscriber = Subscriber(embedded_broker.port, "gw-session-live")
    try:
        _publish(embedded_broker.port, b"live")
        wait_for(lambda: subscriber.received == [b"live"], 10, "the message")
    finally:
        subscriber.close()


def test_the_embedded_broker_keeps_a_persistent_session(embedded_broker):
    first = Subscriber(embedded_broker.port, "gw-session-kept")
    first.close()
    _publish(embedded_broker.port, b"while away")
    again = Subscriber(embedded_broker.port, "gw-session-kept")
    try:
        assert again.session_present is True
        wait_for(lambda: again.received == [b"while away"], 2, "the message kept for the session")
    finally:
        again.close()


_CRASHING_SUBSCRIBER = """
import sys, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=sys.argv[2],
                     protocol=mqtt.MQTTv311, clean_session=False)
client.username_pw_set("gridwatch")
client.manual_ack_set(True)  # takes the message and never acknowledges it, like a crash
client.on_connect = lambda c, *a: c.subscribe("sessions/+", qos=1)
client.on_subscribe = lambda *a: print("subscribed", flush=True)
client.on_message = lambda c, u, m: print("got", m.payload.decode(), flush=True)
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
"""


@pytest.mark.xfail(
    strict=True,
    reason="amqtt 0.12 neither resends a QoS 1 message its subscriber took but never "
    "acknowledged when the session reconnects (MQTT-4.4.0-1) nor keeps it past its 5 s PUBACK "
    "wait: with the embedded broker a crashed worker loses what it held uncommitted",
)
def test_the_embedded_broker_redelivers_what_a_crashed_subscriber_held(embedded_broker, tmp_path):
    script = tmp_path / "subscriber.py"
    script.write_text(_CRASHING_SUBSCRIBER)
    with open(tmp_path / "out.txt", "w") as out:
        crashing = subprocess.Popen(
            [sys.executable, str(script), str(embedded_broker.port), "gw-session-crash"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        output = tmp_path / "out.txt"
        wait_for(lambda: "subscribed" in output.read_text(), 10, "the subscription")
        _publish(embedded_broker.port, b"held")
        wait_for(lambda: "got held" in output.read_text(), 10, "the delivery")
    finally:
        crashing.kill()
        crashing.wait(10)
    again = Subscriber(embedded_broker.port, "gw-session-crash")
    try:
        wait_for(lambda: again.received == [b"held"], 3, "the unacknowledged message again")
    finally:
        again.close()
