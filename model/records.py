"""The records a message becomes once parsed: what ingest writes and the API reads back.

Defined here, below both, so that the store can take them without knowing how a message
was parsed (ingest/ parses MQTT payloads and HTTP bodies into them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class MeterReading:
    meter_id: str
    observed_at: datetime
    received_at: datetime
    power_w: float | None
    energy_kwh: float | None
    water_l: float | None


@dataclass(frozen=True, slots=True)
class SensorEvent:
    device_id: str
    observed_at: datetime
    received_at: datetime
    event: str
    value: float | None


@dataclass(frozen=True, slots=True)
class PatrolCheckin:
    worker_id: str
    observed_at: datetime
    received_at: datetime
    lon: float
    lat: float
    accuracy_m: float | None
    kind: str
    resident_id: str | None
    status: str | None
    note: str | None
    source: str = "gw"
    device: str | None = None
    battery: float | None = None


@dataclass(frozen=True, slots=True)
class HazardReport:
    id: uuid.UUID
    reporter_id: str
    observed_at: datetime
    received_at: datetime
    lon: float
    lat: float
    category: str
    severity: str
    description: str
    photo_urls: tuple[str, ...]


def checkin_key(source: str, worker_id: str, observed_at: datetime) -> str:
    """`source:worker@time`: a check-in's primary key as one string (its feature id, and the
    `source_id` of a warning from its note)."""
    return f"{source}:{worker_id}@{observed_at.astimezone(UTC).isoformat()}"
