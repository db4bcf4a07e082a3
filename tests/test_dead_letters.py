"""Bad input through the real broker: each message a dead letter with a reason one can act on,
and the worker alive and storing good messages around and after them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pytest

from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.records import HazardReport, MeterReading, SensorEvent
from tests.support.databases import count_rows
from tests.support.ingest_streams import MY_TOPICS, caught_up, my_topics
from tests.support.settings import make_settings

CHINA = timezone(timedelta(hours=8))
MAX_PAYLOAD = 4096


def _local(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).astimezone(CHINA).isoformat()


def _cases(prefix: str, user: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, a distinctive part of the reason) for every kind of bad input."""
    ts = _local(timedelta(hours=-1))
    place = {"lat": 40.65, "lon": 109.9}
    hazard = {"id": str(uuid.uuid4()), "ts": ts, **place, "category": "road", "severity": "low"}
    visit = {"ts": ts, **place, "kind": "visit", "resident_id": "R-1"}

    def j(value) -> bytes:
        return orjson.dumps(value)

    meter, sensor, patrol, haz = (f"{prefix}/{k}/" for k in ("meter", "sensor", "patrol", "hazard"))
    return [
        # Not a JSON object at all.
        (meter + "B1", b"power_w=5", "not valid JSON"),
        (meter + "B2", b"[1, 2]", "must be a JSON object, got an array"),
        (meter + "B3", b'"5 W"', "must be a JSON object, got text"),
        (meter + "B4", b"5", "must be a JSON object, got a number"),
        (meter + "B5", b"null", "must be a JSON object, got null"),
        (meter + "B7", b'{"power_w": 5, "n": "\xff"}', "not UTF-8 text: byte 0xff at offset 21"),
        (meter + "B8", b'{"power_w": NaN}', "not valid JSON"),
        (meter + "B9", b'{"power_w": 1e400}', "infinity"),
        (meter + "B10", b'{"power_w": 5} trailing', "not valid JSON"),
        (meter + "B11", b'{"a":' + b"[" * 1100 + b"]" * 1100 + b"}", "depth limit"),
        (meter + "B12", j({"power_w": 1, "pad": "x" * MAX_PAYLOAD}), "payload too large"),
        # Missing what each kind needs.
        (meter + "B13", j({"ts": ts}), "none of power_w, energy_kwh, water_l"),
        (sensor + "B14", j({"ts": ts}), "missing required field 'event'"),
        (patrol + "B15", j({"ts": ts, "lon": 109.9}), "missing required field 'lat'"),
        (haz + "B16", j({k: v for k, v in hazard.items() if k != "id"}), "field 'id'"),
        (haz + "B17", j({k: v for k, v in hazard.items() if k != "category"}), "'category'"),
        (haz + "B18", j({k: v for k, v in hazard.items() if k != "severity"}), "'severity'"),
        (patrol + "B19", j({**visit, "resident_id": None}), "'visit' needs resident_id"),
        (f"owntracks/{user}/B20", j({"lat": 40.6, "lon": 109.8, "tst": 1763856900}),
         "without _type"),
        (f"owntracks/{user}/B49", j({"_type": "encrypted", "data": "c2VjcmV0"}),
         "OwnTracks payload is encrypted"),
        # Wrong types.
        (meter + "B21", j({"ts": ts, "power_w": "120"}), "power_w must be a number, got text"),
        (meter + "B22", j({"ts": True, "power_w": 1}), "got a boolean"),
        (patrol + "B23", j({"ts": ts, "lat": {"v": 40}, "lon": 109.9}),
         "lat must be a number, got an object"),
        (sensor + "B24", j({"ts": ts, "event": "motion", "value": "yes"}),
         "value must be a finite number or a boolean"),
        (haz + "B25", j({**hazard, "photo_urls": "https://img.example.cn/a.jpg"}),
         "must be an array"),
        # Words outside the vocabulary.
        (sensor + "B26", j({"ts": ts, "event": "dance"}), "unknown event 'dance'"),
        (haz + "B27", j({**hazard, "category": "ufo"}), "unknown category 'ufo'"),
        (haz + "B28", j({**hazard, "severity": "meh"}), "unknown severity 'meh'"),
        (patrol + "B29", j({"ts": ts, **place, "crs": "utm50n"}), "unknown crs 'utm50n'"),
        (patrol + "B30", j({"ts": ts, **place, "kind": "walk"}), "unknown kind 'walk'"),
        (patrol + "B31", j({**visit, "status": "asleep"}), "unknown status 'asleep'"),
        # Out of range.
        (patrol + "B32", j({"ts": ts, "lat": 91, "lon": 109.9}), "lat 91 is outside [-90, 90]"),
        (haz + "B33", j({**hazard, "lon": -181.5}), "lon -181.5 is outside [-180, 180]"),
        (f"owntracks/{user}/B34", j({"_type": "location", "lat": 95, "lon": 1, "tst": 1763856900}),
         "lat 95 is outside"),
        (patrol + "B35", j({"ts": ts, **place, "accuracy_m": -3}), "accuracy_m -3 is outside"),
        # Times.
        (meter + "B36", j({"ts": _local(timedelta(days=3)), "power_w": 1}), "in the future"),
        (meter + "B37", j({"ts": "1970-01-01T08:00:00+08:00", "power_w": 1}), "before 2000"),
        (meter + "B38", j({"ts": 0, "power_w": 1}), "device clock is not set"),
        (meter + "B39", j({"ts": "yesterday", "power_w": 1}), "is not ISO 8601"),
        (meter + "B40", j({"ts": 1763856900000, "power_w": 1}), "milliseconds?"),
        (meter + "B41", j({"ts": _local(timedelta(days=-500)), "power_w": 1}),
         "older than the retention window"),
        # Identifiers and links.
        (haz + "B42", j({**hazard, "id": "not-a-uuid"}), "'not-a-uuid' is not a UUID"),
        (haz + "B43", j({**hazard, "photo_urls": ["file:///etc/passwd"]}),
         "is not an http(s) URL"),
        (haz + "B44", j({**hazard, "photo_urls": ["https://x.cn/a\u0000.jpg"]}),
         "control character"),
        (meter, j({"ts": ts, "power_w": 1}), "empty meter id in topic"),
        (sensor + "S" * 129, j({"ts": ts, "event": "motion"}), "longer than 128"),
        # Text the database could not hold.
        (patrol + "B47", j({"ts": ts, **place, "note": "a\u0000b"}), "note contains a NUL"),
        (haz + "B48", j({**hazard, "description": "\u0000"}), "description contains a NUL"),
    ]  # fmt: skip


