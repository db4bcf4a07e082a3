"""Benchmark MQTT ingest live: a bare subscriber, gridwatch's worker and a naive ingest.

    python bench/ingest.py [--messages 200000] [--mqtt-url URL] [--database-url URL]

One run measures three consumers one after another, each on a fresh topic prefix (and a
fresh database where it writes), while a publisher in a separate process sends a realistic
mix (meter readings, sensor events, patrol check-ins, some GCJ-02 and some visits, hazards,
OwnTracks points; every message has its own dedupe key, so each is one row) at QoS 1:

  (a) raw     a bare paho v2 subscriber with the worker's session settings (MQTT 5 when the
              broker speaks it, persistent session, QoS 1, Receive Maximum) that acks each
              message in on_message and only counts it: the ceiling;
  (b) ingest  `python -m gridwatch ingest` as its own process, as it runs in production,
              timed from its first received message (received_at) until all rows are
              committed (watched in the database);
  (c) naive   json.loads, one INSERT and one COMMIT per message, ack after the commit: the
              floor, on min(N, --naive-messages) messages (a rate, so a subset is fair).

Rate = messages consumed / time from the first to the last message consumed. By default a
private Mosquitto runs with deploy/mosquitto.conf (free port, temporary persistence,
anonymous on 127.0.0.1 only) so the broker's inflight and queue limits neither throttle nor
drop; --mqtt-url uses an existing broker instead, and then lost messages show up as `lost`.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg import sql

from gridwatch.geo.crs import to_wgs84
from gridwatch.ingest.mqtt import (
    BrokerAddress,
    connect_properties,
    new_client,
    probe_protocol,
    publisher,
)
from gridwatch.ingest.topics import subscriptions
from gridwatch.settings import Settings
from gridwatch.simulators.district import build_sample_district
from gridwatch.simulators.traffic import CheckIn, hazard, patrol_point, points_in
from gridwatch.store.migrate import migrate

# Run as `python bench/ingest.py`, the path has bench/ but not the checkout's root, which
# holds tests/support: the private broker and processes, shared with the tests.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.support.private_services import GridwatchProcess, PrivateMosquitto

REPO = Path(__file__).resolve().parent.parent
BROKER_CONFIG = REPO / "deploy" / "mosquitto.conf"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Share of each kind in the traffic: a district is mostly meters reporting every minute.
MIX = (("meter", 0.80), ("sensor", 0.08), ("patrol", 0.06), ("owntracks", 0.05), ("hazard", 0.01))
SENSOR_EVENTS = ("door_open", "motion", "curtain_open", "curtain_close", "light_on", "light_off")
VISIT_STATUSES = ("ok", "ok", "ok", "concern", "not_home")
STALL_S = 30.0  # no progress for this long after the publisher finished: the rest is lost

# -- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Traffic:
    """The messages to publish, and the dedupe key of the last one (always a meter reading)."""

    messages: list[tuple[str, bytes]]
    last_meter_id: str
    last_observed_at: datetime


def make_traffic(count: int, *, prefix: str, tag: str, seed: int, now: datetime) -> Traffic:
    """`count` messages of the sample district in a realistic mix, each with its own dedupe key.

    Times lie in the hour or two before `now`, as live traffic does; OwnTracks users carry
    `tag` so a run's OwnTracks topics are its own even on a shared broker.
    """
    rng = np.random.default_rng(seed)
    district = build_sample_district()
    kinds = rng.choice(len(MIX), size=count, p=[share for _, share in MIX])
    kinds[-1] = 0  # the last message is a meter reading: its row tells the run is complete
    counts = np.bincount(kinds, minlength=len(MIX))
    zone = ZoneInfo("Asia/Shanghai")
    end = int(now.timestamp())

    meters = [r.meter_id for r in district.residents if r.meter_id]
    meter_messages, last_meter_id, last_epoch = _meter_readings(
        int(counts[0]), meters, prefix, end, zone, rng
    )
    sensors = [s for r in district.residents for s in r.sensor_ids]
    by_kind: list[Iterator[tuple[str, bytes]]] = [
        iter(meter_messages),
        iter(_sensor_events(int(counts[1]), sensors, prefix, end, rng)),
        iter(_patrol_points(int(counts[2]), district, prefix, "", end, zone, rng)),
        iter(_patrol_points(int(counts[3]), district, prefix, tag, end, zone, rng)),
        iter(_hazards(int(counts[4]), district, prefix, end, zone, rng)),
    ]
    messages = []
    for k in kinds.tolist():
        topic, payload = next(by_kind[k])
        messages.append((topic, bytes(memoryview(payload))))  # an exact-size copy: see dumps()
    return Traffic(messages, last_meter_id, datetime.fromtimestamp(last_epoch, UTC))


def dumps(payload: dict) -> bytes:
    """JSON bytes of exactly their size: orjson's own keep a 4 KiB block each, which for
    200,000 pre-built messages is most of a gigabyte."""
    return bytes(memoryview(orjson.dumps(payload)))


def _meter_readings(count, meters, prefix, end, zone, rng):
    """Every meter reports once a minute (power, energy and water registers); a quarter of
    them send epoch seconds, the rest ISO 8601 with the +08:00 offset."""
    minutes = max(1, math.ceil(count / len(meters)))
    power = rng.choice([35.0, 60.0, 120.0, 800.0, 1500.0], count, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    energy0 = rng.uniform(800, 5000, len(meters))
    water0 = rng.uniform(1e5, 9e5, len(meters))
    water_step = rng.choice([0.0, 0.0, 0.0, 2.5, 12.0], count)
    messages = []
    meter_id, epoch = meters[0], end
    for i in range(count):
        m, minute = i % len(meters), i // len(meters)
        meter_id = meters[m]
        epoch = end - (minutes - minute) * 60 + m % 60
        payload = {
            "ts": epoch if m % 4 == 0 else datetime.fromtimestamp(epoch, zone).isoformat(),
            "power_w": float(power[i]),
            "energy_kwh": round(float(energy0[m]) + minute * 0.0125, 4),
            "water_l": round(float(water0[m]) + minute * float(water_step[i]), 1),
        }
        messages.append((f"{prefix}/meter/{meter_id}", dumps(payload)))
    return messages, meter_id, epoch


def _sensor_events(count, sensors, prefix, end, rng):
    """Door, motion, curtain and light events in epoch seconds; motion carries a value."""
    events = rng.integers(len(SENSOR_EVENTS), size=count)
    for i in range(count):
        s, k = i % len(sensors), i // len(sensors)
        event = SENSOR_EVENTS[int(events[i])]
        payload = {"ts": end - 600 - k * 97 - s % 97, "event": event}
        if event == "motion":
            payload["value"] = 1
        yield f"{prefix}/sensor/{sensors[s]}", dumps(payload)


def _patrol_points(count, district, prefix, owntracks_tag, end, zone, rng):
    """Track points every 10 s per worker inside their grid (a few outside every grid); a
    third of the workers' apps send GCJ-02, one point in ten is a home visit. With a tag the
    points come from OwnTracks (user = tag + worker id) instead of the gridwatch app."""
    workers = district.workers
    # A worker visits the residents of their own grid (a visit elsewhere is a dead letter).
    residents: dict[str, list] = {}
    for resident in district.residents:
        residents.setdefault(resident.grid_code, []).append(resident)
    grids = {g.code: g.geometry for g in district.grids}
    per_worker = max(1, math.ceil(count / len(workers)))
    tracks = [points_in(grids[w.grid_code], per_worker, rng) for w in workers]
    for i in range(count):
        w, k = i % len(workers), i // len(workers)
        worker = workers[w]
        lon, lat = tracks[w][k]
        if k % 37 == 5:
            lon += 0.5  # off the district: stored without a grid, never dropped
        at = datetime.fromtimestamp(end - k * 10 - w % 10, zone)
        if owntracks_tag:
            where = CheckIn(lon, lat, at)
            yield patrol_point(f"{owntracks_tag}{worker.worker_id}", where, prefix, owntracks=True)
        elif k % 10 == 3 and residents.get(worker.grid_code):
            own = residents[worker.grid_code]
            resident = own[int(rng.integers(len(own)))]
            payload = {
                "ts": at.isoformat(),
                "lat": resident.lat,
                "lon": resident.lon,
                "kind": "visit",
                "resident_id": resident.resident_id,
                "status": VISIT_STATUSES[k % len(VISIT_STATUSES)],
                "accuracy_m": 8,
                "note": "入户走访 老人身体状况良好",
            }
            yield f"{prefix}/patrol/{worker.worker_id}", dumps(payload)
        else:
            yield patrol_point(worker.worker_id, CheckIn(lon, lat, at, gcj02=w % 3 == 0), prefix)


def _hazards(count, district, prefix, end, zone, rng):
    """Hazard reports with client-made UUIDs, placed in the reporter's grid."""
    grids = {g.code: g.geometry for g in district.grids}
    for i in range(count):
        worker = district.workers[i % len(district.workers)]
        lon, lat = points_in(grids[worker.grid_code], 1, rng)[0]
        at = datetime.fromtimestamp(end - 60 - i, zone)
        yield hazard(worker.worker_id, lon, lat, at, rng, prefix)


class WirePublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket.

    PUBLISH packets are encoded before the clock starts and written in large chunks, so one
    process offers several times what one paho client can (about 10,000 msg/s on a small
    machine): like a district's thousands of devices, the offered load is then not what
    limits the subscriber under test. At most `window` messages wait for their PUBACK.
    """

    def __init__(self, address: BrokerAddress, client_id: str, window: int = 10_000) -> None:
        if address.tls:
            raise ValueError("the bench publisher speaks plain MQTT: use an mqtt:// URL")
        self.window = window
        self.acked = 0
        self._changed = threading.Condition()
        self.sock = socket.create_connection((address.host, address.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(_connect_packet(client_id, address.username, address.password))
        connack = self._receive(4)
        if connack[:2] != b"\x20\x02" or connack[3] != 0:
            raise RuntimeError(f"the broker refused the bench publisher: CONNACK {connack.hex()}")
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._count_acks, daemon=True)
        self._reader.start()

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise RuntimeError("the broker closed the connection of the bench publisher")
            data += chunk
        return data

    def _count_acks(self) -> None:
        # Nothing is subscribed on this connection, so the broker sends only PUBACKs (4 bytes).
        pending = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:  # closed by close()
                return
            if not chunk:
                return
            pending += chunk
            whole = len(pending) // 4
            if pending[: whole * 4 : 4] != b"\x40" * whole:
                raise RuntimeError(f"unexpected packet from the broker: {pending[:8].hex()}")
            pending = pending[whole * 4 :]
            with self._changed:
                self.acked += whole
                self._changed.notify_all()

    def publish(self, packets: list[bytes], rate: float = 0.0) -> None:
        """Send every packet, `rate` per second (0: as fast as the broker acknowledges)."""
        chunk = 500 if rate <= 0 else max(1, min(500, int(rate / 100)))
        started = time.monotonic()
        sent = 0
        while sent < len(packets):
            upto = min(sent + chunk, len(packets))
            if rate > 0:
                time.sleep(max(0.0, started + upto / rate - time.monotonic()))
            with self._changed:
                while upto - self.acked > self.window:
                    self._changed.wait(1.0)
            self.sock.sendall(b"".join(packets[sent:upto]))
            sent = upto

    def wait_acked(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` messages are acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.acked < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        """Send DISCONNECT and close the socket."""
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
            self.sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)
        self.sock.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return len(raw).to_bytes(2, "big") + raw


def _connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session; keep-alive 0: no PINGREQ needed during a run
    payload = _text(client_id)
    if username:
        flags |= 0x80
        payload += _text(username)
        if password:
            flags |= 0x40
            payload += _text(password)
    body = _text("MQTT") + bytes([4, flags, 0, 0]) + payload
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH at QoS 1."""
    body = _text(topic) + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _varint(len(body)) + body


