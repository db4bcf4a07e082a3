"""A message that cannot be stored as a row is a dead letter, and a dead letter can always be
stored: one poison message never holds back the messages around and after it. Only a failure
of the database itself is an outage that holds a batch."""

from __future__ import annotations

import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg
import psycopg.errors
import pytest

from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.records import MeterReading
from gridwatch.store.db import is_outage, is_row_fault
from tests.support.broker import publishing
from tests.support.databases import count_rows
from tests.support.ingest_streams import IngestProcess, process_env, wait_until_consuming
from tests.support.private_services import PrivateMosquitto
from tests.support.waiting import wait_for

ZONE = ZoneInfo("Asia/Shanghai")
LIMIT = 4096
KINDS = ("meter", "sensor", "patrol", "hazard")


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - seeded test input


def _random_level(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _good(prefix: str, n: int, now: datetime) -> tuple[str, bytes]:
    ts = (now - timedelta(minutes=n + 1)).isoformat()
    return f"{prefix}/meter/GOOD", orjson.dumps({"ts": ts, "power_w": float(n)})


def _poison(prefix: str, rng: random.Random, now: datetime) -> list[tuple[str, bytes]]:
    """Long random last topic levels of every kind, ASCII and multibyte, and payloads at the
    size limit."""
    ts = (now - timedelta(hours=1)).isoformat()
    place = {"lat": 40.65, "lon": 109.9}
    payloads = {
        "meter": {"ts": ts, "power_w": 1.0},
        "sensor": {"ts": ts, "event": "motion"},
        "patrol": {"ts": ts, **place},
        "hazard": {"id": str(uuid.uuid4()), "ts": ts, **place, "category": "road",
                   "severity": "low"},
    }  # fmt: skip
    ascii_letters = (
        string.ascii_letters
        + string.digits
        + "".join(c for c in string.punctuation if c not in "/+#")
    )
    multibyte = "网格员巡查隐患独居老人电表门磁窗帘灯光😀é"
    cases = []
    for kind in KINDS:
        body = orjson.dumps(payloads[kind])
        for length in (3000, 4000):
            cases.append((f"{prefix}/{kind}/{_random_level(rng, length, ascii_letters)}", body))
        cases.append((f"{prefix}/{kind}/{_random_level(rng, 3000, multibyte)}", body))
    location = orjson.dumps({"_type": "location", **place, "tst": int(now.timestamp()) - 60})
    cases.append((f"owntracks/{_random_level(rng, 4000, ascii_letters)}/phone", location))
    cases.append((f"owntracks/u/{_random_level(rng, 3000, multibyte)}", location))
    # A payload just over the limit, under a long topic as well.
    over = orjson.dumps({"ts": ts, "power_w": 1.0, "pad": "x" * LIMIT})
    cases.append((f"{prefix}/meter/OVER", over))
    cases.append((f"{prefix}/meter/{_random_level(rng, 4000, ascii_letters)}", over))
    return cases


def _at_limit(prefix: str, now: datetime, size: int) -> bytes:
    """A meter payload of exactly `size` bytes."""
    ts = (now - timedelta(minutes=30)).isoformat()
    base = orjson.dumps({"ts": ts, "power_w": 2.0, "pad": ""})
    return orjson.dumps({"ts": ts, "power_w": 2.0, "pad": "x" * (size - len(base))})


def test_poison_topics_become_dead_letters_and_the_batch_is_stored(database_url):
    rng = _rng(10)
    now = datetime.now(UTC)
    prefix = "gw"
    router = TopicRouter(prefix)
    ctx = ParseContext(now, ZONE, max_bytes=LIMIT)
    poison = _poison(prefix, rng, now)
    under = _at_limit(prefix, now, LIMIT)
    assert len(under) == LIMIT
    goods = [_good(prefix, n, now) for n in range(len(poison))]
    batch = [m for pair in zip(goods, poison, strict=True) for m in pair]
    batch.append((f"{prefix}/meter/UNDER", under))
    messages = [parse_message(router, topic, payload, ctx) for topic, payload in batch]

    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZONE)
        result = writer.write(messages)

    assert dict(result.stored) == {"meter": len(goods) + 1}
    assert result.dead_letters == len(poison)
    assert (
        count_rows(database_url, "meter_readings", "meter_id IN ('GOOD', 'UNDER')")
        == len(goods) + 1
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT topic, payload, reason FROM dead_letters").fetchall()
    kept = {(topic, bytes(payload)): reason for topic, payload, reason in rows}
    assert len(kept) == len(poison)
    for topic, payload in poison:
        reason = kept[(topic, payload)]  # the whole topic and payload, byte for byte
        assert reason and "\n" not in reason
    assert "payload too large" in kept[(f"{prefix}/meter/OVER", poison[-2][1])]


def test_a_row_too_large_for_its_index_is_that_rows_dead_letter(database_url):
    # No parser makes such an id any more; the writer must still not take the database's
    # refusal of one row (SQLSTATE 54000, an index row too large) for an outage.
    now = datetime.now(UTC)
    huge_id = _random_level(_rng(3), 4000, string.ascii_letters)
    messages = [
        Message("t/meter/M-1", b"{}", now, MeterReading("M-1", now, now, 5.0, None, None)),
        Message("t/meter/huge", b"{}", now, MeterReading(huge_id, now, now, 5.0, None, None)),
        Message("t/meter/M-2", b"{}", now, MeterReading("M-2", now, now, 5.0, None, None)),
    ]
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZONE)
        result = writer.write(messages)
    assert dict(result.stored) == {"meter": 2}
    assert result.dead_letters == 1
    assert "index row size" in messages[1].reason
    assert count_rows(database_url, "dead_letters", "reason LIKE 'rejected by the database%%'") == 1


