"""Publishing simulated traffic over MQTT at QoS 1: a scenario paced to simulated time, or a
fixed-rate load of synthetic meters for benchmarks.

Publishing never runs ahead of the broker: at most `window` messages wait for their PUBACK,
so a slow broker slows the simulator down instead of filling paho's queue in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from gridwatch.errors import ServiceUnavailable
from gridwatch.simulators.faults import SimMessage
from gridwatch.simulators.traffic import METER_PAYLOAD

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What a publishing run did."""

    published: int
    acknowledged: int
    seconds: float
    last_sim_time: datetime | None = None

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress tick: messages so far, wall seconds, and where simulated time is."""

    published: int
    acknowledged: int
    seconds: float
    sim_time: datetime | None
    behind_s: float  # how far publishing lags its schedule (0 when on time or unpaced)


ProgressFn = Callable[[Progress], None]


class AckWindow:
    """QoS 1 publishing with a bound on messages awaiting PUBACK, counted via on_publish."""

    def __init__(self, client: mqtt.Client, window: int = 10_000) -> None:
        self.client = client
        self.window = window
        self.sent = 0
        self.acknowledged = 0
        self._changed = threading.Condition()
        client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._changed:
            self.acknowledged += 1
            self._changed.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1, first waiting while the window is full."""
        if self.sent - self.acknowledged >= self.window:
            with self._changed:
                while self.sent - self.acknowledged >= self.window:
                    self._changed.wait(1.0)
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN is fine: paho keeps QoS 1 messages and sends them on reconnect.
            raise ServiceUnavailable(f"publishing to {topic} failed: {mqtt.error_string(info.rc)}")
        self.sent += 1

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every message sent has been acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.acknowledged < self.sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True


def publish_paced(
    window: AckWindow,
    messages: Iterable[SimMessage],
    *,
    speed: float,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> PublishReport:
    """Publish each message when its simulated time comes, `speed` times faster than real
    time (0: as fast as the broker takes them). Late messages (sim time in the past) go at once."""
    stop = stop or threading.Event()
    started = time.monotonic()
    next_report = started + progress_every_s
    sim_origin: datetime | None = None
    sim_time: datetime | None = None
    behind = 0.0
    for sim_time, topic, payload in messages:
        if stop.is_set():  # also between late messages: a minute's burst is thousands
            break
        if speed > 0:
            if sim_origin is None:
                sim_origin = sim_time
            due = started + (sim_time - sim_origin).total_seconds() / speed
            wait = due - time.monotonic()
            behind = max(-wait, 0.0)
            if wait > 0 and stop.wait(wait):
                break
        window.publish(topic, payload)
        if progress is not None and time.monotonic() >= next_report:
            next_report += progress_every_s
            elapsed = time.monotonic() - started
            progress(Progress(window.sent, window.acknowledged, elapsed, sim_time, behind))
    # Stopped: what the broker has not acknowledged within a second is given up.
    window.drain(1.0 if stop.is_set() else 60.0)
    return PublishReport(window.sent, window.acknowledged, time.monotonic() - started, sim_time)


def publish_load(
    window: AckWindow,
    *,
    devices: int,
    rate: float,
    duration_s: float,
    prefix: str,
    tz: ZoneInfo,
    seed: int = 1,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> PublishReport:
    """Meter readings from `devices` synthetic meters (LOAD000001, ...) in turn, at a fixed
    `rate` messages per second for `duration_s` seconds."""
    stop = stop or threading.Event()
    rng = np.random.default_rng(seed)
    topics = [f"{prefix}/meter/LOAD{n:06d}" for n in range(1, devices + 1)]
    energy = rng.uniform(800, 5000, devices).tolist()
    water = rng.uniform(1e5, 9e5, devices).tolist()
    watts = rng.uniform(5, 2000, 4096).tolist()
    total = int(rate * duration_s)
    started = time.monotonic()
    next_report = started + progress_every_s
    sent = 0
    while sent < total and not stop.is_set():
        elapsed = time.monotonic() - started
        if elapsed >= duration_s + 1.0:  # the broker cannot take the rate: stop on time anyway
            break
        due = min(int(rate * elapsed) + 1, total)
        if due <= sent:
            stop.wait(min(sent / rate - elapsed, 0.01))
            continue
        # Milliseconds in ts: a meter that reports twice in one second is not a duplicate.
        ts = datetime.now(tz).isoformat(timespec="milliseconds").encode()
        for n in range(sent, due):
            meter = n % devices
            power = watts[n % 4096]
            energy[meter] += power / 60_000
            water[meter] += 0.5
            window.publish(topics[meter], METER_PAYLOAD % (ts, power, energy[meter], water[meter]))
        sent = due
        if progress is not None and time.monotonic() >= next_report:
            next_report += progress_every_s
            now = time.monotonic() - started
            progress(Progress(window.sent, window.acknowledged, now, None, now - sent / rate))
    seconds = time.monotonic() - started
    # Stopped: what the broker has not acknowledged within a second is given up.
    window.drain(1.0 if stop.is_set() else 60.0)
    return PublishReport(window.sent, window.acknowledged, seconds)