def publish_traffic(mqtt_url, count, prefix, tag, seed, now, rate, ready, go, results) -> None:
    """Publisher process: build the traffic, say it is ready, and on `go` publish it at QoS 1.

    Puts the dedupe key of the last message on `results`, then (first publish, last PUBACK)
    wall times and the published and acknowledged counts.
    """
    traffic = make_traffic(count, prefix=prefix, tag=tag, seed=seed, now=now)
    packets = [
        publish_packet(topic, payload, n % 65535 + 1)
        for n, (topic, payload) in enumerate(traffic.messages)
    ]
    client = WirePublisher(BrokerAddress.from_url(mqtt_url), f"gwbench-pub-{tag}")
    results.put((traffic.last_meter_id, traffic.last_observed_at))
    ready.set()
    go.wait()
    started = time.time()
    client.publish(packets, rate)
    client.wait_acked(len(packets), timeout_s=600)
    finished = time.time()
    client.close()
    results.put((started, finished, len(packets), client.acked))


class Publisher:
    """The publisher process of one phase: started early (building traffic takes a moment)."""

    def __init__(
        self, mqtt_url: str, count: int, prefix: str, tag: str, seed: int, rate: float
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._go = ctx.Event()
        self._results = ctx.Queue()
        now = datetime.now(UTC)
        self._process = ctx.Process(
            target=publish_traffic,
            args=(
                mqtt_url,
                count,
                prefix,
                tag,
                seed,
                now,
                rate,
                self._ready,
                self._go,
                self._results,
            ),
            daemon=True,
        )
        self._process.start()
        self.count = count
        self.last_key: tuple[str, datetime] | None = None
        self.started = self.finished = 0.0
        self.acked = 0

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Wait until the traffic is built and the publisher is connected."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.2):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the publisher process did not get ready")
        self.last_key = self._results.get(timeout=10)

    def go(self) -> None:
        """Start publishing."""
        self._go.set()

    def done(self, wait_s: float = 0.0) -> bool:
        """Whether the publisher is through: all acknowledged by the broker, or it died."""
        if not self.finished:
            with contextlib.suppress(queue.Empty):
                timings = self._results.get(block=wait_s > 0, timeout=wait_s or None)
                self.started, self.finished, _, self.acked = timings
        return bool(self.finished) or not self._process.is_alive()

    def join(self) -> None:
        """Wait for the publisher to finish and collect its timings."""
        while not self.done(wait_s=0.2):
            pass
        self.done(wait_s=1.0)  # its result may land just as the process ends
        self._process.join(10)

    @property
    def rate(self) -> float:
        """Messages acknowledged by the broker per second of publishing."""
        return self.acked / (self.finished - self.started) if self.finished > self.started else 0.0


# -- broker ---------------------------------------------------------------------------------


