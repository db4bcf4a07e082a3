"""Rows as GeoJSON features (RFC 7946: WGS-84, longitude first), personal data masked for
callers who may not see it."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gridwatch.api.auth import sees_personal_data
from gridwatch.api.privacy import (
    coarse_position,
    contact_shown,
    mask_address,
    mask_email,
    mask_name,
    mask_phone,
)
from gridwatch.api.stream import AlertEvent
from gridwatch.cases.hazards import is_overdue
from gridwatch.cases.inspections import is_overdue as inspection_overdue
from gridwatch.cases.requests import is_overdue as request_overdue
from gridwatch.maps.coverage import low_accuracy
from gridwatch.model.figures import GridCounts
from gridwatch.model.records import checkin_key
from gridwatch.model.services import BY_CODE
from gridwatch.model.vocabulary import PLACE_KIND_LABELS
from gridwatch.store.absences import AbsenceRow
from gridwatch.store.alerts import AlertRow
from gridwatch.store.case_events import CaseEvent
from gridwatch.store.checkins import CheckinRow
from gridwatch.store.grids import GridRecord
from gridwatch.store.hazards import Hazard, HazardEvent
from gridwatch.store.places import PlaceEvent, PlaceRecord
from gridwatch.store.requests import Request
from gridwatch.store.residents import ResidentRecord
from gridwatch.store.users import Principal
from gridwatch.store.warnings import WarningRow, warning_message

COORDINATE_DIGITS = 7  # about 1 cm: more digits only add bytes


def geometry_json(geometry: BaseGeometry, digits: int = COORDINATE_DIGITS) -> dict:
    """A shapely geometry as a GeoJSON geometry object with rounded coordinates.

    Polygons follow RFC 7946 §3.1.6: outer rings counter-clockwise, holes clockwise.
    """
    rounded = shapely.transform(geometry, lambda xy: np.round(xy, digits))
    return shapely.geometry.mapping(shapely.orient_polygons(rounded))


def point(lon: float | None, lat: float | None) -> dict | None:
    if lon is None or lat is None:
        return None
    return {"type": "Point", "coordinates": [round(lon, COORDINATE_DIGITS), round(lat, 7)]}


def feature(fid, geometry: dict | None, properties: dict, bbox=None) -> dict:
    out = {"type": "Feature", "id": fid, "geometry": geometry, "properties": properties}
    if bbox is not None:
        out["bbox"] = [round(v, COORDINATE_DIGITS) for v in bbox]
    return out


def grid_feature(
    grid: GridRecord, geometry: dict, counts: GridCounts, parent_code: str | None
) -> dict:
    return feature(
        grid.code,
        geometry,
        {
            "code": grid.code,
            "name": grid.name,
            "level": grid.level,
            "system": grid.system,
            "parent": parent_code,
            "area_m2": round(grid.area_m2, 1),
            "residents": counts.residents,
            "open_alerts": counts.open_alerts,
            "open_hazards": counts.open_hazards,
            "overdue_hazards": counts.overdue_hazards,
            "checkins": counts.checkins,
            "buildings": counts.buildings,
            "units": counts.units,
            "contacts": counts.contacts,
        },
        grid.bbox,
    )


def case_step(event: CaseEvent, *extra: str) -> dict:
    """One step of a case's history (a hazard's or a request's), with the `extra` fields its
    kind of case records."""
    step = {
        "id": event.id,
        "at": event.at,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": event.actor,
        "note": event.note,
        "photo_urls": event.photo_urls,
    }
    return step | {name: getattr(event, name) for name in extra}


def hazard_feature(hazard: Hazard, now: datetime, events: list[HazardEvent] | None = None):
    properties = {
        "reporter_id": hazard.reporter_id,
        "observed_at": hazard.observed_at,
        "received_at": hazard.received_at,
        "grid": hazard.grid_code,
        "category": hazard.category,
        "severity": hazard.severity,
        "description": hazard.description,
        "photo_urls": hazard.photo_urls,
        "status": hazard.status,
        "level": hazard.level,
        "assignee": hazard.assignee,
        "due_at": hazard.due_at or hazard.deadline_at,
        "deadline_at": hazard.deadline_at,
        "overdue": is_overdue(hazard.status, hazard.due_at or hazard.deadline_at, now),
        "updated_at": hazard.updated_at,
        "place_id": hazard.place_id,
    }
    if events is not None:
        properties["events"] = [case_step(e) for e in events]
    return feature(str(hazard.id), point(hazard.lon, hazard.lat), properties)


def checkin_id(row: CheckinRow) -> str:
    """`source:worker@time`: the check-in's primary key, readable and URL-safe enough."""
    return checkin_key(row.source, row.worker_id, row.observed_at)


