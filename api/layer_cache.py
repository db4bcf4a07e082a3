"""The grids and hazards layers made once per change and served again and again: each feature
encoded once (a grid's geometry and live counts, a hazard with its overdue flag), pages spliced
from those bytes, boxes answered from a spatial index (grids) or coordinate arrays (hazards),
whole answers kept with their gzip, and conditional GETs (`ETag`, `304` on `If-None-Match`).

What is kept is keyed on the change notices of the tables it was read from (store/changes.py)
and on what the answer is for (the caller's grids, the URL): an answer made for one caller's
grids is never served to another's."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import threading
import uuid
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

import numpy as np
import shapely
from starlette.requests import Request
from starlette.responses import Response

from gridwatch.api.responses import dumps
from gridwatch.store.filters import Filters
from gridwatch.store.grids import GridCatalog, GridCounts, GridRecord
from gridwatch.store.hazards import Hazard

BBox = tuple[float, float, float, float]
# The tables each kept layer is read from.
LAYER_TABLES = ("grids", "residents", "alerts", "hazard_reports", "patrol_checkins")
HAZARD_TABLES = ("grids", "hazard_reports")
LAYERS_KEPT = 8  # check-in windows asked for at once (today, a few days looked back at)
BODIES_KEPT = 64
GZIP_AT_LEAST = 2048  # as the app's GZipMiddleware
_serials = itertools.count(1)


@dataclass(frozen=True, slots=True)
class GridLayer:
    """Every grid with its live counts as of one version of the tables, encoded once."""

    catalog: GridCatalog
    counts: dict[int, GridCounts]
    encoded: dict[int, bytes]  # grid id -> its GeoJSON feature
    ordered: tuple[GridRecord, ...]  # by level (district first), then code
    made_at: datetime  # the answers' timeStamp
    valid_until: datetime | None  # when the next open hazard falls overdue
    kept: bool  # kept until a change: its answers are worth keeping too
    tree: shapely.STRtree  # the grids' shapes in the order of `ordered`
    serial: int = field(default_factory=lambda: next(_serials))

    def touching(self, box: BBox) -> list[GridRecord]:
        """The grids whose shape meets the box, in layer order."""
        found = self.tree.query(shapely.box(*box), predicate="intersects")
        return [self.ordered[i] for i in np.sort(found)]


@dataclass(frozen=True, slots=True)
class HazardLayer:
    """Every hazard as of one version of the tables, newest first (received time, then id, both
    descending, as the database orders them), each feature encoded once."""

    catalog: GridCatalog  # the grids as of the same version
    rows: tuple[Hazard, ...]
    encoded: tuple[bytes, ...]
    made_at: datetime
    valid_until: datetime | None  # when the next open hazard falls overdue
    kept: bool
    serial: int = field(default_factory=lambda: next(_serials))
    columns: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = self.rows
        columns = {
            "lon": np.array([h.lon for h in rows], dtype=float),
            "lat": np.array([h.lat for h in rows], dtype=float),
            "grid": np.array([-1 if h.grid_id is None else h.grid_id for h in rows], dtype=int),
            "observed": np.array([_utc(h.observed_at) for h in rows], dtype="datetime64[us]"),
        }
        for name in ("status", "severity", "level"):
            columns[name] = np.array([getattr(h, name) for h in rows], dtype=object)
        object.__setattr__(self, "columns", columns)

    def select(
        self,
        filters: Filters,
        *,
        statuses: Sequence[str] | None,
        severities: Sequence[str] | None,
        level: str | None,
    ) -> np.ndarray:
        """The positions of the hazards `hazard_page` would match, newest first."""
        c = self.columns
        chosen = np.ones(len(self.rows), dtype=bool)
        if filters.scope is not None:
            chosen &= np.isin(c["grid"], filters.scope)
        if filters.grid_ids is not None:
            chosen &= np.isin(c["grid"], filters.grid_ids)
        if filters.bbox is not None:
            x0, y0, x1, y1 = filters.bbox
            chosen &= (c["lon"] >= x0) & (c["lon"] <= x1) & (c["lat"] >= y0) & (c["lat"] <= y1)
        if filters.start is not None:
            chosen &= c["observed"] >= np.datetime64(_utc(filters.start), "us")
        if filters.end is not None:
            chosen &= c["observed"] <= np.datetime64(_utc(filters.end), "us")
        for name, wanted in (("status", statuses), ("severity", severities), ("level", level)):
            if wanted:
                chosen &= np.isin(c[name], [wanted] if isinstance(wanted, str) else list(wanted))
        return np.flatnonzero(chosen)

    def after(self, positions: np.ndarray, after: tuple[datetime, uuid.UUID]) -> np.ndarray:
        """Those of `positions` that come after the key `after` (a page's last hazard)."""
        rows = self.rows
        start = bisect_left(
            range(len(rows)), True, key=lambda i: (rows[i].received_at, rows[i].id) < after
        )
        return positions[np.searchsorted(positions, start) :]


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


class Expiring(Protocol):
    @property
    def valid_until(self) -> datetime | None: ...


L = TypeVar("L", bound=Expiring)


class KeptLayers(Generic[L]):
    """Layers by key, a few at a time; safe to share between threads."""

    def __init__(self, kept: int = LAYERS_KEPT) -> None:
        self._kept = kept
        self._layers: OrderedDict[Hashable, L] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: datetime) -> L | None:
        with self._lock:
            layer = self._layers.get(key)
            if layer is None:
                return None
            if layer.valid_until is not None and now >= layer.valid_until:
                del self._layers[key]
                return None
            self._layers.move_to_end(key)
            return layer

    def put(self, key: Hashable, layer: L) -> None:
        with self._lock:
            self._layers[key] = layer
            self._layers.move_to_end(key)
            while len(self._layers) > self._kept:
                self._layers.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._layers.clear()


