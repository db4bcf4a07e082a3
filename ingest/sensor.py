"""`gw/sensor/{device_id}`: door, motion, curtain, light, button, SOS and fall events."""

from __future__ import annotations

from gridwatch.ingest.payload import (
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    json_type,
    number_text,
    read_choice,
    read_ts,
)
from gridwatch.model.records import SensorEvent
from gridwatch.model.vocabulary import SENSOR_EVENTS

KIND = "sensor"
EVENTS = frozenset(SENSOR_EVENTS)


def parse(device_id: str, payload: bytes, ctx: ParseContext) -> SensorEvent:
    """Parse one sensor event; `value` may be a number or a boolean (stored as 1/0)."""
    check_source_id(device_id, "device id")
    data = decode_object(payload, ctx)
    event = read_choice(data, "event", EVENTS)
    raw = data.get("value")
    if raw is None:
        value = None
    elif isinstance(raw, bool):
        value = 1.0 if raw else 0.0
    elif isinstance(raw, int | float) and abs(raw) <= 1e12:  # NaN compares false
        value = float(raw)
    else:
        # Not repr() of anything: a value nested a thousand deep has no repr.
        got = number_text(raw) if isinstance(raw, int | float) else json_type(raw)
        raise InvalidPayload(f"value must be a finite number or a boolean, got {got}")
    return SensorEvent(device_id, read_ts(data, ctx), ctx.received_at, event, value)
