"""Dispute warnings (预警): scanning texts as they are stored, the warnings table, and the
warnings layer.

`record_warnings` is the one hook every way a text comes in calls (patrol and visit notes
and hazard descriptions from MQTT and HTTP; requests' descriptions from Open311, 12345
imports and the simulators, in the transaction that stores them): it scans the texts with
the active library's automaton, stores one warning per category hit at its level, opens a
case (a dispute request at the community level, with its deadlines) for each level-2 warning
and queues it for the community level (MQTT and webhooks, through the alert outbox), all in
the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from gridwatch.cases.requests import OPEN_STATUSES
from gridwatch.disputes.levels import REPEAT_WINDOW, REPEATED
from gridwatch.disputes.scanning import (
    DisputeWarning,
    PastWarning,
    ScannedText,
    plan_warnings,
    scan_texts,
)
from gridwatch.model.records import HazardReport, PatrolCheckin, RequestIntake, checkin_key
from gridwatch.store.filters import Filters, Placed, where_columns, where_filters, where_given
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.outbox import write_warning_outbox
from gridwatch.store.paging import Listing, Page
from gridwatch.store.requests import Placement, Stored, open_requests, warning_case_id

_LOCK_CLASS = 0x6777000C  # advisory locks per (grid, category): one writer counts at a time


@dataclass(frozen=True, slots=True)
class Notify:
    """Where level-2 warnings go: the MQTT topic prefix and the webhooks of alerts."""

    topic_prefix: str
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WarningRow:
    id: int
    source: str
    source_id: str
    category: str
    level: int
    reason: str | None
    keywords: list[str]
    weight: float
    library_version: int | None
    grid_id: int | None
    grid_code: str | None
    resident_id: str | None
    lives_alone: bool
    lon: float | None
    lat: float | None
    observed_at: datetime
    created_at: datetime
    police_grid_id: int | None = None


_WARNING_COLUMNS = (
    "w.id, w.source, w.source_id, w.category, w.level, w.reason, w.keywords, w.weight, "
    "w.library_version, w.grid_id, g.code AS grid_code, w.resident_id, w.lives_alone, "
    "w.lon, w.lat, w.observed_at, w.created_at, w.police_grid_id"
)
_WARNING_SELECT = sql.SQL(_WARNING_COLUMNS)
_WARNING_FROM = sql.SQL("warnings w LEFT JOIN grids g ON g.id = w.grid_id")
_WARNINGS = Listing(
    WarningRow, _WARNING_SELECT, _WARNING_FROM, sql.SQL("w.id DESC"), sql.SQL("w.id < %(after)s")
)


def record_warnings(
    conn: psycopg.Connection,
    matchers: LibraryMatchers,
    texts: Sequence[ScannedText],
    notify: Notify,
) -> list[WarningRow]:
    """Scan `texts` and store the warnings they make (none for a text scanned before);
    returns them. Runs in the caller's transaction when there is one."""
    texts = [t for t in texts if t.text]
    if not texts:
        return []
    active = matchers.current(conn)
    hits = scan_texts(active.matcher, texts)
    if not hits:
        return []
    with conn.transaction():
        _lock_grids(conn, sorted({(t.grid_id, h.category) for t, h in hits if t.grid_id}))
        past = _past_warnings(conn, hits)
        alone = _living_alone(conn, {t.resident_id for t, _ in hits if t.resident_id})
        planned = plan_warnings(hits, past, alone)
        stored = _insert(conn, planned, active.version)
        _open_cases(conn, [row for row in stored if row.level == 2])
        for row in stored:
            if row.level == 2:
                write_warning_outbox(
                    conn,
                    row.id,
                    warning_message(row),
                    row.grid_code,
                    notify.topic_prefix,
                    notify.webhooks,
                )
    return stored


def _open_cases(conn: psycopg.Connection, rows: Sequence[WarningRow]) -> list[Stored]:
    """A case for each level-2 warning (二级预警 enters the ledger): a dispute request of
    source `warning` at the community level of the warning's grid, with the dispute
    service's clocks from when the warning was made; one outside every grid waits in the
    district's queue. Its id comes from the warning's, so one warning opens one case; while
    a grid's case of a category is open, more level-2 warnings of it there open none."""
    if not rows:
        return []
    ids = sorted({r.grid_id for r in rows if r.grid_id is not None})
    found = conn.execute("SELECT id, level FROM grids WHERE id = ANY(%s)", (ids,)).fetchall()
    levels: dict[int | None, str] = dict(found)
    taken = set(
        conn.execute(
            "SELECT grid_id, attributes->>'category' FROM requests WHERE source = 'warning' "
            "AND status = ANY(%s) AND grid_id = ANY(%s)",
            (sorted(OPEN_STATUSES), ids),
        ).fetchall()
    )
    cases = []
    for row in rows:
        if row.grid_id is not None and (row.grid_id, row.category) in taken:
            continue
        taken.add((row.grid_id, row.category))
        in_grid = levels.get(row.grid_id) == "grid"
        placed = (
            Placement(row.grid_id, queued=False, level="community")
            if in_grid
            else Placement(row.grid_id, queued=True, note="待分拨: the warning is in no grid")
        )
        cases.append((_case_intake(row), replace(placed, police_grid_id=row.police_grid_id)))
    return open_requests(conn, cases, now=max(r.created_at for r in rows))


