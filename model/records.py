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
class Finding:
    """What an inspection found wrong at a place: it becomes a hazard (a case) tied to the
    place, with the deadline its severity sets (限期整改)."""

    category: str
    severity: str
    description: str
    photo_urls: tuple[str, ...] = ()


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
    needs: str | None = None  # a visit's 微心愿: what the resident asks for
    source: str = "gw"
    device: str | None = None
    battery: float | None = None
    photo_urls: tuple[str, ...] = ()
    # An inspection (kind 'inspection') of a registered place: what it found.
    place_id: str | None = None
    result: str | None = None
    findings: tuple[Finding, ...] = ()


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
    place_id: str | None = None  # a finding of this place's inspection


def checkin_key(source: str, worker_id: str, observed_at: datetime) -> str:
    """`source:worker@time`: a check-in's primary key as one string (its feature id, and the
    `source_id` of a warning from its note)."""
    return f"{source}:{worker_id}@{observed_at.astimezone(UTC).isoformat()}"


@dataclass(frozen=True, slots=True)
class RequestIntake:
    """A citizen's request (诉求) as it comes in, from whichever source; the store places it
    and gives it its clocks. A place is a point (WGS-84), or only names when the source has
    no point: an address, a grid code, a community's or street's name."""

    id: uuid.UUID
    source: str  # open311, hotline, visit, app
    service_code: str
    description: str
    reporter: str  # who entered it: a token's user, an import, a worker
    requested_at: datetime | None  # when the person asked; None: when it was received
    received_at: datetime
    lon: float | None = None
    lat: float | None = None
    address: str | None = None
    grid_code: str | None = None
    community: str | None = None
    street: str | None = None
    requester_name: str | None = None
    requester_phone: str | None = None
    requester_email: str | None = None
    media_urls: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    source_key: str | None = None  # the source's own number (工单编号)
    due_at: datetime | None = None  # a due time the source set (办理时限)


MAX_TEXT = 4000
"""The longest description or note kept (Open311's limit for a description)."""


def text_problem(text: str, limit: int = MAX_TEXT) -> str | None:
    """Why `text` cannot be a request's description or note, or None: too long, or holding a
    control character (line breaks and tabs are fine) or a lone surrogate."""
    if len(text) > limit:
        return f"is {len(text)} characters long (limit {limit})"
    for ch in text:
        if (ord(ch) < 0x20 and ch not in "\n\r\t") or ch == "\x7f" or "\ud800" <= ch <= "\udfff":
            return f"holds the character U+{ord(ch):04X}, which text may not"
    return None
