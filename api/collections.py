"""The layers as OGC API - Features: `/collections`, `/collections/{id}`,
`/collections/{id}/items` (bbox, datetime, limit, next links) and single features."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Hashable
from dataclasses import KW_ONLY, dataclass, fields, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, Generic, Literal, TypeVar, get_type_hints, overload

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic.fields import FieldInfo

from gridwatch.api.auth import Reader, ensure_visible, scope_filters, sees_personal_data
from gridwatch.api.disclosure import (
    ALERT_RESIDENT,
    PLACE_CONTACT,
    REQUESTER,
    RESIDENT,
    Personal,
    record_reads,
    shown_in_clear,
)
from gridwatch.api.features import (
    alert_feature,
    alert_feature_shown,
    checkin_feature,
    geometry_json,
    grid_feature,
    hazard_feature,
    parse_checkin_id,
    place_feature,
    request_feature,
    resident_feature,
    warning_feature,
)
from gridwatch.api.http_errors import BadRequest, UnknownParameter
from gridwatch.api.layer_cache import (
    NOT_MODIFIED,
    AlertLayer,
    Body,
    GridLayer,
    HazardLayer,
    KeptBodies,
    Moment,
    conditional,
    feature_collection,
)
from gridwatch.api.params import (
    decode_cursor,
    decode_offset,
    encode_cursor,
    parse_bbox,
    parse_datetime,
)
from gridwatch.api.privacy import coarse_bbox
from gridwatch.api.requests import request_answer, visible_request
from gridwatch.api.responses import GeoJSONResponse, JSONResponse, JSONSchemaResponse, dumps
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.cases.hazards import STATUSES
from gridwatch.cases.requests import SOURCES
from gridwatch.cases.requests import STATUSES as REQUEST_STATUSES
from gridwatch.errors import Forbidden, NotFound
from gridwatch.geo.grids import LEVELS as GRID_LEVELS
from gridwatch.model.figures import GridCounts
from gridwatch.model.services import SERVICE_CODES
from gridwatch.model.vocabulary import (
    DISPUTE_CATEGORIES,
    GRID_SYSTEMS,
    LEVELS,
    MANAGEMENT,
    PLACE_KINDS,
    SEVERITIES,
    WARNING_SOURCES,
    GridSystem,
    Level,
)
from gridwatch.store.alerts import AlertRow, alert_page, get_alert
from gridwatch.store.checkins import CheckinRow, checkin_page, get_checkin
from gridwatch.store.filters import Filters, local_day_bounds
from gridwatch.store.grids import GridCatalog, GridRecord
from gridwatch.store.hazards import get_hazard, hazard_events, hazard_page
from gridwatch.store.paging import Page
from gridwatch.store.places import get_place, place_events, place_page
from gridwatch.store.requests import request_page
from gridwatch.store.residents import get_resident, resident_page
from gridwatch.store.users import Principal
from gridwatch.store.warnings import get_warning, warning_page

router = APIRouter(tags=["layers (OGC API - Features)"])
K = TypeVar("K")

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
COLLECTIONS = {
    "grids": (
        "Grids",
        "Streets, communities and grids with live counts: residents, open alerts, open and "
        "overdue hazards, patrol check-ins in the datetime window (default: today).",
        None,
    ),
    "hazards": ("Hazards", "Hazard reports and where they stand in the loop.", "observed_at"),
    "checkins": (
        "Patrol check-ins",
        "Track points and home visits of grid workers.",
        "observed_at",
    ),
    "alerts": ("Alerts", "Inactivity and emergency alerts, at the resident's home.", "opened_at"),
    "requests": (
        "Requests (诉求)",
        "Citizens' requests (Open311, 12345 work orders, needs recorded on visits) and where "
        "they stand in the loop; the requester's contact is masked unless the caller may see it.",
        "requested_at",
    ),
    "places": (
        "Places (安全巡查)",
        "Shops, restaurants, small workshops and warehouses inspected on a schedule: the last "
        "inspection, when the next is due, whether it is overdue (and the level it has gone up "
        "to), the open findings (cases) of its inspections. The contact is masked unless "
        "pii=true is asked by someone who may see it.",
        None,
    ),
    "residents": (
        "Residents",
        "Residents with their alert state. Names, phones and addresses are masked unless "
        "pii=true is asked by someone who may see them.",
        None,
    ),
    "warnings": (
        "Dispute warnings",
        "Early warnings of disputes (矛盾纠纷预警): a category of the keyword library hit by a "
        "patrol or visit note, a hazard's description or a request, at level 1, or 2 when "
        "hits accumulate in a grid or concern a resident who lives alone. Keywords only, no text.",
        "observed_at",
    ),
}
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
GRID_CODE = {
    "type": "string",
    "title": "Grid code",
    "description": "a grid code: that grid and everything below it",
}
# A grid's system is a property of the grids layer; on the point layers `system` only says
# which system `grid` names a grid of (a query parameter, not a property of their items).
GRID_SYSTEM = {
    "type": "string",
    "title": "Grid system",
    "description": "management (网格) or police (警格); default management",
    "enum": list(GRID_SYSTEMS),
}
ALERT_LEVELS = {"type": "string", "title": "Level", "enum": list(LEVELS)}
# The properties a layer's items can be filtered by, each a query parameter of that name.
QUERYABLES: dict[str, dict[str, dict]] = {
    "grids": {
        "level": {"type": "string", "title": "Level", "enum": list(GRID_LEVELS)},
        "system": GRID_SYSTEM,
    },
    "hazards": {
        "status": {"type": "string", "title": "Status", "enum": list(STATUSES)},
        "severity": {"type": "string", "title": "Severity", "enum": list(SEVERITIES)},
        "level": ALERT_LEVELS,
        "grid": GRID_CODE,
    },
    "checkins": {
        "kind": {"type": "string", "title": "Kind", "enum": ["patrol", "visit", "inspection"]},
        "grid": GRID_CODE,
    },
    "alerts": {
        "status": {
            "type": "string",
            "title": "Status",
            "enum": ["open", "acknowledged", "resolved"],
        },
        "level": ALERT_LEVELS,
        "kind": {"type": "string", "title": "Kind", "description": "e.g. inactivity"},
        "grid": GRID_CODE,
    },
    "warnings": {
        "level": {"type": "integer", "title": "Warning level", "enum": [1, 2]},
        "category": {
            "type": "string",
            "title": "Category",
            "description": "a category of the keyword library, e.g. "
            + ", ".join(DISPUTE_CATEGORIES),
            "maxLength": 40,
        },
        "source": {"type": "string", "title": "Source", "enum": list(WARNING_SOURCES)},
        "grid": GRID_CODE,
    },
    "requests": {
        "status": {"type": "string", "title": "Status", "enum": list(REQUEST_STATUSES)},
        "service_code": {"type": "string", "title": "Service", "enum": list(SERVICE_CODES)},
        "source": {"type": "string", "title": "Source", "enum": list(SOURCES)},
        "level": ALERT_LEVELS,
        "grid": GRID_CODE,
    },
    "places": {
        "kind": {"type": "string", "title": "Kind", "enum": list(PLACE_KINDS)},
        "level": ALERT_LEVELS,
        "grid": GRID_CODE,
    },
    "residents": {"grid": GRID_CODE},
}
ITEMS_PATH = re.compile(r"/collections/[a-z]+/items")

BBoxQ = Annotated[
    str | None, Query(description="minLon,minLat,maxLon,maxLat (WGS-84)", max_length=200)
]
DatetimeQ = Annotated[
    str | None,
    Query(
        description="RFC 3339 instant or interval start/end with '..' for an open end; "
        "a date alone is that local day",
        max_length=100,
    ),
]
LimitQ = Annotated[int | None, Query(ge=1, description="page size (capped at the server maximum)")]
CursorQ = Annotated[str | None, Query(max_length=512, description="from a 'next' link")]
GridQ = Annotated[
    str | None, Query(max_length=64, description="a grid code: that grid and all below it")
]
SystemQ = Annotated[
    GridSystem,
    Query(
        description="the grid system `grid` names a grid of: management (网格, the default) or "
        "police (警格); every point lies in a grid of each"
    ),
]


def advertise_page_sizes(document: dict, default: int, maximum: int) -> dict:
    """Give every layer's items operation the shared `limit` parameter with the server's
    default and maximum page size: GDAL (and with it QGIS) sizes its pages from them, and
    reads only a `$ref` to `#/components/parameters/limit`."""
    document.setdefault("components", {}).setdefault("parameters", {})["limit"] = {
        "name": "limit",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "features per page; more than the maximum gives the maximum",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }
    for path, operations in document.get("paths", {}).items():
        if ITEMS_PATH.fullmatch(path) and "get" in operations:
            operations["get"]["parameters"] = [
                {"$ref": "#/components/parameters/limit"} if p.get("name") == "limit" else p
                for p in operations["get"].get("parameters", [])
            ]
    return document


def check_params(request: Request, allowed: Collection[str]) -> None:
    unknown = sorted(set(request.query_params).difference(allowed))
    if unknown:
        raise UnknownParameter(
            f"unknown query parameter {unknown[0]!r}; this route takes {', '.join(sorted(allowed))}"
        )


def page_size(state: ApiState, limit: int | None) -> int:
    return min(limit or state.settings.api_default_limit, state.settings.api_max_limit)


@overload
def subtree_ids(
    catalog: GridCatalog, principal: Principal, code: str, system: str = MANAGEMENT
) -> list[int]: ...
@overload
def subtree_ids(
    catalog: GridCatalog, principal: Principal, code: None, system: str = MANAGEMENT
) -> None: ...
def subtree_ids(
    catalog: GridCatalog, principal: Principal, code: str | None, system: str = MANAGEMENT
) -> list[int] | None:
    """The ids of grid `code` of `system` and everything below it; NotFound if not visible,
    BadRequest naming the system when the caller's grid of that code is of the other one."""
    if code is None:
        return None
    grid = catalog.find(code, system)
    if grid is None or not principal.sees_grid(grid.id):
        other = catalog.find(code)
        if other is not None and principal.sees_grid(other.id):
            raise BadRequest(
                f"grid {code!r} is a {other.system} grid, not a {system} one: "
                f"ask system={other.system}"
            )
        raise NotFound(f"no grid {code!r}")
    return catalog.subtree(grid.id)


