"""Scenario 4: the network to the broker black-holed (30 s with GRIDWATCH_FAULT_BLACKHOLE_S=30;
shorter by default): no reset, no FIN, packets just vanish. Keepalives notice it, gridwatch
reconnects when the link is back and loses nothing; an alert change made meanwhile (a duty
officer acknowledging) reaches the broker once."""

from __future__ import annotations

import time

from tests.faults.harness import (
    assert_alert_on_time,
    assert_conserved,
    assert_published_once,
    assert_webhooks_once,
    fault_seconds,
    open_rig,
    sensors_of,
)
from tests.support.broker import Subscriber
from tests.support.databases import count_rows
from tests.support.waiting import wait_for
from tests.support.webhooks import acknowledge_the_alert

HOLE_S = fault_seconds("BLACKHOLE_S", 15)
KEEPALIVE_S = 5
PER_S = 100


def test_broker_black_holed(tmp_path, district_database_url):
    url = district_database_url
    with open_rig(tmp_path, url, mqtt_keepalive_s=KEEPALIVE_S) as rig:
        worker = rig.start_ingest()
        rig.start_alerts()
        rig.consuming(worker)
        heard = Subscriber(rig.broker.url, f"{rig.prefix}/alerts/#", f"{rig.prefix}-duty")
        try:
            ((_resident, sensor),) = sensors_of(url, 1)
            rig.publish(f"{rig.prefix}/sensor/{sensor}", {"event": "sos", "ts": time.time()})
            wait_for(lambda: heard.messages, 30, f"the SOS alert on MQTT\n{rig.logs()}")

            total = int(PER_S * (HOLE_S + 10))
            sender = rig.publish_in_background(rig.stream(total), per_s=PER_S)
            wait_for(lambda: rig.counts()[0] >= PER_S * 2, 30, "the first rows")
            rig.proxy.blackhole(HOLE_S)
            acknowledge_the_alert(url, rig.settings)
            sender.join(HOLE_S + 60)
            assert not sender.is_alive()
            assert_conserved(rig, total)
            assert "disconnected from" in worker.log(), "the keepalive noticed the dead link"
            assert_alert_on_time(rig)
            counts = assert_webhooks_once(rig)
            assert count_rows(url, "alert_outbox") == len(counts) == 3  # open, ack, quiet
            assert_published_once(heard, counts)
        finally:
            heard.close()
