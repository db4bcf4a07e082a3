"""Bad input at volume, without a broker: 100,000 generated messages per kind through the topic
router and every parser, hostile values field by field, and a sample written by the real
BatchWriter.

Each message must either parse into a valid frozen model that the database can hold, or be
refused with InvalidPayload and a one-line reason; nothing else may escape. Messages
generated valid must parse. Whatever parses must then be stored by the writer, never
rejected by PostgreSQL.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage

from gridwatch.ingest import hazard, patrol, sensor
from gridwatch.ingest.payload import InvalidPayload, ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import IngestWorker, parse_message, topic_of
from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.records import HazardReport, MeterReading, PatrolCheckin, SensorEvent
from gridwatch.simulators.bad_input import KINDS, BadInput
from gridwatch.simulators.parse_verdicts import is_storable, verdict
from tests.support.databases import count_rows
from tests.support.settings import make_settings

RECEIVED = datetime(2026, 11, 23, 0, 15, 30, 250_000, tzinfo=UTC)
PER_KIND = 100_000
CONTEXT = ParseContext(RECEIVED, ZoneInfo("Asia/Shanghai"))
ROUTER = TopicRouter("gw")
# -- 100,000 per kind ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_generated_messages_parse_valid_or_are_refused_with_a_reason(kind):
    started = time.perf_counter()
    generator = BadInput(KINDS.index(kind) + 1, RECEIVED, max_bytes=CONTEXT.max_bytes)
    counts: Counter = Counter()
    problems: list[str] = []
    for form, topic, payload in generator.messages(kind, PER_KIND):
        state, _reading, problem = verdict(ROUTER, topic, payload, kind, CONTEXT)
        counts[form, state] += 1
        if form == "valid" and state == "refused":
            problem = problem or "a valid message was refused"
        if problem and len(problems) < 10:
            problems.append(f"{form} {state} on {topic[:60]!r}: {problem}\n    {payload[:160]!r}")
    elapsed = time.perf_counter() - started
    assert not problems, "\n".join(problems)
    assert sum(counts.values()) == PER_KIND
    # The generator must really produce both kinds of outcome in every form it has.
    total = Counter()
    for (_form, state), n in counts.items():
        total[state] += n
    assert total["parsed"] > PER_KIND * 0.2 and total["refused"] > PER_KIND * 0.5, counts
    print(f"{kind}: {PER_KIND} messages in {elapsed:.1f} s: {dict(total)}")


# -- hostile values, field by field -----------------------------------------------------------

NUMBER_FIELDS = {
    "meter": ("power_w", "energy_kwh", "water_l"),
    "sensor": ("value",),
    "patrol": ("lat", "lon", "accuracy_m"),
    "hazard": ("lat", "lon"),
    "owntracks": ("lat", "lon", "acc", "batt"),
}
TEXT_FIELDS = {"patrol": ("note", "resident_id"), "hazard": ("description", "id")}
CHOICE_FIELDS = {
    "sensor": ("event",),
    "patrol": ("crs", "kind", "status"),
    "hazard": ("crs", "category", "severity"),
    "owntracks": ("_type",),
}
# Fields a reason may name otherwise (a refused URL is named as a photo URL).
NAMED_AS = {"photo_urls": "photo", "tst": "tst", "_type": "OwnTracks"}

scalars = (
    st.floats()
    | st.integers()
    | st.integers(min_value=2**63 - 5, max_value=2**64 + 5)
    | st.booleans()
    | st.none()
    | st.text(max_size=8)
)
any_json = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
)
# Any string, lone surrogates and NUL included (written as \u escapes).
any_text = st.text(st.characters(codec=None), max_size=50)
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
times = (
    st.datetimes(timezones=st.none() | offsets).map(datetime.isoformat)
    | st.datetimes(
        min_value=(RECEIVED - timedelta(days=10)).replace(tzinfo=None),
        max_value=RECEIVED.replace(tzinfo=None),
        timezones=offsets,
    ).map(datetime.isoformat)
    | st.floats()
    | st.integers()
    | any_text
)


def field_values(kind: str, field: str):
    """Hostile and valid values for one field of a kind."""
    if field in ("ts", "tst"):
        return times | any_json
    if field in NUMBER_FIELDS.get(kind, ()):
        return any_json | st.floats(-1e13, 1e13) | st.integers(-(10**13), 10**13)
    if field == "photo_urls":
        return st.lists(any_text | st.just("https://x.cn/a.jpg"), max_size=25) | any_json
    if field == "id":
        return st.uuids().map(str) | any_text | any_json
    if field in CHOICE_FIELDS.get(kind, ()):
        words = sorted(
            sensor.EVENTS | patrol.KINDS | patrol.STATUSES | hazard.CATEGORIES | hazard.SEVERITIES
        )
        return st.sampled_from([*words, "wgs84", "gcj02", "location"]) | any_text | any_json
    return any_text | any_json


def fields_of(kind: str) -> list[str]:
    own = {
        "meter": ["ts"],
        "sensor": ["ts"],
        "patrol": ["ts", "photo_urls"],
        "hazard": ["ts", "photo_urls"],
        "owntracks": ["tst"],
    }[kind]
    for table in (NUMBER_FIELDS, TEXT_FIELDS, CHOICE_FIELDS):
        own += table.get(kind, ())
    return own


@settings(max_examples=500, deadline=None)
@given(data=st.data(), kind=st.sampled_from(KINDS), ensure_ascii=st.booleans())
def test_one_hostile_field_is_refused_naming_it_or_parses_valid(data, kind, ensure_ascii):
    field = data.draw(st.sampled_from(fields_of(kind)), label="field")
    value = data.draw(field_values(kind, field), label="value")
    base = BadInput(7, RECEIVED)
    fields = orjson.loads(base.valid_payload(kind))
    if kind == "owntracks":
        fields["_type"] = "location"
    fields[field] = value
    # The standard library writes NaN, Infinity, huge integers and lone surrogates.
    payload = json.dumps(fields, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    state, _reading, problem = verdict(ROUTER, base.topic(kind), payload, kind, CONTEXT)
    assert problem is None, (state, problem, payload[:200])
    if state == "refused":
        try:
            ROUTER.parse(base.topic(kind), payload, CONTEXT)
        except InvalidPayload as exc:
            reason = str(exc)
        named = NAMED_AS.get(field, field)
        # A refusal before any field is read is about the whole payload.
        whole = ("not UTF-8", "not valid JSON")
        if not any(w in reason for w in whole) and "visit" not in reason:
            assert named in reason, (field, reason)


@pytest.mark.parametrize(
    ("topic", "fields"),
    [
        ("gw/hazard/W-1", {"photo_urls": ["https://" + "\x7f" * 90]}),
        ("gw/hazard/W-1", {"id": "\x01" * 64}),
        ("gw/meter/M-1", {"ts": "\x01" * 200}),
        ("gw/sensor/S-1", {"event": "\x01" * 200}),
        ("gw/" + "\x01" * 500, {}),
    ],
)
def test_reasons_stay_short_whatever_they_quote(topic, fields):
    # Found by bench/fuzz.py --atheris: repr() of control characters is four to six times
    # longer than they are, and a reason quoted 80 of them (346 characters).
    kind = topic.split("/")[1] if topic.count("/") == 2 else "meter"
    payload = orjson.loads(BadInput(3, RECEIVED).valid_payload(kind)) | fields
    state, _reading, problem = verdict(ROUTER, topic, orjson.dumps(payload), kind, CONTEXT)
    assert (state, problem) == ("refused", None)


# -- what parses is writable ------------------------------------------------------------------

WRITER_SAMPLE = 4000


def generated_sample(count: int, seed: int) -> list[Message]:
    """`count` generated messages of every kind, parsed as the worker parses them."""
    # Device times within a month: the writer makes a partition for every day it meets.
    ctx = ParseContext(RECEIVED, CONTEXT.tz, max_age=timedelta(days=30))
    generator = BadInput(seed, RECEIVED, max_bytes=ctx.max_bytes, max_age=ctx.max_age)
    return [
        parse_message(ROUTER, topic, payload, ctx)
        for _form, topic, payload in generator.mixed(count)
    ]


def stored_rows(url: str) -> int:
    tables = ("meter_readings", "sensor_events", "patrol_checkins", "hazard_reports")
    return sum(count_rows(url, table) for table in tables)


def test_a_generated_sample_is_written_whole_by_the_real_writer(database_url):
    messages = generated_sample(WRITER_SAMPLE, seed=11)
    refused = [m for m in messages if m.reason is not None]
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=CONTEXT.tz)
        result = writer.write(messages)
        # Written twice: every reading is a duplicate, every dead letter counted again.
        again = writer.write(messages)
    assert not [m.reason for m in messages if m.reason and "by the database" in m.reason]
    stored = sum(result.stored.values())
    assert stored + result.duplicates + result.dead_letters + result.ignored == len(messages)
    # Generated readings that share a key with another of other content are dead letters
    # too, and so are visits and hazards the reporting rule refuses (this database has no
    # residents or workers).
    clashing = [m for m in messages if m not in refused and m.reason is not None]
    writer_reasons = ("same key, different content", "no resident", "has no grid", "outside")
    assert all(any(words in m.reason for words in writer_reasons) for m in clashing)
    assert result.dead_letters == len(refused) + len(clashing)
    assert stored_rows(database_url) == stored > WRITER_SAMPLE * 0.2
    assert sum(again.stored.values()) == 0 and again.duplicates == stored + result.duplicates
    with psycopg.connect(database_url) as conn:
        occurrences = conn.execute("SELECT sum(occurrences) FROM dead_letters").fetchone()[0]
    assert occurrences == 2 * (len(refused) + len(clashing))


# -- what the database refuses becomes a dead letter, not a failed batch -------------------------


def bypassing_readings(now: datetime) -> list[tuple[str, object]]:
    """Readings no parser makes, each with a value PostgreSQL refuses or Python cannot send."""
    far = timezone(timedelta(hours=20))
    odd = timezone(timedelta(hours=8, seconds=30, microseconds=500_000))
    point = dict(observed_at=now, received_at=now, lon=109.9, lat=40.65)
    checkin = dict(accuracy_m=None, kind="patrol", resident_id=None, status=None)
    return [
        ("meter/M-NUL", MeterReading("M-\x00", now, now, 1.0, None, None)),
        ("meter/M-SUR", MeterReading("M-\ud800", now, now, 1.0, None, None)),
        ("meter/M-FAR", MeterReading("M-far", now.astimezone(far), now, 1.0, None, None)),
        ("meter/M-ODD", MeterReading("M-odd", now.astimezone(odd), now, 1.0, None, None)),
        ("sensor/S-NUL", SensorEvent("S-1", now, now, "mo\x00tion", None)),
        ("patrol/W-NOTE", PatrolCheckin("W-1", **point, **checkin, note="\x00")),
        ("patrol/W-SUR", PatrolCheckin("W-2", **point, **checkin, note="\udfff")),
        ("hazard/W-URL", HazardReport(uuid.uuid4(), "W-1", now, now, 109.9, 40.65, "fire",
                                      "low", "", ("https://x.cn/\ud800",))),
    ]  # fmt: skip


def test_values_the_database_refuses_are_dead_letters_not_a_failed_batch(database_url):
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(3)  # noqa: S311 - seeded test input
    bad = bypassing_readings(now)
    good = [
        Message(
            f"t/meter/G-{n}", b"{}", now, MeterReading(f"G-{n}", now, now, float(n), None, None)
        )
        for n in range(200)
    ]
    messages = good + [Message(f"t/{topic}", b"{}", now, reading) for topic, reading in bad]
    # A topic no broker should deliver: NUL and a lone surrogate, kept as a dead letter.
    messages.append(Message("t/meter/\x00\ud800", b"\xff", now, reason="test: a bad topic"))
    rng.shuffle(messages)
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai"))
        result = writer.write(messages)
    assert dict(result.stored) == {"meter": len(good)}
    assert result.dead_letters == len(bad) + 1
    refusals = ("rejected by the database: ", "cannot be stored: ")
    rejected = [m for m in messages if m.reason and m.reason.startswith(refusals)]
    assert len(rejected) == len(bad), [m.topic for m in rejected]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT topic, reason FROM dead_letters ORDER BY topic").fetchall()
    assert len(rows) == len(bad) + 1
    assert all(is_storable(t) and is_storable(r) and "\n" not in r for t, r in rows)


def test_a_topic_that_is_not_utf8_is_a_dead_letter_not_a_dead_network_thread(tmp_path):
    # paho raises on reading such a topic; raised in on_message it would end paho's thread.
    worker = IngestWorker(
        make_settings(tmp_path, "postgresql://nowhere/db", "mqtt://127.0.0.1:1"),
        database_url="postgresql://nowhere/db",
        mqtt_url="mqtt://127.0.0.1:1",
    )
    message = MQTTMessage(mid=1, topic=b"gw/meter/\xff\xfe")
    message.payload = b'{"power_w": 1}'
    with pytest.raises(UnicodeDecodeError):
        _ = message.topic
    worker._on_message(None, None, message)
    topic = worker._inbox[0][0]
    assert topic == topic_of(message) == b"gw/meter/\xff\xfe"
    parsed = parse_message(ROUTER, topic, message.payload, CONTEXT)
    assert (parsed.topic, parsed.reason) == ("gw/meter/\\xff\\xfe", "topic is not UTF-8 text")
    assert parsed.reading is None
