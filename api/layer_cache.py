"""The grids, hazards and alerts layers and the problem ledger made once per change and served
again and again: each feature encoded once (a grid's geometry and live counts, a hazard with its
overdue flag, an alert with its resident in clear and masked), pages spliced from those bytes,
boxes answered from a spatial index (grids) or coordinate arrays (hazards, alerts), whole
answers kept with their gzip, and conditional GETs (`ETag`, `304` on `If-None-Match`).

What is kept is keyed on the change notices of the tables it was read from (store/changes.py)
and on what the answer is for (the caller's grids, and role where residents show, the URL): an
answer made for one caller's view is never served to another's. What turns with the clock
bounds how long it is kept (the ledger: until its next due time), or, in the grids and hazards
layers, is derived per request from the open hazards' due times kept with the layer."""

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
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import shapely
from starlette.requests import Request
from starlette.responses import Response

from gridwatch.api.responses import dumps
from gridwatch.cases.hazards import OPEN_STATUSES
from gridwatch.cases.ledger import STATUSES
from gridwatch.model.vocabulary import LEVELS, MANAGEMENT, SEVERITIES
from gridwatch.store.alerts import AlertRow
from gridwatch.store.filters import Filters
from gridwatch.store.grids import GridCatalog, GridRecord
from gridwatch.store.hazards import Hazard
from gridwatch.store.ledger import LedgerRow

BBox = tuple[float, float, float, float]
# The tables each kept layer is read from.
LAYER_TABLES = (
    "grids", "residents", "alerts", "hazard_reports", "patrol_checkins",
    "buildings", "units", "contacts",
)  # fmt: skip
HAZARD_TABLES = ("grids", "hazard_reports")
# places: a finding's row names its place (场所)
LEDGER_TABLES = (
    "grids", "hazard_reports", "hazard_events", "requests", "request_events", "places",
)  # fmt: skip
ALERT_TABLES = ("grids", "residents", "alerts")
# The desk reads meter_readings too, followed apart (api/desk.py); the events of both loops
# hold the closes its trend counts.
DESK_TABLES = (
    *LAYER_TABLES, "hazard_events", "devices", "places", "requests", "request_events",
)  # fmt: skip
LAYERS_KEPT = 8  # check-in windows asked for at once (today, a few days looked back at)
BODIES_KEPT = 64
MOMENTS_KEPT = 4  # overdue counts kept per grid layer: the latest few due times
GZIP_AT_LEAST = 2048  # as the app's GZipMiddleware
_serials = itertools.count(1)


@dataclass(frozen=True, slots=True)
class FallingDue:
    """When open hazards fall overdue, ascending, each with where it counts (a grid's place in
    a layer); how many have fallen due by an instant is one binary search, so what turns with
    the clock is derived per request instead of being read again at each due time."""

    times: np.ndarray  # datetime64[us], ascending
    where: np.ndarray  # int64, in the same order

    @classmethod
    def of(cls, times: Sequence[datetime], where: Sequence[Sequence[int]]) -> FallingDue:
        """Each of `times` counted at every place of its `where` (a grid and those above it)."""
        once = np.array([_utc(t) for t in times], dtype="datetime64[us]")
        repeated = np.repeat(once, [len(w) for w in where])
        places = np.fromiter(itertools.chain.from_iterable(where), dtype=np.int64)
        order = np.argsort(repeated, kind="stable")
        return cls(repeated[order], places[order])

    def passed(self, now: datetime) -> int:
        """How many have fallen due by `now` (one due at `now` has, as `is_overdue` says)."""
        return int(np.searchsorted(self.times, _instant(now), side="right"))


@dataclass(frozen=True, slots=True)
class Moment:
    """What the clock decides in a kept layer's answers: how many due times have passed (the
    answers are the same until the next one, so it is part of their key) and the answers'
    timeStamp."""

    passed: int
    at: datetime