def items_response(
    request: Request, features: list, matched: int, next_cursor: str | None, collection: str
):
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(features),
            "timeStamp": request.app.state.gw.now(),
            "links": _items_links(request, next_cursor, collection),
        }
    )


def _items_links(request: Request, next_cursor: str | None, collection: str) -> list[dict]:
    links = [
        {"href": str(request.url), "rel": "self", "type": "application/geo+json"},
        {
            "href": str(request.url_for("collection", collection_id=collection)),
            "rel": "collection",
            "type": "application/json",
        },
    ]
    if next_cursor is not None:
        links.append(
            {
                "href": str(request.url.include_query_params(cursor=next_cursor)),
                "rel": "next",
                "type": "application/geo+json",
            }
        )
    return links


def page_response(
    request: Request,
    page: Page,
    features: list,
    collection: str,
    key: Callable[[Any], list],
) -> GeoJSONResponse:
    """A page of a layer paged by key: `key` of its last row is the next link's cursor."""
    next_cursor = encode_cursor(key(page.rows[-1])) if page.more else None
    return items_response(request, features, page.matched, next_cursor, collection)


def query_fields(ask: type) -> dict[str, str]:
    """The fields of dataclass `ask`, a dependency, by the query parameter each takes: its
    alias, else its name."""
    hints = get_type_hints(ask, include_extras=True)
    taken = {}
    for field in fields(ask):
        given = [m.alias for m in getattr(hints[field.name], "__metadata__", ()) if _aliased(m)]
        taken[given[-1] if given else field.name] = field.name
    return taken


