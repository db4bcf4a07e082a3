"""What the parsers must make of any message, however hostile: a valid frozen model of its
kind that PostgreSQL can store, Ignored for an OwnTracks message ignored on purpose, or a
refusal (InvalidPayload) with a reason fit for a dead letter. Shared by the fuzz tests and
`bench/fuzz.py`."""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import timedelta
from typing import NamedTuple

from gridwatch.ingest import hazard, owntracks, patrol, sensor
from gridwatch.ingest.payload import (
    EARLIEST,
    MAX_ID_LENGTH,
    MEDIA_PATH,
    Ignored,
    InvalidPayload,
    ParseContext,
)
from gridwatch.ingest.topics import TopicRouter
from gridwatch.model.records import HazardReport, MeterReading, PatrolCheckin, SensorEvent

Reading = MeterReading | SensorEvent | PatrolCheckin | HazardReport

MODEL_OF: dict[str, type[Reading]] = {
    "meter": MeterReading,
    "sensor": SensorEvent,
    "patrol": PatrolCheckin,
    "hazard": HazardReport,
    "owntracks": PatrolCheckin,
}
# Where a number may lie, per model field (what the parsers promise).
RANGES = {
    "power_w": (-1e6, 1e6),
    "energy_kwh": (0, 1e9),
    "water_l": (0, 1e10),
    "value": (-1e12, 1e12),
    "lon": (-180, 180),
    "lat": (-90, 90),
    "accuracy_m": (0, 1e7),
    "battery": (0, 100),
}
# The ids taken from the topic, per model ("device": OwnTracks' second topic level).
IDS = {
    MeterReading: ("meter_id",),
    SensorEvent: ("device_id",),
    PatrolCheckin: ("worker_id", "device"),
    HazardReport: ("reporter_id",),
}
FIELD_NAMES = {model: tuple(f.name for f in dataclasses.fields(model)) for model in IDS}
TEXT_LIMITS = {"resident_id": 128, "note": 2000, "needs": 500, "description": 4000}