@contextlib.contextmanager
def private_broker(config: Path) -> Iterator[tuple[str, str]]:
    """Run Mosquitto with `config`'s limits on a free port of 127.0.0.1; yield (url, notes)."""
    workdir = Path(tempfile.mkdtemp(prefix="gwbench-mosquitto-"))
    try:
        with PrivateMosquitto(workdir, config) as broker:
            yield broker.url, ", ".join(broker.limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def mosquitto_version() -> str:
    """The version line of the mosquitto binary on PATH."""
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout  # noqa: S607 - mosquitto from PATH
    return out.splitlines()[0] if out else "mosquitto"


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds a process has used (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used(pid: int, before: float | None) -> float | None:
    """CPU seconds `pid` used since `before` (a process_cpu_s reading)."""
    after = process_cpu_s(pid)
    return None if before is None or after is None else after - before


# -- subscribers ----------------------------------------------------------------------------


class BenchSubscriber:
    """A paho v2 client with the ingest worker's session settings, feeding `handle`.

    MQTT 5 when the broker speaks it, a persistent session (clean start off, session expiry,
    the worker's Receive Maximum), QoS 1 subscriptions made in on_connect, manual acks.
    """

    def __init__(
        self,
        settings: Settings,
        address: BrokerAddress,
        client_id: str,
        prefix: str,
        handle: Callable[[mqtt.Client, mqtt.MQTTMessage], None],
    ) -> None:
        self.address = address
        self.client_id = client_id
        self.subscribed = threading.Event()
        self.protocol = probe_protocol(address)
        client = new_client(address, client_id, protocol=self.protocol, persistent=True)
        client.manual_ack_set(True)
        filters = subscriptions(prefix)

        def on_connect(client, userdata, flags, reason, properties) -> None:
            if client.protocol == mqtt.MQTTv5:
                client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
            else:
                client.subscribe([(f, 1) for f in filters])

        client.on_connect = on_connect
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.on_message = lambda client, userdata, message: handle(client, message)
        if self.protocol == mqtt.MQTTv5:
            client.connect(
                address.host,
                address.port,
                keepalive=settings.mqtt_keepalive_s,
                clean_start=False,
                properties=connect_properties(
                    settings.mqtt_session_expiry_s, settings.mqtt_receive_maximum
                ),
            )
        else:
            client.connect(address.host, address.port, keepalive=settings.mqtt_keepalive_s)
        client.loop_start()
        self.client = client
        if not self.subscribed.wait(10):
            raise RuntimeError(f"no SUBACK from {address}")

    def close(self) -> None:
        """Disconnect and delete the persistent session, so no broker keeps queueing for it."""
        self.client.disconnect()
        self.client.loop_stop()
        discard_session(self.address, self.client_id, self.protocol)


def discard_session(address: BrokerAddress, client_id: str, protocol: int) -> None:
    """End the persistent session of `client_id` (connect with a clean start, expiry 0)."""
    client = new_client(address, client_id, protocol=protocol, persistent=False)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    if protocol == mqtt.MQTTv5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        client.connect(address.host, address.port, clean_start=True, properties=props)
    else:
        client.connect(address.host, address.port)
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()


def is_ours(topic: str, prefix: str, tag: str) -> bool:
    """Whether a topic belongs to this phase (on a shared broker others may publish too)."""
    return topic.startswith(f"{prefix}/") or topic.startswith(f"owntracks/{tag}")


# -- database -------------------------------------------------------------------------------


def database_url_for(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """Create database `name`, migrate it, yield its URL; drop it afterwards."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url_for(server_url, name)
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass(frozen=True, slots=True)
class RowCounts:
    """What a phase's database holds: rows, dead-lettered messages, rows beyond their key."""

    stored: int
    dead_letters: int
    duplicated: int


def count_rows(conn: psycopg.Connection, probe_meter: str = "") -> RowCounts:
    """Rows stored from the run, dead-lettered messages, and rows beyond one per dedupe key
    (a hazard also must have exactly one 'report' event)."""
    row = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM meter_readings WHERE meter_id <> %(probe)s)
          + (SELECT count(*) FROM sensor_events)
          + (SELECT count(*) FROM patrol_checkins)
          + (SELECT count(*) FROM hazard_reports),
          (SELECT coalesce(sum(occurrences), 0) FROM dead_letters),
          (SELECT count(*) - count(DISTINCT (meter_id, observed_at)) FROM meter_readings)
          + (SELECT count(*) - count(DISTINCT (device_id, observed_at, event))
             FROM sensor_events)
          + (SELECT count(*) - count(DISTINCT (worker_id, source, observed_at))
             FROM patrol_checkins)
          + (SELECT count(*) - count(DISTINCT id) FROM hazard_reports)
          + (SELECT count(*) - count(DISTINCT hazard_id) FROM hazard_events
             WHERE action = 'report')
        """,
        {"probe": probe_meter},
    ).fetchone()
    return RowCounts(int(row[0]), int(row[1]), int(row[2]))


# -- phases ---------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """One consumer's run: counts, wall times of its first and last message, checks."""

    name: str
    published: int = 0
    consumed: int = 0
    first: float = 0.0
    last: float = 0.0
    lost: int = 0
    duplicated: int = 0
    dead_letters: int = 0
    publish_rate: float = 0.0
    publish_done: float = 0.0  # wall time the publisher had every PUBACK
    cpu_s: float | None = None  # the consumer process's CPU time while it consumed
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """From the first message consumed to the last."""
        return self.last - self.first

    @property
    def rate(self) -> float:
        """Messages consumed per second."""
        return self.consumed / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One human-readable line of results."""
        text = (
            f"{self.name:<7} {self.consumed:>8,} msgs in {self.seconds:7.2f} s = "
            f"{self.rate:>9,.0f} msg/s  (publisher {self.publish_rate:,.0f} msg/s, done at "
            f"{self.publish_done - self.first:.1f} s; lost {self.lost}, "
            f"duplicated {self.duplicated}"
        )
        if self.dead_letters:
            text += f", dead letters {self.dead_letters}"
        text += ")"
        if self.cpu_per_message is not None:
            text += f"\n        consumer process CPU: {self.cpu_per_message:.0f} us/msg"
        return text + "".join(f"\n        {note}" for note in self.notes)

    @property
    def cpu_per_message(self) -> float | None:
        """CPU microseconds the consumer's process spent per message consumed."""
        if self.cpu_s is None or not self.consumed:
            return None
        return self.cpu_s / self.consumed * 1e6


@dataclass(frozen=True, slots=True)
class Run:
    """What every phase shares."""

    settings: Settings
    mqtt_url: str
    server_url: str
    seed: int
    run_id: str
    publish_rate: float

    @property
    def address(self) -> BrokerAddress:
        """The broker under test."""
        return BrokerAddress.from_url(self.mqtt_url)

    def names(self, phase: str) -> tuple[str, str, str]:
        """Topic prefix, OwnTracks tag and database name of a phase, all fresh."""
        base = f"gwbench{self.run_id}{phase}"
        return base, f"{base}-", f"gwbench_{self.run_id}_{phase}"


def wait_for_count(
    counted: Callable[[], int], expected: int, pub: Publisher, what: str, interval_s=0.05
) -> None:
    """Wait until `counted()` reaches `expected`, or nothing moved for STALL_S after the
    publisher finished (the rest is lost)."""
    seen, moved = -1, time.monotonic()
    while True:
        now_seen = counted()
        if now_seen >= expected:
            return
        if now_seen != seen:
            seen, moved = now_seen, time.monotonic()
        elif pub.done() and time.monotonic() - moved > STALL_S:
            print(f"  {what}: stalled at {now_seen:,} of {expected:,}", file=sys.stderr)
            return
        time.sleep(interval_s)


def measure_raw(run: Run, count: int, round_no: int) -> PhaseResult:
    """(a) Broker to a bare subscriber that acks at once and counts: the ceiling."""
    prefix, tag, _ = run.names(f"a{round_no}")
    result = PhaseResult("raw", published=count)
    pub = Publisher(run.mqtt_url, count, prefix, tag, run.seed, run.publish_rate)
    seen: set[tuple[str, bytes]] = set()
    stamps = [0.0, 0.0]
    total = 0

    def handle(client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        nonlocal total
        client.ack(message.mid, message.qos)
        topic = message.topic
        if is_ours(topic, prefix, tag):
            now = time.time()
            if not total:
                stamps[0] = now
            stamps[1] = now
            total += 1
            seen.add((topic, message.payload))

    subscriber = BenchSubscriber(run.settings, run.address, f"gwbench-raw-{prefix}", prefix,
                                 handle)  # fmt: skip
    try:
        pub.wait_ready()
        cpu_before = process_cpu_s(os.getpid())
        pub.go()
        wait_for_count(lambda: len(seen), count, pub, "raw")
        result.cpu_s = cpu_used(os.getpid(), cpu_before)
        pub.join()
    finally:
        subscriber.close()
    result.first, result.last = stamps
    result.consumed = len(seen)
    result.lost = count - len(seen)
    result.duplicated = total - len(seen)
    result.publish_rate = pub.rate
    result.publish_done = pub.finished
    return result


def measure_gridwatch(
    run: Run, count: int, round_no: int, worker_mode: str, profile: Path | None = None
) -> PhaseResult:
    """(b) gridwatch's ingest worker, from its first received message to all rows committed."""
    prefix, tag, dbname = run.names(f"b{round_no}")
    result = PhaseResult("ingest", published=count)
    client_id = f"gwbench-ingest-{prefix}"
    probe = f"{tag}probe"
    with fresh_database(run.server_url, dbname) as url:
        with psycopg.connect(url) as conn:
            load_sample_grids(conn)
        pub = Publisher(run.mqtt_url, count, prefix, tag, run.seed, run.publish_rate)
        worker = start_worker(run, worker_mode, url, prefix, client_id)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                wait_until_consuming(run, conn, prefix, probe, worker)
                pub.wait_ready()
                spy = start_profiler(worker, profile) if profile else None
                cpu_before = process_cpu_s(worker.pid)
                pub.go()
                last_meter, last_at = pub.last_key
                done_at = watch_commits(conn, count, pub, probe, last_meter, last_at)
                result.cpu_s = cpu_used(worker.pid, cpu_before)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
                    spy.wait(60)
                pub.join()
                counts = count_rows(conn, probe)
                first = conn.execute(
                    """
                    SELECT extract(epoch FROM least(
                      (SELECT min(received_at) FROM meter_readings WHERE meter_id <> %s),
                      (SELECT min(received_at) FROM sensor_events),
                      (SELECT min(received_at) FROM patrol_checkins),
                      (SELECT min(received_at) FROM hazard_reports)))
                    """,
                    (probe,),
                ).fetchone()[0]
        finally:
            worker.stop()
            discard_session(run.address, client_id, probe_protocol(run.address))
    result.first = float(first) if first is not None else done_at
    result.last = done_at
    result.consumed = counts.stored + counts.dead_letters
    result.lost = count - counts.stored - counts.dead_letters
    result.duplicated = counts.duplicated
    result.dead_letters = counts.dead_letters
    result.publish_rate = pub.rate
    result.publish_done = pub.finished
    result.notes.append(f"worker: {worker.describe()}")
    return result


def start_profiler(worker, output: Path) -> subprocess.Popen:
    """py-spy sampling the worker process (all threads, idle too) into `output`, raw format."""
    if not isinstance(worker, WorkerProcess):
        raise ValueError("--profile-worker needs --worker process")
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile-worker needs py-spy (pip install py-spy)")
    command = [spy, "record", "--pid", str(worker.pid), "--format", "raw", "--threads",
               "--idle", "--nonblocking", "--rate", "200", "--output", str(output)]  # fmt: skip
    # py-spy found next to this interpreter or on PATH, arguments made here; no shell.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    time.sleep(0.5)  # let it attach before the first message
    return process


def load_sample_grids(conn: psycopg.Connection) -> None:
    """The sample district's grids and the police's over it, so the worker places check-ins
    and hazards as in production, in both grid systems."""
    from gridwatch.simulators.sample import load_sample_district

    with tempfile.TemporaryDirectory(prefix="gwbench-sample-") as directory:
        load_sample_district(conn, Path(directory), police=True)
    conn.commit()


def wait_until_consuming(run, conn, prefix, probe, worker) -> None:
    """Publish probe readings until one is committed: the worker is subscribed and writing."""
    client = publisher(run.address, client_id=f"gwbench-probe-{run.run_id}")
    try:
        deadline = time.monotonic() + 120
        n = 0
        while True:
            worker.check_alive()
            at = datetime.now(UTC) - timedelta(seconds=3600 + n)
            payload = orjson.dumps({"ts": at.isoformat(), "power_w": 0.0})
            client.publish(f"{prefix}/meter/{probe}", payload, qos=1)
            n += 1
            for _ in range(10):
                time.sleep(0.05)
                found = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM meter_readings WHERE meter_id = %s)", (probe,)
                ).fetchone()[0]
                if found:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the ingest worker did not store a probe message in 120 s")
    finally:
        client.disconnect()
        client.loop_stop()


def watch_commits(conn, count, pub, probe, last_meter, last_at) -> float:
    """Wall time at which all `count` messages were committed (stored or dead-lettered).

    The last published reading's row (the worker commits in arrival order) is looked up by
    its key every 10 ms; whole counts, which cost more, are taken once a second for progress
    and as soon as that row is there.
    """
    last_seen = False
    counted_at = 0.0
    total = 0
    done_at = 0.0
    progress_at = time.time()

    def accounted() -> int:
        nonlocal last_seen, counted_at, total, done_at, progress_at
        if not last_seen:
            last_seen = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM meter_readings "
                "WHERE meter_id = %s AND observed_at = %s)",
                (last_meter, last_at),
            ).fetchone()[0]
        now = time.time()  # after the query: the commit it saw happened before this
        if now - counted_at < (0.2 if last_seen else 1.0) and not (last_seen and not counted_at):
            return total
        counts = count_rows(conn, probe)
        counted_at = now
        if counts.stored + counts.dead_letters > total:
            progress_at = now
        total = counts.stored + counts.dead_letters
        if total >= count:
            done_at = now
        return total

    wait_for_count(accounted, count, pub, "ingest", interval_s=0.01)
    return done_at or progress_at  # some never came: time up to the last commit seen