@dataclass(frozen=True, slots=True)
class GridLayer:
    """Every grid with its live counts as of one version of the tables, encoded once. The
    overdue counts turn with the clock: they are counted from `due` per moment and spliced
    into the encoded features, so the layer lasts until a change, not until a due time."""

    catalog: GridCatalog
    encoded: dict[int, tuple[bytes, bytes]]  # grid id -> its feature, cut where overdue goes
    ordered: tuple[GridRecord, ...]  # by level (district first), then code
    due: FallingDue  # open hazards, each at its grid's place in `ordered` and its ancestors'
    made_at: datetime  # the answers' timeStamp until a due time passes
    kept: bool  # kept until a change: its answers are worth keeping too
    tree: shapely.STRtree  # the grids' shapes in the order of `ordered`
    valid_until: datetime | None = None  # nothing in it expires: the clock's part is derived
    serial: int = field(default_factory=lambda: next(_serials))
    places: dict[int, int] = field(init=False, repr=False)
    _overdue: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "places", {g.id: i for i, g in enumerate(self.ordered)})

    def touching(self, box: BBox) -> list[GridRecord]:
        """The grids whose shape meets the box, in layer order."""
        found = self.tree.query(shapely.box(*box), predicate="intersects")
        return [self.ordered[i] for i in np.sort(found)]

    def moment(self, now: datetime) -> Moment:
        return _moment(self.due, self.made_at, now)

    def features(self, grids: Iterable[GridRecord], moment: Moment) -> Iterable[bytes]:
        """The grids' encoded features with their overdue counts as of `moment`."""
        overdue = self._overdue.get(moment.passed)
        if overdue is None:  # once per moment; two threads counting it is harmless
            due = self.due.where[: moment.passed]
            overdue = np.bincount(due, minlength=len(self.ordered))
            if len(self._overdue) >= MOMENTS_KEPT:
                self._overdue.clear()
            self._overdue[moment.passed] = overdue
        for g in grids:
            head, tail = self.encoded[g.id]
            yield b"".join((head, str(overdue[self.places[g.id]]).encode(), tail))


def cut_at(feature: bytes, placeholder: bytes) -> tuple[bytes, bytes]:
    """A feature encoded with `placeholder` (`"key":value`) as the two parts around its value.
    A key in quotes cannot occur inside a JSON string (its quotes would be escaped)."""
    head, found, tail = feature.partition(placeholder)
    if not found:
        raise ValueError(f"{placeholder!r} is not in the feature")
    key, _, _ = placeholder.partition(b":")
    return head + key + b":", tail


def _moment(due: FallingDue, made_at: datetime, now: datetime) -> Moment:
    passed = due.passed(now)
    return Moment(passed, made_at if passed == due.passed(made_at) else now)


@dataclass(frozen=True, slots=True)
class HazardLayer:
    """Every hazard as of one version of the tables, newest first (received time, then id, both
    descending, as the database orders them), each feature encoded once and cut where its
    `overdue` flag goes, which is set per moment: the layer lasts until a change."""

    catalog: GridCatalog  # the grids as of the same version
    rows: tuple[Hazard, ...]
    encoded: tuple[tuple[bytes, bytes], ...]
    made_at: datetime
    kept: bool
    valid_until: datetime | None = None
    serial: int = field(default_factory=lambda: next(_serials))
    columns: dict[str, np.ndarray] = field(init=False, repr=False)
    due: FallingDue = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = self.rows
        columns = {
            "lon": np.array([h.lon for h in rows], dtype=float),
            "lat": np.array([h.lat for h in rows], dtype=float),
            **_grid_columns(rows),
            "observed": np.array([_utc(h.observed_at) for h in rows], dtype="datetime64[us]"),
            # when each open hazard falls overdue; NaT (never) for the others
            "due": np.array([_due(h) for h in rows], dtype="datetime64[us]"),
        }
        for name in ("status", "severity", "level"):
            columns[name] = np.array([getattr(h, name) for h in rows], dtype=object)
        object.__setattr__(self, "columns", columns)
        due = np.sort(columns["due"][~np.isnat(columns["due"])])
        object.__setattr__(self, "due", FallingDue(due, np.zeros(len(due), dtype=np.int64)))

    def moment(self, now: datetime) -> Moment:
        return _moment(self.due, self.made_at, now)

    def features(self, positions: Iterable[int], now: datetime) -> Iterable[bytes]:
        """The hazards' encoded features with their `overdue` flags as of `now`."""
        due = self.columns["due"]
        instant = _instant(now)
        for i in positions:
            head, tail = self.encoded[i]
            yield b"".join((head, b"true" if due[i] <= instant else b"false", tail))

    def select(
        self,
        filters: Filters,
        *,
        statuses: Sequence[str] | None,
        severities: Sequence[str] | None,
        level: str | None,
    ) -> np.ndarray:
        """The positions of the hazards `hazard_page` would match, newest first."""
        chosen = _placed(self.columns, filters, "observed")
        _having(chosen, self.columns, status=statuses, severity=severities, level=level)
        return np.flatnonzero(chosen)

    def after(self, positions: np.ndarray, after: tuple[datetime, uuid.UUID]) -> np.ndarray:
        """Those of `positions` that come after the key `after` (a page's last hazard)."""
        rows = self.rows
        start = bisect_left(
            range(len(rows)), True, key=lambda i: (rows[i].received_at, rows[i].id) < after
        )
        return positions[np.searchsorted(positions, start) :]


