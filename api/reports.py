"""`POST /checkins` and `POST /hazards`: the MQTT contract over HTTP, through the very same
parsers (`checkin_from_dict`, `hazard_from_dict`) and the same grid index; as JSON, or as
multipart/form-data with photos (api/media.py)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter
from fastapi.responses import Response

from gridwatch.api.auth import Caller
from gridwatch.api.bodies import CheckinBody, HazardBody, body_schema
from gridwatch.api.features import checkin_feature, checkin_id, hazard_feature
from gridwatch.api.media import Sent, keep_photos
from gridwatch.api.responses import GeoJSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.disputes.scanning import ScannedText
from gridwatch.errors import Conflict, Forbidden, NotFound
from gridwatch.ingest.hazard import hazard_from_dict
from gridwatch.ingest.patrol import checkin_from_dict
from gridwatch.ingest.payload import InvalidPayload, check_source_id, decode_object
from gridwatch.ingest.reporting import CHECKED_KINDS, check_reports
from gridwatch.model.records import HazardReport, PatrolCheckin
from gridwatch.store.checkins import CheckinRow, insert_checkin
from gridwatch.store.grids import PointGrids
from gridwatch.store.hazards import Hazard, insert_hazard
from gridwatch.store.media import MediaOwner
from gridwatch.store.places import record_inspections
from gridwatch.store.users import Principal
from gridwatch.store.warnings import checkin_text, hazard_text, record_warnings

router = APIRouter(tags=["reports (same schema as MQTT)"])

# What a report sent again under a stored key must repeat, besides its place.
_CHECKIN_CONTENT = ("kind", "resident_id", "status", "note", "needs", "place_id", "result")
_HAZARD_CONTENT = ("reporter_id", "category", "severity", "description")


def _source_id(data: dict, field: str, principal: Principal, what: str) -> str:
    """Who the report is from: the caller, or (for devices and admins) the body's field."""
    given = data.get(field)
    if given is None:
        return principal.name
    if not isinstance(given, str) or not given:
        raise InvalidPayload(f"{field} must be non-empty text")
    check_source_id(given, what)
    # On MQTT this id is a topic level, which can hold none of these.
    if any(c in given for c in "/+#\x00"):
        raise InvalidPayload(f"{field} must not contain '/', '+', '#' or NUL")
    if given != principal.name and principal.role not in ("device", "admin"):
        raise Forbidden(
            f"you post as {principal.name!r}; only device and admin tokens post for others"
        )
    return given


def _place(state: ApiState, conn, lon: float, lat: float) -> PointGrids:
    """The point's grid in every system, as the ingest writer places it."""
    return state.leaf_grids(conn).place([lon], [lat])[0]


@router.post(
    "/checkins",
    status_code=201,
    response_class=GeoJSONResponse,
    summary="Post a patrol check-in (payload of gw/patrol/{worker_id})",
    openapi_extra=body_schema(CheckinBody, photos=True),
    responses={
        200: {
            "description": "the same check-in was stored before (photos sent again "
            "are not kept twice)"
        }
    },
)
def post_checkin(principal: Caller, state: State, sent: Sent, conn: Conn):
    """The photos are read and checked before a database connection is taken (parameters
    are resolved in order)."""
    ctx = state.parse_context()
    data = decode_object(sent.payload or b"", ctx)
    worker_id = _source_id(data, "worker_id", principal, "worker id")
    checkin = checkin_from_dict(worker_id, data, ctx)
    checkin = replace(checkin, photo_urls=sent.with_urls(checkin.photo_urls))
    if checkin.kind in CHECKED_KINDS:
        # The rule MQTT keeps too: a visit (an inspection) names an existing resident (place)
        # of the worker's grids.
        raise_refusal(check_reports(conn, [(checkin, None)]))
    grids = _place(state, conn, checkin.lon, checkin.lat)
    state.ensure_partition(conn, checkin.observed_at)
    row, created = insert_checkin(
        conn, checkin, grid_id=grids.grid_id, police_grid_id=grids.police_grid_id
    )
    if created:
        scan(state, conn, checkin_text(checkin, *grids))
    if not created and not _same_content(row, checkin, _CHECKIN_CONTENT):
        raise Conflict(
            f"worker {checkin.worker_id[:64]!r} has a different check-in stored at "
            f"{checkin.observed_at.isoformat()}"
        )
    if created:
        visit = checkin.resident_id if checkin.kind == "visit" else None
        key = (checkin.worker_id, checkin.source, checkin.observed_at)
        owner = MediaOwner("checkin", checkin=key, resident_id=visit, grid_id=grids.grid_id)
        keep_photos(conn, state, principal, sent, owner)
    inspect(state, conn, checkin)
    return GeoJSONResponse(
        checkin_feature(row, state.settings.owntracks_max_accuracy_m),
        201 if created else 200,
        headers={"Location": f"/collections/checkins/items/{checkin_id(row)}"},
    )


