"""Scenario 6: a burst of messages (100,000 with GRIDWATCH_FAULT_BURST=100000; 10,000 by
default) published at once while the ingest worker's link carries a tenth of what it can
take. The broker queues what the worker cannot take yet (deploy/mosquitto.conf's limits),
the worker takes it at its pace: nothing dropped by either, nothing twice."""

from __future__ import annotations

import orjson

from tests.faults.harness import assert_alert_on_time, assert_conserved, fault_seconds, open_rig

BURST = int(fault_seconds("BURST", 10_000))
# The worker ingests about 7,000 messages a second on a small machine (bench/ingest.py);
# the link is throttled to a tenth of that, in bytes of these messages on the wire.
INGEST_PER_S = 7000
SLOWED_TO = 0.10
WINDOW = 1000  # the worker's Receive Maximum here


def test_burst_against_a_slowed_consumer(tmp_path, district_database_url):
    # A window smaller than the burst: the broker must queue most of it for the worker.
    with open_rig(tmp_path, district_database_url, mqtt_receive_maximum=WINDOW) as rig:
        worker = rig.start_ingest()
        rig.start_alerts()
        rig.consuming(worker)
        messages = rig.stream(BURST)
        wire = sum(
            len(t) + len(p if isinstance(p, bytes) else orjson.dumps(p)) + 6 for t, p in messages
        ) / len(messages)
        rig.proxy.throttle(INGEST_PER_S * SLOWED_TO * wire)
        sender = rig.publish_in_background(messages, per_s=1_000_000)
        sender.join(120)
        assert not sender.is_alive()
        published_at = rig.counts()[0]
        assert published_at < BURST * 0.8, "the consumer was slower than the burst"
        assert_conserved(rig, BURST, timeout=BURST / (INGEST_PER_S * SLOWED_TO) * 2 + 30)
        rig.proxy.throttle(None)
        assert_alert_on_time(rig)