@dataclass(frozen=True, slots=True)
class AlertLayer:
    """Every alert as of one version of the tables, newest first (by id, as the database orders
    them), each feature encoded twice: its resident in clear and masked."""

    catalog: GridCatalog  # the grids as of the same version
    rows: tuple[AlertRow, ...]
    clear: tuple[bytes, ...]
    masked: tuple[bytes, ...]
    made_at: datetime
    kept: bool
    valid_until: datetime | None = None  # nothing in an alert's feature turns with the clock
    serial: int = field(default_factory=lambda: next(_serials))
    columns: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = self.rows
        nan = float("nan")  # a home with no position is in no box, as NULL is in SQL
        columns = {
            "id": np.array([a.id for a in rows], dtype=np.int64),
            "lon": np.array([nan if a.lon is None else a.lon for a in rows], dtype=float),
            "lat": np.array([nan if a.lat is None else a.lat for a in rows], dtype=float),
            **_grid_columns(rows),
            "opened": np.array([_utc(a.opened_at) for a in rows], dtype="datetime64[us]"),
        }
        for name in ("status", "level", "kind"):
            columns[name] = np.array([getattr(a, name) for a in rows], dtype=object)
        object.__setattr__(self, "columns", columns)

    def select(
        self,
        filters: Filters,
        *,
        statuses: Sequence[str] | None,
        level: str | None,
        kind: str | None,
    ) -> np.ndarray:
        """The positions of the alerts `alert_page` would match, newest first."""
        chosen = _placed(self.columns, filters, "opened")
        _having(chosen, self.columns, status=statuses, level=level, kind=kind)
        return np.flatnonzero(chosen)

    def after(self, positions: np.ndarray, after: int) -> np.ndarray:
        """Those of `positions` that come after alert `after` (a page's last alert)."""
        return positions[self.columns["id"][positions] < after]


@dataclass(frozen=True, slots=True)
class LedgerLayer:
    """The whole problem ledger (hazards and requests) as of one version of the tables and
    one time, most urgent first; kept until the next open case falls due (its `overdue`
    turns then)."""

    catalog: GridCatalog
    rows: tuple[LedgerRow, ...]
    made_at: datetime  # the time its `overdue` flags are for
    valid_until: datetime | None
    kept: bool
    serial: int = field(default_factory=lambda: next(_serials))
    columns: dict[str, np.ndarray] = field(init=False, repr=False)
    places: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        rows = self.rows
        columns = {
            **_grid_columns(rows),
            "overdue": np.array([r.overdue for r in rows], dtype=bool),
            "observed": np.array([_utc(r.observed_at) for r in rows], dtype="datetime64[us]"),
            # every close (办结) of every row, and the row it is of
            "closed": np.array([_utc(at) for r in rows for at in r.closes], dtype="datetime64[us]"),
            "closed_row": np.repeat(np.arange(len(rows)), [len(r.closes) for r in rows]),
        }
        for name in ("kind", "status", "level", "category", "source"):
            columns[name] = np.array([getattr(r, name) for r in rows], dtype=object)
        object.__setattr__(self, "columns", columns)

    def select(
        self,
        filters: Filters,
        *,
        kind: str | None,
        level: str | None,
        statuses: Sequence[str] | None,
        categories: Sequence[str] | None,
        sources: Sequence[str] | None,
        overdue: bool | None,
        order: str | None,
        closed_from: datetime | None,
        closed_until: datetime | None,
    ) -> np.ndarray:
        """The positions of the rows `ledger` would match (`filters.start`/`end` bound when
        a case was found or asked, `closed_from`/`closed_until` when one of its closes was),
        in its order: most urgent first, or by `order`."""
        c = self.columns
        chosen = _placed(c, filters, "observed")
        _having(chosen, c, kind=kind, level=level, status=statuses, category=categories)
        _having(chosen, c, source=sources)  # a hazard, of no source, is never among them
        if overdue is not None:
            chosen &= c["overdue"] == overdue
        if closed_from is not None or closed_until is not None:
            chosen &= self._closed_between(closed_from, closed_until)
        positions = np.flatnonzero(chosen)
        return self._ordered(positions, order) if order else positions

    def _closed_between(self, start: datetime | None, end: datetime | None) -> np.ndarray:
        """Which rows have a close in [start, end] (either open)."""
        closed = self.columns["closed"]
        within = np.ones(len(closed), dtype=bool)
        if start is not None:
            within &= closed >= _instant(start)
        if end is not None:
            within &= closed <= _instant(end)
        rows = np.zeros(len(self.rows), dtype=bool)
        rows[self.columns["closed_row"][within]] = True
        return rows

    def _ordered(self, positions: np.ndarray, order: str) -> np.ndarray:
        """`positions` by `order` as `ledger` sorts (NULL last either way); a stable sort, so
        ties stay most urgent first, as the database breaks them."""
        key = order.removeprefix("-")
        place = self.places.get(key)
        if place is None:  # made once per key and layer; two threads making it is harmless
            place = _places([LEDGER_SORT_VALUES[key](r) for r in self.rows])
            self.places[key] = place
        wanted = place[positions]
        wanted = np.where(wanted < 0, len(self.rows), -wanted if order[0] == "-" else wanted)
        return positions[np.argsort(wanted, kind="stable")]