class WorkerProcess:
    """`python -m gridwatch ingest` with GRIDWATCH_* set: the worker as production runs it."""

    def __init__(self, run: Run, database_url: str, prefix: str, client_id: str) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="gwbench-worker-"))
        env = {
            **os.environ,
            "GRIDWATCH_DATABASE_URL": database_url,
            "GRIDWATCH_MQTT_URL": run.mqtt_url,
            "GRIDWATCH_TOPIC_PREFIX": prefix,
            "GRIDWATCH_MQTT_CLIENT_ID": client_id,
            "GRIDWATCH_DATA_DIR": str(self._workdir / "data"),
        }
        self.child = GridwatchProcess(env, ["ingest"], self._workdir / "worker.log")

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.child.pid

    def describe(self) -> str:
        """How the worker ran, for the report."""
        return f"subprocess `python -m gridwatch ingest` (pid {self.child.pid})"

    def check_alive(self) -> None:
        """Raise with the worker's log if it exited."""
        if self.child.process.poll() is not None:
            raise RuntimeError(f"the ingest worker exited:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the worker's log."""
        return self.child.log()[-3000:]

    def stop(self) -> None:
        """SIGTERM (the worker drains and disconnects), then kill after 30 s."""
        self.child.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


class WorkerThread:
    """The same worker in a thread of this process (shares the GIL with the bench's polling)."""

    def __init__(self, run: Run, database_url: str, prefix: str, client_id: str) -> None:
        from gridwatch.ingest.worker import IngestWorker

        settings = run.settings.model_copy(update={"topic_prefix": prefix})
        self.worker = IngestWorker(
            settings, database_url=database_url, mqtt_url=run.mqtt_url, client_id=client_id
        )
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self._stop)
        except BaseException as exc:
            self._error = exc
            raise

    @property
    def pid(self) -> int:
        """This process: the worker's CPU time then includes the bench's own polling."""
        return os.getpid()

    def describe(self) -> str:
        """How the worker ran and what its stats say, for the report."""
        st = self.worker.stats
        return (
            f"IngestWorker in a thread ({st.batches} batches, {st.duplicates} redelivered "
            f"duplicates absorbed, {st.db_failures} database failures)"
        )

    def check_alive(self) -> None:
        """Raise if the worker thread died."""
        if not self._thread.is_alive():
            raise RuntimeError(f"the ingest worker thread died: {self._error!r}")

    def stop(self) -> None:
        """Set stop; the worker drains and disconnects."""
        self._stop.set()
        self._thread.join(30)


def start_worker(run: Run, mode: str, database_url: str, prefix: str, client_id: str):
    """The gridwatch ingest worker as a subprocess (default) or a thread."""
    if mode == "thread":
        return WorkerThread(run, database_url, prefix, client_id)
    return WorkerProcess(run, database_url, prefix, client_id)


class NaiveIngest:
    """One INSERT and one COMMIT per message, acked after the commit, in paho's callback."""

    _METER = (
        "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w, energy_kwh, "
        "water_l) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    _SENSOR = (
        "INSERT INTO sensor_events (device_id, observed_at, received_at, event, value) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    _PATROL = (
        "INSERT INTO patrol_checkins (worker_id, observed_at, received_at, source, lon, lat, "
        "accuracy_m, kind, resident_id, status, note, device, battery) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    _HAZARD = (
        "WITH new AS (INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, "
        "lon, lat, category, severity, description, photo_urls) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING "
        "RETURNING id, reporter_id, received_at) "
        "INSERT INTO hazard_events (hazard_id, at, action, to_status, actor) "
        "SELECT id, received_at, 'report', 'reported', reporter_id FROM new"
    )

    def __init__(self, database_url: str, prefix: str, tag: str) -> None:
        self.conn = psycopg.connect(database_url)
        self.prefix = prefix
        self.tag = tag
        self.done = 0
        self.errors = 0
        self.first = self.last = 0.0

    def handle(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        """Store one message, commit, then acknowledge it."""
        topic = message.topic
        if not is_ours(topic, self.prefix, self.tag):
            client.ack(message.mid, message.qos)
            return
        now = time.time()
        if not self.done:
            self.first = now
        try:
            self._insert(topic.split("/"), json.loads(message.payload))
            self.conn.commit()
        except (psycopg.Error, ValueError, KeyError, TypeError):
            self.conn.rollback()
            self.errors += 1
        client.ack(message.mid, message.qos)
        self.last = time.time()
        self.done += 1

    def _insert(self, levels: list[str], data: dict) -> None:
        received = datetime.now(UTC)
        if levels[0] == "owntracks":
            self.conn.execute(
                self._PATROL,
                (levels[1], _when(data["tst"]), received, "owntracks", data["lon"], data["lat"],
                 data.get("acc"), "patrol", None, None, None, levels[2], data.get("batt")),
            )  # fmt: skip
        elif levels[1] == "meter":
            self.conn.execute(
                self._METER,
                (levels[2], _when(data["ts"]), received, data.get("power_w"),
                 data.get("energy_kwh"), data.get("water_l")),
            )  # fmt: skip
        elif levels[1] == "sensor":
            self.conn.execute(
                self._SENSOR,
                (levels[2], _when(data["ts"]), received, data["event"], data.get("value")),
            )
        elif levels[1] == "patrol":
            lon, lat = to_wgs84(data["lon"], data["lat"], data.get("crs", "wgs84"))
            self.conn.execute(
                self._PATROL,
                (levels[2], _when(data["ts"]), received, "gw", lon, lat, data.get("accuracy_m"),
                 data.get("kind", "patrol"), data.get("resident_id"), data.get("status"),
                 data.get("note"), None, None),
            )  # fmt: skip
        elif levels[1] == "hazard":
            lon, lat = to_wgs84(data["lon"], data["lat"], data.get("crs", "wgs84"))
            self.conn.execute(
                self._HAZARD,
                (uuid.UUID(data["id"]), levels[2], _when(data["ts"]), received, lon, lat,
                 data["category"], data["severity"], data.get("description", ""),
                 data.get("photo_urls", [])),
            )  # fmt: skip


def _when(raw) -> datetime:
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw, UTC)
    return datetime.fromisoformat(raw)


