"""Helpers for tests through the broker: a mixed stream of distinct messages, how many of them
the database accounts for, and a marker that shows the worker has caught up.

The worker subscribes to owntracks/+/+ whatever its topic prefix, so on a shared broker it
also receives the OwnTracks traffic of tests running elsewhere at the same time: counts are
taken of this test's topics and OwnTracks user only, never of whole tables or worker stats.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from gridwatch.settings import Settings
from tests.support.databases import count_rows
from tests.support.private_services import GridwatchProcess
from tests.support.waiting import wait_for

TOTAL = 600
BAD_EVERY = 10
PROBE = "PROBE"  # meter id of messages that only show a worker is subscribed; not counted
MARKER = "SYNC"  # meter ids of caught_up() markers start with this; not counted either
# Dead letters of this test, with the parameters my_topics() gives.
MY_TOPICS = "(topic LIKE %(prefix)s OR topic LIKE %(owntracks)s)"


def mixed_stream(prefix: str, user: str, total: int = TOTAL) -> list[tuple[str, bytes | dict]]:
    """`total` distinct messages of every kind, one in BAD_EVERY of them bad."""
    # One second apart, all in the past: a long stream must not reach into the future.
    base = datetime.now(UTC) - timedelta(hours=3, seconds=total)
    messages: list[tuple[str, bytes | dict]] = []
    for n in range(total):
        ts = (base + timedelta(seconds=n)).isoformat()
        if n % BAD_EVERY == BAD_EVERY - 1:
            messages.append((f"{prefix}/meter/BAD", f'{{"power_w": "n{n}"}}'.encode()))
            continue
        place = {"lat": 40.6 + n * 1e-5, "lon": 109.9}
        kind = n % 5
        if kind == 0:
            messages.append((f"{prefix}/meter/M-{n % 7}", {"ts": ts, "power_w": float(n)}))
        elif kind == 1:
            messages.append((f"{prefix}/sensor/S-{n % 7}", {"ts": ts, "event": "motion"}))
        elif kind == 2:
            messages.append((f"{prefix}/patrol/W-{n % 7}", {"ts": ts, **place}))
        elif kind == 3:
            hazard_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{n}"))
            messages.append(
                (
                    f"{prefix}/hazard/W-{n % 7}",
                    {"id": hazard_id, "ts": ts, **place, "category": "road", "severity": "low"},
                )
            )
        else:
            epoch = int((base + timedelta(seconds=n)).timestamp())
            messages.append(
                (f"owntracks/{user}/phone", {"_type": "location", **place, "tst": epoch})
            )
    return messages


@contextmanager
def published_in_thirds(
    messages: list, publish
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Publish `messages` from a thread while the test breaks something and mends it: a third
    at once, the next once the test sets the first event (broken), the last once it sets the
    second (mended). Leaving sets both and waits for the thread; every message must be out."""
    broken, mended, published = threading.Event(), threading.Event(), threading.Event()
    third = len(messages) // 3

    def publish_all() -> None:
        for n, (topic, payload) in enumerate(messages):
            if n == third:
                broken.wait(60)
            elif n == 2 * third:
                mended.wait(60)
            publish(topic, payload)
            time.sleep(0.002)
        publish.flush()
        published.set()

    sender = threading.Thread(target=publish_all)
    sender.start()
    try:
        yield broken, mended
    finally:
        broken.set()
        mended.set()
        sender.join(60)
    assert published.is_set()


def assert_each_once(counts, total: int = TOTAL) -> None:
    """`counts()` (rows, dead letters) comes to every message of a `mixed_stream` of `total`
    stored or dead-lettered once, and stays there: nothing arrives twice."""
    bad = total // BAD_EVERY
    wait_for(
        lambda: counts() == (total - bad, bad),
        timeout=40,
        what=f"{total - bad} rows and {bad} dead letters (have {counts()})",
    )
    time.sleep(1)  # anything still arriving would be a duplicate
    assert counts() == (total - bad, bad)


def accounted(url: str, prefix: str, user: str) -> tuple[int, int]:
    """(rows stored of this test's messages, distinct dead letters of its topics), the
    stream's sensors only (a resident's door may speak too);
    (-1, -1) while the server is away."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            stored = conn.execute(
                "SELECT (SELECT count(*) FROM meter_readings"
                "        WHERE meter_id <> %(probe)s AND meter_id NOT LIKE %(marker)s)"
                " + (SELECT count(*) FROM sensor_events WHERE device_id LIKE 'S-%%')"
                " + (SELECT count(*) FROM patrol_checkins"
                "    WHERE source = 'gw' OR worker_id = %(user)s)"
                " + (SELECT count(*) FROM hazard_reports)",
                {"probe": PROBE, "marker": MARKER + "%", "user": user},
            ).fetchone()[0]
            dead = conn.execute(
                f"SELECT count(*) FROM dead_letters WHERE {MY_TOPICS}", my_topics(prefix, user)
            ).fetchone()[0]
    except psycopg.OperationalError:
        return -1, -1
    return stored, dead


def my_topics(prefix: str, user: str) -> dict[str, str]:
    """The parameters of MY_TOPICS."""
    return {"prefix": prefix + "/%", "owntracks": f"owntracks/{user}/%"}


def caught_up(url: str, prefix: str, publish, timeout: float = 30.0) -> None:
    """Publish a marker and wait until it is stored: the broker keeps one publisher's order
    and the worker commits batches in order, so all published before it is then written."""
    meter_id = f"{MARKER}-{uuid.uuid4().hex[:10]}"
    publish(f"{prefix}/meter/{meter_id}", {"power_w": 0})
    publish.flush()

    def stored() -> bool:
        with psycopg.connect(url) as conn:
            query = "SELECT count(*) FROM meter_readings WHERE meter_id = %s"
            return conn.execute(query, (meter_id,)).fetchone()[0] == 1

    wait_for(stored, timeout, "the worker to catch up with what was published")


class IngestProcess(GridwatchProcess):
    """`python -m gridwatch ingest --client-id ID [--shared NAME]`."""

    def __init__(
        self, env: dict[str, str], client_id: str, log_path: Path, shared: str | None = None
    ) -> None:
        args = ["ingest", "--client-id", client_id]
        super().__init__(env, [*args, "--shared", shared] if shared else args, log_path)


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a gridwatch child process with these settings (no other
    GRIDWATCH_ variable of ours leaks in); `extra`: more GRIDWATCH_ settings by name."""
    values = {
        "DATABASE_URL": settings.database_url,
        "MQTT_URL": settings.mqtt_url,
        "TOPIC_PREFIX": settings.topic_prefix,
        "DATA_DIR": str(settings.data_dir),
        "MQTT_SESSION_EXPIRY_S": str(settings.mqtt_session_expiry_s),
        "MQTT_CLIENT_ID": settings.mqtt_client_id,
        "ALERT_WEBHOOKS": json.dumps(list(settings.alert_webhooks)),
        **{name.upper(): value for name, value in extra.items()},
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    return {**inherited, **{f"GRIDWATCH_{name}": value for name, value in values.items()}}


def wait_until_consuming(url: str, prefix: str, publish, worker: GridwatchProcess) -> None:
    """Publish probes until one is stored: messages published before a worker's first
    subscription have no session to wait in, so a test counts only what comes after."""
    probe_at = datetime.now(UTC) - timedelta(hours=1)

    def probe_stored() -> bool:
        nonlocal probe_at
        probe_at += timedelta(seconds=1)
        publish(f"{prefix}/meter/{PROBE}", {"ts": probe_at.isoformat(), "power_w": 0})
        publish.flush()
        assert worker.process.poll() is None, f"gridwatch exited:\n{worker.log()}"
        return count_rows(url, "meter_readings", "meter_id = %s", (PROBE,)) > 0

    wait_for(probe_stored, timeout=30, what="the worker to subscribe")