def _position(known: Sequence[str], value: str | None) -> int | None:
    """Where `value` stands in `known`, None when it is not there (as `array_position`)."""
    return known.index(value) if value in known else None


# What the kept ledger sorts by for each of store.ledger.LEDGER_ORDERS, in the same order
# (text as the database's "C" collation compares it: by code point).
LEDGER_SORT_VALUES: dict[str, Callable[[LedgerRow], Any]] = {
    "found": lambda r: r.observed_at,
    "due": lambda r: r.due_at,
    "grid": lambda r: r.grid_code,
    "kind": lambda r: r.kind,
    "category": lambda r: r.category,
    "severity": lambda r: _position(SEVERITIES, r.severity),
    "status": lambda r: _position(STATUSES, r.status),
    "level": lambda r: _position(LEVELS, r.level),
}


def _places(values: list) -> np.ndarray:
    """Each value's place among the distinct values, ascending; -1 for None (NULL)."""
    place = {v: i for i, v in enumerate(sorted({v for v in values if v is not None}))}
    return np.array([-1 if v is None else place[v] for v in values], dtype=np.int64)


def falls_due(rows: Iterable[LedgerRow], now: datetime) -> datetime | None:
    """When the next open row of the ledger falls overdue (after `now`); None if none will."""
    return min(
        (r.due_at for r in rows if r.is_open and r.due_at and r.due_at > now),
        default=None,
    )


class _Placed(Protocol):
    @property
    def grid_id(self) -> int | None: ...
    @property
    def police_grid_id(self) -> int | None: ...


def _grid_columns(rows: Sequence[_Placed]) -> dict[str, np.ndarray]:
    """The rows' grids in each system as columns (-1: none), named as _placed reads them."""
    return {
        key: np.array([-1 if g is None else g for g in (getattr(r, f) for r in rows)], dtype=int)
        for key, f in (("grid", "grid_id"), ("police", "police_grid_id"))
    }


def _placed(c: dict[str, np.ndarray], filters: Filters, time: str) -> np.ndarray:
    """Which rows lie in the caller's grids (of either system), the grids asked for (of the
    system asked), the box and the interval (`time`: the column the interval is on), as
    `where_filters` asks."""
    chosen = np.ones(len(c["grid"]), dtype=bool)
    if filters.scope is not None:
        seen = np.isin(c["grid"], filters.scope)
        if filters.police_scope:
            seen |= np.isin(c["police"], filters.police_scope)
        chosen &= seen
    if filters.grid_ids is not None:
        chosen &= np.isin(c["grid" if filters.system == MANAGEMENT else "police"], filters.grid_ids)
    if filters.bbox is not None:
        x0, y0, x1, y1 = filters.bbox
        chosen &= (c["lon"] >= x0) & (c["lon"] <= x1) & (c["lat"] >= y0) & (c["lat"] <= y1)
    if filters.start is not None:
        chosen &= c[time] >= np.datetime64(_utc(filters.start), "us")
    if filters.end is not None:
        chosen &= c[time] <= np.datetime64(_utc(filters.end), "us")
    return chosen


