"""Citizens' requests (诉求) and their events: placing a request in its grid or its street's
待分拨 queue, storing it (`open_requests`, the one way a request's text is stored), the steps
of the loop, the request clocks' escalations, and the pages the API lists.

Every change is a request_events row in the same transaction as the change itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb

from gridwatch.cases.requests import (
    OPEN_STATUSES,
    WAITING,
    RequestClock,
    RequestEscalation,
    clocks_at,
    deadline_after,
    next_status,
    service,
)
from gridwatch.errors import Conflict, NotFound
from gridwatch.model.records import RequestIntake
from gridwatch.store.case_events import CaseEvent, case_events
from gridwatch.store.filters import Filters, where_columns, where_filters
from gridwatch.store.grids import GridCatalog, PointGrids, point_grids
from gridwatch.store.paging import Listing, Page, fetch_rows
from gridwatch.store.personal_data import FORGET, record_audit
from gridwatch.store.staging import stage_rows

_LOCK_KEY = 0x67770006  # one request escalation at a time across `gridwatch alerts` processes
_HOTLINE_IDS = uuid.UUID("6b3f2a10-0c5e-5d45-9b3c-123450012345")  # uuid5 namespace of 12345 orders
_WARNING_IDS = uuid.UUID("6b3f2a10-0c5e-5d45-9b3c-00000000000c")  # of level-2 warnings' cases
AUDIT_PREFIX = "request:"
"""Reads of a requester's contact in clear are audited as those of residents are, under the
id `request:<id>` (personal_data_audit holds people's ids of every kind)."""


def hotline_id(order_number: str) -> uuid.UUID:
    """The request id of a 12345 work order: the same number, the same request."""
    return uuid.uuid5(_HOTLINE_IDS, order_number)


def warning_case_id(warning_id: int) -> uuid.UUID:
    """The id of the case a level-2 warning opens: one warning, one case."""
    return uuid.uuid5(_WARNING_IDS, str(warning_id))


@dataclass(frozen=True, slots=True)
class Request:
    id: uuid.UUID
    source: str
    source_key: str | None
    service_code: str
    description: str
    lon: float | None
    lat: float | None
    address: str | None
    grid_id: int | None
    grid_code: str | None
    grid_level: str | None
    requester_name: str | None
    requester_phone: str | None
    requester_email: str | None
    media_urls: list[str]
    attributes: dict
    reporter: str
    requested_at: datetime
    received_at: datetime
    status: str
    level: str
    assignee: str | None
    accept_by: datetime
    due_at: datetime
    deadline_at: datetime
    rating: str | None
    updated_at: datetime
    police_grid_id: int | None = None

    @property
    def queued(self) -> bool:
        """Waiting in a street's 待分拨 queue (or the district's, outside every street)."""
        return self.status == "received" and self.grid_level != "grid"

    @property
    def audit_id(self) -> str:
        return f"{AUDIT_PREFIX}{self.id}"


@dataclass(frozen=True, slots=True)
class RequestEvent(CaseEvent):
    """A step of a request's history: the fields every case's step has, then the rating
    given with it and the level the request stood at after it."""

    rating: str | None
    level: str | None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request goes: a grid, or a street's 待分拨 queue (grid_id the street's; None
    when not even a street can be told, and then the district's administrators place it)."""

    grid_id: int | None
    queued: bool
    note: str | None = None  # why it waits in the queue
    level: str | None = None  # the level it starts at; None: the grid's, or the street's queue
    police_grid_id: int | None = None  # the police grid of its point, queued or not


def place_request(
    intake: RequestIntake, catalog: GridCatalog, point_grid: PointGrids | int | None
) -> Placement:
    """The grid of the request's point; else the grid its code names; else the street of the
    community or street it names, or whose area holds the point, or the district's only
    street: its 待分拨 queue. Its police grid is its point's, wherever it waits."""
    placed = point_grids(point_grid)
    police = placed.police_grid_id
    if placed.grid_id is not None:
        return Placement(placed.grid_id, queued=False, police_grid_id=police)
    named = catalog.by_code.get(intake.grid_code or "")
    if named is not None and named.level == "grid":
        return Placement(named.id, queued=False, police_grid_id=police)
    street = _street_of(catalog, named.id) if named is not None else None
    street = street or _named_street(catalog, intake)
    if street is None and intake.lon is not None and intake.lat is not None:
        street = _street_holding(catalog, intake.lon, intake.lat)
    streets = [g.id for g in catalog.grids if g.level == "street"]
    if street is None and len(streets) == 1:
        street = streets[0]
    if intake.lon is not None:
        why = "its point lies in no grid"
    else:
        why = "it has no point and names no grid"
    return Placement(street, queued=True, note=f"待分拨: {why}", police_grid_id=police)


def _street_of(catalog: GridCatalog, grid_id: int) -> int | None:
    for node in [grid_id, *catalog.ancestors(grid_id)]:
        if catalog.by_id[node].level == "street":
            return node
    return None


def _named_street(catalog: GridCatalog, intake: RequestIntake) -> int | None:
    """The street of the community or street the intake names, or whose community's name its
    address holds."""
    names = {n.strip() for n in (intake.community, intake.street) if n and n.strip()}
    address = intake.address or ""
    for grid in catalog.grids:
        if grid.level not in ("community", "street"):
            continue
        if grid.name in names or (grid.level == "community" and grid.name and grid.name in address):
            return _street_of(catalog, grid.id)
    return None


def _street_holding(catalog: GridCatalog, lon: float, lat: float) -> int | None:
    point = shapely.Point(lon, lat)
    for grid in catalog.grids:
        if grid.level == "street" and grid.geometry.covers(point):
            return grid.id
    return None


_COLUMNS = (
    "id", "source", "source_key", "service_code", "description", "lon", "lat", "address",
    "grid_id", "requester_name", "requester_phone", "requester_email", "media_urls",
    "attributes", "reporter", "requested_at", "received_at", "status", "level", "accept_by",
    "due_at", "deadline_at", "updated_at", "police_grid_id",
)  # fmt: skip
_UPDATED = (
    "service_code", "description", "lon", "lat", "address", "requester_name",
    "requester_phone", "requester_email", "media_urls", "attributes",
)  # fmt: skip
"""What a later copy of the same request (a 12345 export of the same order) may change, with
the time asked and the due time when the copy gives them; its place in the loop, grid and
the other clocks are the loop's."""
_INTAKE = sql.Identifier("request_intake")  # a temporary table of this session
_STAGED = (
    ("placed_note", "''::text"),
    ("given_requested_at", "requested_at"),
    ("given_due_at", "due_at"),
)
"""Staged before a request's columns: the note of where it was placed, and the time asked
and the due time as its source gave them (None: not given; the stored ones stay)."""

_SELECT = sql.SQL(
    "r.id, r.source, r.source_key, r.service_code, r.description, r.lon, r.lat, r.address, "
    "r.grid_id, g.code AS grid_code, g.level AS grid_level, r.requester_name, "
    "r.requester_phone, r.requester_email, r.media_urls, r.attributes, r.reporter, "
    "r.requested_at, r.received_at, r.status, r.level, r.assignee, r.accept_by, r.due_at, "
    "r.deadline_at, r.rating, r.updated_at, r.police_grid_id"
)
_FROM = sql.SQL("requests r LEFT JOIN grids g ON g.id = r.grid_id")


@dataclass(frozen=True, slots=True)
class Stored:
    """A request as `open_requests` left it: `change` is new, updated or same; `new_text`
    whether its description is one not stored before (a new request's, or an update's that
    changed it): the text the keyword warnings are to read."""

    request: Request
    change: str
    new_text: bool


def open_requests(
    conn: psycopg.Connection,
    intakes: Sequence[tuple[RequestIntake, Placement]],
    *,
    now: datetime,
) -> list[Stored]:
    """Store each placed request: a new one with its clocks and its 'receive' event (and its
    'dispatch' event when it is placed in a grid); one stored before under the same id is
    updated where its content differs (an 'update' event). The one way a request's text is
    stored, whichever door it came through: what reads new text (the keyword warnings) reads
    what this returns, the requests whose change is not 'same'.

    The batch is COPYed into a temporary table and moved in a few statements, so a work-order
    export of thousands costs a handful of round trips.
    """
    if not intakes:
        return []
    columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    with conn.transaction():
        rows = (
            (placed.note, intake.requested_at, intake.due_at, *_row(intake, placed, now))
            for intake, placed in intakes
        )
        stage_rows(conn, _INTAKE, "requests", _COLUMNS, rows, extra=_STAGED)
        new = [
            row[0]
            for row in conn.execute(
                sql.SQL(
                    "INSERT INTO requests ({columns}) SELECT {columns} FROM {intake} ORDER BY n "
                    "ON CONFLICT DO NOTHING RETURNING id"
                ).format(columns=columns, intake=_INTAKE)
            ).fetchall()
        ]
        conn.execute(
            sql.SQL(
                """
                INSERT INTO request_events (request_id, at, action, to_status, actor, note, level)
                SELECT i.id, %(now)s, 'receive', 'received', i.reporter, i.placed_note, i.level
                FROM {intake} i WHERE i.id = ANY(%(new)s)
                UNION ALL
                SELECT i.id, %(now)s, 'dispatch', 'dispatched', 'gridwatch', NULL, i.level
                FROM {intake} i WHERE i.id = ANY(%(new)s) AND i.status = 'dispatched'
                """
            ).format(intake=_INTAKE),
            {"now": now, "new": new},
        )
        updated = _update_stored(conn, new, now)
        ids = list(dict.fromkeys(intake.id for intake, _ in intakes))
        stored = {r.id: r for r in _select(conn, ids)}
    changes = {**dict.fromkeys(updated, "updated"), **dict.fromkeys(new, "new")}
    retexted = {i for i, changed in updated.items() if changed} | set(new)
    return [Stored(stored[i], changes.get(i, "same"), i in retexted) for i in ids if i in stored]


def _row(intake: RequestIntake, placed: Placement, now: datetime) -> tuple:
    clocks = clocks_at(intake.service_code, intake.received_at, intake.due_at)
    status = "received" if placed.queued else "dispatched"
    return (
        intake.id,
        intake.source,
        intake.source_key,
        intake.service_code,
        intake.description,
        intake.lon,
        intake.lat,
        intake.address,
        placed.grid_id,
        intake.requester_name,
        intake.requester_phone,
        intake.requester_email,
        list(intake.media_urls),
        Jsonb(dict(intake.attributes)),
        intake.reporter,
        intake.requested_at or intake.received_at,
        intake.received_at,
        status,
        placed.level or ("street" if placed.queued else "grid"),
        clocks.accept_by,
        clocks.due_at,
        clocks.deadline_at,
        now,
        placed.police_grid_id,
    )


def _update_stored(
    conn: psycopg.Connection, new: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, bool]:
    """Apply the staged content to requests stored before (not those just inserted) where it
    differs; a new due time moves the deadline of a request not yet escalated. Returns the
    updated ones, each with whether its description changed (`o`: the row as it was)."""

    given = {
        name: sql.SQL("coalesce({}, {})").format(
            sql.Identifier("i", f"given_{name}"), sql.Identifier("r", name)
        )
        for name in ("requested_at", "due_at")
    }
    values = {name: sql.Identifier("i", name) for name in _UPDATED} | given
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), value) for name, value in values.items()
    )
    theirs = sql.SQL(", ").join(sql.Identifier("r", name) for name in values)
    ours = sql.SQL(", ").join(values.values())
    rows = conn.execute(
        sql.SQL(
            """
            UPDATE requests r SET {assignments}, updated_at = %(now)s,
                deadline_at = CASE WHEN r.level <> 'grid' THEN r.deadline_at
                    WHEN r.status = ANY(%(waiting)s) THEN least(r.accept_by, {due})
                    ELSE {due} END
            FROM (SELECT DISTINCT ON (id) * FROM {intake} ORDER BY id, n DESC) i, requests o
            WHERE r.id = i.id AND o.id = r.id AND NOT r.id = ANY(%(new)s)
                AND ({theirs}) IS DISTINCT FROM ({ours})
            RETURNING r.id, r.status, r.level, o.description IS DISTINCT FROM r.description
            """
        ).format(
            assignments=assignments, due=given["due_at"], intake=_INTAKE, theirs=theirs, ours=ours
        ),
        {"now": now, "new": new, "waiting": sorted(WAITING)},
    ).fetchall()
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO request_events (request_id, at, action, from_status, to_status, "
                "actor, note, level) VALUES (%s, %s, 'update', %s, %s, 'gridwatch', "
                "'a later copy from its source', %s)",
                [(rid, now, status, status, level) for rid, status, level, _ in rows],
            )
    return {rid: changed for rid, _, _, changed in rows}


