"""Scenario 1: the broker restarted mid-stream. Its persistent sessions survive (Mosquitto
with persistence on, as deploy/mosquitto.conf has it), so the ingest worker finds its
session again and what was queued for it while it was away; nothing lost, nothing twice."""

from __future__ import annotations

from tests.faults.harness import open_rig, stream_with_fault


def test_broker_restarted_mid_stream(tmp_path, district_database_url):
    with open_rig(tmp_path, district_database_url) as rig:
        worker = rig.start_ingest()
        rig.start_alerts()
        rig.consuming(worker)
        stream_with_fault(rig, 3000, 600, rig.broker.restart, at=1 / 4)
        assert "session resumed" in worker.log(), "the worker found its session again"
