"""`gw/meter/{meter_id}`: power and cumulative energy and water registers of a home's meter."""

from __future__ import annotations

from gridwatch.ingest.payload import (
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    read_number,
    read_ts,
)
from gridwatch.model.records import MeterReading

KIND = "meter"


def parse(meter_id: str, payload: bytes, ctx: ParseContext) -> MeterReading:
    """Parse one meter message; at least one of power_w, energy_kwh, water_l must be there."""
    check_source_id(meter_id, "meter id")
    data = decode_object(payload, ctx)
    power = read_number(data, "power_w", low=-1e6, high=1e6)
    energy = read_number(data, "energy_kwh", low=0.0, high=1e9)
    water = read_number(data, "water_l", low=0.0, high=1e10)
    if power is None and energy is None and water is None:
        raise InvalidPayload("meter message has none of power_w, energy_kwh, water_l")
    return MeterReading(meter_id, read_ts(data, ctx), ctx.received_at, power, energy, water)