def _select(conn: psycopg.Connection, ids: Sequence[uuid.UUID]) -> list[Request]:
    query = sql.SQL("SELECT {} FROM {} WHERE r.id = ANY(%s)").format(_SELECT, _FROM)
    return fetch_rows(conn, Request, query, (list(ids),))


def get_request(conn: psycopg.Connection, request_id: uuid.UUID, *, lock: bool = False) -> Request:
    """One request; NotFound if there is none."""
    key = sql.SQL("r.id = %s")
    lock_of = "r" if lock else None
    return _REQUESTS.one(conn, key, (request_id,), f"no request {request_id}", lock_of=lock_of)


def request_events(conn: psycopg.Connection, request_id: uuid.UUID) -> list[RequestEvent]:
    """The request's history, oldest first."""
    return case_events(conn, RequestEvent, "request_events", "request_id", request_id)


def transition_request(
    conn: psycopg.Connection,
    request_id: uuid.UUID,
    action: str,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    photo_urls: Sequence[str] = (),
    rating: str | None = None,
    grid_id: int | None = None,
    may_act: Callable[[Request], None] | None = None,
) -> Request:
    """Apply one step of the loop under a row lock; Conflict (with why) if it may not follow.

    `may_act(request)` is the caller's permission check, made on the locked row; it raises.
    Dispatching (to `grid_id`) starts the grid's accept clock; accepting makes the actor the
    assignee and leaves the due time running; reopening (by a step or by feedback rated
    不满意) gives the request fresh periods at its level.
    """
    with conn.transaction():
        request = get_request(conn, request_id, lock=True)
        if may_act is not None:
            may_act(request)
        target = next_status(action, request.status, rating)
        accept_by, due = request.accept_by, request.due_at
        level, grid, assignee = request.level, request.grid_id, request.assignee
        if action == "dispatch":
            grid, level, assignee = grid_id, "grid", None
            accept_by = now + timedelta(hours=service(request.service_code).accept_h)
        elif action == "accept":
            assignee = actor
        elif target == "reopened":
            fresh = clocks_at(request.service_code, now)
            accept_by, due = fresh.accept_by, fresh.due_at
        conn.execute(
            "UPDATE requests SET status = %s, grid_id = %s, level = %s, assignee = %s, "
            "accept_by = %s, due_at = %s, deadline_at = %s, rating = coalesce(%s, rating), "
            "updated_at = %s WHERE id = %s",
            (
                target,
                grid,
                level,
                assignee,
                accept_by,
                due,
                deadline_after(target, accept_by, due),
                rating,
                now,
                request_id,
            ),
        )
        conn.execute(
            "INSERT INTO request_events (request_id, at, action, from_status, to_status, actor, "
            "note, photo_urls, rating, level) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (request_id, now, action, request.status, target, actor, note, list(photo_urls),
             rating, level),
        )  # fmt: skip
        return get_request(conn, request_id)


