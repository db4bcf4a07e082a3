"""A message delivered more than once is stored once: every kind, hazards by id, dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.support.databases import count_rows, query
from tests.support.ingest_streams import MARKER, MY_TOPICS, caught_up, my_topics
from tests.support.settings import make_settings

CHINA = timezone(timedelta(hours=8))


@pytest.fixture
def dup_settings(tmp_path, database_url, mqtt_url):
    # A short session expiry: the broker forgets this test's session soon after it ends.
    return make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=300)


@pytest.fixture
def running(dup_settings, start_worker):
    """The settings of an ingest worker started for the test."""
    start_worker(dup_settings)
    return dup_settings


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


def _stored(url: str, owntracks_user: str) -> dict[str, int]:
    """Rows of this test in each table (OwnTracks points of other tests' users left out)."""
    return {
        "meter": count_rows(url, "meter_readings", "meter_id NOT LIKE %s", (MARKER + "%",)),
        "sensor": count_rows(url, "sensor_events"),
        "patrol": count_rows(url, "patrol_checkins", "source = 'gw'"),
        "owntracks": count_rows(url, "patrol_checkins", "worker_id = %s", (owntracks_user,)),
        "hazard": count_rows(url, "hazard_reports"),
        "hazard_event": count_rows(url, "hazard_events"),
    }


def _dead(url: str, prefix: str, user: str) -> int:
    return count_rows(url, "dead_letters", MY_TOPICS, my_topics(prefix, user))


def test_each_kind_delivered_three_times_is_stored_once(dup_settings, start_worker, publish):
    s = dup_settings
    url, prefix, user = s.database_url, s.topic_prefix, s.mqtt_client_id
    running = start_worker(s)
    messages = _one_of_each(prefix, user, str(uuid.uuid4()))

    # Twice back to back (most likely one batch), then again once those are committed.
    for topic, payload in messages + messages:
        publish(topic, payload)
    caught_up(url, prefix, publish)
    assert _stored(url, user) == dict.fromkeys(
        ("meter", "sensor", "patrol", "owntracks", "hazard", "hazard_event"), 1
    )
    for topic, payload in messages:
        publish(topic, payload)
    caught_up(url, prefix, publish)

    assert _stored(url, user) == dict.fromkeys(
        ("meter", "sensor", "patrol", "owntracks", "hazard", "hazard_event"), 1
    )
    assert _dead(url, prefix, user) == 0
    assert running.stats.duplicates >= 10


def test_a_hazard_id_reported_again_with_other_content_keeps_the_first_and_dead_letters_it(
    running, publish
):
    s = running
    url = s.database_url
    topic = f"{s.topic_prefix}/hazard/W-7"
    hazard_id = str(uuid.uuid4())
    publish(topic, _hazard(hazard_id, _ts(30), description="first"))
    caught_up(url, s.topic_prefix, publish)
    # The client retries with an edited report under the same id, and also sends it from
    # another reporter's topic: the id is the key, not the topic or the content. Neither
    # vanishes: each is a dead letter saying why.
    publish(topic, _hazard(hazard_id, _ts(20), description="second", severity="critical"))
    publish(f"{s.topic_prefix}/hazard/W-8", _hazard(hazard_id, _ts(10), category="fire"))
    caught_up(url, s.topic_prefix, publish)

    rows = query(
        url, "SELECT id::text, reporter_id, description, severity, category FROM hazard_reports"
    )
    events = query(url, "SELECT hazard_id::text, action, to_status, actor FROM hazard_events")
    assert rows == [(hazard_id, "W-7", "first", "high", "gas")]
    assert events == [(hazard_id, "report", "reported", "W-7")]
    reasons = query(
        url,
        f"SELECT reason FROM dead_letters WHERE {MY_TOPICS}",
        my_topics(s.topic_prefix, s.mqtt_client_id),
    )
    assert len(reasons) == 2
    assert all(r.startswith("same key, different content") for (r,) in reasons), reasons


def test_same_hazard_id_twice_in_one_batch_gives_one_report_event(running, publish):
    s = running
    url = s.database_url
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for n, hazard_id in enumerate(ids):
        publish(f"{s.topic_prefix}/hazard/W-1", _hazard(hazard_id, _ts(n + 1)))
        publish(f"{s.topic_prefix}/hazard/W-2", _hazard(hazard_id, _ts(n + 1), severity="low"))
    caught_up(url, s.topic_prefix, publish)
    stored = {row[0] for row in query(url, "SELECT id::text FROM hazard_reports")}
    events = query(url, "SELECT hazard_id::text, count(*) FROM hazard_events GROUP BY 1")
    assert stored == set(ids)
    assert sorted(events) == sorted((hazard_id, 1) for hazard_id in ids)


def test_a_bad_payload_delivered_again_is_one_dead_letter_with_a_count(running, publish):
    s = running
    url = s.database_url
    topic = f"{s.topic_prefix}/meter/M-9"
    bad = b'{"power_w": "lots"}'
    publish(topic, bad)
    publish(topic, bad)
    caught_up(url, s.topic_prefix, publish)
    first = query(
        url,
        "SELECT topic, payload, occurrences, received_at, last_received_at, reason "
        "FROM dead_letters WHERE topic = %s",
        (topic,),
    )
    assert len(first) == 1
    assert first[0][:3] == (topic, bad, 2)

    # Once more after that was committed (the ON CONFLICT path), and the same bytes on
    # another topic, which is a dead letter of its own.
    publish(topic, bad)
    publish(f"{s.topic_prefix}/meter/M-10", bad)
    caught_up(url, s.topic_prefix, publish)
    rows = query(
        url,
        f"SELECT topic, occurrences, received_at, last_received_at FROM dead_letters "
        f"WHERE {MY_TOPICS}",
        my_topics(s.topic_prefix, s.mqtt_client_id),
    )
    by_topic = {row[0]: row[1:] for row in rows}
    assert {t: row[0] for t, row in by_topic.items()} == {
        topic: 3,
        f"{s.topic_prefix}/meter/M-10": 1,
    }
    received_at, last_received_at = by_topic[topic][1:]
    assert received_at == first[0][3], "the first arrival is kept"
    assert last_received_at > first[0][4], "the last arrival moves on"
    assert "power_w must be a number" in first[0][5]
    assert count_rows(url, "meter_readings", "meter_id NOT LIKE %s", (MARKER + "%",)) == 0
