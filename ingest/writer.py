"""Write a batch of parsed messages in one transaction: COPY into staging, then move.

Each time-series kind is COPYed into a temporary staging table and moved with
`INSERT ... ON CONFLICT DO NOTHING`, so a redelivered message (same device, same time, same
kind) is stored once. Hazard reports are opened the one way every hazard is
(`store.hazards.open_hazards`: once per id, with their event and deadline), and so are the
findings of inspections, with their places' clocks (`store.places.record_inspections`). Dead
letters go in the same transaction, so when it commits every message of the batch is
accounted for and may be acknowledged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg import sql

from gridwatch.cases.hazards import DEFAULT_DEADLINES
from gridwatch.errors import first_line
from gridwatch.ingest.registration import RegistrationCheck
from gridwatch.ingest.reporting import CHECKED_KINDS, Report, check_reports
from gridwatch.ingest.topics import Reading
from gridwatch.model.records import HazardReport, MeterReading, PatrolCheckin, SensorEvent
from gridwatch.store.db import is_row_fault
from gridwatch.store.grids import LeafGrids, PointGrids, load_leaf_grids
from gridwatch.store.hazards import open_hazards
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.mode import PLAIN
from gridwatch.store.partitions import ensure_partitions, existing_partition_days
from gridwatch.store.places import record_inspections
from gridwatch.store.warnings import Notify, checkin_text, hazard_text, record_warnings

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 1000  # reasons are one short line; a driver's message is cut to this

Row = Sequence[object]  # one row for COPY, in its table's column order
Dead = tuple["Message", str]  # a message that is a dead letter, and why
_R = TypeVar("_R", MeterReading, SensorEvent, PatrolCheckin, HazardReport)


UNEXPLAINED = "ignored without a reason"  # a Message made with neither reading nor reason


@dataclass(slots=True)
class Message:
    """One received message and what parsing made of it: a reading, why it is a dead letter
    (`reason`), or why it is ignored on purpose (`ignored`)."""

    topic: str
    payload: bytes
    received_at: datetime
    reading: Reading | None = None
    reason: str | None = None
    ignored: str | None = None


def add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    """Add per-key counts into a running total."""
    for key, count in counts.items():
        into[key] = into.get(key, 0) + count


@dataclass(slots=True)
class WriteResult:
    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    dead_letters: int = 0
    warnings: int = 0  # dispute warnings the batch's notes and descriptions made
    findings: int = 0  # hazards opened by the findings of the batch's inspections
    ignored_by: dict[str, int] = field(default_factory=dict)  # per reason

    @property
    def ignored(self) -> int:
        return sum(self.ignored_by.values())

    def add(self, other: WriteResult) -> None:
        add_counts(self.stored, other.stored)
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters
        self.warnings += other.warnings
        self.findings += other.findings
        add_counts(self.ignored_by, other.ignored_by)


@dataclass(frozen=True, slots=True)
class _Table:
    kind: str  # as counted in WriteResult.stored
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the dedupe key
    # What a second message with the same key must repeat to be a duplicate; if it differs,
    # the message is a dead letter. Not the receive time, nor the grid (derived from the
    # position).
    same: tuple[str, ...]
    described: str  # for the dead letter's reason

    @property
    def staging(self) -> str:
        return f"stage_{self.name}"

    @property
    def insert(self) -> sql.Composed:
        """Move the staged rows in; a row whose key is already stored is left out."""
        return _INSERT.format(
            table=sql.Identifier(self.name),
            columns=_names(self.columns),
            staging=sql.Identifier(self.staging),
            key=_names(self.key),
        )

    @property
    def clashes(self) -> sql.Composed:
        """The staged rows (`n`) whose key is stored with other content."""
        return _CLASHES.format(
            staging=sql.Identifier(self.staging),
            table=sql.Identifier(self.name),
            t_key=_names(self.key, "t"),
            s_key=_names(self.key, "s"),
            t_same=_names(self.same, "t"),
            s_same=_names(self.same, "s"),
        )


def _names(columns: tuple[str, ...], alias: str | None = None) -> sql.Composed:
    """`a, b, c`, or `t.a, t.b, t.c` with an alias."""
    prefix = (alias,) if alias else ()
    return sql.SQL(", ").join(sql.Identifier(*prefix, name) for name in columns)


_INSERT = sql.SQL(
    "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} ON CONFLICT ({key}) DO NOTHING"
)
_CLASHES = sql.SQL(
    "SELECT DISTINCT s.n FROM {staging} s JOIN {table} t ON ({t_key}) = ({s_key}) "
    "WHERE ({t_same}) IS DISTINCT FROM ({s_same}) ORDER BY s.n"
)
_STAGING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
    "SELECT 0 AS n, {columns} FROM {table} WITH NO DATA"
)
_COPY = sql.SQL("COPY {staging} (n, {columns}) FROM STDIN")


_METER = _Table(
    "meter",
    "meter_readings",
    ("meter_id", "observed_at", "received_at", "power_w", "energy_kwh", "water_l"),
    ("meter_id", "observed_at"),
    ("power_w", "energy_kwh", "water_l"),
    "a reading of this meter at this time",
)
_SENSOR = _Table(
    "sensor",
    "sensor_events",
    ("device_id", "observed_at", "received_at", "event", "value"),
    ("device_id", "observed_at", "event"),
    ("value",),
    "this event of this sensor at this time",
)
_PATROL_SAME = (
    "lon", "lat", "accuracy_m", "kind", "resident_id", "status", "note", "needs", "place_id",
    "result",
)  # fmt: skip
_PATROL = _Table(
    "patrol",
    "patrol_checkins",
    (
        "worker_id",
        "observed_at",
        "received_at",
        "source",
        "lon",
        "lat",
        "accuracy_m",
        "grid_id",
        "kind",
        "resident_id",
        "status",
        "note",
        "needs",
        "device",
        "battery",
        "photo_urls",
        "police_grid_id",
        "place_id",
        "result",
    ),
    ("worker_id", "source", "observed_at"),
    (*_PATROL_SAME, "device", "battery"),
    "a check-in of this worker at this time",
)
_DEAD = (
    "topic",
    "topic_sha256",
    "payload",
    "payload_sha256",
    "reason",
    "received_at",
    "last_received_at",
    "occurrences",
)
_MOVE_DEAD = sql.SQL(
    "INSERT INTO dead_letters ({columns}) SELECT {columns} FROM stage_dead_letters "
    "ON CONFLICT (topic_sha256, payload_sha256) DO UPDATE SET "
    "occurrences = dead_letters.occurrences + EXCLUDED.occurrences, "
    "last_received_at = greatest(dead_letters.last_received_at, EXCLUDED.last_received_at)"
).format(columns=_names(_DEAD))


class BatchWriter:
    """Owns one connection; writes batches, making daily partitions and placing points in grids."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        mode: str,
        zone: ZoneInfo,
        require_registered: bool = False,
        deadlines: Mapping[str, timedelta] = DEFAULT_DEADLINES,
        notify: Notify | None = None,
    ) -> None:
        self.conn = conn
        self.mode = mode
        self.zone = zone
        self.deadlines = deadlines  # per hazard severity, from the settings
        # Where level-2 warnings of the notes scanned go (the default topic prefix, no webhooks,
        # without one).
        self.notify = notify or Notify("gw")
        self.matchers = LibraryMatchers()
        self.grids: LeafGrids = load_leaf_grids(conn)
        self.registrations = RegistrationCheck(conn) if require_registered else None
        self._partition_days: set[date] = set()
        if mode == PLAIN:
            self._partition_days = existing_partition_days(conn, _METER.name)
        # Made and committed once, outside any batch: a batch that rolls back must not take
        # the staging tables with it.
        self._prepare_staging()
        conn.commit()

    def reload_grids_if_changed(self) -> bool:
        """Rebuild the grid index when the grids table changed since it was loaded."""
        fresh = self.grids.reload_if_changed(self.conn)
        self.conn.commit()
        if fresh is None:
            return False
        self.grids = fresh
        log.info("grid index reloaded: %d grids (of every system)", len(fresh.systems))
        return True

    def reload_registrations_if_changed(self) -> bool:
        """Reload the device registry when devices or workers changed (revocations included)."""
        return self.registrations is not None and self.registrations.reload_if_changed(self.conn)

    def write(self, messages: list[Message]) -> WriteResult:
        """Write the batch; a row the database rejects is split out and dead-lettered alone.

        Only an error caused by a row's values (`is_row_fault`) is blamed on a message; any
        other (the database away, a schema out of step with this release) raises, and the
        worker holds the batch."""
        try:
            return self._write_once(messages)
        except Exception as exc:
            if not is_row_fault(exc):
                raise
            self.conn.rollback()
            if len(messages) == 1:
                message = messages[0]
                refused = (
                    "rejected by the database"
                    if isinstance(exc, psycopg.Error)
                    else "cannot be stored"
                )
                message.reason = f"{refused}: {first_line(exc)}"
                message.reading = None
                return self._write_once(messages)
            # The first line only: the DETAIL and CONTEXT that follow quote the row's values
            # (a visit's note, a hazard's description: residents' personal information).
            log.warning("batch of %d rejected (%s); splitting it", len(messages), first_line(exc))
            middle = len(messages) // 2
            result = self.write(messages[:middle])
            result.add(self.write(messages[middle:]))
            return result

    def _write_once(self, messages: list[Message]) -> WriteResult:
        result = WriteResult()
        if self.registrations is not None:
            self.registrations.refuse_unregistered(messages, self.conn)
        self._refuse_forbidden_reports(messages)
        by_type: dict[type[Reading], list[Message]] = defaultdict(list)
        dead: list[Dead] = []
        for message in messages:
            if message.reason is not None:
                dead.append((message, message.reason))
            elif message.reading is None:
                why = message.ignored or UNEXPLAINED
                result.ignored_by[why] = result.ignored_by.get(why, 0) + 1
            else:
                by_type[type(message.reading)].append(message)

        meters = _readings(by_type[MeterReading], MeterReading)
        sensors = _readings(by_type[SensorEvent], SensorEvent)
        checkins = _readings(by_type[PatrolCheckin], PatrolCheckin)
        hazards = _readings(by_type[HazardReport], HazardReport)
        if self.mode == PLAIN:
            self._ensure_days(meters, sensors, checkins)
        checkin_grids = self._grid_ids(checkins)
        hazard_grids = self._grid_ids(hazards)

        # Generators: each is consumed only when its kind has messages.
        rows: dict[_Table, Iterable[Row]] = {
            _METER: (
                (r.meter_id, r.observed_at, r.received_at, r.power_w, r.energy_kwh, r.water_l)
                for r in meters
            ),
            _SENSOR: (
                (r.device_id, r.observed_at, r.received_at, r.event, r.value) for r in sensors
            ),
            _PATROL: (
                (
                    r.worker_id,
                    r.observed_at,
                    r.received_at,
                    r.source,
                    r.lon,
                    r.lat,
                    r.accuracy_m,
                    grids.grid_id,
                    r.kind,
                    r.resident_id,
                    r.status,
                    r.note,
                    r.needs,
                    r.device,
                    r.battery,
                    list(r.photo_urls) or None,
                    grids.police_grid_id,
                    r.place_id,
                    r.result,
                )
                for r, grids in zip(checkins, checkin_grids, strict=True)
            ),
        }
        reading_type = {
            _METER: MeterReading,
            _SENSOR: SensorEvent,
            _PATROL: PatrolCheckin,
        }
        with self.conn.transaction():
            for table, table_rows in rows.items():
                written = by_type[reading_type[table]]
                if written:
                    dead.extend(self._store(table, written, table_rows, result))
            if hazards:
                dead.extend(self._open_hazards(by_type[HazardReport], hazard_grids, result))
            # Those still check-ins (not clashes) are stored, or duplicates of stored ones.
            inspected = record_inspections(
                self.conn,
                _readings(by_type[PatrolCheckin], PatrolCheckin),
                deadlines=self.deadlines,
            )
            result.findings = inspected.opened
            # Scanned in the same transaction: a note is acknowledged with its warnings.
            texts = [
                checkin_text(m.reading, *grids)
                for m, grids in zip(by_type[PatrolCheckin], checkin_grids, strict=True)
                if isinstance(m.reading, PatrolCheckin) and m.reading.note  # not a clash
            ] + [
                hazard_text(m.reading, *grids)
                for m, grids in zip(by_type[HazardReport], hazard_grids, strict=True)
                if isinstance(m.reading, HazardReport) and m.reading.description
            ]
            texts += [hazard_text(report, *grids) for report, grids in inspected.findings]
            result.warnings = len(record_warnings(self.conn, self.matchers, texts, self.notify))
            if dead:
                result.dead_letters = self._dead_letters(dead)
        return result

    def _refuse_forbidden_reports(self, messages: list[Message]) -> None:
        """A visit, inspection or hazard the same worker could not post over HTTP is a dead
        letter."""
        reports: list[tuple[Message, Report]] = [
            (m, m.reading)
            for m in messages
            if isinstance(m.reading, HazardReport)
            or (isinstance(m.reading, PatrolCheckin) and m.reading.kind in CHECKED_KINDS)
        ]
        if not reports:
            return
        hazard_grids = iter(self._grid_ids([r for _, r in reports if isinstance(r, HazardReport)]))
        pairs = [
            (r, next(hazard_grids) if isinstance(r, HazardReport) else None) for _, r in reports
        ]
        with self.conn.transaction():
            refusals = check_reports(self.conn, pairs)
        for (message, _), refusal in zip(reports, refusals, strict=True):
            if refusal is not None:
                message.reason = str(refusal)
                message.reading = None

    def _store(
        self, table: _Table, messages: list[Message], rows: Iterable[Row], result: WriteResult
    ) -> list[Dead]:
        """Move one kind's rows in; returns the messages that clash with a stored row (same
        key, other content), made dead letters. The rest not inserted are duplicates."""
        stored = self._move(table, rows)
        clashes = self._clashes(table) if stored < len(messages) else []
        return _account(table.kind, table.described, messages, stored, clashes, result)

    def _open_hazards(
        self, messages: list[Message], grids: list[PointGrids], result: WriteResult
    ) -> list[Dead]:
        """Open the batch's hazards as the API opens one; the clashes become dead letters."""
        pairs = list(zip(_readings(messages, HazardReport), grids, strict=True))
        opened = open_hazards(self.conn, pairs, deadlines=self.deadlines)
        described = "a hazard report with this id"
        return _account("hazard", described, messages, opened.new, opened.clashes, result)

    def _clashes(self, table: _Table) -> list[int]:
        """Staged rows whose key is stored with other content (by another row of the batch,
        or before); the staged row that was inserted matches itself."""
        found = self.conn.execute(table.clashes).fetchall()
        return [n for (n,) in found]

    def _prepare_staging(self) -> None:
        staging = [(t.name, t.columns) for t in (_METER, _SENSOR, _PATROL)]
        for name, columns in [*staging, ("dead_letters", _DEAD)]:
            self.conn.execute(
                _STAGING.format(
                    staging=sql.Identifier(f"stage_{name}"),
                    columns=_names(columns),
                    table=sql.Identifier(name),
                )
            )

    def _copy(self, staging: str, columns: tuple[str, ...], rows: Iterable[Row]) -> None:
        """COPY rows into a staging table, each numbered (`n`) in the order given."""
        statement = _COPY.format(staging=sql.Identifier(staging), columns=_names(columns))
        with self.conn.cursor().copy(statement) as copy:
            for n, row in enumerate(rows):
                copy.write_row((n, *row))

    def _move(self, table: _Table, rows: Iterable[Row]) -> int:
        self._copy(table.staging, table.columns, rows)
        return self.conn.execute(table.insert).rowcount

    def _dead_letters(self, dead: list[Dead]) -> int:
        # Keyed by digests: a topic may be tens of kilobytes, more than an index entry holds.
        grouped: dict[tuple[bytes, bytes], _DeadLetter] = {}
        for message, why in dead:
            topic = storable_text(message.topic)
            key = (
                hashlib.sha256(topic.encode()).digest(),
                hashlib.sha256(message.payload).digest(),
            )
            entry = grouped.get(key)
            if entry is None:
                reason = storable_text(why[:MAX_REASON_LENGTH])
                at = message.received_at
                grouped[key] = _DeadLetter(topic, message.payload, reason, at, at)
            else:
                entry.last_received_at = max(entry.last_received_at, message.received_at)
                entry.occurrences += 1
        self._copy(
            "stage_dead_letters",
            _DEAD,
            (letter.row(*key) for key, letter in grouped.items()),
        )
        self.conn.execute(_MOVE_DEAD)
        return len(dead)

    def _grid_ids(self, located: Sequence[PatrolCheckin | HazardReport]) -> list[PointGrids]:
        """Each point's grid in every system, the batch placed in one pass."""
        if not located:
            return []
        lon = np.fromiter((r.lon for r in located), dtype=float, count=len(located))
        lat = np.fromiter((r.lat for r in located), dtype=float, count=len(located))
        return self.grids.place(lon, lat)

    def _ensure_days(self, *groups: Sequence[MeterReading | SensorEvent | PatrolCheckin]) -> None:
        rows = [r for group in groups for r in group]
        if not rows:
            return
        # Nearly every batch falls on days that exist; looking at its ends is enough then.
        first = min(r.observed_at for r in rows).astimezone(self.zone).date()
        last = max(r.observed_at for r in rows).astimezone(self.zone).date()
        span = {date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)}
        if len(span) <= 3 and span <= self._partition_days:
            return
        days = {r.observed_at.astimezone(self.zone).date() for r in rows}
        missing = days - self._partition_days
        if missing:
            ensure_partitions(self.conn, missing, self.zone)
            self._partition_days |= missing


