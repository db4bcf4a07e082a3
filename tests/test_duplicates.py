"""A message delivered more than once is stored once: every kind, hazards by id, dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from conftest import count_rows, make_settings, wait_for

CHINA = timezone(timedelta(hours=8))


@pytest.fixture
def dup_settings(tmp_path, database_url, mqtt_url):
    # A short session expiry: the broker forgets this test's session soon after it ends.
    return make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=300)


def _ts(minutes_ago: int = 60) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).astimezone(CHINA).isoformat()


def _hazard(hazard_id: str, ts: str, **changes) -> dict:
    return {
        "id": hazard_id, "ts": ts, "lat": 40.65, "lon": 109.9, "category": "gas",
        "severity": "high", "description": "煤气味", **changes,
    }  # fmt: skip


def _one_of_each(prefix: str, owntracks_user: str, hazard_id: str) -> list[tuple[str, dict]]:
    ts = _ts()
    epoch = int(datetime.fromisoformat(ts).timestamp())
    return [
        (f"{prefix}/meter/M-1", {"ts": ts, "power_w": 120.5, "energy_kwh": 12.25}),
        (f"{prefix}/sensor/S-1", {"ts": ts, "event": "door_open"}),
        (f"{prefix}/patrol/W-1", {"ts": ts, "lat": 40.65, "lon": 109.9, "note": "巡查"}),
        (f"{prefix}/hazard/W-1", _hazard(hazard_id, ts)),
        (f"owntracks/{owntracks_user}/phone", {"_type": "location", "lat": 40.6, "lon": 109.8,
                                                "tst": epoch}),
    ]  # fmt: skip


TABLES = ("meter_readings", "sensor_events", "patrol_checkins", "hazard_reports")


def _counts(url: str) -> dict[str, int]:
    return {table: count_rows(url, table) for table in TABLES}


def test_each_kind_delivered_three_times_is_stored_once(dup_settings, start_worker, publish):
    s = dup_settings
    url = s.database_url
    running = start_worker(s)
    messages = _one_of_each(s.topic_prefix, s.mqtt_client_id, str(uuid.uuid4()))

    # Twice back to back (most likely one batch), then again once those are committed.
    for topic, payload in messages + messages:
        publish(topic, payload)
    publish.flush()
    wait_for(lambda: running.stats.received >= 10, what="the first two copies")
    for topic, payload in messages:
        publish(topic, payload)
    publish.flush()
    wait_for(lambda: running.stats.received >= 15, what="the third copies")

    assert _counts(url) == dict.fromkeys(TABLES, 1) | {"patrol_checkins": 2}
    assert count_rows(url, "patrol_checkins", "source = 'owntracks'") == 1
    assert count_rows(url, "hazard_events") == 1
    assert count_rows(url, "dead_letters") == 0
    assert running.stats.stored == 5
    assert running.stats.duplicates == 10


def test_a_hazard_id_reported_again_with_other_content_keeps_the_first(
    dup_settings, start_worker, publish
):
    s = dup_settings
    url = s.database_url
    running = start_worker(s)
    topic = f"{s.topic_prefix}/hazard/W-7"
    hazard_id = str(uuid.uuid4())
    publish(topic, _hazard(hazard_id, _ts(30), description="first"))
    publish.flush()
    wait_for(lambda: count_rows(url, "hazard_reports") == 1, what="the first report")
    # The client retries with an edited report under the same id, and also sends it from
    # another reporter's topic: the id is the key, not the topic or the content.
    publish(topic, _hazard(hazard_id, _ts(20), description="second", severity="critical"))
    publish(f"{s.topic_prefix}/hazard/W-8", _hazard(hazard_id, _ts(10), category="fire"))
    publish.flush()
    wait_for(lambda: running.stats.received >= 3, what="the repeated reports")

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id::text, reporter_id, description, severity, category FROM hazard_reports"
        ).fetchall()
        events = conn.execute(
            "SELECT hazard_id::text, action, to_status, actor FROM hazard_events"
        ).fetchall()
    assert rows == [(hazard_id, "W-7", "first", "high", "gas")]
    assert events == [(hazard_id, "report", "reported", "W-7")]
    assert running.stats.duplicates == 2


def test_same_hazard_id_twice_in_one_batch_gives_one_report_event(
    dup_settings, start_worker, publish
):
    s = dup_settings
    url = s.database_url
    running = start_worker(s)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for n, hazard_id in enumerate(ids):
        publish(f"{s.topic_prefix}/hazard/W-1", _hazard(hazard_id, _ts(n + 1)))
        publish(f"{s.topic_prefix}/hazard/W-2", _hazard(hazard_id, _ts(n + 1), severity="low"))
    publish.flush()
    wait_for(lambda: running.stats.received >= 40, what="40 reports")
    assert count_rows(url, "hazard_reports") == 20
    assert count_rows(url, "hazard_events") == 20
    assert count_rows(url, "hazard_events", "action = 'report'") == 20


def test_a_bad_payload_delivered_again_is_one_dead_letter_with_a_count(
    dup_settings, start_worker, publish
):
    s = dup_settings
    url = s.database_url
    running = start_worker(s)
    topic = f"{s.topic_prefix}/meter/M-9"
    bad = b'{"power_w": "lots"}'
    publish(topic, bad)
    publish(topic, bad)
    publish.flush()
    wait_for(lambda: running.stats.received >= 2, what="two copies of the bad payload")
    with psycopg.connect(url) as conn:
        first = conn.execute(
            "SELECT topic, payload, occurrences, received_at, last_received_at, reason "
            "FROM dead_letters"
        ).fetchall()
    assert len(first) == 1
    assert first[0][:3] == (topic, bad, 2)

    # Once more after that was committed (the ON CONFLICT path), and the same bytes on
    # another topic, which is a dead letter of its own.
    publish(topic, bad)
    publish(f"{s.topic_prefix}/meter/M-10", bad)
    publish.flush()
    wait_for(lambda: running.stats.received >= 4, what="two more bad payloads")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, occurrences, received_at, last_received_at FROM dead_letters"
        ).fetchall()
    by_topic = {row[0]: row[1:] for row in rows}
    assert {t: row[0] for t, row in by_topic.items()} == {
        topic: 3,
        f"{s.topic_prefix}/meter/M-10": 1,
    }
    received_at, last_received_at = by_topic[topic][1:]
    assert received_at == first[0][3], "the first arrival is kept"
    assert last_received_at > first[0][4], "the last arrival moves on"
    assert "power_w must be a number" in first[0][5]
    assert running.stats.dead_letters == 4
    assert count_rows(url, "meter_readings") == 0