def _case_intake(row: WarningRow) -> RequestIntake:
    """What the case of a level-2 warning says: the category, why it is level 2, the words
    and where they were written (not the text itself, which keeps its own access rules)."""
    why = "同一网格7天内第3次" if row.reason == REPEATED else "独居老人走访记录"
    words = "、".join(row.keywords)
    return RequestIntake(
        id=warning_case_id(row.id),
        source="warning",
        service_code="dispute",
        description=f"矛盾纠纷二级预警 ({why}): {row.category}; 关键词: {words}; "
        f"来源 {row.source} {row.source_id}",
        reporter="gridwatch",
        requested_at=row.observed_at,
        received_at=row.created_at,
        lon=row.lon,
        lat=row.lat,
        source_key=str(row.id),
        attributes=(("warning_id", str(row.id)), ("category", row.category)),
    )


def checkin_text(
    checkin: PatrolCheckin, grid_id: int | None, police_grid_id: int | None = None
) -> ScannedText:
    """A patrol or visit note as scanned; a visit's resident is looked up (lives alone?)."""
    return ScannedText(
        "checkin",
        checkin_key(checkin.source, checkin.worker_id, checkin.observed_at),
        checkin.note,
        grid_id,
        checkin.observed_at,
        checkin.lon,
        checkin.lat,
        resident_id=checkin.resident_id if checkin.kind == "visit" else None,
        police_grid_id=police_grid_id,
    )


def hazard_text(
    report: HazardReport, grid_id: int | None, police_grid_id: int | None = None
) -> ScannedText:
    """A hazard's description as scanned."""
    return ScannedText(
        "hazard",
        str(report.id),
        report.description,
        grid_id,
        report.observed_at,
        report.lon,
        report.lat,
        police_grid_id=police_grid_id,
    )


def request_texts(stored: Sequence[Stored]) -> list[ScannedText]:
    """The descriptions `open_requests` stored that were not stored before, as scanned: a
    new request's, or a later copy's (a 12345 export again) whose text changed; one stored
    as it was is not read again. A request waiting in a street's queue counts in the street."""
    return [
        ScannedText(
            "request",
            str(s.request.id),
            s.request.description,
            s.request.grid_id,
            s.request.requested_at,
            s.request.lon,
            s.request.lat,
            police_grid_id=s.request.police_grid_id,
        )
        for s in stored
        if s.new_text
    ]


def warning_message(row: WarningRow) -> dict:
    """What MQTT subscribers and webhooks receive of a level-2 warning: the fields of an
    alert change a receiver already reads (`state`, `kind`, `level` of the hierarchy), and
    the warning's own. No text: the note stays where its own access rules keep it."""
    return {
        "alert_id": None,
        "warning_id": row.id,
        "state": "warning",
        "kind": "dispute_warning",
        "level": "community",
        "warning_level": row.level,
        "reason": row.reason,
        "category": row.category,
        "keywords": row.keywords,
        "source": row.source,
        "source_id": row.source_id,
        "resident_id": row.resident_id,
        "since": row.observed_at.isoformat(),
        "at": row.created_at.isoformat(),
        "case_id": str(warning_case_id(row.id)) if row.level == 2 else None,
    }


def _lock_grids(conn: psycopg.Connection, pairs: list[tuple[int | None, str]]) -> None:
    """Lock each (grid, category) counted, in one order: two writers of the same grid count
    one after the other, so three hits by two writers still make a level-2 warning."""
    if pairs:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(k)) "
            "FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k) AS ordered",
            (_LOCK_CLASS, [f"{grid}/{category}" for grid, category in pairs]),
        )


def _past_warnings(conn: psycopg.Connection, hits) -> list[PastWarning]:
    """The stored warnings the planning needs: those of the grids and categories hit within
    a window of the texts' times, and those of the same texts (scanned before)."""
    located = [(t.grid_id, h.category) for t, h in hits if t.grid_id is not None]
    times = [t.observed_at for t, _ in hits]
    with conn.cursor(row_factory=class_row(PastWarning)) as cur:
        return cur.execute(
            """
            SELECT source, source_id, category, grid_id, observed_at FROM warnings
            WHERE (grid_id, category) IN (
                    SELECT * FROM unnest(%(grids)s::bigint[], %(cats)s::text[]))
              AND observed_at > %(start)s AND observed_at < %(end)s
            UNION
            SELECT source, source_id, category, grid_id, observed_at FROM warnings
            WHERE (source, source_id) IN (
                    SELECT * FROM unnest(%(sources)s::text[], %(ids)s::text[]))
            """,
            {
                "grids": [g for g, _ in located],
                "cats": [c for _, c in located],
                "start": min(times) - REPEAT_WINDOW,
                "end": max(times) + REPEAT_WINDOW,
                "sources": [t.source for t, _ in hits],
                "ids": [t.source_id for t, _ in hits],
            },
        ).fetchall()


