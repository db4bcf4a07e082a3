"""The live feed behind `/alerts/stream` and `/cases/stream`: alert_events rows in id order,
none skipped, and beside them the level-2 dispute warnings and the steps of hazards and
requests (hazard_events, request_events), each in its own id order by the same rule.

One poller per app reads new events and hands them to every open stream. Ids come from a
sequence, and a transaction can commit after one holding a higher id: a reader that simply
moves past the highest id it has seen would skip the late one for good. So the feed moves
past a gap in the ids only once the gap is final. A transaction writing alert_events holds
a RowExclusiveLock on the table from before it takes an id until it ends; when a gap shows,
the feed notes who holds that lock, and once all of them have ended, whatever they wrote is
either visible or rolled back, so the next read settles the gap. (Any other transaction in
the cluster, even a long one, does not hold anything up.) A stream that reconnects with
Last-Event-ID reads what it missed from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from gridwatch.store.changes import ChangeWatcher
from gridwatch.store.filters import Filters, all_of, where_filters, where_given
from gridwatch.store.warnings import WarningRow, max_warning_id, warnings_between

log = logging.getLogger("gridwatch.api.stream")

QUEUE_SIZE = 2000
BATCH = 1000


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert_events row with what a duty officer needs to act on it."""

    id: int
    alert_id: int
    at: datetime
    action: str
    actor: str | None
    note: str | None
    level: str | None
    kind: str
    status: str
    severity: str
    since: datetime
    grid_id: int | None
    grid_code: str | None
    resident_id: str | None
    name: str | None
    phone: str | None
    address: str | None
    lon: float | None
    lat: float | None
    police_grid_id: int | None = None  # the resident's: an alert is where they live


_EVENTS = """
    SELECT e.id, e.alert_id, e.at, e.action, e.actor, e.note, e.level,
           a.kind, a.status, a.severity, a.since, a.grid_id, g.code AS grid_code,
           a.resident_id, r.name, r.phone, r.address, r.lon, r.lat, r.police_grid_id
    FROM alert_events e
    JOIN alerts a ON a.id = e.alert_id
    LEFT JOIN residents r ON r.id = a.resident_id
    LEFT JOIN grids g ON g.id = a.grid_id
"""


def events_between(
    conn: psycopg.Connection, after: int, upto: int, *, filters: Filters, limit: int
) -> list[AlertEvent]:
    """The first `limit` events with after < id <= upto, in id order, of the alerts `filters`
    select (a scope, and police grids by the resident's home)."""
    where, params = where_filters(filters, alias="a", position_alias="r")
    query = sql.SQL(
        _EVENTS + " WHERE e.id > %(after)s AND e.id <= %(upto)s AND {} ORDER BY e.id "
        "LIMIT %(limit)s"
    ).format(all_of(where))
    with conn.cursor(row_factory=class_row(AlertEvent)) as cur:
        return cur.execute(
            query, {**params, "after": after, "upto": upto, "limit": limit}
        ).fetchall()


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One step of a hazard or a request (a hazard_events or request_events row) with what a
    console needs to show it: the case's kind, category, grid and status now."""

    id: int
    kind: str  # "hazard" or "request"
    case_id: uuid.UUID
    at: datetime
    action: str
    actor: str | None
    note: str | None
    to_status: str
    status: str
    level: str
    grid_id: int | None
    grid_code: str | None
    category: str  # a hazard's category, a request's service code
    severity: str | None  # a request has none
    police_grid_id: int | None = None


_CASE_EVENTS = {
    "hazard": sql.SQL(
        """
        SELECT e.id, 'hazard' AS kind, e.hazard_id AS case_id, e.at, e.action, e.actor, e.note,
               e.to_status, h.status, h.level, h.grid_id, g.code AS grid_code, h.category,
               h.severity, h.police_grid_id
        FROM hazard_events e
        JOIN hazard_reports h ON h.id = e.hazard_id
        LEFT JOIN grids g ON g.id = h.grid_id
        WHERE {}
        ORDER BY e.id LIMIT %(limit)s
        """
    ),
    "request": sql.SQL(
        """
        SELECT e.id, 'request' AS kind, e.request_id AS case_id, e.at, e.action, e.actor,
               e.note, e.to_status, r.status, coalesce(e.level, r.level) AS level, r.grid_id,
               g.code AS grid_code, r.service_code AS category, NULL AS severity,
               r.police_grid_id
        FROM request_events e
        JOIN requests r ON r.id = e.request_id
        LEFT JOIN grids g ON g.id = r.grid_id
        WHERE {}
        ORDER BY e.id LIMIT %(limit)s
        """
    ),
}
_CASE_ALIAS = {"hazard": "h", "request": "r"}  # the case's table in _CASE_EVENTS


