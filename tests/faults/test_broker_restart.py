"""Scenario 1: the broker restarted mid-stream. Its persistent sessions survive (Mosquitto
with persistence on, as deploy/mosquitto.conf has it), so the ingest worker finds its
session again and what was queued for it while it was away; nothing lost, nothing twice."""

from __future__ import annotations

from conftest import wait_for
from harness import (
    assert_conserved,
    assert_opens_on_time,
    assert_webhooks_once,
    last_sign_of_life,
    open_rig,
)

TOTAL = 3000


def test_broker_restarted_mid_stream(tmp_path, district_database_url):
    with open_rig(tmp_path, district_database_url) as rig:
        worker = rig.start_ingest()
        rig.start_alerts()
        rig.consuming(worker)
        sender = rig.publish_in_background(rig.stream(TOTAL), per_s=600)
        wait_for(lambda: rig.counts()[0] >= TOTAL // 4, 30, "the first rows")
        rig.broker.restart()
        quiet = last_sign_of_life(rig)  # due while the rest is caught up
        sender.join(60)
        assert not sender.is_alive()
        assert_conserved(rig, TOTAL)
        assert "session resumed" in worker.log(), "the worker found its session again"
        assert_opens_on_time(rig, quiet)
        assert_webhooks_once(rig)