def parse_checkin_id(text: str) -> tuple[str, str, datetime] | None:
    source, sep, rest = text.partition(":")
    worker, sep2, stamp = rest.rpartition("@")
    if not (sep and sep2 and source and worker):
        return None
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return source, worker, at


def checkin_feature(row: CheckinRow, max_accuracy_m: float) -> dict:
    """A check-in as a feature; `low_accuracy` when its fix is worse than `max_accuracy_m`
    (stored and shown, never counted as patrol coverage)."""
    return feature(
        checkin_id(row),
        point(row.lon, row.lat),
        {
            "worker_id": row.worker_id,
            "source": row.source,
            "observed_at": row.observed_at,
            "received_at": row.received_at,
            "accuracy_m": row.accuracy_m,
            "low_accuracy": bool(low_accuracy(row.accuracy_m, max_accuracy_m)),
            "grid": row.grid_code,
            "kind": row.kind,
            "resident_id": row.resident_id,
            "status": row.status,
            "note": row.note,
            "needs": row.needs,
            "photo_urls": row.photo_urls,
            "place_id": row.place_id,
            "result": row.result,
        },
    )


def person(principal: Principal, grid_id, name, phone, address, *, reveal: bool = True) -> dict:
    """A resident's name, phone and address, masked unless the caller may see them."""
    return person_shown(
        name, phone, address, clear=reveal and sees_personal_data(principal, grid_id)
    )


def person_shown(name, phone, address, *, clear: bool) -> dict:
    """A resident's name, phone and address, in clear or masked."""
    shown = address if clear else mask_address(address)
    return {**contact_shown(name, phone, clear=clear), "address": shown}


def alert_feature(row: AlertRow, principal: Principal, events: list | None = None) -> dict:
    """An alert at its resident's home, the resident shown as the caller may see them."""
    return alert_feature_shown(row, clear=sees_personal_data(principal, row.grid_id), events=events)


def alert_feature_shown(row: AlertRow, *, clear: bool, events: list | None = None) -> dict:
    """An alert with its resident in clear or masked (`alert_feature` decides for a caller)."""
    properties = {
        "kind": row.kind,
        "status": row.status,
        "severity": row.severity,
        "level": row.level,
        "since": row.since,
        "opened_at": row.opened_at,
        "updated_at": row.updated_at,
        "acknowledged_at": row.acknowledged_at,
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": row.resolved_at,
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
        "grid": row.grid_code,
        "resident_id": row.resident_id,
        "resident": person_shown(row.name, row.phone, row.address, clear=clear),
    }
    if events is not None:
        properties["events"] = events
    return feature(row.id, point(row.lon, row.lat), properties)


def warning_feature(row: WarningRow, principal: Principal) -> dict:
    """A dispute warning where its text was written; one about a resident (a visit note) is
    placed like the resident's home: in clear only for those who may see the resident's
    personal information, else at the centre of its ~50 m cell. No text: only the keywords."""
    position = (row.lon, row.lat)
    if row.resident_id is not None and not sees_personal_data(principal, row.grid_id):
        position = coarse_position(row.lon, row.lat)
    return feature(
        row.id,
        point(*position),
        {
            "category": row.category,
            "level": row.level,
            "reason": row.reason,
            "keywords": row.keywords,
            "weight": row.weight,
            "source": row.source,
            "source_id": row.source_id,
            "grid": row.grid_code,
            "resident_id": row.resident_id,
            "lives_alone": row.lives_alone,
            "observed_at": row.observed_at,
            "created_at": row.created_at,
            "library_version": row.library_version,
        },
    )


def resident_feature(row: ResidentRecord, principal: Principal, *, reveal: bool) -> dict:
    """A resident at their home; masked, at the centre of the home's ~50 m cell."""
    who = person(principal, row.grid_id, row.name, row.phone, row.address, reveal=reveal)
    position = coarse_position(row.lon, row.lat) if who["masked"] else (row.lon, row.lat)
    return feature(
        row.id,
        point(*position),
        {
            **who,
            "grid": row.grid_code,
            "living_alone": row.living_alone,
            "open_alerts": row.open_alerts,
            "alert_status": row.alert_status,
            "absent": row.absent,
            "last_visit_at": row.last_visit_at,
            "awaiting_installation": row.awaiting_installation,
        },
    )