@dataclass(frozen=True, slots=True)
class Body:
    """One answer's bytes, its gzip (when worth it) and its entity tag."""

    content: bytes
    gzipped: bytes | None
    etag: str

    @classmethod
    def of(cls, content: bytes, *, compress: bool) -> Body:
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
        packed = None
        if compress and len(content) >= GZIP_AT_LEAST:
            packed = gzip.compress(content, compresslevel=5, mtime=0)
        return cls(content, packed, f'"{digest}"')


class KeptBodies:
    """Whole answers by (layer serial, caller's grids, URL), least recently used dropped."""

    def __init__(self, kept: int = BODIES_KEPT) -> None:
        self._kept = kept
        self._bodies: OrderedDict[Hashable, Body] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], Body]) -> Body:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                return body
        body = make()
        with self._lock:
            self._bodies[key] = body
            while len(self._bodies) > self._kept:
                self._bodies.popitem(last=False)
        return body


def feature_collection(
    features: Iterable[bytes], matched: int, returned: int, stamp: datetime, links: list
) -> bytes:
    """A GeoJSON FeatureCollection spliced from features already encoded."""
    return b"".join(
        (
            b'{"type":"FeatureCollection","features":[',
            b",".join(features),
            b'],"numberMatched":',
            str(matched).encode(),
            b',"numberReturned":',
            str(returned).encode(),
            b',"timeStamp":',
            dumps(stamp),
            b',"links":',
            dumps(links),
            b"}",
        )
    )


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def conditional(request: Request, body: Body, media_type: str) -> Response:
    """`304` when the client holds this very answer (`If-None-Match`), else the answer,
    gzipped if the client takes it (the gzip made once)."""
    headers = {"ETag": body.etag, "Vary": "Accept-Encoding, Authorization"}
    if _matches(request.headers.get("if-none-match"), body.etag):
        return Response(status_code=304, headers=headers)
    if body.gzipped is not None and accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return Response(body.gzipped, media_type=media_type, headers=headers)
    return Response(body.content, media_type=media_type, headers=headers)


def _matches(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison; `*` matches any current answer."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags
