"""Scenario 2: PostgreSQL stopped hard for a while (60 s with GRIDWATCH_FAULT_DB_OUTAGE_S=60;
shorter by default) and started again while devices keep publishing. The ingest worker stops
acknowledging, holds no more than its MQTT 5 Receive Maximum (the broker keeps the rest),
keeps its memory, and resumes as soon as the database is back; the alert engine too: an
alert due seconds after the database is back opens on time."""

from __future__ import annotations

import re
import time

import psycopg

from gridwatch.simulators.sample import load_sample_district
from gridwatch.store.migrate import migrate
from tests.faults.harness import (
    assert_alert_on_time,
    assert_conserved,
    assert_opens_on_time,
    assert_webhooks_once,
    fault_seconds,
    last_sign_of_life,
    open_rig,
)
from tests.support.private_services import PrivatePostgres, rss_mb
from tests.support.waiting import wait_for

OUTAGE_S = fault_seconds("DB_OUTAGE_S", 20)
PER_S = 100
RECEIVE_MAXIMUM = 500
RESUMED_WITHIN_S = 3.0  # from the server accepting connections to the next rows committed
MEMORY_GROWTH_MB = 30.0
ENGINE_BACK_S = 8.0  # an alert due this long after the database is back opens on time


def sign_stored(url: str, quiet) -> bool:
    with psycopg.connect(url) as conn:
        query = "SELECT count(*) FROM sensor_events WHERE device_id = %s"
        return conn.execute(query, (quiet.watched.door,)).fetchone()[0] == 1


def test_database_stopped_and_started_again(tmp_path):
    server = PrivatePostgres(tmp_path / "pg")
    server.start()
    try:
        with psycopg.connect(server.url) as conn:
            migrate(conn)
            load_sample_district(conn, tmp_path / "sample")
        total = int(PER_S * (OUTAGE_S + 10))
        with open_rig(tmp_path, server.url, mqtt_receive_maximum=RECEIVE_MAXIMUM) as rig:
            worker = rig.start_ingest()
            rig.start_alerts()
            rig.consuming(worker)
            sender = rig.publish_in_background(rig.stream(total), per_s=PER_S)
            wait_for(lambda: rig.counts()[0] >= PER_S * 2, 30, "the first rows")
            rss_before = rss_mb(worker.pid)
            # Due a few seconds after the database is back: the engine must be back by then.
            quiet = last_sign_of_life(rig, OUTAGE_S + ENGINE_BACK_S)
            wait_for(lambda: rig.counts()[0] > 0 and sign_stored(server.url, quiet), 10, "the sign")
            server.stop(mode="immediate")
            time.sleep(OUTAGE_S)
            rss_during = rss_mb(worker.pid)
            server.start()
            back = time.monotonic()
            stored_when_stopped = rig.counts()[0]
            wait_for(
                lambda: rig.counts()[0] > stored_when_stopped,
                30,
                f"rows after the restart\n{rig.logs()}",
            )
            resumed_after = time.monotonic() - back
            sender.join(60)
            assert not sender.is_alive()
            assert_conserved(rig, total)

            held = [int(n) for n in re.findall(r"holding (\d+) messages", worker.log())]
            assert held, "the worker noticed the database was away"
            assert max(held) <= RECEIVE_MAXIMUM, "the broker stopped at the Receive Maximum"
            assert rss_during - rss_before < MEMORY_GROWTH_MB
            assert resumed_after <= RESUMED_WITHIN_S, f"resumed {resumed_after:.1f} s after"
            assert_opens_on_time(rig, quiet)
            assert_alert_on_time(rig, index=1)
            assert_webhooks_once(rig)
    finally:
        server.stop()
