"""The live alert stream: events in id order, resumed with Last-Event-ID with none lost or
repeated, only the caller's grids, and no event skipped when transactions commit out of id
order."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from api_support import (
    GRID_A,
    GRID_B,
    NOW,
    ApiServer,
    Clock,
    api_settings,
    module_tokens_fixture,  # noqa: F401
    seeded_url_fixture,  # noqa: F401
)
from psycopg_pool import ConnectionPool

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.api.stream import AlertFeed
from gridwatch.store.alert_store import write_event


@pytest.fixture(scope="module")
def server(seeded_url, tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("sse"), seeded_url)
    with ApiServer(settings, seeded_url, Clock(), feed_poll_s=0.05) as running:
        yield running


def _alerts(url: str, code: str, count: int) -> list[OpenAlert]:
    """`count` alerts of residents in grid `code`, opened here for the test."""
    made = []
    with psycopg.connect(url) as conn:
        residents = conn.execute(
            "SELECT r.id, r.grid_id FROM residents r JOIN grids g ON g.id = r.grid_id "
            "WHERE g.code = %s ORDER BY r.id DESC LIMIT %s",
            (code, count),
        ).fetchall()
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


class Stream:
    """One SSE connection; `take(n)` reads the next n events."""

    def __init__(self, client, headers=None) -> None:
        self._context = client.stream("GET", "/alerts/stream", headers=headers or {})
        self.response = self._context.__enter__()
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()
        # The first block is a comment sent once the stream is subscribed to the feed.
        assert next(self._lines).startswith("retry:")
        assert next(self._lines).startswith(": gridwatch alert stream")

    def take(self, n: int) -> list[dict]:
        import orjson

        events, block = [], {}
        for line in self._lines:
            if line == "":
                if "id" in block:
                    events.append(block)
                    if len(events) == n:
                        return events
                block = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                block[field] = orjson.loads(value) if field == "data" else value
        raise AssertionError(f"the stream ended after {len(events)} of {n} events")

    def close(self) -> None:
        self._context.__exit__(None, None, None)


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
        stream = Stream(client)
        _emit(seeded_url, theirs, 2, "elsewhere")
        expected = _emit(seeded_url, mine, 1, "here")
        got = stream.take(1)
        stream.close()
    assert [int(e["id"]) for e in got] == expected
    assert got[0]["data"]["grid"] == GRID_A
    assert got[0]["data"]["resident"]["masked"] is False, "their own resident: in clear"


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
