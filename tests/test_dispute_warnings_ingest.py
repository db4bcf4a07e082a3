"""Dispute warnings from MQTT, against the real database and broker: a dispute phrase in a
visit note becomes a warning within seconds, the third in a grid a level-2 warning that the
alert delivery publishes on `{prefix}/alerts/{grid}`; hostile input (a 100k note, control
characters, a visit or hazard from a worker of another grid) follows the report rules
unchanged and makes no warning it should not."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
import shapely
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.dispatch.service import run_delivery
from gridwatch.ingest.embedded_broker import EmbeddedBroker
from gridwatch.ingest.mqtt import BrokerAddress
from tests.support.broker import publishing
from tests.support.databases import count_rows
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

DISPUTE = "邻居吵架 楼上噪音扰民"


def two_workers(url: str):
    """Two workers of different grids, a resident of each, and a point inside each grid."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT w.id, r.id, g.id, g.geometry FROM workers w
            JOIN grids g ON g.id = w.grid_id
            JOIN LATERAL (SELECT id FROM residents WHERE grid_id = w.grid_id ORDER BY id LIMIT 1) r
              ON TRUE
            ORDER BY w.id LIMIT 2
            """
        ).fetchall()
        # The first resident has family at home; the second lives alone.
        conn.execute("UPDATE residents SET living_alone = (id = %s)", (rows[1][1],))
    return [
        (worker, resident, grid, shapely.from_wkb(bytes(wkb)).representative_point())
        for worker, resident, grid, wkb in rows
    ]


def visit(worker: str, resident: str, place, minutes_ago: float, note: str) -> tuple[str, dict]:
    at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    body = {"ts": at, "lat": place.y, "lon": place.x, "kind": "visit", "status": "concern",
            "resident_id": resident, "note": note}  # fmt: skip
    return f"patrol/{worker}", body


def warnings_of(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT source, category, level, reason, grid_id, resident_id FROM warnings ORDER BY id"
        ).fetchall()


class Subscriber:
    """An MQTT client subscribed to `topic`, keeping every payload as parsed JSON."""

    def __init__(self, mqtt_url: str, topic: str) -> None:
        address = BrokerAddress.from_url(mqtt_url)
        self.messages: list[tuple[str, dict]] = []
        ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, f"gw-test-sub-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *args: ready.set()
        client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload)))
        client.connect(address.host, address.port)
        client.loop_start()
        self.client = client
        wait_for(ready.is_set, 10, f"a subscription to {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_visit_notes_become_warnings_and_the_third_goes_out(
    tmp_path, district_database_url, mqtt_url, start_worker, publish
):
    url = district_database_url
    (w1, r1, g1, p1), (w2, r2, g2, p2) = two_workers(url)
    settings = make_settings(tmp_path, url, mqtt_url)
    prefix = settings.topic_prefix
    start_worker(settings)

    started = time.monotonic()
    topic, body = visit(w1, r1, p1, 30, DISPUTE)
    publish(f"{prefix}/{topic}", body)
    wait_for(lambda: count_rows(url, "warnings") == 1, 10, "the first warning")
    assert time.monotonic() - started < 5  # 秒级预警: seconds, not a nightly job
    assert warnings_of(url) == [("checkin", "邻里纠纷", 1, None, g1, r1)]

    # The same message again (a redelivery) makes no second warning; the same words in
    # traditional script and full width, in two more visits, make the third.
    publish(f"{prefix}/{topic}", body)
    for n, note in enumerate(["鄰居吵架了", "ＱＱ群里 邻居吵架"]):
        topic, body = visit(w1, r1, p1, 20 - n, note)
        publish(f"{prefix}/{topic}", body)
    wait_for(lambda: count_rows(url, "warnings") == 3, 10, "three warnings")
    assert [w[2:4] for w in warnings_of(url)] == [(1, None), (1, None), (2, "repeated")]
    # A resident who lives alone: level 2 at once.
    topic, body = visit(w2, r2, p2, 10, "老人说子女不管")
    publish(f"{prefix}/{topic}", body)
    wait_for(lambda: count_rows(url, "warnings") == 4, 10, "the fourth warning")
    assert warnings_of(url)[-1] == ("checkin", "婚姻家庭", 2, "lives_alone", g2, r2)

    subscriber = Subscriber(mqtt_url, f"{prefix}/alerts/#")
    stop = threading.Event()
    delivery = threading.Thread(
        target=run_delivery, args=(settings, url, mqtt_url, stop), name="test-delivery"
    )
    delivery.start()
    try:
        wait_for(lambda: len(subscriber.messages) == 2, 15, "two level-2 warnings on MQTT")
    finally:
        stop.set()
        delivery.join(timeout=20)
        subscriber.close()
    with psycopg.connect(url) as conn:
        codes = dict(conn.execute("SELECT id, code FROM grids WHERE id IN (%s, %s)", (g1, g2)))
    heard = sorted((t, p["category"], p["reason"], p["state"]) for t, p in subscriber.messages)
    assert heard == sorted([
        (f"{prefix}/alerts/{codes[g1]}", "邻里纠纷", "repeated", "warning"),
        (f"{prefix}/alerts/{codes[g2]}", "婚姻家庭", "lives_alone", "warning"),
    ])  # fmt: skip
    assert all("note" not in p and "text" not in p for _, p in subscriber.messages)


@pytest.fixture
def private_broker_url():
    """A private in-process broker: it passes on what Mosquitto would refuse."""
    broker = EmbeddedBroker(mosquitto=False)
    yield broker.start()
    broker.stop()


def test_hostile_notes_follow_the_report_rules(
    tmp_path, district_database_url, private_broker_url, start_worker
):
    url = district_database_url
    (w1, r1, g1, p1), (_, r2, _, p2) = two_workers(url)
    settings = make_settings(tmp_path, url, private_broker_url)
    prefix = settings.topic_prefix
    start_worker(settings)
    sending = publishing(private_broker_url)
    publish = next(sending)
    hazard = {"id": str(uuid.uuid4()), "lat": p2.y, "lon": p2.x, "category": "other",
              "severity": "low", "description": "拖欠工资 讨薪"}  # fmt: skip
    messages = [
        visit(w1, r1, p1, 50, "邻居吵架" * 25_000),  # 100,000 characters: past every limit
        visit(w1, r1, p1, 45, "邻居吵架" + "走" * 1997),  # 2,001 characters
        visit(w1, r1, p1, 42, "邻居吵架\x00"),  # NUL is no text
        visit(w1, r1, p1, 40, "\x07\x1b[31m邻居吵架\x1b[0m\r\n拖欠\t工资\x7f"),  # controls
        visit(w1, r2, p1, 30, DISPUTE),  # a resident of another grid
        (f"hazard/{w1}", hazard),  # a hazard in another worker's grid
        visit(w1, r1, p1, 20, "走访正常"),  # a quiet note
    ]
    try:
        for topic, body in messages:
            publish(f"{prefix}/{topic}", body)
        publish.flush()
        wait_for(lambda: count_rows(url, "dead_letters") == 5, 15, "five dead letters")
        wait_for(lambda: count_rows(url, "patrol_checkins") == 2, 15, "two check-ins")
    finally:
        next(sending, None)
    with psycopg.connect(url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
    assert any("bytes" in r for r in reasons), reasons  # the 100k note: the payload limit
    assert any("note is 2001 characters long (limit 2000)" in r for r in reasons), reasons
    assert any("note contains a NUL character" in r for r in reasons), reasons
    assert any(f"no resident {r2!r} in the grids of worker {w1!r}" in r for r in reasons)
    assert any("outside the grids of worker" in r for r in reasons)
    # Only the note with control characters, which the rules accept, is scanned: its words
    # are found across nothing but themselves (拖欠\t工资 is not 拖欠工资).
    assert warnings_of(url) == [("checkin", "邻里纠纷", 1, None, g1, r1)]
