"""The live streams: alert events (and the steps of cases on /cases/stream) in id order,
resumed with Last-Event-ID with none lost or repeated, only the caller's grids, and no event
skipped when transactions commit out of id order."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.api.stream import AlertFeed
from gridwatch.simulators.sample import load_police_grids
from gridwatch.store.alerts import write_event
from gridwatch.store.users import create_user, revoke_user
from tests.support.api import GRID_A, GRID_B, NOW, ApiServer, Clock, api_settings, residents_in
from tests.support.cases import level2_warnings
from tests.support.databases import point_in_grid


@pytest.fixture(scope="module")
def server(seeded_url, tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("sse"), seeded_url)
    with ApiServer(settings, seeded_url, Clock(), feed_poll_s=0.05) as running:
        yield running


def _alerts(url: str, code: str, count: int) -> list[OpenAlert]:
    """`count` alerts of residents in grid `code`, opened here for the test."""
    made = []
    residents = residents_in(url, code, count, last=True)
    with psycopg.connect(url) as conn:
        for resident, grid in residents:
            kind = f"test-{uuid.uuid4().hex[:8]}"
            alert_id = conn.execute(
                "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (resident, kind, grid, NOW, NOW),
            ).fetchone()[0]
            made.append(OpenAlert(alert_id, resident, kind, NOW, "open", "grid", NOW))
    assert len(made) == count
    return made


def _emit(url: str, alert: OpenAlert, n: int, note: str = "test") -> list[int]:
    """Write `n` events of `alert` (each in its own transaction, as the engine would)."""
    ids = []
    with psycopg.connect(url) as conn:
        for i in range(n):
            with conn.transaction():
                conn.execute("UPDATE alerts SET updated_at = now() WHERE id = %s", (alert.id,))
                ids.append(write_event(conn, alert, NOW, "escalated", "test", f"{note} {i}"))
    return ids


def _hears_only(
    stream: Stream, url: str, unheard: tuple[OpenAlert, int, str], heard: tuple[OpenAlert, str]
) -> dict:
    """Write the `unheard` alert's events (how many, their note), then one of the `heard`
    alert: that one is the next event the stream gives (it then closes); its data."""
    _emit(url, *unheard)
    expected = _emit(url, heard[0], 1, heard[1])
    got = stream.take(1, within_s=20)
    stream.close()
    assert [int(e["id"]) for e in got] == expected
    return got[0]["data"]


class Stream:
    """One SSE connection; `take(n)` reads the next n events."""

    def __init__(
        self, client, headers=None, path: str = "/alerts/stream", name: str = "alert"
    ) -> None:
        self._context = client.stream("GET", path, headers=headers or {})
        self.response = self._context.__enter__()
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()
        # The first block is a comment sent once the stream is subscribed to the feed.
        assert next(self._lines).startswith("retry:")
        assert next(self._lines).startswith(f": gridwatch {name} stream")

    def events(self, within_s: float | None = None):
        """Each event as it comes, with when it came (`received`); with `within_s`, an
        AssertionError once that long has passed (checked at every line, keepalives too, so
        a stream that sends nothing more fails instead of hanging)."""
        import orjson

        deadline = None if within_s is None else time.monotonic() + within_s
        block: dict = {}
        for line in self._lines:
            if deadline is not None and time.monotonic() > deadline:
                raise AssertionError(f"no more events within {within_s} s")
            if line == "":
                if "id" in block:
                    yield {**block, "received": time.monotonic()}
                block = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                block[field] = orjson.loads(value) if field == "data" else value

    def take(self, n: int, within_s: float = 120.0) -> list[dict]:
        events = []
        for event in self.events(within_s):
            events.append(event)
            if len(events) == n:
                return events
        raise AssertionError(f"the stream ended after {len(events)} of {n} events")

    def until_closed(self, within_s: float) -> tuple[list[dict], float | None]:
        """Events until the server ends the stream (and when it did), or `within_s` passed
        (checked as events come)."""
        events, deadline = [], time.monotonic() + within_s
        for event in self.events():
            if event["received"] > deadline:
                return events, None
            events.append(event)
        return events, time.monotonic()

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class Emitter:
    """Writes an event of `alert` every `every_s` in a thread until the `with` ends."""

    def __init__(self, url: str, alert: OpenAlert, every_s: float = 0.2) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(url, alert, every_s), name="emitter", daemon=True
        )

    def _run(self, url: str, alert: OpenAlert, every_s: float) -> None:
        while not self.stop.wait(every_s):
            _emit(url, alert, 1, "emitted")

    def __enter__(self) -> Emitter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def test_resume_with_last_event_id_loses_and_repeats_nothing(server, seeded_url, module_tokens):
    alert = _alerts(seeded_url, GRID_A, 1)[0]
    with server.client("admin", module_tokens) as client:
        first = Stream(client)
        sent = _emit(seeded_url, alert, 5, "before")
        got = first.take(5)
        first.close()
        assert [int(e["id"]) for e in got] == sent
        assert {e["event"] for e in got} == {"alert"}
        assert got[0]["data"]["alert_id"] == alert.id and got[0]["data"]["state"] == "escalated"
        missed = _emit(seeded_url, alert, 7, "while away")
        second = Stream(client, {"Last-Event-ID": got[-1]["id"]})
        later = _emit(seeded_url, alert, 3, "after")
        resumed = second.take(10)
        second.close()
    ids = [int(e["id"]) for e in got + resumed]
    assert ids == sent + missed + later
    assert len(set(ids)) == len(ids)
    with psycopg.connect(seeded_url) as conn:
        stored = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM alert_events WHERE id >= %s ORDER BY id", (sent[0],)
            )
        ]
    assert ids == stored


def test_a_grid_worker_hears_only_their_own_grids(server, seeded_url, module_tokens):
    mine = _alerts(seeded_url, GRID_A, 1)[0]
    theirs = _alerts(seeded_url, GRID_B, 1)[0]
    with server.client("worker_a", module_tokens) as client:
        heard = _hears_only(Stream(client), seeded_url, (theirs, 2, "elsewhere"), (mine, "here"))
    assert heard["grid"] == GRID_A
    assert heard["resident"]["masked"] is False, "their own resident: in clear"


def test_stream_refuses_bad_resume_ids_and_devices(server, module_tokens):
    with server.client("admin", module_tokens) as client:
        bad = client.get("/alerts/stream", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 422
    with server.client("device", module_tokens) as client:
        assert client.get("/alerts/stream").status_code == 403
    with server.client() as client:
        assert client.get("/alerts/stream").status_code == 401


def test_no_event_is_skipped_when_commits_come_out_of_id_order(seeded_url):
    """T1 takes event id n and commits after T2 took n+1: the feed must hold n+1 back until
    it knows whether n will ever appear, then hand out both in order."""
    alert_a, alert_b = _alerts(seeded_url, GRID_A, 2)

    async def scenario() -> tuple[list[int], list[int], list[int], list[int]]:
        with ConnectionPool(seeded_url, min_size=1, max_size=2, open=True) as pool:
            feed = AlertFeed(pool)
            feed.watermark = await asyncio.to_thread(feed._max_id)
            queue = feed.subscribe()

            def drain() -> list[int]:
                out = []
                while not queue.empty():
                    out.append(queue.get_nowait().id)
                return out

            slow = psycopg.connect(seeded_url)
            slow.execute("UPDATE alerts SET updated_at = now() WHERE id = %s", (alert_a.id,))
            held = write_event(slow, alert_a, NOW, "escalated", "slow", None)
            fast = _emit(seeded_url, alert_b, 1, "fast")[0]
            assert fast == held + 1
            await feed.poll_once()
            before_commit = drain()
            slow.commit()
            await feed.poll_once()
            after_commit = drain()
            # A transaction that rolls back leaves a gap that never fills: it is passed once
            # every writer that held the table when the gap was seen has ended.
            slow.execute("UPDATE alerts SET updated_at = now() WHERE id = %s", (alert_a.id,))
            write_event(slow, alert_a, NOW, "escalated", "slow", None)
            after_gap = _emit(seeded_url, alert_b, 1, "after gap")[0]
            await feed.poll_once()
            while_open = drain()
            await feed.poll_once()
            still_open = drain()
            slow.rollback()
            slow.close()
            await feed.poll_once()
            return before_commit, after_commit, while_open + still_open, [*drain(), after_gap]

    before_commit, after_commit, while_open, late = asyncio.run(scenario())
    assert before_commit == [], "n+1 must wait while n may still commit"
    assert len(after_commit) == 2 and after_commit[0] + 1 == after_commit[1]
    assert while_open == []
    assert late[:-1] == [late[-1]], "the rolled-back id is skipped, the next one delivered"


def test_the_gap_rule_on_made_up_rows():
    """No database: rows and the writers holding alert_events before and after reading."""
    feed = AlertFeed(pool=None)  # type: ignore[arg-type]
    feed.watermark = 10
    none, t1, t2 = frozenset(), frozenset({"3/7"}), frozenset({"4/9"})

    def rows(*ids):
        return [type("Row", (), {"id": i})() for i in ids]

    ready = feed._ready(rows(11, 13), none, t1)  # 12 missing while 3/7 writes: hold 13
    assert [r.id for r in ready] == [11] and feed.watermark == 11
    assert feed._ready(rows(13), t1 | t2, t2) == []  # 3/7 still running
    ready = feed._ready(rows(13, 14), t2, t2)  # 3/7 ended (and 12 never came): move on
    assert [r.id for r in ready] == [13, 14] and feed.watermark == 14
    assert feed._ready(rows(16), none, none) == [] and feed.watermark == 14
    # Nobody held the table after that read: the next read settles the gap at once.
    assert [r.id for r in feed._ready(rows(15, 16), none, none)] == [15, 16]


# -- an open stream follows its user ------------------------------------------------------------


def _worker(url: str, code: str) -> tuple[str, str]:
    """A new grid worker of grid `code`: (name, token)."""
    name = f"W-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url) as conn:
        return name, create_user(conn, name, role="grid_worker", grid_codes=(code,))


def test_a_revoked_users_open_stream_ends(server, seeded_url):
    """The server checks the stream's user every second here (no token cache): once the
    user is revoked, the stream ends within a few seconds and sends nothing more."""
    name, token = _worker(seeded_url, GRID_A)
    alert = _alerts(seeded_url, GRID_A, 1)[0]
    headers = {"Authorization": f"Bearer {token}"}
    with server.client() as client, Emitter(seeded_url, alert):
        stream = Stream(client, headers)
        assert stream.take(2)[0]["data"]["resident"]["masked"] is False
        with psycopg.connect(seeded_url) as conn:
            revoke_user(conn, name, now=datetime.now(UTC))
        revoked = time.monotonic()
        after, closed = stream.until_closed(within_s=20)
        stream.close()
    assert closed is not None, "the revoked user's stream stayed open"
    assert closed - revoked < 5, f"closed {closed - revoked:.1f} s after the revocation"
    assert all(e["received"] - revoked < 2.5 for e in after), "sent on after the revocation"


def test_a_demoted_users_open_stream_ends(server, seeded_url):
    name, token = _worker(seeded_url, GRID_A)
    alert = _alerts(seeded_url, GRID_A, 1)[0]
    with server.client() as client, Emitter(seeded_url, alert):
        stream = Stream(client, {"Authorization": f"Bearer {token}"})
        stream.take(1)
        with psycopg.connect(seeded_url) as conn:
            conn.execute("UPDATE api_users SET role = 'device' WHERE name = %s", (name,))
        demoted = time.monotonic()
        _, closed = stream.until_closed(within_s=20)
        stream.close()
    assert closed is not None and closed - demoted < 5


def test_an_open_stream_follows_its_users_grids(server, seeded_url):
    name, token = _worker(seeded_url, GRID_A)
    old, new = _alerts(seeded_url, GRID_A, 1)[0], _alerts(seeded_url, GRID_B, 1)[0]
    with server.client() as client:
        stream = Stream(client, {"Authorization": f"Bearer {token}"})
        _emit(seeded_url, old, 1, "before the move")
        assert stream.take(1)[0]["data"]["grid"] == GRID_A
        with psycopg.connect(seeded_url) as conn:
            conn.execute(
                "UPDATE api_user_grids SET grid_id = (SELECT id FROM grids WHERE code = %s) "
                "WHERE user_id = (SELECT id FROM api_users WHERE name = %s)",
                (GRID_B, name),
            )
        time.sleep(1.5)  # the stream looks its user up every second here
        heard = _hears_only(
            stream, seeded_url, (old, 1, "old grid, after the move"), (new, "new grid")
        )
    assert heard["grid"] == GRID_B


def test_catching_up_reads_the_history_a_page_at_a_time(server, seeded_url, module_tokens):
    """Last-Event-ID: 0 after 20,000 events: the server holds a page of them at a time, not
    all (all of them took some 10 MB here, 25 MB at 50,000)."""
    alert = _alerts(seeded_url, GRID_A, 1)[0]
    count = 20_000
    with psycopg.connect(seeded_url) as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0]
        last = conn.execute(
            "INSERT INTO alert_events (alert_id, at, action, actor, note, level) "
            "SELECT %s, %s, 'escalated', 'test', 'bulk ' || i, 'grid' "
            "FROM generate_series(1, %s) i RETURNING id",
            (alert.id, NOW, count),
        ).fetchall()[-1][0]
    deadline = time.monotonic() + 60
    while server.state.feed.watermark < last:  # the live feed is done with them
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with server.client("admin", module_tokens) as client:
        tracemalloc.start()
        try:
            stream = Stream(client, {"Last-Event-ID": str(start)})
            ids = []
            for line in stream._lines:
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                    if ids[-1] == last:
                        break
            stream.close()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert ids == list(range(start + 1, last + 1))
    assert peak < 4_000_000, f"catching up on {count} events peaked at {peak / 1e6:.1f} MB"


# -- level-2 dispute warnings on the same stream ------------------------------------------------


def test_level_2_warnings_come_on_the_stream_and_resume_with_the_alerts(
    server, seeded_url, module_tokens
):
    alert = _alerts(seeded_url, GRID_A, 1)[0]
    path = "/alerts/stream?warnings=true"
    with server.client("admin", module_tokens) as client:
        first = Stream(client, path=path)
        warned = level2_warnings(seeded_url, GRID_A)
        sent = _emit(seeded_url, alert, 1, "before")
        got = first.take(len(warned) + 1)
        first.close()
        by_kind = {e["event"]: [] for e in got}
        for e in got:
            by_kind[e["event"]].append(e)
        assert [e["data"]["warning_id"] for e in by_kind["warning"]] == warned
        assert [e["data"]["event_id"] for e in by_kind["alert"]] == sent
        warning = by_kind["warning"][0]["data"]
        assert (warning["state"], warning["warning_level"], warning["grid"]) == (
            "warning", 2, GRID_A,
        )  # fmt: skip
        assert warning["category"] == "劳资纠纷" and warning["reason"] == "repeated"
        last = got[-1]["id"]
        assert last == f"{max(sent)}.{max(warned)}", "every id holds both positions"
        # Away: more of both; back with Last-Event-ID, each comes once, none is lost.
        missed_alerts = _emit(seeded_url, alert, 2, "while away")
        missed_warnings = level2_warnings(seeded_url, GRID_A, "拖欠工资 欠薪半年")
        second = Stream(client, {"Last-Event-ID": last}, path=path)
        resumed = second.take(len(missed_alerts) + len(missed_warnings))
        second.close()
    alert_ids = [e["data"]["event_id"] for e in resumed if e["event"] == "alert"]
    warning_ids = [e["data"]["warning_id"] for e in resumed if e["event"] == "warning"]
    assert alert_ids == missed_alerts and warning_ids == missed_warnings


def test_a_stream_without_warnings_and_another_grids_worker_hear_none(
    server, seeded_url, module_tokens
):
    mine = _alerts(seeded_url, GRID_A, 1)[0]
    with (
        server.client("worker_a", module_tokens) as worker_a,
        server.client("admin", module_tokens) as admin,
    ):
        other_grid = Stream(worker_a, path="/alerts/stream?warnings=true")
        plain = Stream(admin)
        level2_warnings(seeded_url, GRID_B)
        expected = _emit(seeded_url, mine, 1, "after the warnings")
        assert [int(e["id"].split(".")[0]) for e in other_grid.take(1)] == expected
        assert [(e["event"], int(e["id"])) for e in plain.take(1)] == [("alert", expected[0])]
        other_grid.close()
        plain.close()


# -- the steps of cases ---------------------------------------------------------------------------


def _report(client, url: str, code: str) -> str:
    """A new hazard reported by `client` inside grid `code`: its id (its `report` step)."""
    lon, lat = point_in_grid(url, code)
    body = {"id": str(uuid.uuid4()), "lon": lon, "lat": lat, "category": "road", "severity": "low"}
    response = client.post("/hazards", json=body)
    assert response.status_code == 201, response.text
    return body["id"]


def test_the_steps_of_cases_stream_to_those_of_their_grid(server, seeded_url, module_tokens):
    cases = "/cases/stream"
    with (
        server.client("worker_a", module_tokens) as worker_a,
        server.client("worker_b", module_tokens) as worker_b,
        server.client("duty_street", module_tokens) as duty,
    ):
        desk = Stream(duty, path=cases, name="case")
        # The token's first request is a stream: its later ones do not wait for it to end.
        elsewhere = Stream(worker_b, path=cases, name="case")
        hazard = _report(worker_a, seeded_url, GRID_A)
        assert worker_a.post(f"/hazards/{hazard}/start", json={"note": "到场"}).status_code == 200
        got = desk.take(2)
        desk.close()
        assert [(e["event"], e["data"]["action"]) for e in got] == [
            ("case", "report"),
            ("case", "start"),
        ]
        step = got[1]["data"]
        assert (step["case_id"], step["kind"], step["grid"]) == (hazard, "hazard", GRID_A)
        assert (step["status"], step["actor"], step["note"]) == ("in_progress", "W001", "到场")
        hazard_id, request_id = (int(part) for part in got[1]["id"].split("."))
        assert hazard_id == step["event_id"] and request_id >= 0
        # Away: more steps; back with Last-Event-ID, each comes once, none is lost.
        resolved = {"note": "已修补"}
        assert worker_a.post(f"/hazards/{hazard}/resolve", json=resolved).status_code == 200
        theirs = _report(worker_b, seeded_url, GRID_B)
        back = Stream(duty, {"Last-Event-ID": got[1]["id"]}, path=cases, name="case")
        resumed = back.take(2)
        back.close()
        assert [(e["data"]["case_id"], e["data"]["action"]) for e in resumed] == [
            (hazard, "resolve"),
            (theirs, "report"),
        ]
        # Grid B's worker heard nothing of grid A: their own report is the first they hear.
        [first] = elsewhere.take(1)
        elsewhere.close()
        assert first["data"]["case_id"] == theirs


def test_the_case_stream_refuses_bad_resume_ids_and_devices(server, module_tokens):
    with server.client("admin", module_tokens) as client:
        for bad in ("yesterday", "1", "1.2.3", "-1.0", "1.x", "5.99999999999999999999"):
            answer = client.get("/cases/stream", headers={"Last-Event-ID": bad})
            assert answer.status_code == 422, bad
            assert "Last-Event-ID" in answer.json()["reason"], bad
        assert client.get("/cases/stream", params={"after": "1"}).status_code == 422
    with server.client("device", module_tokens) as client:
        assert client.get("/cases/stream").status_code == 403
    with server.client() as client:
        assert client.get("/cases/stream").status_code == 401


POLICE_GRID = "GA-QS-1-1-01"  # a 警格 of the sample district's police layer


def test_a_police_officer_hears_the_alerts_of_their_police_grid(server, seeded_url, tmp_path):
    """An officer given only a 警格 hears the alerts of the residents living there, live and
    on resuming with Last-Event-ID, as the alerts layer and the desk show them; the alerts
    of a resident living elsewhere are not heard."""
    with psycopg.connect(seeded_url) as conn:
        if conn.execute("SELECT 1 FROM grids WHERE system = 'police'").fetchone() is None:
            load_police_grids(conn, tmp_path)
        [(beat,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (POLICE_GRID,)).fetchall()
        token = create_user(
            conn, f"PO-{uuid.uuid4().hex[:6]}", role="grid_worker", grid_codes=(POLICE_GRID,)
        )
        alerts = []
        for placed in ("r.police_grid_id = %s", "r.police_grid_id IS DISTINCT FROM %s"):
            resident, grid = conn.execute(
                "SELECT r.id, r.grid_id FROM residents r WHERE r.grid_id IS NOT NULL AND "
                + placed
                + " ORDER BY r.id DESC LIMIT 1",
                (beat,),
            ).fetchone()
            kind = f"test-{uuid.uuid4().hex[:8]}"
            [(alert_id,)] = conn.execute(
                "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (resident, kind, grid, NOW, NOW),
            ).fetchall()
            alerts.append(OpenAlert(alert_id, resident, kind, NOW, "open", "grid", NOW))
        [(start,)] = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchall()
    mine, theirs = alerts
    officer = {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        client.headers.update(officer)
        heard = _hears_only(Stream(client), seeded_url, (theirs, 2, "elsewhere"), (mine, "here"))
        assert heard["alert_id"] == mine.id
        [resumed] = Stream(client, {"Last-Event-ID": str(start)}).take(1, within_s=20)
    assert resumed["data"]["alert_id"] == mine.id, "the replay skips the resident elsewhere"
