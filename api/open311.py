"""Open311 GeoReport v2 at `/open311/v2/`, so that existing Open311 apps and tools post and
follow requests: the services with their Chinese names, service definitions, requests posted
form-encoded as the specification says, and their status read back.

`api_key` is a gridwatch token (a device token may post); reading follows the token's scope,
and a device reads back only what it posted. JSON only. Errors are the specification's:
`[{"code": 400, "description": "..."}]`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response

from gridwatch.api.auth import bearer_token, scope_filters
from gridwatch.api.auth import sees_personal_data as may_see
from gridwatch.api.http_errors import BadRequest, Unauthorized, UnsupportedMediaType, status_of
from gridwatch.api.privacy import mask_address
from gridwatch.api.requests import visible_request
from gridwatch.api.responses import JSONResponse
from gridwatch.api.runtime import ApiState
from gridwatch.cases.requests import CLOSED_STATUSES, OPEN_STATUSES
from gridwatch.errors import GridwatchError, NotFound
from gridwatch.geo.crs import normalize_crs, to_wgs84
from gridwatch.ingest.payload import InvalidPayload
from gridwatch.ingest.payload import read_photo_urls as validate_media_urls
from gridwatch.model.records import RequestIntake, text_problem
from gridwatch.model.services import BY_CODE, SERVICES, Service
from gridwatch.store.filters import Filters
from gridwatch.store.grids import OUTSIDE, GridCatalog
from gridwatch.store.requests import (
    Request as Case,
)
from gridwatch.store.requests import (
    latest_notes,
    open_requests,
    place_request,
    request_page,
)
from gridwatch.store.users import Principal
from gridwatch.store.warnings import record_warnings, request_texts

PREFIX = "/open311/v2"
MAX_FIELD = 128  # names, phone, email, address_id and the like
MAX_ADDRESS = 500
WINDOW = timedelta(days=90)  # the specification's default and longest span of a listing
MAX_FORM_FIELDS = 100
FORM = "application/x-www-form-urlencoded"


class _SpecErrors(APIRoute):
    """Every error of these routes in the specification's form, with the HTTP status the rest
    of the API gives the same error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def spec_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except (GridwatchError, InvalidPayload) as exc:
                status, _ = status_of(exc)
                return spec_error(400 if status == 422 else status, str(exc))
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors()
                )
                return spec_error(400, problems or "invalid request")

        return spec_errors


router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], route_class=_SpecErrors)


def spec_error(status: int, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="gridwatch"'} if status == 401 else None
    return JSONResponse([{"code": status, "description": description}], status, headers=headers)


# -- services ---------------------------------------------------------------------------------


def _service_json(service: Service) -> dict:
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": bool(service.attributes),
        "type": "realtime",
        "keywords": ",".join(service.keywords),
        "group": service.group,
    }


@router.get("/services.json", summary="The services (kinds of request), with Chinese names")
def services() -> JSONResponse:
    """Public, as the specification has it: the list names no one."""
    return JSONResponse([_service_json(s) for s in SERVICES])


@router.get("/services/{service_code}.json", summary="A service's definition: its questions")
def service_definition(service_code: str) -> JSONResponse:
    service = BY_CODE.get(service_code)
    if service is None:
        raise NotFound(f"no service {service_code[:64]!r}; see services.json")
    return JSONResponse(
        {
            "service_code": service.code,
            "attributes": [
                {
                    "variable": True,
                    "code": a.code,
                    "datatype": a.datatype,
                    "required": a.required,
                    "datatype_description": None,
                    "order": n,
                    "description": a.description,
                    **_values(a),
                }
                for n, a in enumerate(service.attributes, 1)
            ],
        }
    )


def _values(attribute) -> dict:
    if not attribute.values:
        return {}
    return {"values": [{"key": v.key, "name": v.name} for v in attribute.values]}


# -- posting ----------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, list[str]]:
    """The urlencoded body as the specification posts it; repeated keys keep every value."""
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None
    except ValueError:
        raise BadRequest(f"the form has more than {MAX_FORM_FIELDS} fields") from None
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


async def _principal(request: Request, api_key: str | None) -> Principal:
    """The token's user: `api_key`, or an `Authorization: Bearer` header."""
    header = request.headers.get("authorization")
    token = api_key or (bearer_token(header) if header else None)
    if not token:
        raise Unauthorized("an api_key (a gridwatch token) is required")
    principal = await request.app.state.gw.principal_for_token(token)
    if principal is None:
        raise Unauthorized("the api_key is not recognised or has been revoked")
    request.state.principal = principal
    return principal


@router.post(
    "/requests.json",
    status_code=201,
    summary="Post a request (application/x-www-form-urlencoded, as GeoReport v2)",
)
async def post_request(request: Request) -> JSONResponse:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = await _form(request) if kind == FORM else {}
    principal = await _principal(request, _one(form, "api_key"))
    if kind != FORM:
        raise UnsupportedMediaType(f"post the request as {FORM}, as GeoReport v2 says")
    state: ApiState = request.app.state.gw
    intake = _intake(form, principal, state)
    stored, catalog = await anyio.to_thread.run_sync(
        _store, state, intake, limiter=state.db_limiter
    )
    case = stored.request
    return JSONResponse(
        [
            {
                "service_request_id": str(case.id),
                "service_notice": _notice(case, catalog, state),
                "account_id": None,
            }
        ],
        201,
        headers={"Location": f"{PREFIX}/requests/{case.id}.json"},
    )