def measure_naive(run: Run, count: int) -> PhaseResult:
    """(c) One INSERT and COMMIT per message, ack after commit: the floor."""
    prefix, tag, dbname = run.names("c")
    result = PhaseResult("naive", published=count)
    with fresh_database(run.server_url, dbname) as url:
        pub = Publisher(run.mqtt_url, count, prefix, tag, run.seed, run.publish_rate)
        naive = NaiveIngest(url, prefix, tag)
        subscriber = BenchSubscriber(run.settings, run.address, f"gwbench-naive-{prefix}",
                                     prefix, naive.handle)  # fmt: skip
        try:
            pub.wait_ready()
            cpu_before = process_cpu_s(os.getpid())
            pub.go()
            wait_for_count(lambda: naive.done, count, pub, "naive")
            result.cpu_s = cpu_used(os.getpid(), cpu_before)
            pub.join()
        finally:
            subscriber.close()
            naive.conn.close()
        with psycopg.connect(url) as conn:
            counts = count_rows(conn)
    result.first, result.last = naive.first, naive.last
    result.consumed = naive.done
    result.lost = count - counts.stored
    result.duplicated = counts.duplicated
    result.publish_rate = pub.rate
    result.publish_done = pub.finished
    if naive.errors:
        result.notes.append(f"{naive.errors} messages failed to insert")
    return result


# -- main -----------------------------------------------------------------------------------


