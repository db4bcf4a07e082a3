"""The grids layer made once per change and served again and again: each grid's feature encoded
once (geometry and live counts), pages spliced from those bytes, whole answers kept with their
gzip, and conditional GETs (`ETag`, `304` on `If-None-Match`).

What is kept is keyed on the change notices of the tables it was read from (store/changes.py)
and on what the answer is for (the caller's grids, the URL): an answer made for one caller's
grids is never served to another's."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from gridwatch.api.responses import dumps
from gridwatch.store.api_layers import GridCatalog, GridCounts, GridRecord

# The tables the grids layer is read from.
LAYER_TABLES = ("grids", "residents", "alerts", "hazard_reports", "patrol_checkins")
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
    serial: int = field(default_factory=lambda: next(_serials))


class KeptLayers:
    """Grid layers by key, a few at a time; safe to share between threads."""

    def __init__(self, kept: int = LAYERS_KEPT) -> None:
        self._kept = kept
        self._layers: OrderedDict[Hashable, GridLayer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: datetime) -> GridLayer | None:
        with self._lock:
            layer = self._layers.get(key)
            if layer is None:
                return None
            if layer.valid_until is not None and now >= layer.valid_until:
                del self._layers[key]
                return None
            self._layers.move_to_end(key)
            return layer

    def put(self, key: Hashable, layer: GridLayer) -> None:
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
