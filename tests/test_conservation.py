"""The ingest process killed with SIGKILL mid-stream and started again with the same client id:
every message published is stored or dead-lettered exactly once.

This needs a broker that keeps a crashed client's session and redelivers what it had not
acknowledged: GRIDWATCH_TEST_MQTT_URL, or else a private Mosquitto started here. The embedded
amqtt broker keeps no session for the clients it lets in anonymously, and drops a message
whose acknowledgement it has waited 5 s for (see test_embedded_broker_sessions.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from gridwatch.ingest.mqtt import BrokerAddress
from tests.support.broker import publishing
from tests.support.databases import count_rows
from tests.support.ingest_streams import (
    BAD_EVERY,
    TOTAL,
    IngestProcess,
    accounted,
    assert_each_once,
    mixed_stream,
    process_env,
    published_in_thirds,
    wait_until_consuming,
)
from tests.support.ports import free_port, listening
from tests.support.settings import make_settings
from tests.support.waiting import wait_for


@pytest.fixture
def durable_mqtt_url(tmp_path):
    """A broker that keeps sessions: the configured one, or a private Mosquitto."""
    url = os.environ.get("GRIDWATCH_TEST_MQTT_URL")
    if url:
        yield url
        return
    binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if binary is None:
        pytest.skip(
            "needs a broker that keeps sessions: set GRIDWATCH_TEST_MQTT_URL or install "
            "mosquitto (the embedded amqtt broker forgets anonymous sessions)"
        )
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 10000\nlog_dest stderr\n"
    )
    log_path = tmp_path / "mosquitto.log"
    with open(log_path, "wb") as log:
        broker = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_for(lambda: listening(port) or broker.poll() is not None, 10, "mosquitto")
        if broker.poll() is not None:
            pytest.skip(f"mosquitto did not start: {log_path.read_text()[-500:]}")
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        broker.terminate()
        broker.wait(10)


@pytest.fixture
def durable_publish(durable_mqtt_url):
    """Publish at QoS 1 to the durable broker; flush() waits until it has every message."""
    yield from publishing(durable_mqtt_url)


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_doubles_nothing(
    tmp_path, database_url, durable_mqtt_url, durable_publish
):
    mqtt_url, publish = durable_mqtt_url, durable_publish
    settings = make_settings(tmp_path, database_url, mqtt_url)
    client_id = settings.mqtt_client_id
    env = process_env(settings)
    log_path = tmp_path / "ingest.log"
    messages = mixed_stream(settings.topic_prefix, client_id)
    bad = TOTAL // BAD_EVERY
    third = TOTAL // 3

    def counts() -> tuple[int, int]:
        return accounted(database_url, settings.topic_prefix, client_id)

    worker = IngestProcess(env, client_id, log_path)
    try:
        wait_until_consuming(database_url, settings.topic_prefix, publish, worker)

        # A third while the worker runs, a third while it is dead, a third after.
        with published_in_thirds(messages, publish) as (killed, restarted):
            wait_for(lambda: counts()[0] >= third // 2, what="the first rows")
            worker.kill()
            killed.set()
            time.sleep(0.5)
            worker = IngestProcess(env, client_id, log_path)
            restarted.set()

        assert_each_once(counts)
        assert count_rows(database_url, "hazard_events") == count_rows(
            database_url, "hazard_reports"
        )
        assert worker.stop() == 0, worker.log()
        assert counts() == (TOTAL - bad, bad)
        assert "session resumed" in worker.log(), "the second process found the first's session"
    finally:
        worker.stop()


def test_acknowledged_messages_are_not_delivered_again(
    tmp_path, database_url, durable_mqtt_url, durable_publish, start_worker
):
    """The worker's PUBACKs (one write per batch) reach the broker: once a batch is stored and
    the worker stopped, its session holds nothing for the next client with the same id."""
    import paho.mqtt.client as mqtt

    from gridwatch.ingest.mqtt import connect_properties, new_client, probe_protocol

    settings = make_settings(tmp_path, database_url, durable_mqtt_url)
    running = start_worker(settings)
    messages = mixed_stream(settings.topic_prefix, settings.mqtt_client_id)
    for topic, payload in messages:
        durable_publish(topic, payload)
    durable_publish.flush()
    bad = TOTAL // BAD_EVERY

    def counts() -> tuple[int, int]:
        return accounted(database_url, settings.topic_prefix, settings.mqtt_client_id)

    wait_for(lambda: counts() == (TOTAL - bad, bad), what=f"all {TOTAL} messages")
    wait_for(lambda: running.stats.acked >= TOTAL, 10, "every message acknowledged")
    running.stop()

    # Resume the worker's session as another client: anything it had not acknowledged
    # would be sent again now (MQTT-4.4.0-1).
    address = BrokerAddress.from_url(durable_mqtt_url)
    protocol = probe_protocol(address)
    client = new_client(address, settings.mqtt_client_id, protocol=protocol, persistent=True)
    redelivered: list[str] = []
    resumed = threading.Event()
    client.on_message = lambda c, u, message: redelivered.append(message.topic)
    client.on_connect = lambda c, u, flags, reason, props: resumed.set()
    if protocol == mqtt.MQTTv5:
        client.connect(
            address.host, address.port, clean_start=False, properties=connect_properties(60, 100)
        )
    else:
        client.connect(address.host, address.port)
    client.loop_start()
    try:
        wait_for(resumed.is_set, 10, "the session to resume")
        time.sleep(2)
    finally:
        client.disconnect()
        client.loop_stop()
    # Only this test's topics: the session's owntracks/+/+ also queues other tests' OwnTracks
    # traffic on a shared broker while no client holds it.
    mine = (f"{settings.topic_prefix}/", f"owntracks/{settings.mqtt_client_id}/")
    assert [topic for topic in redelivered if topic.startswith(mine)] == []