def query_names(ask: type) -> frozenset[str]:
    """The query parameters a dependency of dataclass `ask` takes: what its route checks the
    query string against (read once per class, not per request)."""
    names = _QUERY_NAMES.get(ask)
    if names is None:
        names = _QUERY_NAMES[ask] = frozenset(query_fields(ask))
    return names


_QUERY_NAMES: dict[type, frozenset[str]] = {}


def _aliased(metadata: object) -> bool:
    return isinstance(metadata, FieldInfo) and metadata.alias is not None


@dataclass(frozen=True, slots=True)
class Items:
    """The query parameters every layer's items route takes (a dependency): the box, the
    page and the grid, before and after the layer's own filters (`grid` and `system` are
    keyword-only so that FastAPI, which reads the signature, lists them after those)."""

    bbox: BBoxQ = None
    limit: LimitQ = None
    cursor: CursorQ = None
    _: KW_ONLY
    grid: GridQ = None
    system: SystemQ = MANAGEMENT

    def check(self, request: Request) -> None:
        """422 for a query parameter this layer does not take (`f`, the format, all take)."""
        check_params(request, query_names(type(self)) | {"f"})

    def size(self, state: ApiState) -> int:
        return page_size(state, self.limit)

    def window(self) -> str | None:
        """The `datetime` asked, on a layer whose items have a time."""
        return None

    def where(
        self,
        state: ApiState,
        principal: Principal,
        catalog: GridCatalog,
        cursor: tuple[type, ...],
    ) -> tuple[Filters, list | None]:
        """The caller's filters for this ask and the values of its cursor (of the `cursor`
        shape), checked in the order every layer's errors come in: grid, cursor, datetime,
        bbox."""
        grids = subtree_ids(catalog, principal, self.grid, self.system)
        after = decode_cursor(self.cursor, cursor)
        start, end = parse_datetime(self.window(), state.zone)
        filters = scope_filters(
            principal,
            me=principal.name,
            bbox=parse_bbox(self.bbox),
            start=start,
            end=end,
            grid_ids=grids,
            system=self.system,
        )
        return filters, after


@dataclass(frozen=True, slots=True)
class DatedItems(Items):
    """The items of a layer whose features have a time, asked for by `datetime` too."""

    datetime_: Annotated[DatetimeQ, Query(alias="datetime")] = None

    def window(self) -> str | None:
        return self.datetime_


def _list(text: str | None, choices, what: str) -> list[str] | None:
    if not text:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in choices]
    if bad:
        raise BadRequest(f"unknown {what} {bad[0][:40]!r}: expected one of {', '.join(choices)}")
    return values


def _items_route(collection: str, summary: str, *, kept: bool = False):
    """Route GET /collections/<collection>/items: a page of the layer's features as GeoJSON;
    a `kept` layer answers 304 when the client's copy is current."""
    return router.get(
        f"/collections/{collection}/items",
        response_class=GeoJSONResponse,
        summary=summary,
        responses=NOT_MODIFIED if kept else None,
    )


# -- metadata ---------------------------------------------------------------------------------


@router.get("/collections", response_class=JSONResponse, summary="The layers")
def collections(request: Request, principal: Reader, conn: Conn, state: State):
    catalog = state.catalog(conn)
    return JSONResponse(
        {
            "collections": [_collection(request, cid, catalog) for cid in COLLECTIONS],
            "links": [{"href": str(request.url), "rel": "self", "type": "application/json"}],
        }
    )


@router.get(
    "/collections/{collection_id}",
    name="collection",
    response_class=JSONResponse,
    summary="One layer",
)
def collection(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    collection_id: Annotated[str, Path(max_length=64)],
):
    if collection_id not in COLLECTIONS:
        raise NotFound(f"no collection {collection_id!r}; see /collections")
    return JSONResponse(_collection(request, collection_id, state.catalog(conn)))


