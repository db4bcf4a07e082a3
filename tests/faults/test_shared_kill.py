"""Scenario 5: two ingest workers on one shared subscription (`gridwatch ingest --shared`),
one killed mid-batch and started again with its client id: the broker gives the restarted
one what it had not acknowledged, the other goes on, and nothing is lost or doubled."""

from __future__ import annotations

import time

from conftest import wait_for
from harness import (
    assert_conserved,
    assert_opens_on_time,
    assert_webhooks_once,
    last_sign_of_life,
    open_rig,
)

TOTAL = 4000
HANG_S = 3.0


def test_shared_subscription_worker_killed(tmp_path, district_database_url):
    with open_rig(tmp_path, district_database_url, database_proxy=True) as rig:
        first = rig.start_ingest(f"{rig.user}-a", shared="pool")
        second = rig.start_ingest(f"{rig.user}-b", shared="pool")
        rig.start_alerts()
        rig.consuming(first)
        sender = rig.publish_in_background(rig.stream(TOTAL), per_s=800)
        wait_for(lambda: rig.counts()[0] >= TOTAL // 3, 30, "the first rows")
        # Both hang in a batch's write; the first dies there, the second carries on after.
        rig.db_proxy.blackhole(HANG_S)
        time.sleep(1.0)
        first.kill()
        first = rig.start_ingest(f"{rig.user}-a", shared="pool")
        quiet = last_sign_of_life(rig)  # due while the rest is caught up
        sender.join(60)
        assert not sender.is_alive()
        assert_conserved(rig, TOTAL)
        assert "session resumed" in first.log(), "the restarted one found its session"
        assert_opens_on_time(rig, quiet)
        assert_webhooks_once(rig)
        for worker in (first, second):
            assert worker.stop() == 0
        stored = [_stored(worker.log()) for worker in (first, second)]
        assert all(stored), f"both took part after the kill: {stored}"


def _stored(log: str) -> int:
    """Rows the last process writing `log` stored, from its closing report."""
    line = [x for x in log.splitlines() if "ingest: " in x and " received, " in x][-1]
    return int(line.split("received, ")[1].split(" stored")[0])
