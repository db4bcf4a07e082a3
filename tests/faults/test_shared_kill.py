"""Scenario 5: two ingest workers on one shared subscription (`gridwatch ingest --shared`),
one killed mid-batch and started again with its client id: the broker gives the restarted
one what it had not acknowledged, the other goes on, and nothing is lost or doubled."""

from __future__ import annotations

from tests.faults.harness import kill_mid_batch, open_rig, stream_with_fault

TOTAL = 4000


def test_shared_subscription_worker_killed(tmp_path, district_database_url):
    with open_rig(tmp_path, district_database_url, database_proxy=True) as rig:
        workers = {
            name: rig.start_ingest(f"{rig.user}-{name}", shared="pool") for name in ("a", "b")
        }
        rig.start_alerts()
        rig.consuming(workers["a"])

        def kill_and_restart_one() -> None:
            # Both hang in a batch's write; the first dies there, the second carries on.
            kill_mid_batch(rig, workers["a"])
            workers["a"] = rig.start_ingest(f"{rig.user}-a", shared="pool")

        stream_with_fault(rig, TOTAL, 800, kill_and_restart_one)
        assert "session resumed" in workers["a"].log(), "the restarted one found its session"
        for worker in workers.values():
            assert worker.stop() == 0
        stored = [_stored(worker.log()) for worker in workers.values()]
        assert all(stored), f"both took part after the kill: {stored}"


def _stored(log: str) -> int:
    """Rows the last process writing `log` stored, from its closing report."""
    line = [x for x in log.splitlines() if "ingest: " in x and " received, " in x][-1]
    return int(line.split("received, ")[1].split(" stored")[0])
