"""Who to call first about a home or a case (单元长, 楼栋长): over the API and on the console's
alert and case pages, in clear only for those who may see the home's grid (each read in
clear audited as contact:<id>), masked for a request's reporter from another grid, and
nothing at all for another grid's worker, a device, a revoked token or no token. A finding of
a place's inspection calls the people of the place's building and unit."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest

from gridwatch.imports.pipelines import import_places_file
from gridwatch.imports.places import PLACES
from gridwatch.store.users import create_user, revoke_user
from tests.support.api import GRID_A, GRID_B, NOW, open_alert, reason, resident_of
from tests.support.buildings import (
    home_of,
    outside_buildings,
    people_in,
    point_in_building,
    write_lines,
)
from tests.support.cases import open_request
from tests.support.databases import audit_after, last_audit_id, query
from tests.support.places import inspection


@pytest.fixture(scope="module")
def home(seeded_url) -> tuple[str, str, str | None]:
    """A resident of grid A, their building and unit."""
    resident = resident_of(seeded_url, GRID_A)
    return (resident, *home_of(seeded_url, resident))


def test_a_residents_unit_head_comes_first_then_the_building_lead_in_clear_and_audited(
    http, seeded_url, home
):
    resident, building, unit = home
    people = people_in(seeded_url, building)
    for role in ("worker_a", "duty_community", "duty_street", "admin"):
        last = last_audit_id(seeded_url)
        answer = http[role].get(f"/residents/{resident}/first-to-call")
        assert answer.status_code == 200, answer.text
        calls = answer.json()["first_to_call"]
        assert len(calls) == len(people)
        first, second = calls[0], calls[1]
        assert (first["role"], first["unit"], first["building"]) == ("unit_head", unit, building)
        assert second["role"] == "building_lead"
        for call in calls:
            assert not call["masked"]
            assert (call["name"], call["phone"]) == people[call["id"]][:2]
        [entry] = audit_after(seeded_url, last)
        assert entry.what == f"GET /residents/{resident}/first-to-call"
        assert sorted(entry.resident_ids) == sorted(f"contact:{c}" for c in people), role


def test_another_grids_worker_a_device_and_strangers_learn_nothing(http, seeded_url, home):
    resident, building, _ = home
    last = last_audit_id(seeded_url)
    other = http["worker_b"].get(f"/residents/{resident}/first-to-call")
    missing = http["worker_b"].get("/residents/R99999/first-to-call")
    assert other.status_code == missing.status_code == 404
    assert reason(other) == f"no resident {resident!r}"
    assert reason(missing) == "no resident 'R99999'"
    assert http["device"].get(f"/residents/{resident}/first-to-call").status_code == 403
    assert http["anonymous"].get(f"/residents/{resident}/first-to-call").status_code == 401
    assert audit_after(seeded_url, last) == []
    for name, *_ in people_in(seeded_url, building).values():
        assert name not in other.text


def test_a_revoked_token_reads_nothing(module_server, seeded_url, home):
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, "leaving-worker", role="grid_worker", grid_codes=(GRID_A,))
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/residents/{home[0]}/first-to-call"
    with httpx.Client(base_url=module_server.url, headers=headers, timeout=30) as client:
        assert client.get(path).status_code == 200
        with psycopg.connect(seeded_url) as conn:
            revoke_user(conn, "leaving-worker", now=NOW)
        assert client.get(path).status_code == 401
        assert client.get("/console/alerts/1").status_code == 401


def test_the_alert_page_shows_who_to_call_to_its_grid_and_to_no_other(http, seeded_url, home):
    resident, building, _ = home
    with psycopg.connect(seeded_url) as conn:
        grid = conn.execute("SELECT grid_id FROM residents WHERE id = %s", (resident,)).fetchone()
        alert = open_alert(conn, resident, grid[0], "sos", NOW - timedelta(minutes=3))
    people = people_in(seeded_url, building)
    last = last_audit_id(seeded_url)
    page = http["worker_a"].get(f"/console/alerts/{alert}")
    assert page.status_code == 200
    assert 'id="gw-first-to-call"' in page.text and "单元长" in page.text
    for name, phone, _, _ in people.values():
        assert name in page.text and f'href="tel:{phone}"' in page.text
    entries = audit_after(seeded_url, last)
    assert {e.what for e in entries} == {f"GET /console/alerts/{alert}"}
    ids = {i for e in entries for i in e.resident_ids}
    assert ids == {resident, *(f"contact:{c}" for c in people)}
    refused = http["worker_b"].get(f"/console/alerts/{alert}")
    assert refused.status_code == 404
    assert all(name not in refused.text for name, *_ in people.values())


def _case_calls_for_grid_a_alone(http, url: str, case: str, building: str) -> list[dict]:
    """A case's people to call as grid A's worker reads them: everyone of `building`, in
    clear and audited, on the API and the case's page; grid B's worker reads none of them."""
    people = people_in(url, building)
    last = last_audit_id(url)
    calls = http["worker_a"].get(f"/cases/{case}/first-to-call").json()["first_to_call"]
    assert {c["id"] for c in calls} == set(people) and not any(c["masked"] for c in calls)
    [entry] = audit_after(url, last)
    assert sorted(entry.resident_ids) == sorted(f"contact:{c}" for c in people)
    page = http["worker_a"].get(f"/console/cases/{case}")
    assert page.status_code == 200 and 'id="gw-first-to-call"' in page.text
    assert all(name in page.text for name, *_ in people.values())
    for path in (f"/cases/{case}/first-to-call", f"/console/cases/{case}"):
        refused = http["worker_b"].get(path)
        assert refused.status_code == 404, path
        assert all(name not in refused.text for name, *_ in people.values())
    return calls


def test_a_case_in_a_building_names_its_leads_first_on_the_api_and_its_page(http, seeded_url, home):
    _, building, _ = home
    lon, lat = point_in_building(seeded_url, building)
    report = {"id": str(uuid.uuid4()), "lat": lat, "lon": lon, "category": "fire"}
    report |= {"severity": "high", "description": "楼道堆放杂物"}
    assert http["worker_a"].post("/hazards", json=report).status_code == 201
    calls = _case_calls_for_grid_a_alone(http, seeded_url, report["id"], building)
    assert [c["role"] for c in calls][:1] == ["building_lead"]
    assert http["worker_a"].get("/cases/not-a-case/first-to-call").status_code == 404
    assert http["device"].get(f"/cases/{report['id']}/first-to-call").status_code == 403

    # A case in no building has nobody to call first, and its page no card for them.
    lon, lat = outside_buildings(seeded_url, GRID_A)
    elsewhere = {**report, "id": str(uuid.uuid4()), "lon": lon, "lat": lat}
    assert http["worker_a"].post("/hazards", json=elsewhere).status_code == 201
    answer = http["worker_a"].get(f"/cases/{elsewhere['id']}/first-to-call")
    assert answer.json()["first_to_call"] == []
    assert (
        'id="gw-first-to-call"'
        not in http["worker_a"].get(f"/console/cases/{elsewhere['id']}").text
    )


def test_a_finding_of_a_places_inspection_calls_the_places_unit_and_building_first(
    http, seeded_url, home, tmp_path
):
    _, building, unit = home
    # A shop on the ground floor of the resident's stairwell, registered by its grid alone:
    # the finding's case stands where the inspector stood, in no building.
    row = f"T-CALL,楼下小超市,shop,,,,{GRID_A},,,30,{building},{unit}"
    path = write_lines(tmp_path / "places.csv", [",".join(PLACES.columns), row])
    with psycopg.connect(seeded_url) as conn:
        import_places_file(conn, path)
    shown = http["worker_a"].get("/collections/places/items/T-CALL").json()["properties"]
    assert (shown["building"], shown["unit"]) == (building, unit)
    finding = {"category": "fire", "severity": "high", "description": "消防通道堆放纸箱"}
    lon, lat = outside_buildings(seeded_url, GRID_A)
    body = inspection("T-CALL", lon, lat, NOW - timedelta(minutes=5), [finding])
    posted = http["worker_a"].post("/checkins", json=body)
    assert posted.status_code == 201, posted.text
    [(case,)] = query(seeded_url, "SELECT id::text FROM hazard_reports WHERE place_id = 'T-CALL'")

    calls = _case_calls_for_grid_a_alone(http, seeded_url, case, building)
    assert (calls[0]["role"], calls[0]["unit"], calls[0]["building"]) == (
        "unit_head",
        unit,
        building,
    )
    assert calls[1]["role"] == "building_lead"
    assert http["worker_b"].get("/collections/places/items/T-CALL").status_code == 404


def test_a_request_its_reporter_sees_from_another_grid_shows_the_people_masked(
    http, seeded_url, module_tokens, home
):
    _, building, _ = home
    point = point_in_building(seeded_url, building)
    reporter = module_tokens.names["worker_b"]
    request = open_request(seeded_url, GRID_A, "楼上漏水", at=point, reporter=reporter)
    people = people_in(seeded_url, building)
    last = last_audit_id(seeded_url)
    calls = http["worker_b"].get(f"/cases/{request}/first-to-call").json()["first_to_call"]
    assert len(calls) == len(people) and all(c["masked"] for c in calls)
    for call in calls:
        name, phone, _, _ = people[call["id"]]
        assert call["name"] != name and call["name"][0] == name[0]
        assert call["phone"] == phone[:3] + "****" + phone[-4:]
    assert audit_after(seeded_url, last) == [], "masked people are no disclosure"
    page = http["worker_b"].get(f"/console/cases/{request}")
    assert page.status_code == 200 and "已脱敏" in page.text
    assert all(name not in page.text for name, *_ in people.values())
    clear = http["worker_a"].get(f"/cases/{request}/first-to-call").json()["first_to_call"]
    assert not any(c["masked"] for c in clear)


def test_the_grids_layer_counts_buildings_units_and_contacts_at_every_level(http, seeded_url):
    features = http["admin"].get("/collections/grids/items", params={"limit": 1000}).json()
    by_code = {f["id"]: f["properties"] for f in features["features"]}
    totals = query(
        seeded_url,
        "SELECT (SELECT count(*) FROM buildings), (SELECT count(*) FROM units), "
        "(SELECT count(*) FROM contacts WHERE forgotten_at IS NULL)",
    )[0]
    assert tuple(by_code["150204"][k] for k in ("buildings", "units", "contacts")) == totals
    assert totals == (720, 2061, 2781)
    grids = [p for p in by_code.values() if p["level"] == "grid"]
    for key, total in zip(("buildings", "units", "contacts"), totals, strict=True):
        assert sum(p[key] for p in grids) == total
        community = [p for p in by_code.values() if p["level"] == "community"]
        assert sum(p[key] for p in community) == total
    [(own,)] = query(
        seeded_url,
        "SELECT count(*) FROM buildings b JOIN grids g ON g.id = b.grid_id WHERE g.code = %s",
        (GRID_B,),
    )
    assert by_code[GRID_B]["buildings"] == own > 0
