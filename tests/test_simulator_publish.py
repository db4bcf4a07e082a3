"""`gridwatch simulate` through a real broker: a paced scenario run and a fixed-rate load,
each received whole by a subscriber."""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.ingest.mqtt import BrokerAddress
from gridwatch.settings import Settings
from gridwatch.simulate_commands import register as add_simulate_command
from gridwatch.simulators.cli import scenario_from_args
from gridwatch.simulators.faults import read_ground_truth
from tests.support.waiting import wait_for


class Subscriber:
    """Collects every message under a topic filter at QoS 1."""

    def __init__(self, url: str, topic_filter: str) -> None:
        address = BrokerAddress.from_url(url)
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gw-test-sim-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, m, r, p: self.subscribed.set()
        self.client.on_message = self._on_message
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 20, "the subscription")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.received.append((message.topic, message.payload))

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def simulate_args(*argv: str) -> argparse.Namespace:
    """Parse `gridwatch simulate ARGV` the way the CLI will once the command is wired in."""
    parser = argparse.ArgumentParser(prog="gridwatch")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mqtt-url")
    add_simulate_command(parser.add_subparsers(), common)
    return parser.parse_args(["simulate", *argv])


@pytest.fixture
def settings(mqtt_url, tmp_path) -> Settings:
    return Settings(mqtt_url=mqtt_url, topic_prefix=f"tsim{uuid.uuid4().hex[:8]}",
                    data_dir=tmp_path)  # fmt: skip


def test_simulate_publishes_a_paced_run_that_a_subscriber_receives(settings, tmp_path, capsys):
    truth_file = tmp_path / "truth.jsonl"
    # 30 simulated minutes of the morning round at 3600x: about half a second of wall time.
    args = simulate_args(
        "--speed", "3600", "--start", "2026-11-23T08:25:00+08:00", "--days", "0.02",
        "--residents", "20", "--seed", "3", "--ground-truth", str(truth_file),
    )  # fmt: skip
    everything = list(scenario_from_args(settings, args).messages())
    # OwnTracks topics have no prefix, so other tests' traffic may share them: not counted.
    expected = Counter(
        (topic, payload)
        for _, topic, payload in everything
        if topic.startswith(settings.topic_prefix + "/")
    )
    kinds = Counter(topic.split("/")[1] for topic, _ in expected)
    assert kinds["meter"] and kinds["patrol"]
    subscriber = Subscriber(settings.mqtt_url, f"{settings.topic_prefix}/#")
    try:
        started = time.monotonic()
        assert args.run(settings, args) == 0
        elapsed = time.monotonic() - started
        wait_for(lambda: subscriber.count() >= expected.total(), 30, "every message")
        time.sleep(0.2)  # nothing more should come
        assert Counter(subscriber.received) == expected
    finally:
        subscriber.close()
    assert 0.3 < elapsed < 15  # paced: 28.8 simulated minutes / 3600
    assert f"published {len(everything):,} messages" in capsys.readouterr().out
    records = read_ground_truth(truth_file)
    assert records and all("kind" in r and "at" in r for r in records)


def test_simulate_load_publishes_at_the_rate_asked(settings, capsys):
    args = simulate_args("--load", "--devices", "50", "--rate", "400", "--duration", "1")
    subscriber = Subscriber(settings.mqtt_url, f"{settings.topic_prefix}/meter/+")
    try:
        started = time.monotonic()
        assert args.run(settings, args) == 0
        elapsed = time.monotonic() - started
        wait_for(lambda: subscriber.count() >= 400, 30, "400 load messages")
        time.sleep(0.2)
        assert subscriber.count() == 400
    finally:
        subscriber.close()
    assert 0.9 < elapsed < 10
    assert len({topic for topic, _ in subscriber.received}) == 50
    assert "published 400 messages" in capsys.readouterr().out


def test_simulate_needs_a_broker_url(tmp_path):
    from gridwatch.errors import ConfigError

    args = simulate_args("--days", "0.01")
    with pytest.raises(ConfigError, match="GRIDWATCH_MQTT_URL"):
        args.run(Settings(mqtt_url=None, data_dir=tmp_path), args)
