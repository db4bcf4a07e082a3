"""Hazard clocks run in `gridwatch alerts`: a hazard that comes over MQTT, with only the
ingest worker and the alert process running (no API), has its deadline from the moment it
is stored and goes a level up when it is overdue on the alert process's clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.support.alert_process import running_alerts
from tests.support.api import GRID_A, Clock
from tests.support.cases import hazard_steps, stored_hazard
from tests.support.databases import point_in_grid
from tests.support.settings import make_settings
from tests.support.waiting import wait_for


def _hazard(url: str, hazard_id: str) -> tuple | None:
    hazard = stored_hazard(url, hazard_id)
    return hazard and (hazard.level, hazard.received_at, hazard.deadline_at, hazard.due_at)


def _events(url: str, hazard_id: str) -> list[tuple]:
    return [(e.action, e.to_status, e.actor) for e in hazard_steps(url, hazard_id)]


def test_a_hazard_over_mqtt_gets_its_deadline_and_escalates_without_an_api(
    tmp_path, district_database_url, mqtt_url, start_worker, publish
):
    url = district_database_url
    hours = {"critical": 3.0, "high": 24.0, "medium": 72.0, "low": 168.0}
    settings = make_settings(tmp_path, url, mqtt_url, hazard_deadlines_h=hours, hazard_check_s=0.05)
    start_worker(settings)
    lon, lat = point_in_grid(url, GRID_A)
    hazard_id = str(uuid.uuid4())
    publish(
        f"{settings.topic_prefix}/hazard/W001",
        {"id": hazard_id, "ts": datetime.now(UTC).isoformat(), "lat": lat, "lon": lon,
         "category": "gas", "severity": "critical", "description": "楼道燃气味"},
    )  # fmt: skip
    publish.flush()
    wait_for(lambda: _hazard(url, hazard_id) is not None, 20, "the hazard stored")
    # Before any alert process ran: the deadline came with the row.
    level, received, deadline, due = _hazard(url, hazard_id)
    assert (level, deadline, due) == ("grid", received + timedelta(hours=3), deadline)

    clock = Clock(datetime.now(UTC))
    with running_alerts(settings, url, mqtt_url, clock):
        clock.advance(timedelta(hours=3, minutes=30))
        wait_for(lambda: _hazard(url, hazard_id)[0] == "community", 30, "escalation")
        assert _hazard(url, hazard_id)[2:] == (deadline + timedelta(hours=3), due)
        assert _events(url, hazard_id) == [
            ("report", "reported", "W001"),
            ("escalate", "reported", "gridwatch"),
        ]
