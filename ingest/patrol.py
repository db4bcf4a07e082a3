"""`gw/patrol/{worker_id}`: a grid worker's check-in on patrol, at a resident's home, or at a
registered place it inspects (安全巡查: what it found, each finding a case)."""

from __future__ import annotations

from typing import Any

from gridwatch.ingest.hazard import CATEGORIES, SEVERITIES
from gridwatch.ingest.payload import (
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    json_type,
    quoted,
    read_choice,
    read_number,
    read_photo_urls,
    read_text,
    read_ts,
    read_wgs84_position,
    unsafe_character,
)
from gridwatch.model.records import Finding, PatrolCheckin
from gridwatch.model.vocabulary import INSPECTION_RESULTS

KIND = "patrol"
KINDS = frozenset({"patrol", "visit", "inspection"})
STATUSES = frozenset({"ok", "concern", "not_home"})
RESULTS = frozenset(INSPECTION_RESULTS)
MAX_FINDINGS = 20
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
    place_id, result, findings = _inspection(data, kind)
    if kind == "inspection" and resident_id:
        raise InvalidPayload("an inspection names a place (place_id), not a resident")
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
        place_id=place_id,
        result=result,
        findings=findings,
    )


def _inspection(
    data: dict[str, Any], kind: str
) -> tuple[str | None, str | None, tuple[Finding, ...]]:
    """An inspection's place, result and findings; none of them on another kind of check-in."""
    if kind != "inspection":
        for field in ("place_id", "result", "findings"):
            if data.get(field) is not None:
                raise InvalidPayload(f"{field} belongs to a check-in of kind 'inspection'")
        return None, None, ()
    place_id = read_text(data, "place_id", required=True, max_length=128)
    if not place_id or unsafe_character(place_id):
        raise InvalidPayload(f"place_id {quoted(place_id)} is not a place id")
    result = read_choice(data, "result", RESULTS)
    raw = data.get("findings")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidPayload(f"findings must be an array of objects, got {json_type(raw)}")
    if len(raw) > MAX_FINDINGS:
        raise InvalidPayload(f"findings has {len(raw)} entries (limit {MAX_FINDINGS})")
    findings = tuple(_finding(n, item) for n, item in enumerate(raw, start=1))
    if result == "findings" and not findings:
        raise InvalidPayload("result 'findings' needs at least one finding in findings")
    if result == "ok" and findings:
        raise InvalidPayload("result 'ok' has findings; send result 'findings' with them")
    return place_id, result, findings


def _finding(n: int, item: object) -> Finding:
    """The `n`th finding (from 1): category, severity, description, photos, as a hazard's."""
    if not isinstance(item, dict):
        raise InvalidPayload(f"finding {n} must be an object, got {json_type(item)}")
    try:
        return Finding(
            category=read_choice(item, "category", CATEGORIES),
            severity=read_choice(item, "severity", SEVERITIES),
            description=read_text(item, "description", max_length=4000) or "",
            photo_urls=read_photo_urls(item.get("photos"), "photos"),
        )
    except InvalidPayload as exc:
        raise InvalidPayload(f"finding {n}: {exc}") from None