def _store(state: ApiState, intake: RequestIntake):
    with state.pool.connection() as conn:
        catalog = state.catalog(conn)
        grid = OUTSIDE
        if intake.lon is not None and intake.lat is not None:
            [grid] = state.leaf_grids(conn).place([intake.lon], [intake.lat])
        with conn.transaction():  # the request and the warnings its text makes, at once
            [stored] = open_requests(
                conn, [(intake, place_request(intake, catalog, grid))], now=state.now()
            )
            texts = request_texts([stored])
            record_warnings(conn, state.keyword_matchers, texts, state.warning_notify)
    state.wrote()
    return stored, catalog


def _notice(case: Case, catalog: GridCatalog, state: ApiState) -> str:
    where = _agency(case, catalog)
    due = case.due_at.astimezone(state.zone).strftime("%Y-%m-%d %H:%M")
    if case.queued:
        return f"已受理，进入{where}，将尽快派单；办结时限 {due}"  # noqa: RUF001
    return f"已受理，已派单至{where}；办结时限 {due}"  # noqa: RUF001


def _one(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{key} is given {len(values)} times")
    return values[0].strip() or None


def _short(form: dict[str, list[str]], key: str, limit: int = MAX_FIELD) -> str | None:
    value = _one(form, key)
    if value is None:
        return None
    problem = text_problem(value, limit)
    if problem:
        raise BadRequest(f"{key} {problem}")
    return value


def _intake(form: dict[str, list[str]], principal: Principal, state: ApiState) -> RequestIntake:
    """The posted form as a request; BadRequest naming the field at fault."""
    code = _one(form, "service_code")
    if code is None:
        raise BadRequest("service_code is required; see services.json")
    service = BY_CODE.get(code)
    if service is None:
        raise BadRequest(f"service_code {code[:64]!r} is not a service; see services.json")
    lon, lat = _position(form)
    address = _short(form, "address_string", MAX_ADDRESS)
    if lon is None and address is None and _one(form, "address_id") is None:
        raise BadRequest("a location is required: lat and long, or address_string")
    description = _one(form, "description") or ""
    problem = text_problem(description)
    if problem:
        raise BadRequest(f"description {problem}")
    names = [n for n in (_short(form, "last_name"), _short(form, "first_name")) if n]
    media = _one(form, "media_url")
    now = state.now()
    return RequestIntake(
        id=uuid.uuid4(),
        source="open311",
        service_code=service.code,
        description=description,
        reporter=principal.name,
        requested_at=now,
        received_at=now,
        lon=lon,
        lat=lat,
        address=address,
        requester_name="".join(names) or None,  # 姓 then 名, as Chinese names are written
        requester_phone=_short(form, "phone"),
        requester_email=_short(form, "email"),
        media_urls=validate_media_urls([media]) if media else (),
        attributes=_attributes(form, service),
    )


def _position(form: dict[str, list[str]]) -> tuple[float | None, float | None]:
    """lat and long as WGS-84 (or the `crs` named, an extension for apps on Chinese maps)."""
    lat_text, lon_text = _one(form, "lat"), _one(form, "long")
    if lat_text is None and lon_text is None:
        return None, None
    if lat_text is None or lon_text is None:
        raise BadRequest("lat and long go together: give both or neither")
    try:
        lat, lon = float(lat_text[:40]), float(lon_text[:40])
    except ValueError:
        raise BadRequest("lat and long must be decimal degrees") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequest("lat must be within ±90 and long within ±180 degrees")
    try:
        crs = normalize_crs(_one(form, "crs") or "wgs84")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return to_wgs84(lon, lat, crs)


def _attributes(form: dict[str, list[str]], service: Service) -> tuple[tuple[str, str], ...]:
    """`attribute[code]` answers to the service's questions, checked against its definition."""
    given: dict[str, str] = {}
    for key, values in form.items():
        if not key.startswith("attribute["):
            continue
        code = key[len("attribute[") :].removesuffix("[]").removesuffix("]")
        question = next((a for a in service.attributes if a.code == code), None)
        if question is None:
            raise BadRequest(f"{key[:80]!r} is not a question of service {service.code}")
        keys = {v.key for v in question.values}
        if keys and any(v not in keys for v in values):
            raise BadRequest(f"{key} must be one of {', '.join(sorted(keys))}")
        text = ",".join(values)
        problem = text_problem(text, MAX_FIELD)
        if problem:
            raise BadRequest(f"{key} {problem}")
        given[code] = text
    missing = [a.code for a in service.attributes if a.required and not given.get(a.code)]
    if missing:
        raise BadRequest(f"attribute[{missing[0]}] is required for service {service.code}")
    return tuple(sorted(given.items()))


# -- reading ----------------------------------------------------------------------------------


def _status_of(case: Case) -> str:
    return "closed" if case.status in CLOSED_STATUSES else "open"


def _agency(case: Case, catalog: GridCatalog) -> str:
    grid = catalog.by_id.get(case.grid_id) if case.grid_id is not None else None
    name = grid.name if grid is not None else "区"
    return f"{name}待分拨队列" if case.queued else name


def _request_json(
    case: Case, note: str | None, catalog: GridCatalog, principal: Principal, state: ApiState
) -> dict:
    def local(at: datetime) -> str:
        return at.astimezone(state.zone).isoformat()

    address = case.address
    if address and not may_see(principal, case.grid_id):
        address = mask_address(address)
    return {
        "service_request_id": str(case.id),
        "status": _status_of(case),
        "status_notes": note,
        "service_name": BY_CODE[case.service_code].name if case.service_code in BY_CODE else None,
        "service_code": case.service_code,
        "description": case.description,
        "agency_responsible": _agency(case, catalog),
        "service_notice": None,
        "requested_datetime": local(case.requested_at),
        "updated_datetime": local(case.updated_at),
        "expected_datetime": local(case.due_at),
        "address": address,
        "address_id": None,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lon,
        "media_url": case.media_urls[0] if case.media_urls else None,
    }


def _w3c(text: str | None, name: str, state: ApiState) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text[:40].replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be a W3C datetime such as 2026-11-01T00:00:00Z") from None
    return at if at.tzinfo else at.replace(tzinfo=state.zone)


def _listing(state: ApiState, query) -> dict:
    """What a GET requests.json asks: ids (which override the rest), codes, window, status."""
    if query.get("service_request_id"):
        ids = []
        for text in query["service_request_id"].split(",")[:200]:
            try:
                ids.append(uuid.UUID(text.strip()))
            except ValueError:
                continue  # no request has such an id
        return {"ids": ids}
    codes = [c.strip() for c in (query.get("service_code") or "").split(",") if c.strip()]
    statuses: list[str] = []
    for word in (query.get("status") or "").split(","):
        word = word.strip().lower()
        if word == "open":
            statuses += sorted(OPEN_STATUSES)
        elif word == "closed":
            statuses += sorted(CLOSED_STATUSES)
        elif word:
            raise BadRequest(f"status {word[:40]!r} is not open or closed")
    start = _w3c(query.get("start_date"), "start_date", state)
    end = _w3c(query.get("end_date"), "end_date", state)
    if start is None:
        start = (end or state.now()) - WINDOW
    if end is not None and end - start > WINDOW:
        raise BadRequest("start_date to end_date may not span more than 90 days")
    return {"codes": codes or None, "statuses": statuses or None, "start": start, "end": end}


@router.get("/requests.json", summary="Requests, newest first (filters as GeoReport v2)")
async def get_requests(request: Request, api_key: str | None = None) -> JSONResponse:
    principal = await _principal(request, api_key)
    state: ApiState = request.app.state.gw
    asked = _listing(state, request.query_params)
    return await anyio.to_thread.run_sync(
        _read_requests, state, principal, asked, limiter=state.db_limiter
    )


def _scope(principal: Principal) -> Filters:
    """What the caller may read: their grids' requests and those they posted."""
    return scope_filters(principal, me=principal.name)


def _read_requests(state: ApiState, principal: Principal, asked: dict) -> JSONResponse:
    base = _scope(principal)
    with state.pool.connection() as conn:
        catalog = state.catalog(conn)
        filters = base
        if "ids" not in asked:
            filters = replace(base, start=asked["start"], end=asked["end"])
        page = request_page(
            conn,
            filters,
            limit=state.settings.api_max_limit,
            ids=asked.get("ids"),
            statuses=asked.get("statuses"),
            service_codes=asked.get("codes"),
        )
        notes = latest_notes(conn, [r.id for r in page.rows])
    return JSONResponse(
        [_request_json(r, notes.get(r.id), catalog, principal, state) for r in page.rows]
    )


@router.get("/requests/{service_request_id}.json", summary="One request's status")
async def get_one(
    request: Request, service_request_id: str, api_key: str | None = None
) -> JSONResponse:
    principal = await _principal(request, api_key)
    state: ApiState = request.app.state.gw
    return await anyio.to_thread.run_sync(
        _read_one, state, principal, service_request_id, limiter=state.db_limiter
    )


def _read_one(state: ApiState, principal: Principal, request_id: str) -> JSONResponse:
    with state.pool.connection() as conn:
        case = visible_request(conn, principal, request_id)
        notes = latest_notes(conn, [case.id])
        catalog = state.catalog(conn)
    return JSONResponse([_request_json(case, notes.get(case.id), catalog, principal, state)])


@router.api_route(
    "/{anything:path}", methods=["GET", "POST"], include_in_schema=False, name="open311_other"
)
def other(anything: str) -> JSONResponse:
    if anything.endswith(".xml"):
        return spec_error(400, "this server speaks JSON only: ask for .json")
    return spec_error(404, f"no GeoReport v2 resource {anything[:80]!r}")
