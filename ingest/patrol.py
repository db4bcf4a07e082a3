"""`gw/patrol/{worker_id}`: a grid worker's check-in on patrol or at a resident's home."""

from __future__ import annotations

from typing import Any

from gridwatch.ingest.payload import (
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    read_choice,
    read_number,
    read_photo_urls,
    read_text,
    read_ts,
    read_wgs84_position,
)
from gridwatch.model.records import PatrolCheckin

KIND = "patrol"
KINDS = frozenset({"patrol", "visit"})
STATUSES = frozenset({"ok", "concern", "not_home"})
MAX_NOTE = 2000
MAX_NEEDS = 500  # a wish or two (微心愿), not a report


def parse(worker_id: str, payload: bytes, ctx: ParseContext) -> PatrolCheckin:
    """Parse one check-in; the position is converted to WGS-84 here, once."""
    check_source_id(worker_id, "worker id")
    data = decode_object(payload, ctx)
    return checkin_from_dict(worker_id, data, ctx)


def checkin_from_dict(worker_id: str, data: dict[str, Any], ctx: ParseContext) -> PatrolCheckin:
    """Validate an already decoded check-in (shared by MQTT and HTTP)."""
    lon, lat = read_wgs84_position(data)
    kind = read_choice(data, "kind", KINDS, default="patrol")
    resident_id = read_text(data, "resident_id", max_length=128)
    status = None if data.get("status") is None else read_choice(data, "status", STATUSES)
    if kind == "visit" and not resident_id:
        raise InvalidPayload("a check-in of kind 'visit' needs resident_id")
    needs = read_text(data, "needs", max_length=MAX_NEEDS)
    if needs and needs.strip() and kind != "visit":
        raise InvalidPayload("needs (微心愿) belongs to a check-in of kind 'visit'")
    return PatrolCheckin(
        worker_id=worker_id,
        observed_at=read_ts(data, ctx),
        received_at=ctx.received_at,
        lon=lon,
        lat=lat,
        accuracy_m=read_number(data, "accuracy_m", low=0.0, high=1e6),
        kind=kind,
        resident_id=resident_id,
        status=status,
        note=read_text(data, "note", max_length=MAX_NOTE),
        needs=needs if needs and needs.strip() else None,
        photo_urls=read_photo_urls(data.get("photo_urls")),
    )
