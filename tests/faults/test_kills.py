"""Scenario 3: SIGKILL. The ingest worker killed mid-batch and started again with the same
client id: what it had not acknowledged comes again and is stored once. The alert process
killed while its alerts escalate: after a restart every alert has escalated once, and each
change reached the webhook and the broker once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from gridwatch.store.alerts import resolve_alert
from tests.faults.harness import (
    assert_published_once,
    assert_webhooks_once,
    kill_mid_batch,
    open_rig,
    sensors_of,
    stream_with_fault,
)
from tests.support.broker import Subscriber
from tests.support.databases import count_rows
from tests.support.waiting import wait_for

TOTAL = 6000
ALERTS = 20
AHEAD_S = 3 * 3600
AFTER_START_S = 4.0  # the engine's first polls, which read the last two minutes again


def test_ingest_killed_mid_batch(tmp_path, district_database_url):
    with open_rig(tmp_path, district_database_url, database_proxy=True) as rig:
        workers = [rig.start_ingest()]
        rig.start_alerts()
        rig.consuming(workers[0])

        def kill_and_restart() -> None:
            kill_mid_batch(rig, workers[0])
            workers.append(rig.start_ingest())

        stream_with_fault(rig, TOTAL, 1000, kill_and_restart)
        assert "session resumed" in workers[-1].log()


def levels(url: str) -> dict[str, int]:
    """How many 'escalated' events the alerts have, per level reached."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT level, count(*) FROM alert_events WHERE action = 'escalated' GROUP BY level"
        ).fetchall()
    return dict(rows)


def test_alert_engine_killed_mid_escalation(tmp_path, district_database_url):
    url = district_database_url
    with open_rig(tmp_path, url) as rig:
        worker = rig.start_ingest()
        alerts = rig.start_alerts()
        rig.consuming(worker)
        heard = Subscriber(rig.broker.url, f"{rig.prefix}/alerts/#", f"{rig.prefix}-duty")
        try:
            pressed = sensors_of(url, ALERTS)
            for _resident, sensor in pressed:
                rig.publish(f"{rig.prefix}/sensor/{sensor}", {"event": "sos", "ts": time.time()})
            rig.publish.flush()
            wait_for(lambda: count_rows(url, "alerts") == ALERTS, 30, f"SOS alerts\n{rig.logs()}")
            # As if opened half an hour ago, less a few seconds: one escalation comes due
            # every half second over the next ten seconds (the engine rereads open alerts
            # every 5 s).
            with psycopg.connect(url) as conn:
                conn.execute(
                    "UPDATE alerts a SET opened_at = now() - interval '30 minutes' "
                    "+ interval '6 seconds' + o.n * interval '0.5 seconds' "
                    "FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM alerts) o "
                    "WHERE o.id = a.id"
                )
            wait_for(lambda: levels(url).get("community", 0) >= ALERTS // 3, 30, "escalations")
            alerts.kill()
            assert 0 < levels(url)["community"] < ALERTS, "killed mid-escalation"
            rig.start_alerts()
            wait_for(
                lambda: levels(url).get("community", 0) == ALERTS,
                30,
                f"every alert escalated\n{rig.logs()}",
            )
            # The delivery posts one webhook at a time: one may be in flight at the kill.
            counts = assert_webhooks_once(rig, in_flight=1)
            assert levels(url) == {"community": ALERTS}, "each escalated once"
            assert len(counts) == 2 * ALERTS, "an open and an escalation per alert"
            assert_published_once(heard, counts)
        finally:
            heard.close()


def test_alert_engine_killed_after_an_sos_was_resolved(tmp_path, district_database_url):
    """People resolve two SOS alerts, one pressed on a device whose clock is three hours
    ahead; the alert process is killed and started again while the presses are among the
    last minutes' arrivals, which its first poll reads again: no second alert."""
    url = district_database_url
    with open_rig(tmp_path, url) as rig:
        worker = rig.start_ingest()
        alerts = rig.start_alerts()
        rig.consuming(worker)
        for (_resident, sensor), ahead in zip(sensors_of(url, 2), (0, AHEAD_S), strict=True):
            sos = {"event": "sos", "ts": time.time() + ahead}
            rig.publish(f"{rig.prefix}/sensor/{sensor}", sos)
        rig.publish.flush()
        wait_for(lambda: count_rows(url, "alerts") == 2, 30, f"the SOS alerts\n{rig.logs()}")
        with psycopg.connect(url) as conn:
            for (alert_id,) in conn.execute("SELECT id FROM alerts").fetchall():
                resolve_alert(
                    conn,
                    alert_id,
                    actor="grid worker",
                    reason="pressed by mistake",
                    checked=True,
                    now=datetime.now(UTC),
                    topic_prefix=rig.prefix,
                    webhooks=rig.settings.alert_webhooks,
                )
        time.sleep(2.0)
        alerts.kill()
        rig.start_alerts()
        wait_for(lambda: "watching" in rig.processes[-1].log(), 20, "the engine back")
        time.sleep(AFTER_START_S)
        assert count_rows(url, "alerts") == 2, f"an SOS opened again\n{rig.logs()}"
        assert_webhooks_once(rig)
