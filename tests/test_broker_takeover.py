"""No device can take, replace or end a gridwatch service's session on the shipped broker.

A private Mosquitto runs deploy/mosquitto.conf as the fault tests run it (one loopback
listener; its listener, TLS, file, data, log and user lines replaced; every other line kept)
with the shipped deploy/mosquitto.acl and a password file written by `gridwatch devices add`.
A meter logs in with its own valid password but the ingest worker's client id and a clean
start, while the worker (a real `gridwatch ingest` process) is away and while it runs:
every reading the meter's neighbour publishes is stored all the same.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.errors import ServiceUnavailable
from gridwatch.ingest.broker_credentials import new_password, password_hash, set_password_line
from gridwatch.ingest.mqtt import BrokerAddress, broker_acknowledged, publisher
from tests.support.databases import count_rows
from tests.support.devices import add_device
from tests.support.ingest_streams import process_env
from tests.support.private_services import (
    DEPLOY_CONFIG,
    GridwatchProcess,
    PrivateMosquitto,
    mosquitto_binary,
)
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

SHIPPED_ACL = DEPLOY_CONFIG.parent / "mosquitto.acl"
SERVICE_USER = "gridwatch-ingest"  # the lone ingest worker's user in the shipped ACL

try:
    mosquitto_binary()
except ServiceUnavailable:
    pytest.skip("needs the mosquitto binary", allow_module_level=True)


class Rig:
    """The shipped broker, its service password, a meter publishing and a meter attacking."""

    def __init__(self, tmp_path: Path, database_url: str, capsys) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.password_file = tmp_path / "passwd"
        self.service_password = new_password()
        for user in (SERVICE_USER, "gridwatch-ingest-0", "gridwatch-ingest-1"):
            set_password_line(
                self.password_file, user, f"{user}:{password_hash(self.service_password)}"
            )
        meter = add_device(capsys, database_url, self.password_file, "M-1", "--kind", "meter")
        self.attacker_password = add_device(
            capsys, database_url, self.password_file, "M-2", "--kind", "meter"
        )
        self.broker = PrivateMosquitto(
            tmp_path / "mosquitto", password_file=self.password_file, acl_file=SHIPPED_ACL
        )
        self.broker.start()
        self.settings = make_settings(
            tmp_path,
            database_url,
            self.broker.user_url(SERVICE_USER, self.service_password),
            topic_prefix="gw",
        )
        self.meter = publisher(BrokerAddress.from_url(self.broker.user_url("M-1", meter)), "m1")
        self.sent = 0
        self.unheard = 0
        self.workers: list[GridwatchProcess] = []

    def start_ingest(self, *args: str, **env: str) -> GridwatchProcess:
        log = self.tmp_path / f"ingest-{len(self.workers)}.log"
        worker = GridwatchProcess(process_env(self.settings, **env), ["ingest", *args], log)
        self.workers.append(worker)
        return worker

    def publish(self, count: int, per_s: float | None = None) -> None:
        """`count` readings of M-1, each at its own minute, acknowledged by the broker."""
        infos = []
        for _ in range(count):
            self.sent += 1
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=self.sent)
            payload = orjson.dumps({"ts": at.isoformat(), "power_w": float(self.sent)})
            infos.append(self.meter.publish("gw/meter/M-1", payload, qos=1))
            if per_s:
                time.sleep(1 / per_s)
        for info in infos:
            wait_for(functools.partial(broker_acknowledged, info), 30, "the broker's ack")

    def stored(self) -> int:
        return count_rows(self.database_url, "meter_readings", "meter_id = 'M-1'")

    def consuming(self, worker: GridwatchProcess) -> None:
        """Publish until one reading is stored: before its first subscription a worker has
        no session for messages to wait in."""

        def one_more() -> bool:
            assert worker.process.poll() is None, f"gridwatch exited:\n{worker.log()}"
            self.publish(1)
            time.sleep(0.2)
            return self.stored() > 0

        wait_for(one_more, 30, "the worker to subscribe")
        time.sleep(0.5)
        self.unheard = self.sent - self.stored()  # published before the first subscription

    def all_stored(self) -> bool:
        return self.stored() == self.sent - self.unheard

    def take_over(self, client_id: str) -> None:
        """Log in as meter M-2 with `client_id` and a clean start (MQTT 5 and 3.1.1), then
        leave: on a broker that keys sessions by client id alone this ends the session."""
        for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
            v5 = protocol == mqtt.MQTTv5
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=protocol,
                **({} if v5 else {"clean_session": True}),
            )
            client.username_pw_set("M-2", self.attacker_password)
            answered = threading.Event()
            client.on_connect = lambda *args, answered=answered: answered.set()
            client.connect("127.0.0.1", self.broker.port, **({"clean_start": True} if v5 else {}))
            client.loop_start()
            assert answered.wait(10), "the broker answered the meter's CONNECT"
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.meter.disconnect()
        self.meter.loop_stop()
        self.broker.stop()


@pytest.fixture
def rig(tmp_path, database_url, capsys):
    running = Rig(tmp_path, database_url, capsys)
    yield running
    running.close()


def _worker_ids(settings) -> list[str]:
    """Every client id a worker could have: the settings', the default, its user's."""
    return [settings.mqtt_client_id, "gridwatch-ingest", SERVICE_USER, f"{SERVICE_USER}-x"]


def test_a_device_cannot_end_the_session_of_an_absent_worker(rig):
    worker = rig.start_ingest()
    rig.consuming(worker)
    assert worker.stop() == 0
    for client_id in _worker_ids(rig.settings):
        rig.take_over(client_id)
    before = rig.stored()
    rig.publish(20)
    worker = rig.start_ingest()
    wait_for(
        rig.all_stored,
        30,
        f"all 20 readings queued while away (have {rig.stored() - before})\n{worker.log()}",
    )
    assert "session resumed" in worker.log()


def test_a_device_cannot_take_the_session_of_a_running_worker(rig):
    worker = rig.start_ingest()
    rig.consuming(worker)
    before = rig.stored()
    sender = threading.Thread(target=rig.publish, args=(300, 100.0))
    sender.start()
    for _ in range(4):
        time.sleep(0.5)
        for client_id in _worker_ids(rig.settings):
            rig.take_over(client_id)
    sender.join(60)
    wait_for(
        rig.all_stored,
        30,
        f"all 300 readings (have {rig.stored() - before})\n{worker.log()}",
    )
    assert "disconnected" not in worker.log(), "the worker kept its connection"


def test_workers_on_a_shared_subscription_log_in_as_their_own_users(rig):
    # One password in the environment, each worker its own user (as the systemd units do).
    workers = [
        rig.start_ingest("--shared", "gridwatch", MQTT_USER=f"gridwatch-ingest-{n}") for n in (0, 1)
    ]
    rig.consuming(workers[0])
    for worker in workers:
        wait_for(lambda worker=worker: "connected to" in worker.log(), 30, "both connected")
    time.sleep(1.0)  # the second one's SUBSCRIBE follows its CONNACK
    rig.publish(400)
    wait_for(rig.all_stored, 30, "every reading once")
    for worker in workers:
        assert worker.stop() == 0
    took_part = [_received(worker.log()) for worker in workers]
    assert all(took_part), f"both workers took part: {took_part}"


def _received(log: str) -> int:
    """Messages the worker writing `log` received, from its closing report."""
    line = [x for x in log.splitlines() if "ingest: " in x and " received, " in x][-1]
    return int(line.split("ingest: ")[1].split(" received")[0])