def _errors_of_class(prefix: str) -> list[type]:
    found = []
    for name in dir(psycopg.errors):
        cls = getattr(psycopg.errors, name)
        state = getattr(cls, "sqlstate", None)
        if isinstance(cls, type) and issubclass(cls, psycopg.Error) and (state or "")[:2] == prefix:
            found.append(cls)
    return found


@pytest.mark.parametrize(
    ("sqlstate_class", "outage"),
    [("08", True), ("53", True), ("57", True), ("58", True),
     ("22", False), ("23", False), ("54", False)],
)  # fmt: skip
def test_outages_are_told_from_errors_of_one_rows_content(sqlstate_class, outage):
    errors = _errors_of_class(sqlstate_class)
    assert errors
    for cls in errors:
        assert is_outage(cls("x")) is outage, cls
        assert is_row_fault(cls("x")) is not outage, cls


def test_the_drivers_own_errors():
    assert is_outage(psycopg.OperationalError("connection lost"))
    assert is_outage(psycopg.InterfaceError("the connection is closed"))
    assert is_row_fault(psycopg.DataError("PostgreSQL text fields cannot contain NUL"))
    assert not is_outage(psycopg.ProgrammingError("column does not exist"))
    assert not is_row_fault(psycopg.ProgrammingError("column does not exist"))


def test_poison_then_readings_through_a_real_broker_and_ingest_process(
    tmp_path, database_url, settings
):
    """The incident replayed: a private Mosquitto, a `gridwatch ingest` child process, the
    poison published first and normal readings after it."""
    rng = _rng(1)
    prefix = settings.topic_prefix
    with PrivateMosquitto(tmp_path / "mosquitto") as broker:
        s = settings.model_copy(update={"mqtt_url": broker.url})
        worker = IngestProcess(
            process_env(s, MAX_PAYLOAD_BYTES=str(LIMIT)), s.mqtt_client_id, tmp_path / "ing.log"
        )
        sending = publishing(broker.url)
        publish = next(sending)
        try:
            wait_until_consuming(database_url, prefix, publish, worker)
            now = datetime.now(UTC)
            for topic, payload in _poison(prefix, rng, now):
                publish(topic, payload)
            readings = 50
            for n in range(readings):
                publish(*_good(prefix, n, now))
            publish.flush()
            wait_for(
                lambda: count_rows(database_url, "meter_readings", "meter_id = 'GOOD'") == readings,
                60,
                f"{readings} readings stored after the poison\n{worker.log()[-3000:]}",
            )
            poison = len(_poison(prefix, _rng(1), now))
            wait_for(
                lambda: count_rows(database_url, "dead_letters") == poison,
                30,
                f"the poison as {poison} dead letters",
            )
        finally:
            next(sending, None)
            worker.stop()
    assert "database unavailable" not in worker.log()