def open_request_clocks(conn: psycopg.Connection, *, now: datetime) -> list[RequestClock]:
    """Open requests below the street past their deadline: what the request clocks of
    `gridwatch alerts` look at."""
    query = (
        "SELECT id, service_code, status, level, deadline_at FROM requests "
        "WHERE status = ANY(%s) AND deadline_at <= %s AND level <> 'street'"
    )
    clocks = fetch_rows(conn, RequestClock, query, (sorted(OPEN_STATUSES), now))
    conn.commit()
    return clocks


def apply_request_escalations(
    conn: psycopg.Connection, plan: Sequence[RequestEscalation], *, now: datetime
) -> int:
    """Write the escalation plan, each step with its event; returns the escalations written.

    Under an advisory lock, and each update checks the level and status it expects (a request
    accepted meanwhile has another clock), so two alert processes never escalate one step
    twice.
    """
    escalated = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for step in plan:
            waiting = step.reason == "not accepted in time"
            statuses = sorted(WAITING if waiting else OPEN_STATUSES - WAITING)
            row = conn.execute(
                "UPDATE requests SET level = %s, deadline_at = %s, updated_at = %s "
                "WHERE id = %s AND level = %s AND status = ANY(%s) AND deadline_at <= %s "
                "RETURNING status",
                (step.to_level, step.new_deadline, now, step.request_id, step.from_level,
                 statuses, step.passed),
            ).fetchone()  # fmt: skip
            if row is None:
                continue
            conn.execute(
                "INSERT INTO request_events (request_id, at, action, from_status, to_status, "
                "actor, note, level) VALUES (%s, %s, 'escalate', %s, %s, 'gridwatch', %s, %s)",
                (
                    step.request_id,
                    now,
                    row[0],
                    row[0],
                    f"{step.reason}: deadline {step.passed.isoformat()} passed at "
                    f"{step.from_level} level; escalated to {step.to_level}, new deadline "
                    f"{step.new_deadline.isoformat()}",
                    step.to_level,
                ),
            )
            escalated += 1
    return escalated