def is_storable(text: str) -> bool:
    """Text PostgreSQL can hold: UTF-8 encodable (no lone surrogates), without NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reading_problem(reading: object, kind: str, ctx: ParseContext) -> str | None:
    """Why a parsed reading is not a valid, storable model of its kind (None when it is)."""
    model = MODEL_OF[kind]
    if type(reading) is not model:
        return f"a {type(reading).__name__}, expected a {model.__name__}"
    # typeshed leaves out the __dataclass_params__ that @dataclass sets on every dataclass.
    if not type(reading).__dataclass_params__.frozen:  # type: ignore[union-attr]
        return "not frozen"
    if reading.received_at != ctx.received_at:
        return "received_at is not the time of receipt"
    when = reading.observed_at
    offset = when.utcoffset()
    if offset is None:
        return "observed_at is naive"
    # PostgreSQL takes offsets of whole seconds within ±15:59:59 only.
    if offset.microseconds or abs(offset) >= timedelta(hours=16):
        return f"observed_at has an offset PostgreSQL refuses: {offset}"
    earliest = max(EARLIEST, ctx.received_at - ctx.max_age)
    if not earliest <= when <= ctx.received_at + ctx.max_future:
        return f"observed_at {when} outside the accepted window"
    for name in FIELD_NAMES[model]:
        value = getattr(reading, name)
        if name in RANGES and value is not None:
            low, high = RANGES[name]
            if type(value) is not float or not math.isfinite(value) or not low <= value <= high:
                return f"{name} {value!r} is not a finite float in [{low}, {high}]"
        if isinstance(value, str) and not is_storable(value):
            return f"{name} {value!r:.60} cannot be stored"
    for name in IDS[model]:
        ident = getattr(reading, name)
        if name == "device" and ident is None:
            continue
        if not isinstance(ident, str) or not 0 < len(ident) <= MAX_ID_LENGTH:
            return f"{name} {ident!r:.60} is not an id of 1 to {MAX_ID_LENGTH} characters"
        if any(ch < " " or ch == "\x7f" for ch in ident):
            return f"{name} {ident!r:.60} holds a control character"
    for name, limit in TEXT_LIMITS.items():
        text = getattr(reading, name, None)
        if text is not None and (not isinstance(text, str) or len(text) > limit):
            return f"{name} is longer than {limit}"
    if isinstance(reading, SensorEvent) and reading.event not in sensor.EVENTS:
        return f"unknown event {reading.event!r}"
    if isinstance(reading, PatrolCheckin):
        if reading.kind not in patrol.KINDS or reading.status not in {None, *patrol.STATUSES}:
            return f"kind {reading.kind!r} / status {reading.status!r} not allowed"
        if reading.kind == "visit" and not reading.resident_id:
            return "a visit without resident_id"
        if (reading.kind == "inspection") != (reading.place_id is not None):
            return "a place_id without an inspection, or an inspection without one"
        if reading.result not in {None, *patrol.RESULTS} or (
            bool(reading.findings) != (reading.result == "findings")
        ):
            return f"result {reading.result!r} with {len(reading.findings)} findings"
        if reading.needs is not None and (reading.kind != "visit" or not reading.needs.strip()):
            return "needs kept on a patrol, or blank"
    if isinstance(reading, HazardReport):
        if not isinstance(reading.id, uuid.UUID):
            return "id is not a UUID"
        if reading.category not in hazard.CATEGORIES or reading.severity not in hazard.SEVERITIES:
            return "category or severity not allowed"
        if type(reading.photo_urls) is not tuple or len(reading.photo_urls) > hazard.MAX_PHOTOS:
            return "photo_urls is not a tuple of at most 20"
        for url in reading.photo_urls:
            # A scheme is case-insensitive ("HTTPS://" is as good a link).
            linked = url.lower().startswith(("http://", "https://")) or MEDIA_PATH.fullmatch(url)
            if not linked or not is_storable(url):
                return f"photo URL {url!r:.60} is not a storable http(s) URL or /media link"
    return None


def ignored_problem(reason: str, kind: str) -> str | None:
    """Why ignoring a message is wrong (None when it is right): only OwnTracks types other
    than location are ignored by the parsers, each under a reason of a fixed few."""
    if kind != "owntracks":
        return "ignored, a kind that is never ignored"
    known = {f"owntracks {t}" for t in (*owntracks.OTHER_TYPES, "unknown _type")}
    return None if reason in known else f"ignored for a reason not of the fixed few: {reason!r:.80}"


def reason_problem(reason: str) -> str | None:
    """Why a refusal's reason is no good as a dead letter's (None when it is)."""
    if not reason.strip():
        return "empty reason"
    if "\n" in reason or "\r" in reason:
        return "reason spans lines"
    if len(reason) > 300:
        return f"reason of {len(reason)} characters"
    if not is_storable(reason):
        return "reason cannot be stored"
    return None


class Verdict(NamedTuple):
    """What parsing made of a message: "parsed", "ignored", "refused" or "escaped" (an
    exception other than InvalidPayload), the reading, and what is wrong (None: nothing)."""

    state: str
    reading: object | None
    problem: str | None


def verdict(
    router: TopicRouter, topic: str, payload: bytes, kind: str, ctx: ParseContext
) -> Verdict:
    """Parse one message of `kind` as the worker does and judge the outcome."""
    try:
        reading = router.parse(topic, payload, ctx)
    except InvalidPayload as exc:
        return Verdict("refused", None, reason_problem(str(exc)))
    except Ignored as exc:
        return Verdict("ignored", None, ignored_problem(str(exc), kind))
    except Exception as exc:  # what the fuzzing exists to catch
        return Verdict("escaped", None, f"{type(exc).__name__}: {exc!s:.200}")
    return Verdict("parsed", reading, reading_problem(reading, kind, ctx))