@router.get(
    "/collections/{collection_id}/queryables",
    response_class=JSONSchemaResponse,
    summary="What a layer's items can be filtered by (OGC API - Features Part 3)",
)
def queryables(
    request: Request,
    principal: Reader,
    collection_id: Annotated[str, Path(max_length=64)],
):
    """A JSON Schema of the properties the items route takes as query parameters."""
    if collection_id not in COLLECTIONS:
        raise NotFound(f"no collection {collection_id!r}; see /collections")
    return JSONSchemaResponse(
        {
            "$schema": JSON_SCHEMA,
            "$id": str(request.url_for("queryables", collection_id=collection_id)),
            "type": "object",
            "title": COLLECTIONS[collection_id][0],
            "properties": QUERYABLES[collection_id],
            "additionalProperties": False,
        }
    )


def _collection(request: Request, cid: str, catalog: GridCatalog) -> dict:
    title, description, time_field = COLLECTIONS[cid]
    extent: dict = {"spatial": {"bbox": [list(_extent(catalog))], "crs": CRS84}}
    if time_field:
        extent["temporal"] = {"interval": [[None, None]]}
    base = str(request.url_for("collection", collection_id=cid))
    return {
        "id": cid,
        "title": title,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": extent,
        "links": [
            {"href": base, "rel": "self", "type": "application/json"},
            {"href": f"{base}/items", "rel": "items", "type": "application/geo+json"},
            {
                "href": f"{base}/queryables",
                "rel": QUERYABLES_REL,
                "type": "application/schema+json",
            },
        ],
    }


def _extent(catalog: GridCatalog) -> tuple[float, float, float, float]:
    if not catalog.grids:
        return (-180.0, -90.0, 180.0, 90.0)
    boxes = [g.bbox for g in catalog.grids]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


# -- grids ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridAsk(Items):
    """What the grids layer's items are asked for by; `datetime` is not a filter here but
    the window the check-ins are counted in (default: today)."""

    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100)] = None
    level: Literal["district", "street", "community", "grid"] | None = None


@_items_route("grids", "Grids with live counts", kept=True)
async def grid_items(
    request: Request, principal: Reader, state: State, asked: Annotated[GridAsk, Depends()]
):
    """Kept between changes: with nothing changed, an answer costs no database work."""
    asked.check(request)
    box = parse_bbox(asked.bbox)
    size = asked.size(state)
    offset = decode_offset(asked.cursor)
    start, end = _checkin_window(state, asked.datetime_)
    layer = state.kept_grid_layer(start, end)
    if layer is None:
        layer = await state.in_db_thread(_read_grid_layer, state, start, end)

    moment = layer.moment(state.now())

    def make() -> Body:
        return _grid_page(request, principal, layer, moment, box, size, offset, asked)

    return await _kept_answer(
        request, principal, state, state.grid_bodies, layer, moment.passed, make
    )


def _read_grid_layer(state: ApiState, start: datetime, end: datetime) -> GridLayer:
    return state.grid_layer(start, end, _encode_grid)


def _encode_grid(grid: GridRecord, counts: GridCounts, parent: str | None) -> bytes:
    return dumps(grid_feature(grid, geometry_json(grid.geometry), counts, parent))


def _grid_page(
    request: Request,
    principal: Principal,
    layer: GridLayer,
    moment: Moment,
    box: tuple[float, float, float, float] | None,
    size: int,
    offset: int,
    asked: GridAsk,
) -> Body:
    """One page of the layer for this caller: their grids of `system` only, then the filters."""
    grid, system, level = asked.grid, asked.system, asked.level
    under = set(subtree_ids(layer.catalog, principal, grid, system) or ()) if grid else None
    chosen = [
        g
        for g in (layer.ordered if box is None else layer.touching(box))
        if g.system == system
        and principal.sees_grid(g.id)
        and (level is None or g.level == level)
        and (under is None or g.id in under)
    ]
    page = chosen[offset : offset + size]
    more = offset + size < len(chosen)
    links = _items_links(request, encode_cursor([offset + size]) if more else None, "grids")
    content = feature_collection(
        layer.features(page, moment), len(chosen), len(page), moment.at, links
    )
    # Whole layers are asked for again and again: their gzip is worth keeping; a box is not.
    return Body.of(content, compress=box is None)


@router.get("/collections/grids/items/{code}", response_class=GeoJSONResponse, summary="One grid")
def grid_item(
    principal: Reader,
    conn: Conn,
    state: State,
    code: Annotated[str, Path(max_length=64)],
    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100)] = None,
):
    catalog = state.catalog(conn)
    grid = catalog.find(code)  # of any system: a code names one grid
    if grid is None or not principal.sees_grid(grid.id):
        raise NotFound(f"no grid {code!r}")
    start, end = _checkin_window(state, datetime_)
    counts = state.grid_counts(conn, start, end)
    parent = None if grid.parent_id is None else catalog.by_id.get(grid.parent_id)
    return GeoJSONResponse(
        grid_feature(
            grid,
            state_geometries(state, catalog)[grid.id],
            counts[grid.id],
            parent.code if parent else None,
        )
    )


def _checkin_window(state: ApiState, text: str | None) -> tuple[datetime, datetime]:
    start, end = parse_datetime(text, state.zone)
    if start is None and end is None:
        today = state.now().astimezone(state.zone).date()
        return local_day_bounds(today, state.zone)
    far = timedelta(days=366 * 100)
    now = state.now()
    return (start or now - far, (end or now + far) + timedelta(microseconds=1))


