"""A case's steps reach the webhooks of the unit heads and building leads of the building its
point lies in (a finding of a place's inspection: the place's building), through the delivery
that posts alert changes (retried, each step once, under its own Idempotency-Key); and
`gridwatch contacts forget` removes a contact's details, their webhook and what still waited
for it, recorded in the audit."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import psycopg

from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.dispatch.service import run_delivery
from gridwatch.imports.pipelines import import_contacts_file, import_places_file
from gridwatch.imports.places import PLACES
from gridwatch.model.records import HazardReport
from gridwatch.settings import Settings
from gridwatch.store.contacts import first_to_call, send_case_notices
from gridwatch.store.hazards import insert_hazard, transition_hazard
from tests.support.buildings import outside_buildings, point_in_building, write_lines
from tests.support.databases import query
from tests.support.import_files import cli
from tests.support.ports import free_port
from tests.support.settings import make_settings
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

DEADLINES = deadlines_from_hours(Settings().hazard_deadlines_h)


def _with_webhook(url: str, tmp_path, hooks: dict[str, str]) -> None:
    """Import the contacts `hooks` names again, each with its webhook URL."""
    rows = query(
        url,
        "SELECT c.id, c.name, c.role, b.code, u.code, c.phone FROM contacts c "
        "JOIN buildings b ON b.id = c.building_id LEFT JOIN units u ON u.id = c.unit_id "
        "WHERE c.id = ANY(%s) ORDER BY c.id",
        (sorted(hooks),),
    )
    lines = ["contact_id,name,role,building_code,unit_code,phone,webhook_url"]
    lines += [",".join([*(v or "" for v in row), hooks[row[0]]]) for row in rows]
    with psycopg.connect(url) as conn:
        import_contacts_file(conn, write_lines(tmp_path / "hooks.csv", lines))


def _building_of(url: str, contact: str) -> tuple[str, int]:
    [(code, grid)] = query(
        url,
        "SELECT b.code, b.grid_id FROM contacts c JOIN buildings b ON b.id = c.building_id "
        "WHERE c.id = %s",
        (contact,),
    )
    return code, grid


def _report(lon: float, lat: float) -> HazardReport:
    now = datetime.now(UTC)
    return HazardReport(
        uuid.uuid4(), "W001", now, now, lon, lat, "fire", "high", "楼道堆放杂物", ()
    )


def test_a_cases_steps_reach_the_webhooks_of_its_buildings_contacts_once(
    tmp_path, district_database_url, mqtt_url
):
    url = district_database_url
    near, far = Receiver(free_port()), Receiver(free_port())
    for receiver in (near, far):
        receiver.status = 200
        receiver.start()
    try:
        # A unit head and the lead of the same building share a receiver; a building
        # elsewhere has its own.
        _with_webhook(url, tmp_path, {"UH0001": near.url, "BL0001": near.url, "BL0400": far.url})
        building, grid = _building_of(url, "UH0001")
        assert _building_of(url, "BL0400")[0] != building
        settings = make_settings(tmp_path, url, mqtt_url)
        with psycopg.connect(url) as conn:
            inside = _report(*point_in_building(url, building))
            insert_hazard(conn, inside, grid_id=grid, deadlines=DEADLINES)
            transition_hazard(
                conn, inside.id, "assign", actor="duty", now=datetime.now(UTC),
                deadlines=DEADLINES, assignee="W001",
            )  # fmt: skip
            outside = _report(109.880, 40.600)  # in no building (nor grid)
            insert_hazard(conn, outside, grid_id=None, deadlines=DEADLINES)
        assert query(url, "SELECT count(*) FROM case_notices") == [(3,)]

        stop = threading.Event()
        delivery = threading.Thread(target=run_delivery, args=(settings, url, mqtt_url, stop))
        delivery.start()
        try:
            wait_for(lambda: len(near.accepted()) == 2, 20, "both steps posted")
            time.sleep(1.0)  # two delivery rounds or more: nothing is sent again
        finally:
            stop.set()
            delivery.join(timeout=15)
        assert not delivery.is_alive()
    finally:
        near.stop()
        far.stop()
    assert far.requests == []
    bodies = [body for _, body in near.accepted()]
    assert [(b["action"], b["status"]) for b in bodies] == [
        ("report", "reported"),
        ("assign", "assigned"),
    ]
    for body in bodies:
        assert body["kind"] == "case_step" and body["case_kind"] == "hazard"
        assert body["case_id"] == str(inside.id) and body["building_code"] == building
        assert body["category"] == "fire" and body["severity"] == "high"
        assert "description" not in body and "note" not in body  # words people wrote stay home
    keys = [headers["Idempotency-Key"] for headers, _ in near.accepted()]
    assert len(set(keys)) == 2 and all(k.startswith("gridwatch-alert-outbox-") for k in keys)
    assert query(url, "SELECT count(*) FROM case_notices") == [(0,)]
    # Not on MQTT: the rows were never waiting for the broker.
    assert query(url, "SELECT count(*) FROM alert_outbox WHERE published_at IS NULL") == [(0,)]


def test_a_findings_steps_reach_the_webhooks_of_its_places_building(
    tmp_path, district_database_url
):
    url = district_database_url
    hook = "http://hooks.example.org/uh0001"
    _with_webhook(url, tmp_path, {"UH0001": hook})
    building, grid = _building_of(url, "UH0001")
    [(grid_code,)] = query(url, "SELECT code FROM grids WHERE id = %s", (grid,))
    # A place registered by its grid and building, its finding where the inspector stood.
    row = f"T-HOOK,楼下小超市,shop,,,,{grid_code},,,30,{building},"
    path = write_lines(tmp_path / "places.csv", [",".join(PLACES.columns), row])
    lon, lat = outside_buildings(url, grid_code)
    finding = replace(_report(lon, lat), place_id="T-HOOK")
    with psycopg.connect(url) as conn:
        import_places_file(conn, path)
        insert_hazard(conn, finding, grid_id=grid, deadlines=DEADLINES)
        # The same point without a place is in no building: its step reaches no one.
        insert_hazard(conn, _report(lon, lat), grid_id=grid, deadlines=DEADLINES)
        assert send_case_notices(conn, topic_prefix="gw", now=datetime.now(UTC)) == 1
    [(payload, urls)] = query(
        url,
        "SELECT o.payload, array_agg(d.url) FROM alert_outbox o "
        "JOIN webhook_deliveries d ON d.outbox_id = o.id WHERE o.case_event_id IS NOT NULL "
        "GROUP BY o.id",
    )
    assert (payload["case_id"], payload["building_code"]) == (str(finding.id), building)
    assert urls == [hook]
    assert query(url, "SELECT count(*) FROM case_notices") == [(0,)]


def test_no_contact_with_a_webhook_queues_nothing(district_database_url):
    url = district_database_url
    building, grid = _building_of(url, "UH0001")
    with psycopg.connect(url) as conn:
        insert_hazard(conn, _report(*point_in_building(url, building)), grid_id=grid,
                      deadlines=DEADLINES)  # fmt: skip
    assert query(url, "SELECT count(*) FROM case_notices") == [(0,)]


def test_forgetting_a_contact_removes_their_details_webhook_and_waiting_notices(
    tmp_path, district_database_url, mqtt_url, capsys
):
    url = district_database_url
    down = Receiver(free_port())  # never started: every post fails
    _with_webhook(url, tmp_path, {"UH0001": down.url})
    building, grid = _building_of(url, "UH0001")
    settings = make_settings(tmp_path, url, mqtt_url)
    with psycopg.connect(url) as conn:
        insert_hazard(conn, _report(*point_in_building(url, building)), grid_id=grid,
                      deadlines=DEADLINES)  # fmt: skip
    stop = threading.Event()
    delivery = threading.Thread(target=run_delivery, args=(settings, url, mqtt_url, stop))
    delivery.start()
    try:
        wait_for(
            lambda: (
                query(url, "SELECT count(*) FROM webhook_deliveries WHERE attempts > 0") == [(1,)]
            ),
            20,
            "a failed attempt",
        )
    finally:
        stop.set()
        delivery.join(timeout=15)

    assert cli("contacts", "forget", "UH0001", "--by", "社区书记", "--database-url", url) == 0
    out = capsys.readouterr().out
    assert "contact UH0001 forgotten" in out and "1 notice(s) still waiting" in out
    assert query(
        url, "SELECT name, phone, webhook_url, forgotten_at IS NOT NULL FROM contacts "
        "WHERE id = 'UH0001'"
    ) == [(None, None, None, True)]  # fmt: skip
    assert query(url, "SELECT count(*) FROM webhook_deliveries") == [(0,)]
    assert query(
        url,
        "SELECT actor, action, what, resident_ids FROM personal_data_audit ORDER BY id DESC "
        "LIMIT 1",
    ) == [("社区书记", "forget", "gridwatch contacts forget", ["contact:UH0001"])]
    with psycopg.connect(url) as conn:
        [building_id] = conn.execute("SELECT id FROM buildings WHERE code = %s", (building,))
        assert "UH0001" not in {c.id for c in first_to_call(conn, building_id[0])}
    # The grids layer counts people to call: a forgotten one no longer.
    assert cli("contacts", "forget", "UH0001", "--database-url", url) == 0
    assert "was forgotten on" in capsys.readouterr().out
    assert cli("contacts", "forget", "NOBODY", "--database-url", url) == 1
    assert "no contact 'NOBODY'" in capsys.readouterr().err