def _living_alone(conn: psycopg.Connection, resident_ids: set[str]) -> dict[str, bool]:
    if not resident_ids:
        return {}
    rows = conn.execute(
        "SELECT id, living_alone FROM residents WHERE id = ANY(%s)", (sorted(resident_ids),)
    ).fetchall()
    return dict(rows)


def _insert(
    conn: psycopg.Connection, planned: list[DisputeWarning], version: int | None
) -> list[WarningRow]:
    """Insert the planned warnings in one statement (a batch has a few), ids in the plan's
    order; returns those stored, a warning another writer stored meanwhile left out."""
    if not planned:
        return []
    records = [
        {
            "n": n,
            "source": w.text.source,
            "source_id": w.text.source_id,
            "category": w.hit.category,
            "level": w.level,
            "reason": w.reason,
            "keywords": list(w.hit.keywords),
            "weight": w.hit.weight,
            "grid_id": w.text.grid_id,
            "police_grid_id": w.text.police_grid_id,
            "resident_id": w.text.resident_id,
            "lives_alone": w.lives_alone,
            "lon": w.text.lon,
            "lat": w.text.lat,
            "observed_at": w.text.observed_at.isoformat(),
        }
        for n, w in enumerate(planned)
    ]
    query = sql.SQL(
        """
        WITH w AS (
            INSERT INTO warnings (source, source_id, category, level, reason, keywords, weight,
                library_version, grid_id, resident_id, lives_alone, lon, lat, observed_at,
                police_grid_id)
            SELECT r.source, r.source_id, r.category, r.level, r.reason,
                ARRAY(SELECT jsonb_array_elements_text(r.keywords)), r.weight, %(version)s,
                r.grid_id, res.id, r.lives_alone, r.lon, r.lat, r.observed_at, r.police_grid_id
            FROM jsonb_to_recordset(%(records)s) AS r(n integer, source text, source_id text,
                category text, level smallint, reason text, keywords jsonb,
                weight double precision, grid_id bigint, resident_id text, lives_alone boolean,
                lon double precision, lat double precision, observed_at timestamptz,
                police_grid_id bigint)
            LEFT JOIN residents res ON res.id = r.resident_id
            ORDER BY r.n
            ON CONFLICT (source, source_id, category) DO NOTHING
            RETURNING *
        )
        SELECT {} FROM w LEFT JOIN grids g ON g.id = w.grid_id ORDER BY w.id
        """
    ).format(_WARNING_SELECT)
    with conn.cursor(row_factory=class_row(WarningRow)) as cur:
        return cur.execute(query, {"records": Jsonb(records), "version": version}).fetchall()


def warning_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: int | None = None,
    level: int | None = None,
    category: str | None = None,
    source: str | None = None,
) -> Page[WarningRow]:
    """Warnings newest first."""
    where, params = where_filters(filters, alias="w", time_column="observed_at")
    where_columns(where, params, "w", category=category, source=source, level=level)
    keyset = None if after is None else {"after": after}
    return _WARNINGS.page(conn, where, params, after=keyset, limit=limit)


def get_warning(conn: psycopg.Connection, warning_id: int) -> WarningRow:
    """One warning; NotFound when there is none with this id."""
    return _WARNINGS.one(conn, sql.SQL("w.id = %s"), (warning_id,), f"no warning {warning_id}")


def warnings_between(
    conn: psycopg.Connection,
    after: int,
    upto: int | None = None,
    *,
    level: int | None,
    filters: Filters | None = None,
    limit: int,
) -> list[WarningRow]:
    """The first `limit` warnings of `level` (None: any) with after < id <= upto (None: no
    bound), in id order, of the grids `filters` select (either system; None: every grid):
    what the live stream reads."""
    where, params = where_filters(filters or Filters(scope=None), alias="w")
    where.append(sql.SQL("w.id > %(after)s"))
    params.update(after=after, limit=limit)
    where_columns(where, params, "w", level=level)
    where_given(where, params, sql.SQL("w.id <= %(upto)s"), upto=upto)
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY w.id LIMIT %(limit)s").format(
        _WARNING_SELECT, _WARNING_FROM, sql.SQL(" AND ").join(where)
    )
    with conn.cursor(row_factory=class_row(WarningRow)) as cur:
        return cur.execute(query, params).fetchall()


def open_warnings_by_grid(conn: psycopg.Connection) -> dict[Placed, int]:
    """Level-2 warnings whose case is still open, per grid and police grid of the case (None:
    outside every grid): the warnings someone has yet to act on. A warning has no state of its
    own; a level-2 one is handled through its case (a level-1 one asks nothing of anyone)."""
    rows = conn.execute(
        "SELECT grid_id, police_grid_id, count(*) FROM requests "
        "WHERE source = 'warning' AND status = ANY(%s) GROUP BY 1, 2",
        (sorted(OPEN_STATUSES),),
    ).fetchall()
    return {(grid, police): count for grid, police, count in rows}


def max_warning_id(conn: psycopg.Connection) -> int:
    """The newest warning's id (0 when there is none)."""
    [(newest,)] = conn.execute("SELECT coalesce(max(id), 0) FROM warnings").fetchall()
    return newest