def state_geometries(state: ApiState, catalog: GridCatalog) -> dict[int, dict]:
    """GeoJSON geometry of every grid, made once per grids version."""
    cached = state.grid_geometries
    if cached is None or cached[0] != catalog.version:
        cached = (catalog.version, {g.id: geometry_json(g.geometry) for g in catalog.all_grids})
        state.grid_geometries = cached
    return cached[1]


# -- hazards ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HazardAsk(DatedItems):
    """What the hazards layer's items are asked for by, beside the box, time and page."""

    status: Annotated[str | None, Query(max_length=200, description="comma list")] = None
    severity: Annotated[str | None, Query(max_length=200, description="comma list")] = None
    level: Level | None = None


@_items_route("hazards", "Hazards", kept=True)
async def hazard_items(
    request: Request, principal: Reader, state: State, asked: Annotated[HazardAsk, Depends()]
):
    """Kept between changes as the grids layer is; a box is answered from the kept hazards."""
    asked.check(request)
    ask = partial(_hazard_query, principal, state, asked)
    size = asked.size(state)
    layer = await state.current_layer(state.kept_hazard_layer, _read_hazard_layer)
    if layer is None:  # nothing kept: the database answers
        return await state.in_db_thread(_hazards_from_db, state, request, ask, size)
    kept = layer
    now = state.now()
    moment = layer.moment(now)

    def make() -> Body:
        return _hazard_page(request, kept, ask(kept.catalog), size, now, moment)

    return await _kept_answer(
        request, principal, state, state.grid_bodies, layer, moment.passed, make
    )


_HazardKey = tuple[datetime, uuid.UUID]  # a hazard's place in the order: received_at, id


@dataclass(frozen=True, slots=True)
class _KeptQuery(Generic[K]):
    """What an items request of a kept layer asks, checked: the caller's filters, the key of
    the row the page follows, and what the layer's own filters select by (the keywords of
    both its page from the database and its kept `select`)."""

    filters: Filters
    after: K | None
    chosen_by: dict[str, Any]


def _hazard_query(
    principal: Principal, state: ApiState, asked: HazardAsk, catalog: GridCatalog
) -> _KeptQuery[_HazardKey]:
    """What a hazards request asks, checked in the order the answers' errors come in."""
    filters, after = asked.where(state, principal, catalog, (datetime, uuid.UUID))
    statuses = _list(asked.status, STATUSES, "status")
    severities = _list(asked.severity, SEVERITIES, "severity")
    chosen = {"statuses": statuses, "severities": severities, "level": asked.level}
    return _KeptQuery(filters, tuple(after) if after else None, chosen)


def _read_hazard_layer(state: ApiState) -> HazardLayer:
    return state.hazard_layer(_encode_hazard)


def _encode_hazard(hazard, now: datetime) -> bytes:
    return dumps(hazard_feature(hazard, now))


def _hazards_from_db(
    state: ApiState,
    request: Request,
    ask: Callable[[GridCatalog], _KeptQuery[_HazardKey]],
    size: int,
) -> GeoJSONResponse:
    with state.pool.connection() as conn:
        q = ask(state.catalog(conn))
        page = hazard_page(conn, q.filters, limit=size, after=q.after, **q.chosen_by)
    now = state.now()
    features = [hazard_feature(h, now) for h in page.rows]
    return page_response(request, page, features, "hazards", lambda h: [h.received_at, str(h.id)])


def _hazard_page(
    request: Request,
    layer: HazardLayer,
    q: _KeptQuery[_HazardKey],
    size: int,
    now: datetime,
    moment: Moment,
) -> Body:
    """One page of the kept hazards: the same hazards, order and links as `hazard_page`, their
    `overdue` flags as of `now` (the same for every time of `moment`)."""
    chosen = layer.select(q.filters, **q.chosen_by)
    following = chosen if q.after is None else layer.after(chosen, q.after)
    page = following[:size]
    next_cursor = None
    if len(following) > size:
        last = layer.rows[page[-1]]
        next_cursor = encode_cursor([last.received_at, str(last.id)])
    content = feature_collection(
        layer.features(page, now),
        len(chosen),
        len(page),
        moment.at,
        _items_links(request, next_cursor, "hazards"),
    )
    return Body.of(content, compress=q.filters.bbox is None)


@router.get(
    "/collections/hazards/items/{hazard_id}",
    response_class=GeoJSONResponse,
    summary="One hazard with its history",
)
def hazard_item(
    principal: Reader,
    conn: Conn,
    state: State,
    hazard_id: Annotated[str, Path(max_length=64)],
):
    hazard = get_visible_hazard(conn, principal, hazard_id)
    return GeoJSONResponse(hazard_feature(hazard, state.now(), hazard_events(conn, hazard.id)))


def get_visible_hazard(conn, principal: Principal, hazard_id: str, *, lock: bool = False):
    """A hazard in the caller's grids; NotFound (the same words) for one outside them."""
    missing = f"no hazard {hazard_id[:64]}"
    try:
        key = uuid.UUID(hazard_id)
    except ValueError:
        raise NotFound(missing) from None
    return _visible(principal, missing, lambda: get_hazard(conn, key, lock=lock))


