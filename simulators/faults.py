"""What goes wrong, on purpose, and the ground truth that says so.

Incidents (a fall, an SOS press, a meter outage, a registered absence, a device clock that is
off) are planned before the run and known up front. Delivery faults (a message duplicated,
delivered late, or garbled) happen to messages as they pass; each is reported as a record
when it happens. Every record is a JSON-ready dict with `kind` and `at` (simulated time).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import orjson

SimMessage = tuple[datetime, str, bytes]
"""(simulated time the message is about, MQTT topic, payload)."""

RecordSink = Callable[[dict], None]


@dataclass(frozen=True, slots=True)
class FaultRates:
    """How often things go wrong. Incident rates are per 100 resident-days: the defaults give
    about 10 falls, 10 SOS, 10 meter outages and 20 absences in 7 days of 2,000 residents."""

    falls: float = 0.07
    sos: float = 0.07
    meter_outages: float = 0.07
    absences: float = 0.14
    fall_detected_share: float = 0.8  # of falls of residents wearing a fall detector
    rescue_after_h: float | None = None  # None: a fallen resident stays down to the end
    clock_skew_share: float = 0.01  # of devices (meters and sensors)
    duplicate_share: float = 0.002  # of messages delivered twice (QoS 1 redelivery)
    out_of_order_share: float = 0.002  # of messages delivered 1-15 min late
    malformed_share: float = 0.001  # of messages followed by a garbled copy

    @classmethod
    def none(cls) -> FaultRates:
        """A clean run: no incidents and no delivery faults."""
        return cls(0, 0, 0, 0, 0, None, 0, 0, 0, 0)

    def without_delivery_faults(self) -> FaultRates:
        """The same incidents, delivered perfectly by devices with correct clocks."""
        return FaultRates(
            self.falls, self.sos, self.meter_outages, self.absences,
            self.fall_detected_share, self.rescue_after_h, 0, 0, 0, 0,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fall:
    """The resident falls at `at`: no activity (base load goes on) until `rescued_at`."""

    kind: ClassVar[str] = "fall"
    resident_id: str
    at: datetime
    rescued_at: datetime | None = None
    detector_id: str | None = None  # the fall detector that reports it, when one does


@dataclass(frozen=True, slots=True)
class Sos:
    """The resident presses SOS at `at` and otherwise lives as usual."""

    kind: ClassVar[str] = "sos"
    resident_id: str
    at: datetime
    device_id: str


@dataclass(frozen=True, slots=True)
class MeterOutage:
    """The meter sends nothing in [at, until); the resident is fine and sensors report."""

    kind: ClassVar[str] = "meter_outage"
    resident_id: str
    meter_id: str
    at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class Absence:
    """A registered absence (外出报备): the resident is away from `at` until `until`."""

    kind: ClassVar[str] = "absence"
    resident_id: str
    at: datetime
    until: datetime
    reason: str = "探亲"


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """A device whose clock is off: every `ts` it sends is `offset_s` from the true time."""

    kind: ClassVar[str] = "clock_skew"
    resident_id: str
    device_id: str
    offset_s: int
    at: datetime  # the start of the run: the clock is off all along


Incident = Fall | Sos | MeterOutage | Absence | ClockSkew


def incident_record(incident: Incident, **context) -> dict:
    """The ground-truth record of an incident: kind, at, its fields, plus `context`."""
    record: dict = {"kind": incident.kind, "at": incident.at}
    if isinstance(incident, Absence):
        record["from"] = incident.at  # what to register: resident_id, from, until
    record.update(
        (f.name, getattr(incident, f.name)) for f in dataclasses.fields(incident) if f.name != "at"
    )
    record.update(context)
    return record


class Delivery:
    """Delivers batches of messages the way a real network and real devices do: a few twice,
    a few late, a few followed by a garbled copy. Faults are drawn per batch (fast)."""

    def __init__(self, rates: FaultRates, seed: int, record: RecordSink | None) -> None:
        self._rng = np.random.default_rng([seed, 0xDE11])
        self._shares = (rates.duplicate_share, rates.out_of_order_share, rates.malformed_share)
        self._record = record
        self._held: list[tuple[datetime, int, SimMessage]] = []
        self._sequence = 0
        self.counts: Counter[str] = Counter()

    def deliver(self, now: datetime, batch: list[SimMessage]) -> Iterator[SimMessage]:
        """The messages due by `now`: held ones that are ready, then `batch` with its faults."""
        held = self._held
        while held and held[0][0] <= now:
            yield heapq.heappop(held)[2]
        duplicate, late, malformed = self._rng.binomial(len(batch), self._shares)
        if not duplicate and not late and not malformed:
            yield from batch
            return
        rng = self._rng
        late_ones = set(rng.choice(len(batch), late, replace=False).tolist()) if late else ()
        for i in rng.choice(len(batch), duplicate).tolist():
            self._hold(batch[i], float(rng.uniform(1, 30)), "duplicate")
        garbled = set(rng.choice(len(batch), malformed).tolist()) if malformed else ()
        for i, message in enumerate(batch):
            if i in late_ones:
                self._hold(message, float(rng.uniform(60, 900)), "out_of_order")
            else:
                yield message
            if i in garbled:
                payload, form = garble(message[2], rng)
                self._note("malformed", message, topic=message[1], form=form)
                yield (message[0], message[1], payload)

    def flush(self) -> Iterator[SimMessage]:
        """Whatever is still held, in the order it falls due."""
        while self._held:
            yield heapq.heappop(self._held)[2]

    def _hold(self, message: SimMessage, delay_s: float, kind: str) -> None:
        delivered_at = message[0] + timedelta(seconds=delay_s)
        self._sequence += 1
        heapq.heappush(self._held, (delivered_at, self._sequence, message))
        self._note(kind, message, topic=message[1], delivered_at=delivered_at)

    def _note(self, kind: str, message: SimMessage, **fields) -> None:
        self.counts[kind] += 1
        if self._record is not None:
            self._record({"kind": kind, "at": message[0], **fields})


_GARBLES = ("truncated", "empty", "array", "not_utf8")


def garble(payload: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A copy of `payload` that no parser accepts, and how it was broken."""
    form = _GARBLES[int(rng.integers(len(_GARBLES)))]
    if form == "truncated":  # a strict prefix of a JSON object is never valid JSON
        return payload[: int(rng.integers(1, max(len(payload) - 1, 2)))], form
    if form == "empty":
        return b"", form
    if form == "array":
        return b"[" + payload + b"]", form
    return b"\xff\xfe" + payload, form


class GroundTruthLog:
    """A JSON-lines ground-truth file: planned incidents first, then records as they come."""

    def __init__(self, path: str | Path, planned: Iterable[dict] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self.written = 0
        for record in planned:
            self(record)

    def __call__(self, record: dict) -> None:
        """Append one record."""
        self._file.write(orjson.dumps(record) + b"\n")
        self.written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> GroundTruthLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_ground_truth(path: str | Path) -> list[dict]:
    """The records of a ground-truth file (times stay ISO 8601 text)."""
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line]