def _account(
    kind: str,
    described: str,
    messages: list[Message],
    stored: int,
    clashes: list[int],
    result: WriteResult,
) -> list[Dead]:
    """Count one kind's messages as stored or duplicates; those that clash with a stored row
    (same key, other content: `clashes` by position) are made dead letters and returned."""
    reason = f"same key, different content: {described} is already stored with other values"
    for n in clashes:
        messages[n].reason = reason
        messages[n].reading = None
    result.stored[kind] = stored
    result.duplicates += len(messages) - stored - len(clashes)
    return [(messages[n], reason) for n in clashes]


def _readings(messages: list[Message], kind: type[_R]) -> list[_R]:
    """The readings of messages all of one kind, typed as that kind."""
    return [m.reading for m in messages if isinstance(m.reading, kind)]


@dataclass(slots=True)
class _DeadLetter:
    """The messages of one batch with the same topic and payload: one dead-letter row."""

    topic: str
    payload: bytes
    reason: str
    received_at: datetime
    last_received_at: datetime
    occurrences: int = 1

    def row(self, topic_sha256: bytes, payload_sha256: bytes) -> Row:
        """The row in the column order of `_DEAD`."""
        return (
            self.topic,
            topic_sha256,
            self.payload,
            payload_sha256,
            self.reason,
            self.received_at,
            self.last_received_at,
            self.occurrences,
        )


def storable_text(text: str) -> str:
    """Text as PostgreSQL can hold it: NUL and lone surrogates written as escapes.

    A dead letter must never fail to be written, whatever topic a broker passed on or
    whatever a reason quotes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