def _visible(principal: Principal, missing: str, find: Callable[[], Any]):
    """What `find` finds if it is in the caller's grids; otherwise, or when there is nothing,
    NotFound with the same words `missing`, so that one cannot tell which."""
    try:
        row = find()
    except NotFound:
        raise NotFound(missing) from None
    ensure_visible(principal, row.grid_id, missing, row.police_grid_id)
    return row


# -- patrol check-ins -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckinAsk(DatedItems):
    """What the check-ins layer's items are asked for by, beside the box, time and page."""

    kind: Literal["patrol", "visit", "inspection"] | None = None
    worker: Annotated[str | None, Query(max_length=128)] = None


@_items_route("checkins", "Patrol check-ins")
def checkin_items(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    asked: Annotated[CheckinAsk, Depends()],
):
    asked.check(request)
    filters, after = asked.where(state, principal, state.catalog(conn), (datetime, str, str))
    page = checkin_page(
        conn,
        filters,
        limit=asked.size(state),
        after=tuple(after) if after else None,
        kind=asked.kind,
        worker_id=asked.worker,
    )
    return page_response(
        request,
        page,
        [checkin_feature(r, state.settings.owntracks_max_accuracy_m) for r in page.rows],
        "checkins",
        lambda c: [c.observed_at, c.worker_id, c.source],
    )


@router.get(
    "/collections/checkins/items/{checkin_id}",
    response_class=GeoJSONResponse,
    summary="One check-in (id source:worker@time)",
)
def checkin_item(
    principal: Reader, conn: Conn, state: State, checkin_id: Annotated[str, Path(max_length=300)]
):
    key = parse_checkin_id(checkin_id)
    if key is None:
        raise NotFound(CHECKIN_MISSING)
    source, worker, at = key
    row = visible_checkin(conn, principal, worker_id=worker, source=source, observed_at=at)
    return GeoJSONResponse(checkin_feature(row, state.settings.owntracks_max_accuracy_m))


CHECKIN_MISSING = "no such check-in"


def visible_checkin(
    conn, principal: Principal, *, worker_id: str, source: str, observed_at: datetime
) -> CheckinRow:
    """A check-in in the caller's grids (of either system) or made by them; NotFound, with
    the same words, for any other."""
    row = get_checkin(conn, worker_id=worker_id, source=source, observed_at=observed_at)
    if not principal.sees_grid(row.grid_id, row.police_grid_id) and row.worker_id != principal.name:
        raise NotFound(CHECKIN_MISSING)
    return row


# -- alerts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertAsk(DatedItems):
    """What the alerts layer's items are asked for by, beside the box, time and page;
    `active` is open or acknowledged."""

    status: Literal["open", "acknowledged", "resolved", "active"] | None = None
    level: Level | None = None
    kind: Annotated[str | None, Query(max_length=40)] = None


@_items_route("alerts", "Alerts", kept=True)
async def alert_items(
    request: Request, principal: Reader, state: State, asked: Annotated[AlertAsk, Depends()]
):
    """Kept between changes as the other layers are. Residents show in clear or masked by the
    caller's role and grids, which key the kept answer; every answer that shows one in clear,
    kept or not, is recorded before it goes out."""
    asked.check(request)
    ask = partial(_alert_query, principal, state, asked)
    size = asked.size(state)
    layer = await state.current_layer(state.kept_alert_layer, _read_alert_layer)
    if layer is None:  # nothing kept: the database answers
        return await state.in_db_thread(_alerts_from_db, state, request, principal, ask, size)
    kept = layer

    def make() -> Body:
        return _alert_page(request, principal, kept, ask(kept.catalog), size)

    return await _kept_answer(request, principal, state, state.answers, layer, principal.role, make)


async def _kept_answer(
    request: Request,
    principal: Principal,
    state: ApiState,
    bodies: KeptBodies,
    layer: GridLayer | HazardLayer | AlertLayer,
    varies: Hashable,
    make: Callable[[], Body],
) -> Response:
    """`make`'s answer from a kept layer, kept in `bodies` for the layer's version, what else
    it `varies` by (the overdue flags' moment, the caller's role), the caller's grids (an
    answer is never served to another scope) and the URL; the people it shows in clear are
    recorded before it goes out."""
    key = (layer.serial, varies, principal.grid_ids, str(request.url))
    body = bodies.answer(layer, key, make)
    await state.reads.record(principal, request, list(body.disclosed))
    return conditional(request, body, GeoJSONResponse.media_type)


def _alert_query(
    principal: Principal, state: ApiState, asked: AlertAsk, catalog: GridCatalog
) -> _KeptQuery[int]:
    """What an alerts request asks, checked in the order the answers' errors come in."""
    filters, after = asked.where(state, principal, catalog, (int,))
    statuses: list[str] | None = None
    if asked.status:
        statuses = ["open", "acknowledged"] if asked.status == "active" else [asked.status]
    chosen = {"statuses": statuses, "level": asked.level, "kind": asked.kind}
    return _KeptQuery(filters, after[0] if after else None, chosen)


def _read_alert_layer(state: ApiState) -> AlertLayer:
    with state.pool.connection() as conn:
        return state.alert_layer(conn, _encode_alert)


