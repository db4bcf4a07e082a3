"""`gw/hazard/{reporter_id}`: a hazard found on patrol; the client's UUID makes it idempotent."""

from __future__ import annotations

import re
import uuid
from typing import Any

from gridwatch.ingest.payload import MAX_PHOTOS as MAX_PHOTOS
from gridwatch.ingest.payload import (
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    quoted,
    read_choice,
    read_photo_urls,
    read_text,
    read_ts,
    read_wgs84_position,
)
from gridwatch.model.records import HazardReport
from gridwatch.model.vocabulary import HAZARD_CATEGORIES
from gridwatch.model.vocabulary import SEVERITIES as ALL_SEVERITIES

KIND = "hazard"
CATEGORIES = frozenset(HAZARD_CATEGORIES)
SEVERITIES = frozenset(ALL_SEVERITIES)
# The spellings of a UUID: 8-4-4-4-12 or 32 hex digits, in braces or as a URN.
_UUID = re.compile(
    r"(?:urn:uuid:)?(\{)?[0-9A-Fa-f]{8}(-?)[0-9A-Fa-f]{4}\2[0-9A-Fa-f]{4}\2[0-9A-Fa-f]{4}"
    r"\2[0-9A-Fa-f]{12}(?(1)\})"
)


def parse(reporter_id: str, payload: bytes, ctx: ParseContext) -> HazardReport:
    """Parse one hazard report; the description may be empty, the id, place and kind may not."""
    check_source_id(reporter_id, "reporter id")
    return hazard_from_dict(reporter_id, decode_object(payload, ctx), ctx)


def hazard_from_dict(reporter_id: str, data: dict[str, Any], ctx: ParseContext) -> HazardReport:
    """Validate an already decoded hazard report (shared by MQTT and HTTP)."""
    raw_id = read_text(data, "id", required=True, max_length=64)
    # uuid.UUID alone also reads what int() reads: spaces, underscores, non-ASCII digits.
    if not _UUID.fullmatch(raw_id):
        raise InvalidPayload(f"id {quoted(raw_id)} is not a UUID")
    report_id = uuid.UUID(raw_id)
    lon, lat = read_wgs84_position(data)
    return HazardReport(
        id=report_id,
        reporter_id=reporter_id,
        observed_at=read_ts(data, ctx),
        received_at=ctx.received_at,
        lon=lon,
        lat=lat,
        category=read_choice(data, "category", CATEGORIES),
        severity=read_choice(data, "severity", SEVERITIES),
        description=read_text(data, "description", max_length=4000) or "",
        photo_urls=read_photo_urls(data.get("photo_urls")),
    )
