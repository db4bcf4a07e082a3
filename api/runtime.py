"""What the running API holds: settings, the connection pool, the clock, caches of the grids
and of checked tokens. One `ApiState` per app, made in its lifespan (never a global)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import psycopg
import shapely
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from gridwatch.api.disclosure import ReadRecorder
from gridwatch.api.layer_cache import (
    ALERT_TABLES,
    DESK_TABLES,
    HAZARD_TABLES,
    LAYER_TABLES,
    LEDGER_TABLES,
    AlertLayer,
    FallingDue,
    GridLayer,
    HazardLayer,
    KeptBodies,
    KeptLayers,
    LedgerLayer,
    cut_at,
    falls_due,
)
from gridwatch.api.stream import AlertFeed
from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.geo.grids import LEVELS as GRID_LEVELS
from gridwatch.geo.index import GridIndex
from gridwatch.ingest.payload import ParseContext
from gridwatch.media.blobs import BlobStore, media_store
from gridwatch.model.vocabulary import POLICE
from gridwatch.settings import Settings
from gridwatch.store.alerts import all_alerts
from gridwatch.store.changes import ChangeWatcher
from gridwatch.store.filters import GRID_COLUMNS
from gridwatch.store.grids import (
    GridCatalog,
    GridRecord,
    LeafGrids,
    grid_counts,
    grids_version,
    load_grid_catalog,
    load_leaf_grids,
)
from gridwatch.store.hazards import all_hazards, open_due_times
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.ledger import ledger
from gridwatch.store.migrate import read_meta
from gridwatch.store.mode import PLAIN
from gridwatch.store.partitions import ensure_partitions, existing_partition_days
from gridwatch.store.users import Principal, principal_for_session, principal_for_token
from gridwatch.store.warnings import Notify

if TYPE_CHECKING:  # api/coverage.py and api/desk.py read this state
    from gridwatch.api.coverage import CoverageCache
    from gridwatch.api.desk import DeskFigures

log = logging.getLogger("gridwatch.api")

Clock = Callable[[], datetime]
_LEVEL_ORDER = {level: n for n, level in enumerate(GRID_LEVELS)}
GRIDS_RECHECK_S = 2.0
_TOKEN_CACHE_MAX = 10_000
_NEVER = datetime.min.replace(tzinfo=UTC)  # before any due time


def _falling_due(
    conn: psycopg.Connection, catalog: GridCatalog, ordered: Sequence[GridRecord]
) -> FallingDue:
    """Open hazards' due times, each counted at its grid and every grid above it (places in
    `ordered`), as `grid_counts` counts overdue hazards; in each system, its own grids."""
    place = {g.id: i for i, g in enumerate(ordered)}
    chains = {g.id: [place[g.id]] + [place[a] for a in catalog.ancestors(g.id)] for g in ordered}
    found = open_due_times(conn)
    if catalog.in_system(POLICE):
        found += open_due_times(conn, GRID_COLUMNS[POLICE])
    due = [(at, chains[gid]) for gid, at in found if gid in chains]
    return FallingDue.of([at for at, _ in due], [where for _, where in due])


T = TypeVar("T")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class ApiState:
    """Shared by every request of one app."""

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        *,
        feed: AlertFeed,
        coverage: CoverageCache,
        clock: Clock = wall_clock,
        mqtt_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.feed = feed  # the live alert feed; the lifespan starts and stops it
        self.coverage = coverage  # patrol coverage of recent days
        self.clock = clock
        self.mqtt_url = mqtt_url
        self.zone = settings.zone
        self.deadlines = deadlines_from_hours(settings.hazard_deadlines_h)
        self.keyword_matchers = LibraryMatchers()  # the dispute library's, once per version
        self.warning_notify = Notify(settings.topic_prefix, settings.alert_webhooks)
        self.media: BlobStore = media_store(settings)  # where photos are kept
        # Threads that wait for a pooled connection (see get_conn); made in the lifespan.
        self.db_limiter: anyio.CapacityLimiter | None = None
        self._lock = threading.Lock()
        self._grids: tuple[GridCatalog, LeafGrids] | None = None
        # GeoJSON geometry of every grid, with the catalog version it was made for.
        self.grid_geometries: tuple[tuple, dict[int, dict]] | None = None
        self._grids_checked = 0.0
        self._tokens: dict[bytes, tuple[Principal, float]] = {}
        self._partition_days: set[date] | None = None
        self._counts: dict[tuple, tuple[float, dict]] = {}
        self._counts_lock = threading.Lock()
        self._plain: bool | None = None
        # Set by the lifespan: the change notices that say when a kept grid layer is stale.
        self.changes: ChangeWatcher | None = None
        self.grid_layers: KeptLayers[GridLayer] = KeptLayers()
        self.hazard_layers: KeptLayers[HazardLayer] = KeptLayers(kept=2)
        self.grid_bodies = KeptBodies()  # answers of either kept layer
        self.ledgers: KeptLayers[LedgerLayer] = KeptLayers(kept=2)
        self.alert_layers: KeptLayers[AlertLayer] = KeptLayers(kept=2)
        self.desks: KeptLayers[DeskFigures] = KeptLayers(kept=2)
        self.answers = KeptBodies()  # answers from the kept ledger, alerts and desk figures
        self.reads = ReadRecorder(pool)  # who saw whom in kept answers
        self.layer_reads: Counter[str] = Counter()  # kept layers read, by kind

    # -- time and parsing -----------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def parse_context(self) -> ParseContext:
        """What the MQTT parsers need, with this request's time of receipt."""
        from datetime import timedelta

        return ParseContext(
            received_at=self.now(),
            tz=self.zone,
            max_future=timedelta(seconds=self.settings.max_future_s),
            max_age=timedelta(days=self.settings.retention_days),
            max_bytes=self.settings.max_payload_bytes,
        )

    # -- grids ------------------------------------------------------------------------------

    def catalog(self, conn: psycopg.Connection) -> GridCatalog:
        """Every grid with its shape; reloaded when the grids table changes."""
        return self._refresh_grids(conn)[0]

    def leaf_index(self, conn: psycopg.Connection) -> GridIndex:
        """The same point→grid index the ingest writer uses (leaf grids, smallest code wins)."""
        return self._refresh_grids(conn)[1].index

    def leaf_grids(self, conn: psycopg.Connection) -> LeafGrids:
        """The leaf grids of every system, as the ingest writer places points in them."""
        return self._refresh_grids(conn)[1]

    def _refresh_grids(
        self, conn: psycopg.Connection, *, now: bool = False
    ) -> tuple[GridCatalog, LeafGrids]:
        """The catalog and the leaf grids, loaded together and checked against the grids
        table every GRIDS_RECHECK_S (`now`: now)."""
        recent = time.monotonic() - self._grids_checked < GRIDS_RECHECK_S
        if self._grids is not None and recent and not now:
            return self._grids
        version = grids_version(conn)
        with self._lock:
            if self._grids is None or self._grids[0].version != version:
                self._grids = (load_grid_catalog(conn), load_leaf_grids(conn))
                log.info("grids loaded: %d", len(self._grids[0].grids))
            self._grids_checked = time.monotonic()
            return self._grids

    def grid_counts(self, conn: psycopg.Connection, start: datetime, end: datetime):
        """Live counts per grid (check-ins in [start, end)), shared between the requests of
        one GRIDWATCH_API_COUNTS_TTL_S: a hundred dashboards asking at once cost one query."""
        catalog = self.catalog(conn)
        ttl = self.settings.api_counts_ttl_s
        if ttl <= 0:
            return grid_counts(
                conn, catalog, now=self.now(), checkins_from=start, checkins_until=end
            )
        key = (catalog.version, start, end)
        cached = self._counts.get(key)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        with self._counts_lock:
            cached = self._counts.get(key)
            if cached is not None and time.monotonic() - cached[0] < ttl:
                return cached[1]
            counts = grid_counts(
                conn, catalog, now=self.now(), checkins_from=start, checkins_until=end
            )
            if len(self._counts) > 64:
                self._counts.clear()
            self._counts[key] = (time.monotonic(), counts)
            return counts

    def _layer_key(self, tables: tuple[str, ...], *rest) -> tuple | None:
        """What a layer kept from `tables` (and for `rest`) is valid for; None: keep none
        (change notices unheard, or answers not to be shared: GRIDWATCH_API_COUNTS_TTL_S=0)."""
        if self.changes is None or self.settings.api_counts_ttl_s <= 0:
            return None
        version = self.changes.version(tables)
        return None if version is None else (version, *rest)

    def kept_grid_layer(self, start: datetime, end: datetime) -> GridLayer | None:
        """The grid layer for [start, end) if one is kept and nothing changed since: no
        database needed."""
        key = self._layer_key(LAYER_TABLES, start, end)
        return None if key is None else self.grid_layers.get(key, self.now())

    def kept_hazard_layer(self) -> HazardLayer | None:
        """Every hazard if kept and nothing changed since; None: read them (`hazard_layer`)
        or, when nothing is kept at all, ask the database."""
        key = self._layer_key(HAZARD_TABLES)
        return None if key is None else self.hazard_layers.get(key, self.now())

    def kept_ledger(self) -> LedgerLayer | None:
        """The whole ledger if kept, nothing changed and no hazard fell due since."""
        key = self._layer_key(LEDGER_TABLES)
        return None if key is None else self.ledgers.get(key, self.now())

    def kept_alert_layer(self) -> AlertLayer | None:
        """Every alert if kept and nothing changed since."""
        key = self._layer_key(ALERT_TABLES)
        return None if key is None else self.alert_layers.get(key, self.now())

    def kept_desk(self, days: tuple[date, date]) -> DeskFigures | None:
        """The desk's figures for the local days `days` (the trend's first, today) if kept,
        nothing changed and no hazard fell due since."""
        key = self._layer_key(DESK_TABLES, days)
        return None if key is None else self.desks.get(key, self.now())

    def keeps_layers(self) -> bool:
        return self._layer_key(()) is not None

    def readings_version(self) -> tuple | None:
        """What meter readings kept (the desk's homes awaiting installation) are valid for."""
        return self._layer_key(("meter_readings",))

    async def current_layer(
        self, kept: Callable[[], T | None], read: Callable[[ApiState], T]
    ) -> T | None:
        """The layer `kept` finds, or `read(self)` in a worker thread when layers are kept
        but this one is not current; None when nothing is kept: the database answers."""
        layer = kept()
        if layer is None and self.keeps_layers():
            layer = await self.in_db_thread(read, self)
        return layer

    async def in_db_thread(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a worker thread, no more of them at once than the pool serves."""
        return await anyio.to_thread.run_sync(work, *args, limiter=self.db_limiter)

    def grid_layer(self, start: datetime, end: datetime, encode) -> GridLayer:
        """The grid layer for [start, end): kept, or read now (and kept while current).
        `encode(grid, counts, parent_code) -> bytes` encodes one grid's feature."""
        key = self._layer_key(LAYER_TABLES, start, end)  # before reading: never older than it
        return self._kept(
            self.grid_layers,
            key,
            lambda kept: self._pooled(self._read_grid_layer, start, end, encode, kept=kept),
        )

    def hazard_layer(self, encode) -> HazardLayer:
        """Every hazard, kept or read now (and kept while current); `encode(hazard, now)`
        encodes one hazard's feature."""
        key = self._layer_key(HAZARD_TABLES)
        return self._kept(
            self.hazard_layers,
            key,
            lambda kept: self._pooled(self._read_hazard_layer, encode, kept=kept),
        )

    def _pooled(self, read, *args, kept: bool):
        """`read` on a pooled connection taken only now: the requests waiting for another's
        reading of a layer hold none."""
        with self.pool.connection() as conn:
            return read(conn, *args, kept=kept)

    def ledger_layer(self, conn: psycopg.Connection) -> LedgerLayer:
        """The whole ledger, kept or read now (and kept while current)."""
        key = self._layer_key(LEDGER_TABLES)
        return self._kept(self.ledgers, key, lambda kept: self._read_ledger(conn, kept=kept))

    def alert_layer(self, conn: psycopg.Connection, encode) -> AlertLayer:
        """Every alert, kept or read now (and kept while current); `encode(alert, clear)`
        encodes one alert's feature with its resident in clear or masked."""
        key = self._layer_key(ALERT_TABLES)
        return self._kept(
            self.alert_layers, key, lambda kept: self._read_alert_layer(conn, encode, kept=kept)
        )

    def desk_figures(self, conn: psycopg.Connection, days: tuple[date, date], read) -> DeskFigures:
        """The desk's figures for the local days `days`, kept or read now (and kept while
        current); `read(conn, catalog, kept)` reads them."""
        key = self._layer_key(DESK_TABLES, days)
        return self._kept(
            self.desks, key, lambda kept: read(conn, self._refresh_grids(conn, now=kept)[0], kept)
        )

    def _kept(self, layers: KeptLayers, key: tuple | None, read):
        if key is None:
            return read(False)
        # A hundred requests after a change: one of them reads. One read at a time per kind:
        # the desk's (its day's patrol coverage takes most of a second) holds up no layer's.
        with layers.reading:
            kept = layers.get(key, self.now())
            if kept is None:
                kept = read(True)
                self.layer_reads[type(kept).__name__] += 1
                layers.put(key, kept)
            return kept

    def _read_grid_layer(
        self, conn: psycopg.Connection, start: datetime, end: datetime, encode, *, kept: bool
    ) -> GridLayer:
        # Kept: the grids as of the key, not as of up to GRIDS_RECHECK_S before it.
        catalog = self._refresh_grids(conn, now=kept)[0]
        now = self.now()
        counts = grid_counts(conn, catalog, now=now, checkins_from=start, checkins_until=end)
        every = catalog.all_grids  # each request picks a system's
        ordered = tuple(sorted(every, key=lambda g: (_LEVEL_ORDER[g.level], g.code)))
        encoded = {
            g.id: cut_at(
                encode(
                    g,
                    replace(counts[g.id], overdue_hazards=-1),
                    catalog.by_id[g.parent_id].code if g.parent_id in catalog.by_id else None,
                ),
                b'"overdue_hazards":-1',
            )
            for g in ordered
        }
        tree = shapely.STRtree([g.geometry for g in ordered])
        due = _falling_due(conn, catalog, ordered)
        return GridLayer(catalog, encoded, ordered, due, now, kept, tree)

    def _read_hazard_layer(self, conn: psycopg.Connection, encode, *, kept: bool) -> HazardLayer:
        catalog = self._refresh_grids(conn, now=kept)[0]
        now = self.now()
        rows = tuple(all_hazards(conn))
        # Encoded as of before any due time; the flag is set per request (HazardLayer.features).
        encoded = tuple(cut_at(encode(h, _NEVER), b'"overdue":false') for h in rows)
        return HazardLayer(catalog, rows, encoded, now, kept)

    def _read_ledger(self, conn: psycopg.Connection, *, kept: bool) -> LedgerLayer:
        catalog = self._refresh_grids(conn, now=kept)[0]
        now = self.now()
        rows, _ = ledger(conn, now=now, deadlines=self.deadlines, scope=None)
        return LedgerLayer(catalog, tuple(rows), now, falls_due(rows, now), kept)

    def _read_alert_layer(self, conn: psycopg.Connection, encode, *, kept: bool) -> AlertLayer:
        catalog = self._refresh_grids(conn, now=kept)[0]
        rows = tuple(all_alerts(conn))
        clear = tuple(encode(a, True) for a in rows)
        masked = tuple(encode(a, False) for a in rows)
        return AlertLayer(catalog, rows, clear, masked, self.now(), kept)

    def wrote(self) -> None:
        """This app committed a write: what it keeps is stale before the notice comes."""
        if self.changes is not None:
            self.changes.touch()

    # -- partitions (plain PostgreSQL) ------------------------------------------------------

    def ensure_partition(self, conn: psycopg.Connection, instant: datetime) -> None:
        """Make the day's partition of the time-series tables if it is missing."""
        if self._plain is None:
            self._plain = read_meta(conn).get("mode", PLAIN) == PLAIN
            conn.commit()
        if not self._plain:
            return
        day = instant.astimezone(self.zone).date()
        with self._lock:
            if self._partition_days is None:
                self._partition_days = existing_partition_days(conn, "patrol_checkins")
                conn.commit()
            if day in self._partition_days:
                return
        ensure_partitions(conn, {day}, self.zone)
        with self._lock:
            self._partition_days.add(day)

    # -- who is calling ---------------------------------------------------------------------

    async def principal_for_token(self, token: str, *, fresh: bool = False) -> Principal | None:
        """The token's user, from a check at most GRIDWATCH_API_TOKEN_CACHE_S old (`fresh`:
        from the database now)."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._tokens.get(key)
        if not fresh and cached is not None and cached[1] > time.monotonic():
            return cached[0]
        principal = await anyio.to_thread.run_sync(
            self._lookup, principal_for_token, token, limiter=self.db_limiter
        )
        if principal is None:
            self._tokens.pop(key, None)
        elif self.settings.api_token_cache_s > 0:
            if len(self._tokens) >= _TOKEN_CACHE_MAX:
                self._tokens.clear()
            self._tokens[key] = (principal, time.monotonic() + self.settings.api_token_cache_s)
        return principal

    async def principal_for_session(self, session_id: str) -> Principal | None:
        if len(session_id) > 128:
            return None
        return await anyio.to_thread.run_sync(
            self._lookup,
            lambda conn, sid: principal_for_session(conn, sid, now=self.now()),
            session_id,
            limiter=self.db_limiter,
        )

    def _lookup(self, find, secret: str) -> Principal | None:
        if "\x00" in secret or len(secret) > 512:
            return None
        with self.pool.connection() as conn:
            return find(conn, secret)

    def forget_tokens(self) -> None:
        self._tokens.clear()


async def get_state(request: Request) -> ApiState:
    return request.app.state.gw


async def get_conn(request: Request) -> AsyncIterator[psycopg.Connection]:
    """A pooled connection for the request, committed when the handler returns, before the
    response goes out (`Conn` ends it with the handler): a client never hears of a write
    that is not yet, or never, committed.

    Waiting for a connection happens on threads of its own (`db_limiter`), never on the
    threads that run handlers: if every handler thread could sit waiting for a connection,
    the requests holding the connections would find no thread to finish on. Giving it back
    waits for no thread at all.
    """
    state: ApiState = request.app.state.gw
    conn = await anyio.to_thread.run_sync(state.pool.getconn, limiter=state.db_limiter)
    release = anyio.CapacityLimiter(1)
    try:
        yield conn
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_roll_back, state.pool, conn, limiter=release)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_commit, state.pool, conn, limiter=release)
    if request.method not in ("GET", "HEAD"):
        state.wrote()


def _commit(pool: ConnectionPool, conn: psycopg.Connection) -> None:
    try:
        conn.commit()  # a failure here reaches the client as an error, not as success
    finally:
        pool.putconn(conn)


def _roll_back(pool: ConnectionPool, conn: psycopg.Connection) -> None:
    try:
        conn.rollback()
    except psycopg.Error:
        pass  # a broken connection: the pool checks it and replaces it
    finally:
        pool.putconn(conn)


State = Annotated[ApiState, Depends(get_state)]
Conn = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]
