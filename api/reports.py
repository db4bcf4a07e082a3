"""`POST /checkins` and `POST /hazards`: the MQTT contract over HTTP, through the very same
parsers (`checkin_from_dict`, `hazard_from_dict`) and the same grid index; as JSON, or as
multipart/form-data with photos (api/media.py)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from gridwatch.api.auth import Caller
from gridwatch.api.bodies import CheckinBody, HazardBody, body_schema
from gridwatch.api.features import checkin_feature, checkin_id, hazard_feature
from gridwatch.api.media import PHOTOS_FIELD, Posted, Sent, keep_photos, keep_photos_of
from gridwatch.api.responses import GeoJSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.inspections import finding_id
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
from gridwatch.store.places import Inspected, record_inspections
from gridwatch.store.users import Principal
from gridwatch.store.warnings import checkin_text, hazard_text, record_warnings

router = APIRouter(tags=["reports (same schema as MQTT)"])

UPLOAD = "upload:"  # a finding's photo posted with it: upload:1 is the first file of `photos`
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


def _report_route(path: str, model: type[BaseModel], summary: str, answers: dict[int, str]):
    """Register the POST of a report like its MQTT payload, with photos: 201 when stored
    now; `answers`: what the other status codes (200: stored before) mean."""
    return router.post(
        path,
        status_code=201,
        response_class=GeoJSONResponse,
        summary=summary,
        openapi_extra=body_schema(model, photos=True),
        responses={code: {"description": meaning} for code, meaning in answers.items()},
    )


@_report_route(
    "/checkins",
    CheckinBody,
    "Post a patrol check-in (payload of gw/patrol/{worker_id})",
    {200: "the same check-in was stored before (photos sent again are not kept twice)"},
)
def post_checkin(principal: Caller, state: State, sent: Sent, conn: Conn):
    """The photos are read and checked before a database connection is taken (parameters
    are resolved in order). An inspection's finding names its photos among those posted as
    `upload:N` (the Nth file of `photos`, from 1): they are its case's; the others are the
    check-in's."""
    ctx = state.parse_context()
    data = decode_object(sent.payload or b"", ctx)
    worker_id = _source_id(data, "worker_id", principal, "worker id")
    sent, by_finding = _finding_uploads(data, sent)
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
    inspected = inspect(state, conn, checkin)
    if created:
        visit = checkin.resident_id if checkin.kind == "visit" else None
        key = (checkin.worker_id, checkin.source, checkin.observed_at)
        owner = MediaOwner("checkin", checkin=key, resident_id=visit, grid_id=grids.grid_id)
        owned = [(sent, owner)]
        grid_of = {report.id: where.grid_id for report, where in inspected.findings}
        for n, photos in by_finding.items():  # a finding's photos are its case's
            case = finding_id(checkin, n)
            owned.append((photos, MediaOwner("report", hazard_id=case, grid_id=grid_of[case])))
        keep_photos_of(conn, state, principal, owned)
    return GeoJSONResponse(
        checkin_feature(row, state.settings.owntracks_max_accuracy_m),
        201 if created else 200,
        headers={"Location": f"/collections/checkins/items/{checkin_id(row)}"},
    )


@_report_route(
    "/hazards",
    HazardBody,
    "Report a hazard (payload of gw/hazard/{reporter_id}); idempotent on its id",
    {
        200: "this report (same id) was stored before: the stored one",
        404: "the id is taken by a hazard of a grid the caller cannot see",
        409: "the id is taken by a different report",
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


def inspect(state: ApiState, conn, checkin: PatrolCheckin) -> Inspected:
    """What a stored inspection does, as ingest does it: its place's clock, a hazard per
    finding (scanned as hazards are); nothing for another kind of check-in."""
    inspected = record_inspections(conn, [checkin], deadlines=state.deadlines)
    texts = [hazard_text(report, *grids) for report, grids in inspected.findings]
    record_warnings(conn, state.keyword_matchers, texts, state.warning_notify)
    return inspected


def _finding_uploads(data: dict, sent: Posted) -> tuple[Posted, dict[int, Posted]]:
    """Each `upload:N` among a finding's photos replaced by the link the Nth photo posted is
    kept under: (the photos left to the check-in, those each finding took by its place in the
    list from 0). A name of no photo posted, or of one another finding took, is refused."""
    findings = data.get("findings")
    if not isinstance(findings, list):
        return sent, {}
    taken: dict[int, int] = {}  # photo (from 0) → the finding that took it
    for n, finding in enumerate(findings):
        photos = finding.get("photos") if isinstance(finding, dict) else None
        if not isinstance(photos, list):
            continue
        for i, entry in enumerate(photos):
            if not isinstance(entry, str) or not entry.startswith(UPLOAD):
                continue
            number = entry.removeprefix(UPLOAD)
            if (
                not number.isascii()
                or not number.isdigit()
                or not 1 <= int(number) <= len(sent.photos)
            ):
                raise InvalidPayload(
                    f"finding {n + 1}: {entry[:40]!r} names no photo of this post "
                    f"({len(sent.photos)} sent in '{PHOTOS_FIELD}')"
                )
            k = int(number) - 1
            if k in taken:
                raise InvalidPayload(f"finding {n + 1}: {entry!r} is named twice")
            taken[k] = n
            photos[i] = f"/media/{sent.photos[k][0]}"
    left = tuple(p for k, p in enumerate(sent.photos) if k not in taken)
    by_finding = {
        n: replace(sent, photos=tuple(p for k, p in enumerate(sent.photos) if taken.get(k) == n))
        for n in sorted(set(taken.values()))
    }
    return replace(sent, photos=left), by_finding


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