def case_events_between(
    conn: psycopg.Connection,
    kind: str,
    after: int,
    upto: int | None = None,
    *,
    filters: Filters | None = None,
    limit: int,
) -> list[CaseStep]:
    """The first `limit` steps of cases of `kind` with after < id (<= upto), in id order, of
    the cases `filters` select (None: every one)."""
    where, params = where_filters(filters or Filters(scope=None), alias=_CASE_ALIAS[kind])
    where.append(sql.SQL("e.id > %(after)s"))
    where_given(where, params, sql.SQL("e.id <= %(upto)s"), upto=upto)
    query = _CASE_EVENTS[kind].format(sql.SQL(" AND ").join(where))
    params.update(after=after, limit=limit)
    with conn.cursor(row_factory=class_row(CaseStep)) as cur:
        return cur.execute(query, params).fetchall()


@dataclass
class _Gap:
    below: int  # every id up to here is final once these writers have ended
    writers: frozenset[str]  # virtual transaction ids holding the table's write lock


class _Tail:
    """One table read in id order with none skipped: the gap rule above, for `table`.
    `read(conn, after)` returns the next rows after an id, in id order."""

    def __init__(self, table: str, read: Callable[[psycopg.Connection, int], list]) -> None:
        self.table = table
        self.read = read
        self.watermark = 0  # every row with id <= watermark has been handed out
        self._gap: _Gap | None = None
        self.heard: tuple | None = None  # the table's change version when last read

    def quiet_since_read(self, changes: ChangeWatcher | None) -> bool:
        """Whether nothing was written to the table since it was last read: no change notice
        came (heard by a live watcher) and no gap waits to be settled. Notes the version now
        heard, to compare with next time."""
        version = None if changes is None else changes.version((self.table,))
        quiet = version is not None and version == self.heard and self._gap is None
        self.heard = version
        return quiet

    def ready(self, rows: list, writers_before: frozenset[str], writers_after: frozenset[str]):
        """The rows that can go out now, in order; moves the watermark.

        `writers_before` were read before the rows, `writers_after` after them.
        """
        final_upto = self.watermark
        gap = self._gap
        if gap is not None and not gap.writers & writers_before:
            final_upto = max(final_upto, gap.below)
            self._gap = gap = None
        ready = []
        for row in rows:
            if row.id == self.watermark + 1 or row.id <= final_upto:
                ready.append(row)
                self.watermark = row.id
                continue
            # A gap before this row: hold it and everything after until the gap is final.
            if gap is None:
                self._gap = _Gap(rows[-1].id, writers_after)
            break
        else:
            self.watermark = max(self.watermark, final_upto)
        return ready

    def fetch(self, conn: psycopg.Connection) -> tuple[frozenset[str], list, frozenset[str]]:
        """Writers, the rows after the watermark, writers again: three fresh looks."""
        conn.autocommit = True
        try:
            before = self.writers(conn)
            rows = self.read(conn, self.watermark)
            after_rows = self.writers(conn)
        finally:
            conn.autocommit = False
        return before, rows, after_rows

    def writers(self, conn: psycopg.Connection) -> frozenset[str]:
        """Transactions that may hold an id not yet visible."""
        rows = conn.execute(
            "SELECT DISTINCT virtualtransaction FROM pg_locks "
            "WHERE locktype = 'relation' AND relation = %s::regclass "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()",
            (self.table,),
        ).fetchall()
        return frozenset(row[0] for row in rows)


def _read_alert_events(conn: psycopg.Connection, after: int) -> list[AlertEvent]:
    with conn.cursor(row_factory=class_row(AlertEvent)) as cur:
        return cur.execute(
            _EVENTS + " WHERE e.id > %s ORDER BY e.id LIMIT %s", (after, BATCH)
        ).fetchall()


def _read_hazard_events(conn: psycopg.Connection, after: int) -> list[CaseStep]:
    return case_events_between(conn, "hazard", after, limit=BATCH)


def _read_request_events(conn: psycopg.Connection, after: int) -> list[CaseStep]:
    return case_events_between(conn, "request", after, limit=BATCH)


def _read_warnings(conn: psycopg.Connection, after: int) -> list:
    # Every level is read, so that a level-1 warning's id is no gap to wait on; only level 2
    # is handed out.
    return warnings_between(conn, after, level=None, limit=BATCH)


ALERT_KINDS = (AlertEvent, WarningRow)