_REQUESTS = Listing(
    Request,
    _SELECT,
    _FROM,
    sql.SQL("r.received_at DESC, r.id DESC"),
    sql.SQL("(r.received_at, r.id) < (%(after_t)s, %(after_id)s)"),
)


def request_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    ids: Sequence[uuid.UUID] | None = None,
    statuses: Sequence[str] | None = None,
    service_codes: Sequence[str] | None = None,
    level: str | None = None,
    sources: Sequence[str] | None = None,
) -> Page[Request]:
    """Requests newest first (by received time); `filters.me` sees what they entered."""
    where, params = where_filters(
        filters, alias="r", time_column="requested_at", owner_column="reporter"
    )
    where_columns(
        where, params, "r", status=statuses, service_code=service_codes, level=level,
        source=sources,
    )  # fmt: skip
    if ids is not None:
        where.append(sql.SQL("r.id = ANY(%(ids)s)"))
        params["ids"] = list(ids)
    keyset = None if after is None else {"after_t": after[0], "after_id": after[1]}
    return _REQUESTS.page(conn, where, params, after=keyset, limit=limit)


def latest_notes(conn: psycopg.Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The last note written on each of these requests (what was done, or why it waits)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (request_id) request_id, note FROM request_events "
        "WHERE request_id = ANY(%s) AND note IS NOT NULL ORDER BY request_id, at DESC, id DESC",
        (list(ids),),
    ).fetchall()
    return dict(rows)