@router.post(
    "/hazards",
    status_code=201,
    response_class=GeoJSONResponse,
    summary="Report a hazard (payload of gw/hazard/{reporter_id}); idempotent on its id",
    openapi_extra=body_schema(HazardBody, photos=True),
    responses={
        200: {"description": "this report (same id) was stored before: the stored one"},
        404: {"description": "the id is taken by a hazard of a grid the caller cannot see"},
        409: {"description": "the id is taken by a different report"},
    },
)
def post_hazard(principal: Caller, state: State, sent: Sent, conn: Conn) -> Response:
    ctx = state.parse_context()
    data = decode_object(sent.payload or b"", ctx)
    reporter_id = _source_id(data, "reporter_id", principal, "reporter id")
    report = hazard_from_dict(reporter_id, data, ctx)
    report = replace(report, photo_urls=sent.with_urls(report.photo_urls))
    grids = _place(state, conn, report.lon, report.lat)
    raise_refusal(check_reports(conn, [(report, grids)]))
    hazard, created = insert_hazard(
        conn,
        report,
        grid_id=grids.grid_id,
        deadlines=state.deadlines,
        police_grid_id=grids.police_grid_id,
    )
    if created:
        scan(state, conn, hazard_text(report, *grids))
    seen = principal.sees_grid(hazard.grid_id, hazard.police_grid_id)
    if not created and principal.role != "device" and not seen:
        raise NotFound(f"no hazard {report.id}")  # another grid's: not even confirmed to exist
    if not created and not _same_content(hazard, report, _HAZARD_CONTENT):
        raise Conflict(f"hazard id {report.id} is already used by a different report")
    if created:
        owner = MediaOwner("report", hazard_id=hazard.id, grid_id=hazard.grid_id)
        keep_photos(conn, state, principal, sent, owner)
    return GeoJSONResponse(
        hazard_feature(hazard, state.now()),
        201 if created else 200,
        headers={"Location": f"/collections/hazards/items/{hazard.id}"},
    )


def scan(state: ApiState, conn, text: ScannedText) -> None:
    """Scan a stored text for dispute keywords, as ingest does: the warnings commit with it."""
    record_warnings(conn, state.keyword_matchers, [text], state.warning_notify)


def inspect(state: ApiState, conn, checkin: PatrolCheckin) -> None:
    """What a stored inspection does, as ingest does it: its place's clock, a hazard per
    finding (scanned as hazards are); nothing for another kind of check-in."""
    inspected = record_inspections(conn, [checkin], deadlines=state.deadlines)
    texts = [hazard_text(report, *grids) for report, grids in inspected.findings]
    record_warnings(conn, state.keyword_matchers, texts, state.warning_notify)


def raise_refusal(refusals: list) -> None:
    """Raise the rule's refusal of the one report checked, if any."""
    if refusals[0] is not None:
        raise refusals[0]


def _same_content(
    stored: CheckinRow | Hazard, new: PatrolCheckin | HazardReport, fields: tuple[str, ...]
) -> bool:
    """A retry of the same report: the same `fields` and the same place (the time may differ
    when the client sent none)."""
    return (
        all(getattr(stored, name) == getattr(new, name) for name in fields)
        and abs(stored.lon - new.lon) < 1e-7
        and abs(stored.lat - new.lat) < 1e-7
    )
