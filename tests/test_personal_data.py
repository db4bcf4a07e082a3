"""Residents' personal information: every response that shows it in clear is audited in its
own request, administrators read the audit (API and CLI), and `gridwatch residents forget`
removes a resident's personal information while their anonymous history stays."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from datetime import timedelta

import orjson
import psycopg
import pytest

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.cli import main
from gridwatch.model.rows import ResidentRow
from gridwatch.store.alerts import write_event
from gridwatch.store.partitions import ensure_partitions
from gridwatch.store.residents import upsert_residents
from tests.support.api import GRID_A, NOW, reason
from tests.support.databases import audit_after, last_audit_id, query


def _one_entry(url: str, last: int, actor: str, what: str) -> set[str]:
    """The single audit row written since `last`; its residents."""
    entries = audit_after(url, last)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert (entry.actor, entry.action, entry.what) == (actor, "read", what)
    assert entry.client == "127.0.0.1"
    assert entry.role in ("admin", "duty_officer", "grid_worker")
    return set(entry.resident_ids)


def _in_clear(features) -> set[str]:
    """Residents whose name a list of alert or resident features shows in clear."""
    found = set()
    for feature in features:
        props = feature["properties"]
        person = props.get("resident", props)
        if not person["masked"] and person["name"]:
            found.add(props.get("resident_id") or feature["id"])
    return found


def _residents_with_data(url: str, grid: str | None = None) -> set[str]:
    where = "AND g.code = %s" if grid else ""
    rows = query(
        url,
        "SELECT r.id FROM residents r JOIN grids g ON g.id = r.grid_id "
        f"WHERE r.lon IS NOT NULL AND r.name IS NOT NULL {where}",
        (grid,) if grid else (),
    )
    return {row[0] for row in rows}


def test_every_response_showing_personal_information_is_audited(http, seeded_url, module_tokens):
    duty, worker, admin = http["duty_street"], http["worker_a"], http["admin"]

    last = last_audit_id(seeded_url)
    page = duty.get("/collections/residents/items", params={"pii": "true", "limit": 5}).json()
    shown = {f["id"] for f in page["features"]}
    assert len(shown) == 5
    assert _one_entry(seeded_url, last, "duty-street", "GET /collections/residents/items") == shown

    last = last_audit_id(seeded_url)
    duty.get("/collections/residents/items", params={"limit": 5}).raise_for_status()
    assert audit_after(seeded_url, last) == [], "masked residents are no disclosure"

    mine = sorted(_residents_with_data(seeded_url, GRID_A))[0]
    last = last_audit_id(seeded_url)
    assert worker.get(f"/collections/residents/items/{mine}").json()["properties"]["name"]
    assert _one_entry(seeded_url, last, "W001", f"GET /collections/residents/items/{mine}") == {
        mine
    }

    last = last_audit_id(seeded_url)
    alerts = duty.get("/collections/alerts/items", params={"limit": 1000}).json()["features"]
    assert _in_clear(alerts)
    assert _one_entry(seeded_url, last, "duty-street", "GET /collections/alerts/items") == (
        _in_clear(alerts)
    )

    alert = next(a for a in alerts if a["properties"]["status"] == "open")
    last = last_audit_id(seeded_url)
    duty.get(f"/collections/alerts/items/{alert['id']}").raise_for_status()
    resident = alert["properties"]["resident_id"]
    assert _one_entry(
        seeded_url, last, "duty-street", f"GET /collections/alerts/items/{alert['id']}"
    ) == {resident}

    last = last_audit_id(seeded_url)
    assert duty.post(f"/alerts/{alert['id']}/ack", json={}).status_code == 200
    assert _one_entry(seeded_url, last, "duty-street", f"POST /alerts/{alert['id']}/ack") == {
        resident
    }

    for client, actor, path, expected in (
        (duty, "duty-street", "/maps/overview", _residents_with_data(seeded_url)),
        (worker, "W001", f"/maps/grids/{GRID_A}", _residents_with_data(seeded_url, GRID_A)),
        (duty, "duty-street", "/maps/live", None),
    ):
        last = last_audit_id(seeded_url)
        page = client.get(path)
        assert page.status_code == 200
        audited = _one_entry(seeded_url, last, actor, f"GET {path}")
        if expected is not None:
            assert audited == expected, path
        names = query(
            seeded_url,
            "SELECT name FROM residents WHERE id = ANY(%s) LIMIT 50",
            (sorted(audited),),
        )
        # Pages carry names as they are, or \u-escaped inside their scripts' JSON.
        assert names and all(
            name in page.text or json.dumps(name)[1:-1] in page.text for (name,) in names
        ), path

    last = last_audit_id(seeded_url)
    with admin.stream("GET", "/alerts/stream", params={"after": 0}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("id: "):
                # The frame is out: its audit row was committed before it.
                entries = audit_after(seeded_url, last)
                assert [e.what for e in entries] == ["GET /alerts/stream"]
                assert entries[0].resident_ids, "the replayed events' residents"
                break


def test_the_audit_is_for_administrators(http, seeded_url):
    http["duty_street"].get("/collections/residents/items", params={"pii": "true", "limit": 3})
    resident = query(
        seeded_url, "SELECT resident_ids[1] FROM personal_data_audit ORDER BY id DESC LIMIT 1"
    )[0][0]
    admin = http["admin"]
    found = admin.get("/audit", params={"resident": resident}).json()["items"]
    assert found and all(resident in item["resident_ids"] for item in found)
    assert found[-1]["actor"] == "duty-street" and found[-1]["action"] == "read"
    first = admin.get("/audit", params={"limit": 1})
    assert len(first.json()["items"]) == 1
    following = next(link for link in first.json()["links"] if link["rel"] == "next")
    second = admin.get(following["href"]).json()["items"]
    assert second[0]["id"] > first.json()["items"][0]["id"]
    later = admin.get("/audit", params={"user": "duty-street", "since": "2999-01-01"})
    assert later.json()["items"] == []
    bad = admin.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and "RFC 3339" in reason(bad)
    for role in ("duty_street", "worker_a"):
        refused = http[role].get("/audit")
        assert refused.status_code == 403 and "administrators" in reason(refused)


@pytest.fixture(scope="module")
def forgotten(http, seeded_url):
    """A resident of grid A with an alert, an absence, a visit, readings and events, then
    forgotten with the CLI; their id and the counts of their history before."""
    resident, meter = query(
        seeded_url,
        "SELECT r.id, d.id FROM residents r JOIN grids g ON g.id = r.grid_id "
        "JOIN devices d ON d.resident_id = r.id AND d.kind = 'meter' "
        "WHERE g.code = %s ORDER BY r.id DESC LIMIT 1",
        (GRID_A,),
    )[0]
    lat, lon = query(seeded_url, "SELECT lat, lon FROM residents WHERE id = %s", (resident,))[0]
    worker = http["worker_a"]
    worker.post(
        "/absences",
        json={
            "resident_id": resident,
            "starts_at": "2026-11-20T08:00",
            "ends_at": "2026-11-21T08:00",
            "note": "去女儿家",
        },
    ).raise_for_status()
    visit = {"lat": lat, "lon": lon, "kind": "visit", "resident_id": resident, "status": "concern"}
    worker.post("/checkins", json={**visit, "note": "老人反映头晕"}).raise_for_status()
    with psycopg.connect(seeded_url) as conn:
        ensure_partitions(conn, {(NOW - timedelta(hours=1)).date()}, NOW.tzinfo)
        for minutes in (10, 20, 30):
            conn.execute(
                "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w) "
                "VALUES (%s, %s, %s, 900)",
                (meter, NOW - timedelta(minutes=minutes), NOW),
            )
        alert = conn.execute(
            "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at, resolution) "
            "SELECT id, 'test', grid_id, %s, %s, '电话联系本人无人接' FROM residents "
            "WHERE id = %s RETURNING id, resident_id, kind, since, status, level, opened_at",
            (NOW - timedelta(hours=13), NOW, resident),
        ).fetchone()
        write_event(conn, OpenAlert(*alert), NOW, "opened", "engine", "邻居说看到老人出门")
    before = _history(seeded_url, resident, meter)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        command = ["residents", "forget", resident, "--by", "dpo", "--database-url", seeded_url]
        assert main(command) == 0
    return resident, meter, before, printed.getvalue()


def _history(url: str, resident: str, meter: str) -> dict:
    """What must survive forgetting: the time series and the alert history."""
    counts = {
        "readings": "SELECT count(*) FROM meter_readings WHERE meter_id = %(m)s",
        "alerts": "SELECT count(*) FROM alerts WHERE resident_id = %(r)s",
        "alert events": "SELECT count(*) FROM alert_events e JOIN alerts a "
        "ON a.id = e.alert_id WHERE a.resident_id = %(r)s",
        "absences": "SELECT count(*) FROM absences WHERE resident_id = %(r)s",
        "check-ins of W001": "SELECT count(*) FROM patrol_checkins WHERE worker_id = 'W001'",
        "grid": "SELECT grid_id FROM residents WHERE id = %(r)s",
    }
    with psycopg.connect(url) as conn:
        params = {"r": resident, "m": meter}
        return {what: conn.execute(sql, params).fetchone()[0] for what, sql in counts.items()}


def test_forget_removes_personal_information_and_keeps_the_history(forgotten, seeded_url):
    resident, meter, before, printed = forgotten
    row = query(
        seeded_url,
        "SELECT name, phone, address, lat, lon, forgotten_at FROM residents WHERE id = %s",
        (resident,),
    )[0]
    assert row[:5] == (None,) * 5 and row[5] is not None
    assert _history(seeded_url, resident, meter) == before
    notes = query(
        seeded_url,
        "SELECT (SELECT count(*) FROM absences WHERE resident_id = %(r)s AND note IS NOT NULL),"
        " (SELECT count(*) FROM alerts WHERE resident_id = %(r)s AND resolution IS NOT NULL),"
        " (SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
        "   WHERE a.resident_id = %(r)s AND e.note IS NOT NULL),"
        " (SELECT count(*) FROM patrol_checkins WHERE resident_id = %(r)s),"
        " (SELECT count(*) FROM patrol_checkins WHERE note = '老人反映头晕')",
        {"r": resident},
    )[0]
    assert notes == (0, 0, 0, 0, 0)
    entry = query(
        seeded_url,
        "SELECT actor, action, resident_ids FROM personal_data_audit WHERE action = 'forget'",
    )
    assert entry == [("dpo", "forget", [resident])]
    assert "forgotten" in printed and "dpo" in printed


def test_the_api_and_maps_still_work_for_a_forgotten_resident(forgotten, http, seeded_url):
    resident = forgotten[0]
    worker, duty = http["worker_a"], http["duty_street"]
    last = last_audit_id(seeded_url)
    one = worker.get(f"/collections/residents/items/{resident}")
    assert one.status_code == 200
    assert one.json()["geometry"] is None and one.json()["properties"]["name"] is None
    listed = worker.get("/collections/residents/items", params={"pii": "true", "limit": 10000})
    assert resident in {f["id"] for f in listed.json()["features"]}
    alerts = worker.get("/collections/alerts/items", params={"limit": 10000}).json()["features"]
    mine = [a for a in alerts if a["properties"]["resident_id"] == resident]
    assert mine and mine[0]["geometry"] is None
    assert mine[0]["properties"]["resident"]["name"] is None
    for path in ("/maps/overview", f"/maps/grids/{GRID_A}", "/maps/live", "/coverage"):
        assert duty.get(path).status_code == 200, path
    assert not any(resident in e.resident_ids for e in audit_after(seeded_url, last)), (
        "a forgotten resident shows nothing, so no read of them is recorded"
    )


def test_forgetting_twice_or_someone_unknown(forgotten, seeded_url, capsys):
    resident = forgotten[0]
    assert main(["residents", "forget", resident, "--database-url", seeded_url]) == 0
    assert "was forgotten on" in capsys.readouterr().out
    assert main(["residents", "forget", "nobody-here", "--database-url", seeded_url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gridwatch: error: no resident 'nobody-here'"]


def test_importing_a_forgotten_resident_again_restores_them(forgotten, seeded_url):
    resident = forgotten[0]
    with psycopg.connect(seeded_url) as conn:
        grid = conn.execute("SELECT grid_id FROM residents WHERE id = %s", (resident,)).fetchone()
        row = ResidentRow(
            resident, "王桂兰", "青山区幸福路1号", 40.6, 109.9, None, None, (), None, True
        )
        upsert_residents(conn, [row], [grid[0]], source="residents.csv")
        back = conn.execute(
            "SELECT name, forgotten_at FROM residents WHERE id = %s", (resident,)
        ).fetchone()
    assert back == ("王桂兰", None)


def test_the_audit_command(forgotten, seeded_url, capsys):
    resident = forgotten[0]
    assert main(["audit", "--resident", resident, "--database-url", seeded_url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("dpo" in line and "forget" in line and resident in line for line in lines)
    assert main(["audit", "--user", "duty-street", "--json", "--database-url", seeded_url]) == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records and {r["actor"] for r in records} == {"duty-street"}
    assert {r["action"] for r in records} == {"read"}
    assert main(["audit", "--since", "2999-01-01", "--database-url", seeded_url]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "--limit", "1", "--database-url", seeded_url]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "more than 1 entries" in captured.err
    assert main(["audit", "--since", "soon", "--database-url", seeded_url]) == 1
    assert "not an ISO 8601 time" in capsys.readouterr().err


def test_an_unreadable_token_reads_no_audit(http):
    assert http["anonymous"].get("/audit").status_code == 401
    device = http["device"].get("/audit", params={"user": str(uuid.uuid4())})
    assert device.status_code == 403 and "device tokens" in reason(device)


def test_forget_redacts_the_dead_letters_that_name_the_resident(database_url):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from gridwatch.ingest.payload import ParseContext
    from gridwatch.ingest.topics import TopicRouter
    from gridwatch.ingest.worker import parse_message
    from gridwatch.ingest.writer import BatchWriter
    from gridwatch.store.personal_data import forget_resident

    name, phone, address = "王秀华", "13800138000", "幸福小区3栋2单元401"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO residents (id, name, phone, address) VALUES ('R-77', %s, %s, %s)",
            (name, phone, address),
        )
    now = datetime.now(UTC)
    hazard = {"id": str(uuid.uuid4()), "lat": 40.6, "lon": 109.9, "category": "gas",
              "severity": "urgent", "description": f"{address}有煤气味"}  # fmt: skip
    naming = [
        # A visit refused by the rule, its note naming her.
        ("gw/patrol/W-NOGRID", orjson.dumps({"lat": 40.6, "lon": 109.9, "kind": "visit",
                                             "resident_id": "R-77", "note": f"{name}头晕"})),
        # Her address in a hazard, as a JSON encoder that escapes non-ASCII writes it.
        ("gw/hazard/W-1", json.dumps(hazard).encode()),
        # Her phone in a reason too: the parser quotes the bad value.
        ("gw/meter/M-77", orjson.dumps({"power_w": 1, "ts": f"call {phone}"})),
    ]  # fmt: skip
    other = ("gw/meter/M-78", b'{"power_w": "lots"}')
    router, ctx = TopicRouter("gw"), ParseContext(now, ZoneInfo("Asia/Shanghai"))
    messages = [parse_message(router, t, p, ctx) for t, p in [*naming, other]]
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai"))
        assert writer.write(messages).dead_letters == 4
        forget_resident(conn, "R-77", actor="dpo", now=now)
        rows = conn.execute(
            "SELECT topic, payload, reason, redacted_at FROM dead_letters ORDER BY id"
        ).fetchall()
    kept = {topic: (bytes(payload), reason, redacted) for topic, payload, reason, redacted in rows}
    assert set(kept) == {topic for topic, _ in [*naming, other]}, "topics are kept"
    for topic, _ in naming:
        payload, why, redacted = kept[topic]
        assert payload == b"" and redacted is not None, topic
        assert why and name not in why and phone not in why and address not in why
    assert kept[other[0]][0] == other[1] and kept[other[0]][2] is None
    # The same message delivered again is counted on the redacted row, not stored anew.
    again = [parse_message(router, t, p, ctx) for t, p in naming]
    with psycopg.connect(database_url) as conn:
        BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai")).write(again)
        payloads = conn.execute("SELECT payload FROM dead_letters").fetchall()
    assert not [p for (p,) in payloads if name.encode() in bytes(p) or phone.encode() in bytes(p)]
    assert len(payloads) == 4


def _requests(url: str, *intakes) -> list:
    """Store requests as the API and the imports do: placed, then `open_requests`."""
    from gridwatch.store.grids import load_grid_catalog
    from gridwatch.store.requests import open_requests, place_request

    with psycopg.connect(url) as conn:
        catalog = load_grid_catalog(conn)
        placed = [(intake, place_request(intake, catalog, None)) for intake in intakes]
        return [s.request for s in open_requests(conn, placed, now=NOW)]


def test_forgetting_a_requester_removes_their_contact_and_the_audit_says_who_and_when(
    district_database_url, capsys
):
    from datetime import UTC, datetime

    from gridwatch.model.records import RequestIntake
    from gridwatch.store.requests import transition_request

    url = district_database_url
    base = {"service_code": "noise", "reporter": "12345", "requested_at": NOW,
            "received_at": NOW, "source": "hotline", "community": None}  # fmt: skip
    first, again, other = _requests(
        url,
        RequestIntake(id=uuid.uuid4(), source_key="GD-1", description="楼上装修噪音",
                      address="富强路8号3栋", requester_name="王秀华",
                      requester_phone="13912345678", requester_email="wxh@example.cn",
                      **base),
        RequestIntake(id=uuid.uuid4(), source_key="GD-2", description="楼道灯不亮",
                      address="富强路8号", requester_phone="13912345678", **base),
        RequestIntake(id=uuid.uuid4(), source_key="GD-3", description="垃圾没人清",
                      address="幸福路1号", requester_name="李明",
                      requester_phone="13700000000", **base),
    )  # fmt: skip
    with psycopg.connect(url) as conn:
        grid = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchone()[0]
        steps = [("dispatch", None, None), ("accept", None, None), ("resolve", "已协调", None),
                 ("feedback", "王女士说施工还在继续", "unsatisfied")]  # fmt: skip
        for n, (action, note, rating) in enumerate(steps):
            transition_request(
                conn, first.id, action, actor="W001", now=NOW + timedelta(minutes=n + 1),
                note=note, rating=rating, grid_id=grid,
            )  # fmt: skip
    before = datetime.now(UTC)
    command = ["requests", "forget", "GD-1", "--by", "dpo", "--database-url", url]
    assert main(command) == 0
    after = datetime.now(UTC)
    printed = capsys.readouterr().out
    assert f"request {first.id}" in printed and "1 other requests" in printed, printed
    assert "asked by dpo" in printed

    contact = (
        "SELECT requester_name, requester_phone, requester_email, address, description, "
        "status FROM requests WHERE id = %s"
    )
    for request, status in ((first, "reopened"), (again, "received")):
        row = query(url, contact, (request.id,))[0]
        assert row[:4] == (None, None, None, None), request.description
        assert row[4:] == (request.description, status), "the request itself stays"
    kept = query(url, contact, (other.id,))[0]
    assert kept[:4] == ("李明", "13700000000", None, "幸福路1号")
    notes = query(
        url, "SELECT action, note FROM request_events WHERE request_id = %s ORDER BY id",
        (first.id,),
    )  # fmt: skip
    assert ("feedback", None) in notes and ("resolve", "已协调") in notes, notes
    assert len(notes) == 5, "every step of the history stays: received and four steps"

    audit = query(
        url,
        "SELECT actor, role, action, what, resident_ids, at FROM personal_data_audit "
        "WHERE action = 'forget'",
    )
    assert len(audit) == 1, audit
    actor, role, action, what, ids, at = audit[0]
    assert (actor, role, action, what) == ("dpo", None, "forget", "gridwatch requests forget")
    assert ids == [f"request:{first.id}", f"request:{again.id}"]
    assert before <= at <= after

    assert main(["requests", "forget", str(again.id), "--database-url", url]) == 0
    assert "were already gone" in capsys.readouterr().out
    assert main(["requests", "forget", "GD-404", "--database-url", url]) == 1
    assert "no request 'GD-404'" in capsys.readouterr().err