def _having(chosen: np.ndarray, c: dict[str, np.ndarray], **wanted) -> None:
    """Narrow `chosen` to rows whose columns have the values asked (`where_columns`: one value,
    or any of a list; None or empty asks for nothing)."""
    for name, value in wanted.items():
        if value:
            chosen &= np.isin(c[name], [value] if isinstance(value, str) else list(value))


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


def _instant(instant: datetime) -> np.datetime64:
    return np.datetime64(_utc(instant), "us")


def _due(hazard: Hazard) -> datetime | None:
    """When an open hazard falls overdue (None: never), as `is_overdue` reads it."""
    due = hazard.due_at or hazard.deadline_at
    return _utc(due) if due is not None and hazard.status in OPEN_STATUSES else None


class Expiring(Protocol):
    @property
    def valid_until(self) -> datetime | None: ...


class Keepable(Protocol):
    @property
    def kept(self) -> bool: ...


L = TypeVar("L", bound=Expiring)


class KeptLayers(Generic[L]):
    """Layers by key, a few at a time; safe to share between threads."""

    def __init__(self, kept: int = LAYERS_KEPT) -> None:
        self._kept = kept
        self._layers: OrderedDict[Hashable, L] = OrderedDict()
        self._lock = threading.Lock()
        self.reading = threading.Lock()  # held by whoever reads a layer to keep

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
    """One answer's bytes, its gzip (when worth it) and its entity tag; until when it is the
    answer (None: until a change), and the residents it shows in clear (each serving of it is
    recorded)."""

    content: bytes
    gzipped: bytes | None
    etag: str
    valid_until: datetime | None = None
    disclosed: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        content: bytes,
        *,
        compress: bool,
        valid_until: datetime | None = None,
        disclosed: Iterable[str] = (),
    ) -> Body:
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
        packed = None
        if compress and len(content) >= GZIP_AT_LEAST:
            packed = gzip.compress(content, compresslevel=5, mtime=0)
        return cls(content, packed, f'"{digest}"', valid_until, tuple(disclosed))


class KeptBodies:
    """Whole answers by (layer serial, caller's view, URL), least recently used dropped."""

    def __init__(self, kept: int = BODIES_KEPT) -> None:
        self._kept = kept
        self._bodies: OrderedDict[Hashable, Body] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(
        self, key: Hashable, make: Callable[[], Body], now: datetime | None = None
    ) -> Body:
        """The kept answer for `key`, or `make`'s; one with a `valid_until` is made again
        from then on (`now`: the time of the request)."""
        with self._lock:
            body = self._bodies.get(key)
            expired = body is not None and _expired(body.valid_until, now)
            if body is not None and not expired:
                self._bodies.move_to_end(key)
                return body
        body = make()
        with self._lock:
            self._bodies[key] = body
            while len(self._bodies) > self._kept:
                self._bodies.popitem(last=False)
        return body

    def answer(
        self, layer: Keepable, key: Hashable, make: Callable[[], Body], now: datetime | None = None
    ) -> Body:
        """`make`'s answer from `layer`, kept for `key` when the layer is kept: a layer read
        for one request only makes answers that are worth nothing to the next."""
        return self.get_or_make(key, make, now) if layer.kept else make()


def _expired(valid_until: datetime | None, now: datetime | None) -> bool:
    return valid_until is not None and (now is None or now >= valid_until)


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


def conditional(
    request: Request, body: Body, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """`304` when the client holds this very answer (`If-None-Match`), else the answer,
    gzipped if the client takes it (the gzip made once); `headers` go with either."""
    headers = {**(headers or {}), "ETag": body.etag, "Vary": "Accept-Encoding, Authorization"}
    if _matches(request.headers.get("if-none-match"), body.etag):
        return Response(status_code=304, headers=headers)
    if body.gzipped is not None and accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return Response(body.gzipped, media_type=media_type, headers=headers)
    return Response(body.content, media_type=media_type, headers=headers)


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "the client's copy (If-None-Match) is current"}
}
"""The `304` of `conditional`, as a route that answers with it documents it (`responses=`)."""


def _matches(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison; `*` matches any current answer."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags
