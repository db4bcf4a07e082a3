"""The fault tests' rig: a private Mosquitto behind a fault proxy, gridwatch's own processes
(`python -m gridwatch ingest`, `python -m gridwatch alerts`) talking to it through the
proxy, a webhook receiver, and the checks every scenario ends with.

- **Conservation**: every message published is a stored row or a dead letter, none twice
  (`assert_conserved`). The tables' unique dedupe keys make a second row impossible, so a
  duplicate could only hide as a missing row elsewhere; counting rows per table against
  what was published catches both.
- **Alerts on time**: afterwards a resident who stops showing activity gets their alert at
  the deadline their device time sets, and each alert change reaches the webhook once
  (`assert_alert_on_time`, `assert_webhooks_once`).

Durations that make a scenario realistic but slow (a 60 s database outage, a 30 s black
hole, 100,000 messages) come from GRIDWATCH_FAULT_* variables; the defaults keep the whole
directory within a few minutes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

from tests.support.broker import publishing
from tests.support.ingest_streams import (
    BAD_EVERY,
    IngestProcess,
    accounted,
    mixed_stream,
    process_env,
    wait_until_consuming,
)
from tests.support.netfaults import FaultProxy
from tests.support.ports import free_port
from tests.support.private_services import GridwatchProcess, PrivateMosquitto
from tests.support.settings import make_settings
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

QUIET_S = 10.0  # the watched resident's no_activity threshold in the on-time check
ON_TIME_S = 5.0  # how late after its deadline an alert may open: a poll, a batch, a step


def fault_seconds(name: str, default: float) -> float:
    """A scenario's duration: GRIDWATCH_FAULT_{name} when set (the full-length run)."""
    return float(os.environ.get(f"GRIDWATCH_FAULT_{name}", default))


class Rig:
    """One scenario's services: see the module docstring. Close with `close()`."""

    def __init__(
        self, tmp_path: Path, database_url: str, *, database_proxy: bool = False, **settings
    ) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url  # the test's own way in, never through a proxy
        self.broker = PrivateMosquitto(tmp_path / "mosquitto")
        self.broker.start()
        self.proxy = FaultProxy("127.0.0.1", self.broker.port).start()
        # With `database_proxy`, gridwatch reaches PostgreSQL through a proxy of its own.
        self.db_proxy: FaultProxy | None = None
        gridwatch_database_url = database_url
        if database_proxy:
            parts = urlsplit(database_url)
            self.db_proxy = FaultProxy(parts.hostname, parts.port).start()
            netloc = f"{parts.username}@127.0.0.1:{self.db_proxy.port}"
            gridwatch_database_url = urlunsplit(parts._replace(netloc=netloc))
        self.receiver = Receiver(free_port())
        self.receiver.status = 200
        self.receiver.start()
        self.settings = make_settings(
            tmp_path,
            gridwatch_database_url,
            self.proxy.url("mqtt"),
            alert_webhooks=(self.receiver.url,),
            **settings,
        )
        self.prefix = self.settings.topic_prefix
        self.user = self.settings.mqtt_client_id  # the OwnTracks user of mixed_stream()
        # The settings given here reach the processes too; tests may add more.
        self.env_extra = {name: str(value) for name, value in settings.items()}
        self.processes: list[GridwatchProcess] = []
        # Devices publish to the broker itself: the faults are on gridwatch's side.
        self._publishing = publishing(self.broker.url)
        self.publish = next(self._publishing)
        quiet_district(database_url)

    def env(self) -> dict[str, str]:
        return process_env(self.settings, **self.env_extra)

    def start_ingest(self, client_id: str | None = None, shared: str | None = None):
        """An ingest process (the settings' client id unless given)."""
        client_id = client_id or self.settings.mqtt_client_id
        log = self.tmp_path / f"ingest-{client_id}.log"
        worker = IngestProcess(self.env(), client_id, log, shared=shared)
        self.processes.append(worker)
        return worker

    def start_alerts(self) -> GridwatchProcess:
        """`gridwatch alerts`: the engine and its delivery, on the wall clock."""
        alerts = GridwatchProcess(self.env(), ["alerts"], self.tmp_path / "alerts.log")
        self.processes.append(alerts)
        return alerts

    def consuming(self, worker: GridwatchProcess) -> None:
        """Wait until `worker` stores what is published."""
        wait_until_consuming(self.database_url, self.prefix, self.publish, worker)

    def stream(self, total: int) -> list[tuple[str, bytes | dict]]:
        """`total` mixed messages (one in BAD_EVERY bad) to publish."""
        return mixed_stream(self.prefix, self.user, total)

    def publish_in_background(self, messages, per_s: float) -> threading.Thread:
        """Publish `messages` at about `per_s` a second from a thread (join it to flush)."""

        def run() -> None:
            started = time.monotonic()
            for n, (topic, payload) in enumerate(messages):
                self.publish(topic, payload)
                ahead = started + n / per_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.publish.flush()

        sender = threading.Thread(target=run, name="publisher")
        sender.start()
        return sender

    def counts(self) -> tuple[int, int]:
        """(rows stored, dead letters) of this scenario's stream."""
        return accounted(self.database_url, self.prefix, self.user)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        with contextlib.suppress(Exception):
            next(self._publishing, None)
        self.proxy.close()
        if self.db_proxy is not None:
            self.db_proxy.close()
        self.broker.stop()
        self.receiver.stop()


@contextlib.contextmanager
def open_rig(tmp_path: Path, database_url: str, **options) -> Iterator[Rig]:
    rig = Rig(tmp_path, database_url, **options)
    try:
        yield rig
    finally:
        rig.close()


def quiet_district(url: str) -> None:
    """Watch no one for inactivity: the district's homes send no data in these tests and
    would raise alerts of their own. SOS and falls are still heard from everyone."""
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE residents SET living_alone = false")


def assert_conserved(rig: Rig, total: int, timeout: float = 60.0) -> None:
    """Every one of `total` published stream messages stored or dead-lettered, once."""
    bad = total // BAD_EVERY
    expected = (total - bad, bad)
    wait_for(
        lambda: rig.counts() == expected,
        timeout,
        f"{expected[0]} rows and {bad} dead letters (have {rig.counts()})\n{rig.logs()}",
    )
    time.sleep(1.0)  # anything still arriving would be a duplicate
    assert rig.counts() == expected
    with psycopg.connect(rig.database_url) as conn:
        reports, events = conn.execute(
            "SELECT (SELECT count(*) FROM hazard_reports), "
            "(SELECT count(*) FROM hazard_events WHERE action = 'report')"
        ).fetchone()
    assert events == reports, "one 'report' event per hazard"


@dataclass(frozen=True)
class Watched:
    resident_id: str
    door: str


def watch_one(url: str, quiet_s: float, *, index: int = 0, since_s: float = 1.0) -> Watched:
    """Watch one resident (the index-th with a door sensor) for inactivity from `since_s`
    seconds ago on, alerting after `quiet_s` seconds without a sign of life."""
    with psycopg.connect(url) as conn:
        resident, door = conn.execute(
            "SELECT r.id, d.id FROM residents r JOIN devices d ON d.resident_id = r.id "
            "WHERE d.id LIKE '%%-door' ORDER BY r.id OFFSET %s LIMIT 1",
            (index,),
        ).fetchone()
        rules = {
            "no_activity_h": quiet_s / 3600,
            "disabled": ["morning", "evening", "meter_offline"],
        }
        conn.execute(
            "UPDATE residents SET living_alone = true, rules = %s, "
            "created_at = now() - %s * interval '1 second' WHERE id = %s",
            (Jsonb(rules), since_s, resident),
        )
    return Watched(resident, door)


def alert_of(url: str, resident: str, kind: str) -> tuple | None:
    """(id, since, opened_at) of the resident's alert of `kind`, if there is one."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, since, opened_at FROM alerts WHERE resident_id = %s AND kind = %s",
            (resident, kind),
        ).fetchone()


@dataclass(frozen=True)
class Quiet:
    """A watched resident's last sign of life, and when their alert is due."""

    watched: Watched
    last: datetime
    quiet_s: float

    @property
    def deadline(self) -> datetime:
        return self.last + timedelta(seconds=self.quiet_s)


def last_sign_of_life(rig: Rig, quiet_s: float = QUIET_S, *, index: int = 0) -> Quiet:
    """Watch a resident with a `quiet_s` threshold and publish their last sign of life now."""
    watched = watch_one(rig.database_url, quiet_s, index=index)
    last = datetime.now(UTC)
    door = {"ts": last.isoformat(), "event": "door_open"}
    rig.publish(f"{rig.prefix}/sensor/{watched.door}", door)
    rig.publish.flush()
    return Quiet(watched, last, quiet_s)


def assert_opens_on_time(rig: Rig, quiet: Quiet) -> None:
    """The quiet resident's no_activity alert opens at the last sign's device time plus the
    threshold: not before, at most ON_TIME_S after."""
    resident = quiet.watched.resident_id
    found = wait_for(
        lambda: alert_of(rig.database_url, resident, "no_activity"),
        (quiet.deadline - datetime.now(UTC)).total_seconds() + 30,
        f"the no_activity alert of {resident}\n{rig.logs()}",
    )
    _id, since, opened_at = found
    assert since == quiet.last, "the quiet is counted from the last sign of life's device time"
    late = (opened_at - quiet.deadline).total_seconds()
    assert 0 <= late <= ON_TIME_S, f"opened {late:.1f} s after its deadline"


def assert_alert_on_time(rig: Rig, quiet_s: float = QUIET_S, *, index: int = 0) -> None:
    """A resident's last sign of life now, then nothing: their alert opens on time."""
    assert_opens_on_time(rig, last_sign_of_life(rig, quiet_s, index=index))


def assert_webhooks_once(rig: Rig, timeout: float = 30.0, *, in_flight: int = 0) -> Counter:
    """Every alert change in the outbox reached the webhook receiver exactly once; returns
    the deliveries per event id.

    `in_flight`: how many posts the alert process may have had under way when it was
    killed. Such a post may have reached the receiver while its 2xx was never recorded, so
    it is sent again after the restart: at-least-once is all an HTTP post can promise across
    a crash. Each of those may arrive twice, never more, and with the same Idempotency-Key,
    by which a receiver keeps one.
    """
    with psycopg.connect(rig.database_url) as conn:
        events = {row[0] for row in conn.execute("SELECT event_id FROM alert_outbox")}

    def delivered() -> Counter:
        return Counter(body["event_id"] for _headers, body in rig.receiver.accepted())

    wait_for(lambda: set(delivered()) >= events, timeout, f"webhooks of events {sorted(events)}")
    time.sleep(1.0)  # a second delivery would come now
    counts = delivered()
    assert set(counts) == events
    again = [e for e, n in counts.items() if n > 1]
    assert len(again) <= in_flight, f"webhooks sent twice: {again}"
    assert all(counts[e] == 2 for e in again), "a webhook sent three times"
    for event in again:
        keys = {
            headers.get("Idempotency-Key") or headers.get("idempotency-key")
            for headers, body in rig.receiver.accepted()
            if body["event_id"] == event
        }
        assert len(keys) == 1 and None not in keys, f"event {event} resent under another key"
    return counts


def assert_published_once(heard, events: Counter, timeout: float = 30.0) -> None:
    """Every alert change of `events` (event id: count) was heard on MQTT exactly once by
    `heard` (a test_alert_service.Subscriber on the broker itself)."""

    def on_mqtt() -> Counter:
        return Counter(payload["event_id"] for _topic, payload in heard.messages)

    wait_for(lambda: set(on_mqtt()) >= set(events), timeout, "the alert changes on MQTT")
    time.sleep(1.0)  # a second copy would come now
    counts = on_mqtt()
    assert set(counts) == set(events)
    assert [e for e, n in counts.items() if n > 1] == [], "alert changes published twice"


def sensors_of(url: str, count: int) -> list[tuple[str, str]]:
    """(resident, sensor) of `count` residents, one sensor each."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT DISTINCT ON (r.id) r.id, d.id FROM residents r "
            "JOIN devices d ON d.resident_id = r.id AND d.kind = 'sensor' "
            "ORDER BY r.id, d.id LIMIT %s",
            (count,),
        ).fetchall()


def stream_with_fault(
    rig: Rig, total: int, per_s: float, fault: Callable[[], object], *, at: float = 1 / 3
) -> None:
    """Publish `total` stream messages at `per_s` a second and, once a share `at` of them is
    stored, cause `fault()`; then the common end: a watched resident's last sign of life
    right after the fault, every message stored or dead-lettered once, the alert on time,
    each alert change on the webhook once."""
    sender = rig.publish_in_background(rig.stream(total), per_s=per_s)
    wait_for(lambda: rig.counts()[0] >= total * at, 30, "the first rows")
    fault()
    quiet = last_sign_of_life(rig)  # due while the rest is caught up
    sender.join(60)
    assert not sender.is_alive()
    assert_conserved(rig, total)
    assert_opens_on_time(rig, quiet)
    assert_webhooks_once(rig)


def kill_mid_batch(rig: Rig, worker: GridwatchProcess, hang_s: float = 3.0) -> None:
    """SIGKILL an ingest worker in the middle of a batch's write: the database (reached
    through the rig's proxy) stops answering for `hang_s`, the worker's next batch hangs in
    its write, and the kill finds it there (at a random moment it mostly finds the worker
    waiting for messages)."""
    rig.db_proxy.blackhole(hang_s)
    time.sleep(1.0)
    worker.kill()
