"""A full `gridwatch demo` as a process on its embedded defaults — PostgreSQL, broker,
simulator, ingest, alerts, API — with a duty officer reading residents' details, and MQTT
and HTTP input that carries residents' names and phones: no name, phone or address of a
sample resident may appear in its output or in any of its logs (PostgreSQL's included)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

import httpx
import orjson
import pytest

from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.simulators.district import build_sample_district
from tests.support.demo import LIVE_LINE, OFFICER_LINE, demo_env, wait_for_line

RUN_S = 60


def _exercise(base: str, token: str, mqtt_url: str, residents) -> list[str]:
    """What a duty officer and the devices do; returns the API's answers (which do hold
    personal information: it must reach the duty officer, not the logs)."""
    first = next(r for r in residents if any(s.endswith("-pendant") for s in r.sensor_ids))
    pendant = next(s for s in first.sensor_ids if s.endswith("-pendant"))
    second = residents[-1]
    words = f"{first.name} {first.phone} {first.address}"
    client = publisher(BrokerAddress.from_url(mqtt_url), f"privacy-{uuid.uuid4().hex[:6]}")
    messages = [
        (f"gw/sensor/{pendant}", {"event": "sos"}),
        (
            "gw/patrol/W001",
            {
                "lat": first.lat,
                "lon": first.lon,
                "kind": "visit",
                "resident_id": first.resident_id,
                "status": "concern",
                "note": words,
            },
        ),
        ("gw/patrol/W001", {"lat": 999, "lon": first.lon, "note": words}),  # a dead letter
        ("gw/patrol/W001", f'{{"note": "{words}", "lat": '),  # not even JSON
        ("gw/hazard/W001", {"id": str(uuid.uuid4()), "lat": first.lat, "lon": first.lon,
                            "category": "other", "severity": "low", "description": words}),
    ]  # fmt: skip
    for topic, payload in messages:
        body = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        client.publish(topic, body, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    answers = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        deadline = time.monotonic() + 30
        alerts = []
        while not alerts and time.monotonic() < deadline:  # the SOS becomes an alert
            alerts = api.get("/collections/alerts/items", params={"kind": "sos"}).json()
            alerts = alerts["features"]
            time.sleep(0.5)
        answers.append(orjson.dumps(alerts).decode())
        for path, params in (
            ("/collections/residents/items", {"pii": "true", "limit": 100}),
            (f"/collections/residents/items/{second.resident_id}", {}),
            ("/maps/overview", {}),
            ("/maps/live", {}),
            (f"/maps/grids/{first.grid_code}", {}),
            ("/ledger.csv", {}),
            ("/audit", {}),  # not an admin: refused
        ):
            answers.append(api.get(path, params=params).text)
        answers.append(api.get(f"/collections/residents/items/{first.name}").text)  # a 404
        for path, body in (
            ("/absences", {"resident_id": first.resident_id, "starts_at": "2026-11-23T08:00",
                           "ends_at": "2026-11-24T08:00", "note": words}),
            ("/absences", {"resident_id": first.resident_id, "note": words}),  # refused
            ("/checkins", {"lat": "north", "note": words}),  # refused
        ):  # fmt: skip
            answers.append(api.post(path, json=body).text)
        replay = {"after": 0}
        with api.stream("GET", "/alerts/stream", params=replay, timeout=20) as stream:
            for line in stream.iter_lines():  # the SOS alert's events come at once
                answers.append(line)
                if line.startswith("data:"):
                    break
    with httpx.Client(base_url=base, timeout=30) as browser:
        browser.post("/login", data={"token": token})
        answers.append(browser.get("/maps/overview").text)
    return answers


@pytest.mark.slow
def test_a_full_demo_logs_no_residents_personal_information(tmp_path, demo_data):
    residents = build_sample_district().residents
    data = demo_data
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    env = demo_env(data)
    command = [sys.executable, "-m", "gridwatch", "demo", "-v", "--seconds", str(RUN_S)]
    with out.open("w") as stdout, err.open("w") as stderr:
        demo = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
        try:
            mqtt_url = wait_for_line(out, r"MQTT broker: (\S+)", demo, 120)[1]
            base, token = wait_for_line(out, OFFICER_LINE, demo, 180).groups()
            wait_for_line(out, LIVE_LINE, demo, 180)
            answers = _exercise(base, token, mqtt_url, residents)
            demo.wait(timeout=RUN_S + 120)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    assert demo.returncode == 0, err.read_text()[-3000:]
    answered = "\n".join(answers)
    assert residents[0].name in answered and residents[-1].phone in answered, (
        "the duty officer saw no one's details: the scan below would prove nothing"
    )
    logs = {"stdout": out.read_text(), "stderr": err.read_text()}
    logs |= {str(p.relative_to(data)): p.read_text(errors="replace") for p in data.rglob("*.log")}
    assert "postgres/postgres.log" in logs and "alert engine" in logs["stderr"]
    secrets = {r.name for r in residents} | {r.phone for r in residents if r.phone}
    secrets |= {r.address for r in residents}
    personal = re.compile("|".join(map(re.escape, sorted(secrets, key=len, reverse=True))))
    leaks = [
        f"{where}: {line.strip()[:200]}"
        for where, text in logs.items()
        for line in text.splitlines()
        if personal.search(line)
    ]
    assert not leaks, "personal information in the demo's output or logs:\n" + "\n".join(leaks[:20])