@dataclass(frozen=True, slots=True)
class ForgottenRequester:
    """What `forget_requester` did: the requests whose contact it removed (the one asked
    for first) and whether any contact was left to remove."""

    request_ids: list[uuid.UUID]
    removed: bool


def forget_requester(
    conn: psycopg.Connection, key: str, *, actor: str, now: datetime
) -> ForgottenRequester:
    """Remove a requester's contact — name, phone, email, the address they gave — and their
    words in the feedback (回访) steps, from the request `key` (its id, or the source's own
    number: a 12345 工单编号) and from every other request with the same phone or email (the
    same person asking again), and record it in the audit, in one transaction. The requests
    themselves, their place, text and history stay: the ledger's counts and clocks stay true.
    """
    with conn.transaction():
        first = _request_by_key(conn, key)
        rows = conn.execute(
            "SELECT id, num_nonnulls(requester_name, requester_phone, requester_email, address) "
            "FROM requests WHERE id = %(id)s OR requester_phone = %(phone)s "
            "OR requester_email = %(email)s ORDER BY id = %(id)s DESC, received_at, id FOR UPDATE",
            {"id": first.id, "phone": first.requester_phone, "email": first.requester_email},
        ).fetchall()
        ids = [row[0] for row in rows]
        conn.execute(
            "UPDATE requests SET requester_name = NULL, requester_phone = NULL, "
            "requester_email = NULL, address = NULL, updated_at = %s WHERE id = ANY(%s)",
            (now, ids),
        )
        conn.execute(
            "UPDATE request_events SET note = NULL WHERE request_id = ANY(%s) "
            "AND action = 'feedback' AND note IS NOT NULL",
            (ids,),
        )
        record_audit(
            conn,
            actor=actor,
            role=None,
            action=FORGET,
            what="gridwatch requests forget",
            resident_ids=[f"{AUDIT_PREFIX}{i}" for i in ids],
            at=now,
        )
    return ForgottenRequester(ids, removed=any(row[1] for row in rows))


def _request_by_key(conn: psycopg.Connection, key: str) -> Request:
    """The request with id `key`, else the one whose source numbered it `key`."""
    try:
        return get_request(conn, uuid.UUID(key), lock=True)
    except ValueError:
        pass
    query = sql.SQL("SELECT {} FROM {} WHERE r.source_key = %s ORDER BY r.received_at").format(
        _SELECT, _FROM
    )
    found = fetch_rows(conn, Request, query, (key,))
    if not found:
        raise NotFound(f"no request {key!r} (a request id or a source's number, e.g. 工单编号)")
    if len(found) > 1:
        sources = ", ".join(r.source for r in found)
        raise Conflict(f"{key!r} numbers requests of several sources ({sources}); give the id")
    return found[0]