def median_cpu(phases: list[PhaseResult]) -> float | None:
    """Median consumer CPU microseconds per message over phases that could measure it."""
    values = [p.cpu_per_message for p in phases if p.cpu_per_message is not None]
    return round(statistics.median(values), 1) if values else None


def main() -> None:
    """Run the three phases against one broker and print their rates, ratios and losses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument(
        "--naive-messages",
        type=int,
        default=20_000,
        help="messages for the naive phase (at most --messages)",
    )
    parser.add_argument(
        "--mqtt-url",
        help="an existing broker (default: a private Mosquitto); not a production one: the "
        "bench's OwnTracks points (owntracks/gwbench...) reach every owntracks/+/+ subscriber",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server where a fresh database per phase is made (default: "
        f"GRIDWATCH_DATABASE_URL or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--worker",
        choices=["process", "thread"],
        default="process",
        help="gridwatch's worker as a subprocess (default, as in production) or a thread",
    )
    parser.add_argument(
        "--publish-rate",
        type=float,
        default=0.0,
        help="messages per second offered (default 0: as fast as the broker takes them)",
    )
    parser.add_argument(
        "--profile-worker",
        type=Path,
        metavar="FILE",
        help="sample the worker process with py-spy during phase (b), collapsed stacks to FILE",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="raw and ingest phases this many times, back to back (medians; for noisy machines)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.messages < 2 or args.rounds < 1:
        parser.error("--messages must be at least 2 and --rounds at least 1")

    # SIGTERM and SIGINT (even when started in the background) unwind through the cleanups:
    # the private broker, the worker process and the databases are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = Settings()
    server_url = args.database_url or settings.database_url or DEFAULT_DATABASE_URL
    naive_count = max(2, min(args.messages, args.naive_messages))
    raws: list[PhaseResult] = []
    ingests: list[PhaseResult] = []
    with contextlib.ExitStack() as stack:
        if args.mqtt_url:
            mqtt_url, broker = args.mqtt_url, f"existing broker {args.mqtt_url}"
        else:
            mqtt_url, limits = stack.enter_context(private_broker(BROKER_CONFIG))
            broker = f"private {mosquitto_version()} with deploy/mosquitto.conf ({limits})"
        run = Run(settings, mqtt_url, server_url, args.seed, f"{os.getpid()}", args.publish_rate)
        protocol = "MQTT 5" if probe_protocol(run.address) == mqtt.MQTTv5 else "MQTT 3.1.1"
        print(f"broker: {broker}; {protocol}")
        print(f"messages: {args.messages:,} per phase, naive {naive_count:,}; rounds: "
              f"{args.rounds}; worker: {args.worker}; {os.cpu_count()} CPUs")  # fmt: skip
        for n in range(1, args.rounds + 1):
            raws.append(measure_raw(run, args.messages, n))
            print(raws[-1].line(), flush=True)
            ingests.append(measure_gridwatch(run, args.messages, n, args.worker,
                                             args.profile_worker if n == 1 else None))  # fmt: skip
            print(ingests[-1].line(), flush=True)
        naive = measure_naive(run, naive_count)
        print(naive.line(), flush=True)
    if naive_count < args.messages:
        print(f"(naive ran on {naive_count:,} of {args.messages:,} messages; rates are per second)")

    raw_rate = statistics.median(r.rate for r in raws)
    ingest_rate = statistics.median(r.rate for r in ingests)
    # Each round's raw and ingest phases run back to back: their ratio is the least noisy.
    ratios = [i.rate / r.rate if r.rate else 0.0 for r, i in zip(raws, ingests, strict=True)]
    ratio_raw = statistics.median(ratios)
    ratio_naive = ingest_rate / naive.rate if naive.rate else 0.0
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds: raw {raw_rate:,.0f} msg/s, ingest "
              f"{ingest_rate:,.0f} msg/s; ingest/raw per round: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}")  # fmt: skip
    if any(p.lost for p in [*raws, *ingests, naive]):
        print("messages were lost: a broker's queue limits (max_queued_messages, default 1000) "
              "drop QoS 1 messages silently; see deploy/mosquitto.conf")  # fmt: skip
    print(f"ingest/raw = {ratio_raw:.2f} (target >= 0.8); "
          f"ingest/naive = {ratio_naive:.1f} (target >= 4)")  # fmt: skip
    summary = {
        "raw_rate": round(raw_rate, 1),
        "ingest_rate": round(ingest_rate, 1),
        "naive_rate": round(naive.rate, 1),
        "ratio_raw": round(ratio_raw, 3),
        "ratio_naive": round(ratio_naive, 2),
        "lost": sum(i.lost for i in ingests),
        "duplicated": sum(i.duplicated for i in ingests),
        "dead_letters": sum(i.dead_letters for i in ingests),
        "lost_raw": sum(r.lost for r in raws),
        "duplicated_raw": sum(r.duplicated for r in raws),
        "lost_naive": naive.lost,
        "duplicated_naive": naive.duplicated,
        "messages": args.messages,
        "naive_messages": naive_count,
        "rounds": args.rounds,
        "cpu_us_per_message": {
            "raw": median_cpu(raws),
            "ingest": median_cpu(ingests),
            "naive": median_cpu([naive]),
        },
        "ratios_raw": [round(x, 3) for x in ratios],
        "mode": f"worker {args.worker}",
        "broker": broker,
        "protocol": protocol,
    }
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