def _encode_alert(alert: AlertRow, clear: bool) -> bytes:
    return dumps(alert_feature_shown(alert, clear=clear))


def _alerts_from_db(
    state: ApiState,
    request: Request,
    principal: Principal,
    ask: Callable[[GridCatalog], _KeptQuery[int]],
    size: int,
) -> GeoJSONResponse:
    with state.pool.connection() as conn:
        q = ask(state.catalog(conn))
        page = alert_page(conn, q.filters, limit=size, after=q.after, **q.chosen_by)
        rows = page.rows
        record_reads(conn, principal, request, shown_in_clear(principal, rows, ALERT_RESIDENT))
    features = [alert_feature(r, principal) for r in rows]
    return page_response(request, page, features, "alerts", lambda a: [a.id])


def _alert_page(
    request: Request, principal: Principal, layer: AlertLayer, q: _KeptQuery[int], size: int
) -> Body:
    """One page of the kept alerts for this caller: the same alerts, order and links as
    `alert_page`, each resident in clear only where the caller may see them."""
    chosen = layer.select(q.filters, **q.chosen_by)
    following = chosen if q.after is None else layer.after(chosen, q.after)
    page = [int(i) for i in following[:size]]
    rows = [layer.rows[i] for i in page]
    clear = [sees_personal_data(principal, row.grid_id) for row in rows]
    next_cursor = encode_cursor([rows[-1].id]) if len(following) > size else None
    encoded = (layer.clear if shown else layer.masked for shown in clear)
    content = feature_collection(
        (features[i] for features, i in zip(encoded, page, strict=True)),
        len(chosen),
        len(page),
        layer.made_at,
        _items_links(request, next_cursor, "alerts"),
    )
    return Body.of(
        content,
        compress=q.filters.bbox is None,
        disclosed=shown_in_clear(principal, rows, ALERT_RESIDENT),
    )


@router.get(
    "/collections/alerts/items/{alert_id}",
    response_class=GeoJSONResponse,
    summary="One alert with its history",
)
def alert_item(
    request: Request,
    principal: Reader,
    conn: Conn,
    alert_id: Annotated[int, Path(ge=1, le=2**62)],
):
    row = get_visible_alert(conn, principal, alert_id)
    record_reads(conn, principal, request, shown_in_clear(principal, [row], ALERT_RESIDENT))
    events = conn.execute(
        "SELECT id, at, action, actor, note, level FROM alert_events WHERE alert_id = %s "
        "ORDER BY id",
        (alert_id,),
    ).fetchall()
    history = [
        {"id": i, "at": at, "action": a, "actor": who, "note": note, "level": lvl}
        for i, at, a, who, note, lvl in events
    ]
    return GeoJSONResponse(alert_feature(row, principal, history))


def get_visible_alert(conn, principal: Principal, alert_id: int):
    return _visible(principal, f"no alert {alert_id}", lambda: get_alert(conn, alert_id))


# -- dispute warnings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WarningAsk(DatedItems):
    """What the dispute warnings' items are asked for by, beside the box, time and page."""

    level: Annotated[int | None, Query(ge=1, le=2)] = None
    category: Annotated[str | None, Query(max_length=40)] = None
    source: Literal["request", "checkin", "hazard"] | None = None


@_items_route("warnings", "Dispute warnings")
def warning_items(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    asked: Annotated[WarningAsk, Depends()],
):
    asked.check(request)
    filters, after = asked.where(state, principal, state.catalog(conn), (int,))
    page = warning_page(
        conn,
        filters,
        limit=asked.size(state),
        after=after[0] if after else None,
        level=asked.level,
        category=asked.category,
        source=asked.source,
    )
    features = [warning_feature(r, principal) for r in page.rows]
    return page_response(request, page, features, "warnings", lambda w: [w.id])


@router.get(
    "/collections/warnings/items/{warning_id}",
    response_class=GeoJSONResponse,
    summary="One dispute warning",
)
def warning_item(principal: Reader, conn: Conn, warning_id: Annotated[int, Path(ge=1, le=2**62)]):
    row = _visible(principal, f"no warning {warning_id}", lambda: get_warning(conn, warning_id))
    return GeoJSONResponse(warning_feature(row, principal))


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestAsk(DatedItems):
    """What the requests layer's items are asked for by, beside the box, time and page."""

    status: Annotated[str | None, Query(max_length=200, description="comma list")] = None
    service_code: Annotated[str | None, Query(max_length=400, description="comma list")] = None
    source: Annotated[str | None, Query(max_length=100, description="comma list")] = None
    level: Level | None = None


@_items_route("requests", "Requests (诉求), newest first")
def request_items(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    asked: Annotated[RequestAsk, Depends()],
):
    """The caller's grids' requests and those they entered; each requester in clear only for
    those who may see them, every answer that shows one recorded before it goes out."""
    asked.check(request)
    filters, after = asked.where(state, principal, state.catalog(conn), (datetime, uuid.UUID))
    page = request_page(
        conn,
        filters,
        limit=asked.size(state),
        after=tuple(after) if after else None,
        statuses=_list(asked.status, REQUEST_STATUSES, "status"),
        service_codes=_list(asked.service_code, SERVICE_CODES, "service_code"),
        sources=_list(asked.source, SOURCES, "source"),
        level=asked.level,
    )
    record_reads(conn, principal, request, shown_in_clear(principal, page.rows, REQUESTER))
    now = state.now()
    features = [
        request_feature(r, now, clear=sees_personal_data(principal, r.grid_id)) for r in page.rows
    ]
    return page_response(request, page, features, "requests", lambda r: [r.received_at, str(r.id)])