class AlertFeed:
    """Polls alert_events, the level-2 dispute warnings and the steps of cases, and fans new
    rows out to subscribers' queues: `AlertEvent`s, `WarningRow`s and `CaseStep`s, each
    table's in id order, each queue only the kinds it asked for.

    With a `changes` watcher, the tables of cases are read only after a change notice (or
    while a gap in their ids waits): most polls then cost no query for them."""

    def __init__(
        self, pool: ConnectionPool, *, poll_s: float = 0.5, changes: ChangeWatcher | None = None
    ) -> None:
        self.pool = pool
        self.poll_s = poll_s
        self.changes = changes
        self.alerts = _Tail("alert_events", _read_alert_events)
        self.warnings = _Tail("warnings", _read_warnings)
        self.cases = {
            "hazard": _Tail("hazard_events", _read_hazard_events),
            "request": _Tail("request_events", _read_request_events),
        }
        self._warnings_started = False  # a feed not started hands out alert events only
        self._subscribers: dict[asyncio.Queue, tuple[type, ...]] = {}
        self._task: asyncio.Task | None = None

    @property
    def watermark(self) -> int:
        """Every alert event with id <= watermark has been handed out."""
        return self.alerts.watermark

    @watermark.setter
    def watermark(self, value: int) -> None:
        self.alerts.watermark = value

    @property
    def warning_watermark(self) -> int:
        """Every warning with id <= this has been handed out (or was there at start)."""
        return self.warnings.watermark

    def case_watermark(self, kind: str) -> int:
        """Every step of a case of `kind` with id <= this has been handed out."""
        return self.cases[kind].watermark

    @property
    def _tails(self) -> list[_Tail]:
        return [self.alerts, self.warnings, *self.cases.values()]

    async def start(self, settle_s: float = 10.0) -> None:
        """Start from the newest event and warning, once every id up to them is final (a
        writer that took a lower id has ended), so that a page served after start sees what
        the feed skips."""
        newest = await asyncio.to_thread(self._max_ids)
        writers = await asyncio.to_thread(self._writers_now)
        deadline = time.monotonic() + settle_s
        while writers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            writers &= await asyncio.to_thread(self._writers_now)
        for tail, max_id in zip(self._tails, newest, strict=True):
            tail.watermark = max_id
        self._warnings_started = True
        self._task = asyncio.create_task(self._run(), name="alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.close_streams()

    def close_streams(self) -> None:
        """End every open stream: each client is told it is over now (and reconnects), not
        left hanging until the server gives up waiting for it at shutdown."""
        for queue in list(self._subscribers):
            self._close(queue)

    def subscribe(self, kinds: tuple[type, ...] = ALERT_KINDS) -> asyncio.Queue:
        """A queue of the new rows of `kinds` (alert events and warnings unless told)."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[queue] = kinds
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.pop(queue, None)

    def _close(self, queue: asyncio.Queue) -> None:
        """A subscriber too slow to keep up is cut off; it reconnects and catches up."""
        self._subscribers.pop(queue, None)
        with contextlib.suppress(asyncio.QueueFull):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)

    async def _run(self) -> None:
        delay = self.poll_s
        while True:
            try:
                await self.poll_once()
                delay = self.poll_s
            except (psycopg.Error, OSError) as exc:
                log.warning("alert feed: %s; retrying", str(exc).strip().splitlines()[:1])
                delay = min(delay * 2, 10.0)
            await asyncio.sleep(delay)

    async def poll_once(self) -> int:
        """Read and hand out what is new; returns how many events went out."""
        tails = self._tails if self._warnings_started else [self.alerts]
        ready = []
        for tail in tails:
            if tail in self.cases.values() and tail.quiet_since_read(self.changes):
                continue
            before, rows, after = await asyncio.to_thread(self._fetch, tail)
            rows = tail.ready(rows, before, after)
            ready += [r for r in rows if tail is not self.warnings or r.level == 2]
        for event in ready:
            for queue, kinds in list(self._subscribers.items()):
                if not isinstance(event, kinds):
                    continue
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._close(queue)
        return len(ready)

    def _ready(
        self, rows: list[AlertEvent], writers_before: frozenset[str], writers_after: frozenset[str]
    ) -> list[AlertEvent]:
        """The alert events that can go out now (`_Tail.ready` of alert_events)."""
        return self.alerts.ready(rows, writers_before, writers_after)

    def _fetch(self, tail: _Tail) -> tuple[frozenset[str], list, frozenset[str]]:
        with self.pool.connection() as conn:
            return tail.fetch(conn)

    def _writers_now(self) -> frozenset[str]:
        with self.pool.connection() as conn:
            return frozenset().union(*(tail.writers(conn) for tail in self._tails))

    def _max_id(self) -> int:
        return self._max_ids()[0]

    def _max_ids(self) -> list[int]:
        """The newest id of each tail, in the order of `_tails`."""
        with self.pool.connection() as conn:
            found = []
            for table in ("alert_events", "hazard_events", "request_events"):
                query = sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(table))
                [(max_id,)] = conn.execute(query).fetchall()
                found.append(max_id)
            return [found[0], max_warning_id(conn), *found[1:]]