def absence_json(row: AbsenceRow) -> dict:
    return {
        "id": row.id,
        "resident_id": row.resident_id,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "note": row.note,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def event_json(event: AlertEvent, principal: Principal, display=None) -> dict:
    """One live alert event; `display` converts the position for the map's tiles."""
    lon, lat = event.lon, event.lat
    if display is not None and lon is not None:
        lon, lat = display(lon, lat)
    return {
        "event_id": event.id,
        "alert_id": event.alert_id,
        "at": event.at,
        "state": event.action,
        "actor": event.actor,
        "note": event.note,
        "level": event.level,
        "kind": event.kind,
        "status": event.status,
        "severity": event.severity,
        "since": event.since,
        "grid": event.grid_code,
        "resident_id": event.resident_id,
        "resident": person(principal, event.grid_id, event.name, event.phone, event.address),
        "lon": lon,
        "lat": lat,
    }


def warning_event_json(row: WarningRow, principal: Principal, display=None) -> dict:
    """One level-2 warning on the live stream: what MQTT and webhooks receive of it, with its
    grid and position (placed as on the warnings layer; `display` converts it for the map's
    tiles)."""
    lon, lat = row.lon, row.lat
    if row.resident_id is not None and not sees_personal_data(principal, row.grid_id):
        lon, lat = coarse_position(lon, lat)
    if display is not None and lon is not None:
        lon, lat = display(lon, lat)
    return {**warning_message(row), "grid": row.grid_code, "lon": lon, "lat": lat}


def request_feature(case: Request, now: datetime, *, clear: bool, events=None) -> dict:
    """A request at its point (no geometry when it has only an address), its requester's
    contact and address in clear or masked."""
    requester = {
        **contact_shown(case.requester_name, case.requester_phone, clear=clear),
        "email": case.requester_email if clear else mask_email(case.requester_email),
    }
    properties: dict = {
        "source": case.source,
        "source_key": case.source_key,
        "service_code": case.service_code,
        "service_name": BY_CODE[case.service_code].name if case.service_code in BY_CODE else None,
        "description": case.description,
        "address": case.address if clear else mask_address(case.address),
        "grid": case.grid_code,
        "queued": case.queued,
        "status": case.status,
        "level": case.level,
        "assignee": case.assignee,
        "reporter": case.reporter,
        "requested_at": case.requested_at,
        "received_at": case.received_at,
        "accept_by": case.accept_by,
        "due_at": case.due_at,
        "deadline_at": case.deadline_at,
        "overdue": request_overdue(case.status, case.due_at, now),
        "rating": case.rating,
        "media_urls": case.media_urls,
        "attributes": case.attributes,
        "updated_at": case.updated_at,
        "requester": requester,
    }
    if events is not None:
        properties["events"] = [case_step(e, "rating", "level") for e in events]
    return feature(str(case.id), point(case.lon, case.lat), properties)


def place_feature(
    place: PlaceRecord, now: datetime, *, clear: bool, events: list[PlaceEvent] | None = None
) -> dict:
    """A place at its point, its inspection clock as of `now` and its open findings (hazard
    ids); the contact and phone in clear or masked."""
    properties: dict = {
        "name": place.name,
        "kind": place.kind,
        "kind_label": PLACE_KIND_LABELS.get(place.kind, place.kind),
        "address": place.address,
        "grid": place.grid_code,
        "building": place.building_code,
        "unit": place.unit_code,
        "contact": place.contact if clear else mask_name(place.contact),
        "phone": place.phone if clear else mask_phone(place.phone),
        "masked": not clear,
        "inspect_every_days": place.inspect_every_days,
        "registered_at": place.registered_at,
        "last_inspected_at": place.last_inspected_at,
        "next_due_at": place.next_due_at,
        "overdue": inspection_overdue(place.next_due_at, now),
        "level": place.level,
        "open_findings": len(place.open_findings),
        "open_finding_ids": [str(h) for h in place.open_findings],
        "updated_at": place.updated_at,
    }
    if events is not None:
        properties["events"] = [
            {
                "id": e.id,
                "at": e.at,
                "action": e.action,
                "from_level": e.from_level,
                "to_level": e.to_level,
                "actor": e.actor,
                "note": e.note,
            }
            for e in events
        ]
    return feature(place.id, point(place.lon, place.lat), properties)
