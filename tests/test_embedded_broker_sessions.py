"""The embedded broker: who it lets in, and the persistent sessions the ingest worker's
at-least-once delivery relies on when no GRIDWATCH_MQTT_URL is set (`gridwatch demo`,
`gridwatch ingest`). Each test runs on the private Mosquitto (where installed) and on the
amqtt fallback of a machine without it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.ingest.embedded_broker import LIMITS, USER, EmbeddedBroker, mosquitto_binary
from tests.support.private_services import DEPLOY_CONFIG
from tests.support.waiting import wait_for

KINDS = [
    pytest.param(
        "mosquitto",
        marks=pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
    ),
    "amqtt",
]


@pytest.fixture(params=KINDS)
def embedded_broker(request, tmp_path):
    broker = EmbeddedBroker(tmp_path, mosquitto=request.param == "mosquitto")
    assert broker.kind == request.param
    broker.start()
    yield broker
    broker.stop()


def _connack(broker: EmbeddedBroker, user: str | None, password: str | None) -> int:
    """The CONNACK code the broker answers an MQTT 3.1.1 CONNECT with these credentials."""
    answered = threading.Event()
    codes: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if user is not None:
        client.username_pw_set(user, password)
    client.on_connect = lambda c, u, f, reason, p: (codes.append(reason.value), answered.set())
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        wait_for(answered.is_set, 10, "the CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_the_embedded_broker_lets_in_only_gridwatchs_credentials(embedded_broker, tmp_path):
    assert _connack(embedded_broker, USER, embedded_broker.password) == 0
    assert _connack(embedded_broker, None, None) != 0
    assert _connack(embedded_broker, USER, embedded_broker.password + "x") != 0
    assert _connack(embedded_broker, "someone", embedded_broker.password) != 0
    # Kept in the data directory for the owner alone, the same for the next command.
    credentials = tmp_path / "broker" / "credentials"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert EmbeddedBroker(tmp_path).password == embedded_broker.password
    assert embedded_broker.url.startswith(f"mqtt://{USER}:{embedded_broker.password}@127.0.0.1:")


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto_pub")
def test_the_printed_mosquitto_pub_command_publishes(embedded_broker):
    subscriber = Subscriber(embedded_broker, "gw-session-example")
    try:
        # A payload with a quote of its own (a note: "it's") survives the shell's reading.
        payload = '{"power_w": 1, "note": "it\'s"}'
        command = shlex.split(embedded_broker.publish_example("sessions/x", payload))
        subprocess.run([shutil.which(command[0]), *command[1:]], check=True, timeout=30)
        wait_for(lambda: subscriber.received == [payload.encode()], 10, "the example message")
    finally:
        subscriber.close()


def test_the_embedded_mosquitto_has_the_deploy_limits():
    shipped = {line.strip() for line in DEPLOY_CONFIG.read_text().splitlines()}
    assert set(LIMITS) <= shipped


class Subscriber:
    """A persistent MQTT 3.1.1 subscriber, as the ingest worker is on amqtt."""

    def __init__(self, broker: EmbeddedBroker, client_id: str) -> None:
        self.connected = threading.Event()
        self.session_present: bool | None = None
        self.received: list[bytes] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        client.username_pw_set(USER, broker.password)
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, message: self.received.append(message.payload)
        client.on_subscribe = lambda *args: self.connected.set()
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self.client = client
        wait_for(self.connected.is_set, 10, "the subscription")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.session_present = flags.session_present
        client.subscribe("sessions/+", qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(broker: EmbeddedBroker, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set(USER, broker.password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish("sessions/x", payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_the_embedded_broker_delivers_to_a_connected_subscriber(embedded_broker):
    subscriber = Subscriber(embedded_broker, "gw-session-live")
    try:
        _publish(embedded_broker, b"live")
        wait_for(lambda: subscriber.received == [b"live"], 10, "the message")
    finally:
        subscriber.close()


def test_the_embedded_broker_keeps_a_persistent_session(embedded_broker):
    first = Subscriber(embedded_broker, "gw-session-kept")
    first.close()
    _publish(embedded_broker, b"while away")
    again = Subscriber(embedded_broker, "gw-session-kept")
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
client.username_pw_set("gridwatch", sys.argv[3])
client.manual_ack_set(True)  # takes the message and never acknowledges it, like a crash
client.on_connect = lambda c, *a: c.subscribe("sessions/+", qos=1)
client.on_subscribe = lambda *a: print("subscribed", flush=True)
client.on_message = lambda c, u, m: print("got", m.payload.decode(), flush=True)
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
"""


def test_the_embedded_broker_redelivers_what_a_crashed_subscriber_held(
    embedded_broker, tmp_path, request
):
    if embedded_broker.kind == "amqtt":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="amqtt 0.12 neither resends a QoS 1 message its subscriber took but "
                "never acknowledged when the session reconnects (MQTT-4.4.0-1) nor keeps it "
                "past its 5 s PUBACK wait: without mosquitto installed, a crashed worker "
                "loses what it held uncommitted",
            )
        )
    script = tmp_path / "subscriber.py"
    script.write_text(_CRASHING_SUBSCRIBER)
    with open(tmp_path / "out.txt", "w") as out:
        crashing = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(embedded_broker.port),
                "gw-session-crash",
                embedded_broker.password,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        output = tmp_path / "out.txt"
        wait_for(lambda: "subscribed" in output.read_text(), 10, "the subscription")
        _publish(embedded_broker, b"held")
        wait_for(lambda: "got held" in output.read_text(), 10, "the delivery")
    finally:
        crashing.kill()
        crashing.wait(10)
    again = Subscriber(embedded_broker, "gw-session-crash")
    try:
        wait_for(lambda: again.received == [b"held"], 3, "the unacknowledged message again")
    finally:
        again.close()
