"""A resident who moves (a re-import places them in another grid) takes their alerts along:
the new grid's people see them, the old grid's no longer do, and what is said about them
later goes out on the new grid's topic."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import shapely

from gridwatch.alerts.lifecycle import OpenAlert, Resolve
from gridwatch.model.rows import ResidentRow
from gridwatch.store.alert_store import AlertStore
from gridwatch.store.residents import place_in_grids, upsert_residents
from tests.support.api import GRID_A, GRID_B, NOW


def _resident_of(conn: psycopg.Connection, code: str) -> ResidentRow:
    row = conn.execute(
        "SELECT r.id, r.name, r.address, r.lat, r.lon, r.phone, r.living_alone FROM residents r "
        "JOIN grids g ON g.id = r.grid_id WHERE g.code = %s ORDER BY r.id LIMIT 1",
        (code,),
    ).fetchone()
    rid, name, address, lat, lon, phone, alone = row
    return ResidentRow(rid, name, address, lat, lon, None, None, (), phone, alone)


def _open_alert(conn: psycopg.Connection, resident_id: str) -> OpenAlert:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    alert_id = conn.execute(
        "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at) "
        "SELECT id, %s, grid_id, %s, %s FROM residents WHERE id = %s RETURNING id",
        (kind, NOW, NOW, resident_id),
    ).fetchone()[0]
    conn.commit()
    return OpenAlert(alert_id, resident_id, kind, NOW, "open", "grid", NOW)


def _move(conn: psycopg.Connection, resident: ResidentRow, code: str) -> ResidentRow:
    """Re-import the resident at a home in grid `code`, with a new address and phone."""
    wkb = conn.execute("SELECT geometry FROM grids WHERE code = %s", (code,)).fetchone()[0]
    home = shapely.from_wkb(bytes(wkb)).representative_point()
    moved = replace(
        resident, lat=home.y, lon=home.x, address="新城路88号5栋1单元202室", phone="13800138000"
    )
    grid_ids, _ = place_in_grids(conn, [moved], source="moved.csv")
    upsert_residents(conn, [moved], grid_ids, source="moved.csv")
    return moved


def test_an_alert_follows_its_resident_to_the_new_grid(http, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        resident = _resident_of(conn, GRID_A)
        alert = _open_alert(conn, resident.resident_id)
        path = f"/collections/alerts/items/{alert.id}"
        assert http["worker_a"].get(path).status_code == 200
        assert http["worker_b"].get(path).status_code == 404
        moved = _move(conn, resident, GRID_B)

        old_grid = http["worker_a"].get(path)
        assert old_grid.status_code == 404, "the old grid still reads the new address"
        assert moved.phone not in old_grid.text and moved.address not in old_grid.text
        listed = http["worker_a"].get("/collections/alerts/items", params={"limit": 10000})
        assert alert.id not in [f["id"] for f in listed.json()["features"]]
        new_grid = http["worker_b"].get(path)
        assert new_grid.status_code == 200, "the new grid cannot see the alert"
        properties = new_grid.json()["properties"]
        assert properties["grid"] == GRID_B
        assert properties["resident"]["phone"] == moved.phone

        # The engine last saw the resident in grid A; the outbox names where they are now.
        store = AlertStore(conn, topic_prefix="moves")
        store.apply([Resolve(alert, "test")], NOW, grid_codes={resident.resident_id: GRID_A})
        topic, grid_code = conn.execute(
            "SELECT topic, payload->>'grid_code' FROM alert_outbox WHERE alert_id = %s",
            (alert.id,),
        ).fetchone()
    assert (topic, grid_code) == (f"moves/alerts/{GRID_B}", GRID_B)


def test_a_moved_residents_alert_is_acknowledged_by_the_new_grid(http, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        resident = _resident_of(conn, GRID_B)
        alert = _open_alert(conn, resident.resident_id)
        _move(conn, resident, GRID_A)
    assert http["worker_b"].post(f"/alerts/{alert.id}/ack", json={}).status_code == 404
    assert http["worker_a"].post(f"/alerts/{alert.id}/ack", json={}).status_code == 200
