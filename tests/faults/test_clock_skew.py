"""Scenario 7: device clocks hours off and messages delivered out of order. Each row keeps
the device's time and the time it arrived; the rules run on device time (a clock far ahead
counts as now), so nothing misfires, also not when the alert engine starts cold after the
data came in; and a sign of life that arrives late, older than one already seen, does not
move the deadline back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg

from tests.faults.harness import (
    Quiet,
    alert_of,
    assert_opens_on_time,
    assert_webhooks_once,
    open_rig,
    watch_one,
)
from tests.support.databases import count_rows
from tests.support.waiting import wait_for

AHEAD = timedelta(hours=3)
BEHIND = timedelta(hours=2)
ARRIVED_BEFORE = timedelta(minutes=10)  # the skewed homes' data came in this long before
OUT_OF_ORDER_S = 15.0


def test_clock_skew_and_out_of_order(tmp_path, district_database_url):
    url = district_database_url
    with open_rig(tmp_path, url) as rig:
        worker = rig.start_ingest()
        rig.consuming(worker)
        # Watched for two hours; quiet for an hour (three for the slow clock) is an alert.
        ahead = watch_one(url, 3600, index=0, since_s=7200)
        behind = watch_one(url, 3 * 3600, index=1, since_s=7200)
        now = datetime.now(UTC)
        for watched, skew in ((ahead, AHEAD), (behind, -BEHIND)):
            door = {"ts": (now + skew).isoformat(), "event": "door_open"}
            rig.publish(f"{rig.prefix}/sensor/{watched.door}", door)
        rig.publish.flush()
        wait_for(lambda: count_rows(url, "sensor_events") == 2, 20, "the skewed signs")
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT observed_at - %s, received_at - %s FROM sensor_events "
                "ORDER BY observed_at DESC",
                (now, now),
            ).fetchall()
            # Both times kept: the device's, as sent, and when it came.
            assert [observed for observed, _received in rows] == [AHEAD, -BEHIND]
            assert all(timedelta(0) <= received < timedelta(seconds=20) for _o, received in rows)
            # As if they had come ten minutes ago, and the engine was down since.
            conn.execute(
                "UPDATE sensor_events SET received_at = received_at - %s", (ARRIVED_BEFORE,)
            )

        # Out of order: the newest sign first, then two older ones, late.
        late = watch_one(url, OUT_OF_ORDER_S, index=2)
        last = datetime.now(UTC)
        for back in (0, 60, 120):
            door = {"ts": (last - timedelta(seconds=back)).isoformat(), "event": "door_open"}
            rig.publish(f"{rig.prefix}/sensor/{late.door}", door)
            rig.publish.flush()
            time.sleep(1.0)
        rig.start_alerts()  # a cold start, after all of it came in
        assert_opens_on_time(rig, Quiet(late, last, OUT_OF_ORDER_S))
        time.sleep(2.0)  # the engine has stepped a few times since
        for watched in (ahead, behind):
            assert alert_of(url, watched.resident_id, "no_activity") is None, "misfired"
        assert count_rows(url, "alerts") == 1
        assert_webhooks_once(rig)