@pytest.fixture
def bad_settings(tmp_path, database_url, mqtt_url):
    return make_settings(
        tmp_path, database_url, mqtt_url, max_payload_bytes=MAX_PAYLOAD, mqtt_session_expiry_s=300
    )


def test_every_bad_payload_is_a_dead_letter_with_its_reason(bad_settings, start_worker, publish):
    s = bad_settings
    url = s.database_url
    cases = _cases(s.topic_prefix, s.mqtt_client_id)
    assert len({(topic, payload) for topic, payload, _ in cases}) == len(cases) >= 40
    running = start_worker(s)
    good = 0
    for n, (topic, payload, _) in enumerate(cases):
        publish(topic, payload)
        if n % 4 == 0:  # good messages in among the bad ones, in the same batches
            ts = _local(timedelta(minutes=-n))
            publish(f"{s.topic_prefix}/meter/GOOD", {"ts": ts, "power_w": float(n)})
            good += 1
    caught_up(url, s.topic_prefix, publish)

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT topic, payload, reason, occurrences FROM dead_letters WHERE {MY_TOPICS}",
            my_topics(s.topic_prefix, s.mqtt_client_id),
        ).fetchall()
    stored = {(topic, bytes(payload)): (reason, n) for topic, payload, reason, n in rows}
    problems = []
    for topic, payload, fragment in cases:
        found = stored.get((topic, payload))
        if found is None:
            problems.append(f"{topic}: no dead letter for {payload[:60]!r}")
        elif fragment not in found[0]:
            problems.append(f"{topic}: reason {found[0]!r} lacks {fragment!r}")
        elif "\n" in found[0] or len(found[0]) > 300 or found[1] != 1:
            problems.append(f"{topic}: reason {found[0]!r} ({found[1]}x) is not one short line")
    assert not problems, "\n".join(problems)
    assert len(rows) == len(cases)
    assert count_rows(url, "meter_readings", "meter_id = 'GOOD'") == good
    assert running.stats.dead_letters >= len(cases)

    # Still alive, and still storing.
    assert running.thread.is_alive()
    publish(f"{s.topic_prefix}/sensor/S-1", {"ts": _local(timedelta(0)), "event": "light_on"})
    caught_up(url, s.topic_prefix, publish)
    assert count_rows(url, "sensor_events", "device_id = 'S-1'") == 1


def test_ignored_owntracks_types_are_neither_stored_nor_dead(bad_settings, start_worker, publish):
    s = bad_settings
    running = start_worker(s)
    for message_type in ("transition", "waypoint", "lwt", "card", "status"):
        publish(f"owntracks/{s.mqtt_client_id}/phone", {"_type": message_type})
    caught_up(s.database_url, s.topic_prefix, publish)
    assert running.stats.ignored >= 5
    assert count_rows(s.database_url, "dead_letters", MY_TOPICS,
                      my_topics(s.topic_prefix, s.mqtt_client_id)) == 0  # fmt: skip
    assert count_rows(s.database_url, "patrol_checkins", "worker_id = %s", (s.mqtt_client_id,)) == 0


def test_a_row_the_database_rejects_is_dead_lettered_alone(database_url):
    # The parsers now refuse every value known to be rejected by PostgreSQL, so this goes to
    # the writer directly with a reading no parser would make: a NUL in a text array.
    now = datetime.now(UTC)
    good = MeterReading("M-1", now, now, 5.0, None, None)
    bad = HazardReport(
        uuid.uuid4(), "W-1", now, now, 109.9, 40.65, "fire", "low", "", ("https://x.cn/\x00",)
    )
    messages = [Message("t/meter/M-1", b"{}", now, good), Message("t/hazard/W-1", b"{}", now, bad)]
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai"))
        result = writer.write(messages)
    assert dict(result.stored) == {"meter": 1}
    assert result.dead_letters == 1
    assert messages[0].reason is None
    assert "NUL" in messages[1].reason
    assert count_rows(database_url, "meter_readings") == 1
    assert count_rows(database_url, "dead_letters", "reason LIKE 'rejected by the database%%'") == 1


def test_a_schema_out_of_step_is_not_blamed_on_the_messages(database_url):
    now = datetime.now(UTC)
    messages = [
        Message("t/sensor/S-1", b"{}", now, SensorEvent("S-1", now, now, "motion", 1.0)),
        Message("t/meter/M-1", b"{}", now, MeterReading("M-1", now, now, 5.0, None, None)),
    ]
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai"))
        # A release that expects a column this database does not have (yet).
        conn.execute("ALTER TABLE sensor_events DROP COLUMN value")
        conn.commit()
        with pytest.raises(psycopg.ProgrammingError):
            writer.write(messages)
        conn.rollback()
    assert [m.reason for m in messages] == [None, None]
    assert count_rows(database_url, "dead_letters") == 0