@router.get(
    "/collections/requests/items/{request_id}",
    response_class=GeoJSONResponse,
    summary="One request with its history",
)
def request_item(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    request_id: Annotated[str, Path(max_length=64)],
):
    case = visible_request(conn, principal, request_id)
    return request_answer(conn, request, principal, state, case)


# -- residents --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidentAsk(Items):
    """What the residents layer's items are asked for by, beside the box and page."""

    _: KW_ONLY
    alerting: bool | None = None
    pii: Annotated[
        bool, Query(description="names, phones and addresses in clear (for those allowed)")
    ] = False


@_items_route("residents", "Residents (personal information masked unless pii=true)")
def resident_items(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    asked: Annotated[ResidentAsk, Depends()],
):
    asked.check(request)
    filters, after = asked.where(state, principal, state.catalog(conn), (str,))
    pii = asked.pii
    if not pii:  # masked positions: a box finds a home only to its cell
        filters = replace(filters, bbox=coarse_bbox(filters.bbox))
    page = resident_page(
        conn,
        filters,
        now=state.now(),
        limit=asked.size(state),
        after=after[0] if after else None,
        alerting=asked.alerting,
    )
    rows = page.rows
    _reveal(conn, principal, request, rows, pii, RESIDENT, "residents' personal information")
    features = [resident_feature(r, principal, reveal=pii) for r in rows]
    return page_response(request, page, features, "residents", lambda r: [r.id])


@router.get(
    "/collections/residents/items/{resident_id}",
    response_class=GeoJSONResponse,
    summary="One resident (in clear for those allowed)",
)
def resident_item(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    resident_id: Annotated[str, Path(max_length=128)],
):
    row = _visible(
        principal,
        f"no resident {resident_id[:64]!r}",
        lambda: get_resident(conn, resident_id, now=state.now()),
    )
    record_reads(conn, principal, request, shown_in_clear(principal, [row]))
    return GeoJSONResponse(resident_feature(row, principal, reveal=True))


# -- places -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceAsk(Items):
    """What the places layer's items are asked for by, beside the box and page."""

    kind: Annotated[str | None, Query(max_length=200, description="comma list")] = None
    level: Level | None = None
    _: KW_ONLY
    overdue: Annotated[bool | None, Query(description="next inspection past (or not)")] = None
    findings: Annotated[bool | None, Query(description="with open findings (or not)")] = None
    pii: Annotated[bool, Query(description="contacts and phones in clear (for those allowed)")] = (
        False
    )


@_items_route("places", "Places inspected on a schedule (contacts masked unless pii=true)")
def place_items(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    asked: Annotated[PlaceAsk, Depends()],
):
    """The caller's grids' places by id; every answer that shows a contact in clear is
    recorded before it goes out."""
    asked.check(request)
    filters, after = asked.where(state, principal, state.catalog(conn), (str,))
    now = state.now()
    page = place_page(
        conn,
        filters,
        now=now,
        limit=asked.size(state),
        after=after[0] if after else None,
        kinds=_list(asked.kind, PLACE_KINDS, "kind"),
        level=asked.level,
        overdue=asked.overdue,
        findings=asked.findings,
    )
    rows = page.rows
    _reveal(conn, principal, request, rows, asked.pii, PLACE_CONTACT, "places' contacts")
    features = [place_feature(r, now, clear=asked.pii) for r in rows]
    return page_response(request, page, features, "places", lambda p: [p.id])


@router.get(
    "/collections/places/items/{place_id}",
    response_class=GeoJSONResponse,
    summary="One place with its escalations (the contact in clear for those allowed)",
)
def place_item(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    place_id: Annotated[str, Path(max_length=128)],
):
    row = _visible(principal, f"no place {place_id[:64]!r}", lambda: get_place(conn, place_id))
    record_reads(conn, principal, request, shown_in_clear(principal, [row], PLACE_CONTACT))
    clear = sees_personal_data(principal, row.grid_id)
    return GeoJSONResponse(
        place_feature(row, state.now(), clear=clear, events=place_events(conn, row.id))
    )


def _reveal(
    conn,
    principal: Principal,
    request: Request,
    rows: list,
    pii: bool,
    personal: Personal,
    what: str,
) -> None:
    """When `pii` asks for `what`, the `personal` information of `rows` (each with its
    `grid_id`), in clear: Forbidden if the caller may not see it so in any of them; else
    the reads are recorded before the answer goes out."""
    if not pii:
        return
    if any(not sees_personal_data(principal, r.grid_id) for r in rows):
        raise Forbidden(f"your role may not see {what}")
    record_reads(conn, principal, request, shown_in_clear(principal, rows, personal))


@router.get("/collections/{collection_id}/items", include_in_schema=False)
def unknown_items(collection_id: str, principal: Reader):
    raise NotFound(f"no collection {collection_id[:64]!r}; see /collections")


@router.get("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
def unknown_item(collection_id: str, feature_id: str, principal: Reader):
    raise NotFound(f"no collection {collection_id[:64]!r}; see /collections")
