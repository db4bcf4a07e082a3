"""Two messages with the same dedupe key: identical content is a counted duplicate, different
content is a dead letter ("same key, different content"); nothing vanishes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pytest

from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter
from tests.support.databases import count_rows

ZONE = ZoneInfo("Asia/Shanghai")
PLACE = {"lat": 40.65, "lon": 109.9}


def _worker_and_resident(url: str) -> tuple[str, str]:
    """A worker of the sample district and a resident of their grid (whom they may visit)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT w.id, r.id FROM workers w JOIN residents r ON r.grid_id = w.grid_id "
            "ORDER BY w.id, r.id LIMIT 1"
        ).fetchone()


def _pairs(now: datetime, worker: str, resident: str) -> list[tuple[str, dict, dict]]:
    """(topic, first, second): the same key, different content."""
    ts = (now - timedelta(minutes=5)).isoformat()
    hazard = {"id": str(uuid.uuid4()), "ts": ts, **PLACE, "category": "gas", "severity": "high",
              "description": "煤气味"}  # fmt: skip
    return [
        ("gw/hazard/W-1", hazard, {**hazard, "category": "fire", "description": "起火"}),
        ("gw/meter/M-1", {"ts": ts, "power_w": 5.0}, {"ts": ts, "power_w": 900.0}),
        ("gw/sensor/S-1", {"ts": ts, "event": "motion", "value": 1}, {"ts": ts, "event": "motion",
                                                                     "value": 0}),
        # A patrol point and a visit of one worker in the same second.
        (f"gw/patrol/{worker}", {"ts": ts, **PLACE}, {"ts": ts, **PLACE, "kind": "visit",
                                                      "resident_id": resident, "status": "ok"}),
    ]  # fmt: skip


def _messages(now: datetime, items: list[tuple[str, dict]]):
    router = TopicRouter("gw")
    ctx = ParseContext(now, ZONE)
    return [parse_message(router, topic, orjson.dumps(body), ctx) for topic, body in items]


@pytest.mark.parametrize("one_batch", [True, False], ids=["one batch", "two batches"])
def test_same_key_different_content_is_a_dead_letter(district_database_url, one_batch):
    database_url = district_database_url
    now = datetime.now(UTC)
    pairs = _pairs(now, *_worker_and_resident(database_url))
    firsts = _messages(now, [(topic, first) for topic, first, _ in pairs])
    seconds = _messages(now, [(topic, second) for topic, _, second in pairs])
    again = _messages(now, [(topic, first) for topic, first, _ in pairs])  # true duplicates
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZONE)
        if one_batch:
            result = writer.write(firsts + seconds + again)
        else:
            result = writer.write(firsts)
            result.add(writer.write(seconds))
            result.add(writer.write(again))
    assert sum(result.stored.values()) == len(pairs)
    assert result.dead_letters == len(pairs)
    assert result.duplicates == len(pairs)
    for message in seconds:
        assert message.reason.startswith("same key, different content"), message.reason
    with psycopg.connect(database_url) as conn:
        dead = conn.execute("SELECT topic, payload, reason FROM dead_letters").fetchall()
        category = conn.execute("SELECT category FROM hazard_reports").fetchone()[0]
    assert {(t, bytes(p)) for t, p, _ in dead} == {(m.topic, m.payload) for m in seconds}
    assert all("same key, different content" in reason for _, _, reason in dead)
    assert category == "gas"  # the first report stays as it was
    assert count_rows(database_url, "hazard_events") == 1
