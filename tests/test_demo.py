"""`gridwatch demo` as a person meets it on its embedded defaults: run a second time on the
same data directory, and stopped with Ctrl-C while a browser holds the live stream open."""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from gridwatch.demo import demo_incidents, duty_officer_token
from gridwatch.simulators.district import build_sample_district
from gridwatch.store.embedded import EmbeddedPostgres
from gridwatch.store.users import principal_for_token
from tests.support.demo import LIVE_LINE, OFFICER_LINE, demo_env, wait_for_line
from tests.support.private_services import GridwatchProcess

RUN_S = 10
LEVEL_ROW = re.compile(r"^  (district|street|community|grid)\s+(\d+)\s+(\d+)(?:-(\d+))?", re.M)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_a_second_demo_run_reuses_its_duty_officer_and_counts_areas_by_level(tmp_path, demo_data):
    env = demo_env(demo_data)
    tokens: list[str] = []
    for run in (1, 2):
        log = tmp_path / f"run{run}.log"
        demo = GridwatchProcess(env, ["demo", "--seconds", str(RUN_S)], log)
        try:
            base, token = wait_for_line(log, OFFICER_LINE, demo.process, 180).groups()
            wait_for_line(log, LIVE_LINE, demo.process, 180)
            with httpx.Client(base_url=base, timeout=30) as api:
                assert api.get("/collections/alerts/items", headers=_bearer(token)).is_success
            tokens.append(token)
            assert demo.process.wait(RUN_S + 60) == 0, log.read_text()[-3000:]
        finally:
            demo.stop()
    printed = log.read_text()
    assert "1 district, 1 street, 8 communities, 110 grids, 2000 residents" in printed
    rows = {m[1]: (int(m[2]), int(m[3]), int(m[4] or m[3])) for m in LEVEL_ROW.finditer(printed)}
    assert {level: areas for level, (areas, _, _) in rows.items()} == {
        "district": 1,
        "street": 1,
        "community": 8,
        "grid": 110,
    }
    assert rows["district"][1:] == (2000, 2000)  # the whole district's residents, once
    assert rows["community"][2] < 2000 and rows["grid"][2] < rows["community"][2]
    postgres = EmbeddedPostgres(demo_data / "postgres")
    try:
        with psycopg.connect(postgres.start()) as conn:
            officers = conn.execute(
                "SELECT count(*) FROM api_users WHERE role = 'duty_officer'"
            ).fetchone()[0]
    finally:
        postgres.stop()
    assert officers == 1, f"{officers} demo duty officers after two runs"
    assert tokens[0] != tokens[1]  # each run prints a token that works (checked above)


def test_every_demo_run_prints_a_working_token_of_the_same_duty_officer(district_database_url):
    with psycopg.connect(district_database_url, autocommit=True) as conn:
        first = duty_officer_token(conn)
        second = duty_officer_token(conn)
        users = conn.execute("SELECT count(*) FROM api_users").fetchone()[0]
        officer = principal_for_token(conn, second)
        assert principal_for_token(conn, first) is None  # the earlier run's token is spent
    assert users == 1, f"{users} users after two runs"
    assert officer is not None and officer.role == "duty_officer"
    assert officer.grid_codes == ("QS-01",)


def test_the_demo_incidents_befall_residents_without_an_open_alert(district_database_url):
    district = build_sample_district()
    now = datetime.now(UTC)
    with psycopg.connect(district_database_url) as conn:
        first = demo_incidents(conn, district, now)
        assert [i.kind for i in first] == ["sos", "fall"]
        for incident in first:  # an earlier run's SOS and fall, never resolved
            conn.execute(
                "INSERT INTO alerts (resident_id, kind, since) VALUES (%s, %s, %s)",
                (incident.resident_id, incident.kind, incident.at),
            )
        conn.commit()
        again = demo_incidents(conn, district, now)
    assert [i.kind for i in again] == ["sos", "fall"]
    earlier = {i.resident_id for i in first}
    assert not earlier & {i.resident_id for i in again}, (
        "the second run's SOS or fall befalls a resident whose alert is still open: "
        "it would open no new alert"
    )
    assert all(i.at > now for i in again)


class StreamReader(threading.Thread):
    """A browser on the live duty view: holds /alerts/stream open and keeps reading."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.opened = threading.Event()

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.base, headers=_bearer(self.token)) as client,
                client.stream("GET", "/alerts/stream", timeout=60) as stream,
            ):
                for _ in stream.iter_raw():
                    self.opened.set()
        except httpx.HTTPError:
            pass  # the server went away: what a browser sees too


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_within_seconds_while_a_live_stream_is_open(tmp_path, demo_data):
    log = tmp_path / "demo.log"
    demo = GridwatchProcess(demo_env(demo_data), ["demo"], log)
    try:
        base, token = wait_for_line(log, OFFICER_LINE, demo.process, 180).groups()
        wait_for_line(log, LIVE_LINE, demo.process, 180)
        reader = StreamReader(base, token)
        reader.start()
        assert reader.opened.wait(30), "the stream did not open"
        started = time.monotonic()
        demo.process.send_signal(signal.SIGINT)
        code = demo.process.wait(30)
        took = time.monotonic() - started
    finally:
        demo.stop()
    printed = log.read_text()
    assert code == 0, printed[-3000:]
    assert "Traceback" not in printed, printed[-3000:]
    assert took < 3, f"Ctrl-C took {took:.1f} s with a live stream open\n" + printed[-2500:]
    assert "gridwatch demo stopped." in printed
