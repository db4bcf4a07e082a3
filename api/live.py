"""Live streams as Server-Sent Events: the feed's rows (api/stream.py) in lanes, each lane one
kind of row in its own id order, resumed with Last-Event-ID (the lanes' positions joined by
dots) with none lost or sent twice; only rows of the caller's grids are sent, and the caller
is looked up again every few seconds. `/alerts/stream` (api/alerts.py) sends alert events
and warnings this way; `/cases/stream` here the steps of hazards and requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from gridwatch.api.auth import Reader, authenticate, scope_filters
from gridwatch.api.disclosure import ALERT_RESIDENT, record_reads_apart, shown_in_clear
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.responses import dumps
from gridwatch.api.runtime import ApiState, State
from gridwatch.api.stream import AlertEvent, CaseStep, case_events_between
from gridwatch.errors import GridwatchError
from gridwatch.store.filters import Filters
from gridwatch.store.users import Principal

router = APIRouter(tags=["hazard loop"])

KEEPALIVE_S = 15.0
STREAM_RECHECK_MAX_S = 10.0
REPLAY_PAGE = 500  # events read and sent at a time when a client catches up
# The id of the last event a reconnecting client saw (the SSE standard's request header).
LastEventId = Annotated[str | None, Header(max_length=48)]


def stream_route(on: APIRouter, path: str, summary: str):
    """Register a live stream (Server-Sent Events) at `path`: the decorator of its handler,
    which returns `live_response`."""
    return on.get(
        path,
        summary=summary,
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )


CASE_KINDS = ("hazard", "request")


class StreamViewer:
    """The caller of an open stream, looked up again every `every_s`: a revoked user's
    stream ends, so does one whose role changed, and one whose grids changed hears their
    new grids from then on."""

    def __init__(self, request: Request, principal: Principal, every_s: float) -> None:
        self.request = request
        self.principal = principal
        self.every_s = every_s
        self._due = time.monotonic() + every_s

    @property
    def filters(self) -> Filters:
        """The caller's grids, of either system: what the replay of what they missed reads."""
        return scope_filters(self.principal)

    def seconds_to_check(self) -> float:
        return max(0.0, self._due - time.monotonic())

    async def still_allowed(self) -> bool:
        """Whether the caller may still read the stream (looked up if it is time)."""
        if time.monotonic() < self._due:
            return True
        try:
            fresh = await authenticate(self.request, fresh=True)
        except GridwatchError:
            return False
        before = self.principal
        if fresh is None or (fresh.user_id, fresh.role, fresh.level) != (
            before.user_id,
            before.role,
            before.level,
        ):
            return False
        self.principal = fresh
        self._due = time.monotonic() + self.every_s
        return True


def stream_recheck_s(settings) -> float:
    """How often an open stream looks its caller up: as often as a token is trusted from the
    cache, at most STREAM_RECHECK_MAX_S apart and at least a second."""
    cached = settings.api_token_cache_s
    return min(STREAM_RECHECK_MAX_S, max(1.0, cached)) if cached > 0 else 1.0


Missed = Callable[[ApiState, int, int, Filters], list]


@dataclass
class Lane:
    """One kind of row a stream sends: which rows (`takes`, of the feed's type `kind`), the
    SSE event name, the feed's position in them (`floor`), where the client resumes
    (None: from now), how to read what it missed, and a row's JSON for a caller."""

    kind: type
    takes: Callable[[Any], bool]
    event: str
    floor: Callable[[], int]
    resume: int | None
    missed: Missed
    data: Callable[[Any, Principal], dict]
    at: int = 0  # the last id the client was sent (or passed over) in this lane
    passed: int = 0  # the last id of the feed this stream has dealt with


_NOTHING = object()  # no event came while the stream waited


def live_response(
    request: Request, state: ApiState, principal: Principal, lanes: list[Lane], name: str
) -> StreamingResponse:
    """The stream of `lanes` for the caller: what they missed since their resume ids (a
    page at a time), then what is new, in each lane's id order; every frame that shows a
    resident in clear is audited before it goes out."""
    feed = state.feed
    viewer = StreamViewer(request, principal, stream_recheck_s(state.settings))

    def position() -> str:
        return ".".join(str(lane.at) for lane in lanes)

    def lane_of(event) -> Lane | None:
        return next((lane for lane in lanes if lane.takes(event)), None)

    def frame(lane: Lane, event) -> bytes:
        lane.at = event.id
        data = dumps(lane.data(event, viewer.principal)).decode()
        return f"id: {position()}\nevent: {lane.event}\ndata: {data}\n\n".encode()

    async def audited(lane: Lane, events: list) -> bytes:
        """Frames of `lane`'s `events`, sent only once the audit holds whose names they show."""
        alerts = [e for e in events if isinstance(e, AlertEvent)]
        shown = shown_in_clear(viewer.principal, alerts, ALERT_RESIDENT)
        if shown:
            await anyio.to_thread.run_sync(
                record_reads_apart,
                state,
                viewer.principal,
                request,
                shown,
                limiter=state.db_limiter,
            )
        return b"".join(frame(lane, event) for event in events)

    async def missed(lane: Lane, after: int, upto: int):
        """What the client missed, a page at a time (the history can be long)."""
        while await viewer.still_allowed():
            page = await anyio.to_thread.run_sync(
                lane.missed, state, after, upto, viewer.filters, limiter=state.db_limiter
            )
            if page:
                yield await audited(lane, page)
            if len(page) < REPLAY_PAGE:
                return
            after = page[-1].id

    async def events():
        queue = feed.subscribe(tuple({lane.kind for lane in lanes}))
        try:
            for lane in lanes:
                lane.passed = lane.floor()
                lane.at = lane.passed if lane.resume is None else lane.resume
            # A comment, never an `event:` without data: clients that parse every event
            # line (not only complete events) have nothing to trip on.
            yield f"retry: 3000\n: gridwatch {name} stream, after event {position()}\n\n".encode()
            for lane in lanes:
                if lane.resume is not None and lane.resume < lane.passed:
                    async for frames in missed(lane, lane.resume, lane.passed):
                        yield frames
                if lane.resume is not None:
                    lane.passed = max(lane.passed, lane.resume)
                lane.at = lane.passed
            quiet_since = time.monotonic()
            while True:
                wait = min(
                    KEEPALIVE_S - (time.monotonic() - quiet_since), viewer.seconds_to_check()
                )
                try:
                    event = await asyncio.wait_for(queue.get(), max(wait, 0.0))
                except TimeoutError:
                    event = _NOTHING
                if not await viewer.still_allowed():
                    return
                if event is None:  # fell behind; the client reconnects and catches up
                    return
                taking = None if event is _NOTHING else lane_of(event)
                if taking is None or event.id <= taking.passed:
                    if time.monotonic() - quiet_since >= KEEPALIVE_S:
                        quiet_since = time.monotonic()
                        yield b": keepalive\n\n"
                    continue
                taking.passed = event.id
                if viewer.principal.sees_grid(event.grid_id, event.police_grid_id):
                    quiet_since = time.monotonic()
                    yield await audited(taking, [event])
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def resume_ids(text: str, lanes: int, what: str) -> list[int]:
    """`lanes` ids joined by dots (`H.R`); 400 with why otherwise."""
    parts = text.split(".")
    try:
        ids = [int(part) for part in parts]
    except ValueError:
        ids = []
    if len(ids) != lanes or len(parts) != lanes:
        raise BadRequest(f"{what} must be {lanes} event ids joined by dots (e.g. 0.0)")
    if not all(0 <= i <= 2**62 for i in ids):
        raise BadRequest(f"{what} is out of range")
    return ids


def case_json(event: CaseStep, principal: Principal) -> dict:
    """One step of a case on the live stream."""
    return {
        "event_id": event.id,
        "case_id": str(event.case_id),
        "kind": event.kind,
        "at": event.at,
        "action": event.action,
        "actor": event.actor,
        "note": event.note,
        "to_status": event.to_status,
        "status": event.status,
        "level": event.level,
        "grid": event.grid_code,
        "category": event.category,
        "severity": event.severity,
    }


def _case_lane(state: ApiState, kind: str, resume: int | None) -> Lane:
    def missed(state: ApiState, after: int, upto: int, filters: Filters) -> list:
        with state.pool.connection() as conn:
            return case_events_between(conn, kind, after, upto, filters=filters, limit=REPLAY_PAGE)

    return Lane(
        CaseStep,
        lambda event: isinstance(event, CaseStep) and event.kind == kind,
        "case",
        lambda: state.feed.case_watermark(kind),
        resume,
        missed,
        case_json,
    )


def case_stream_start(state: ApiState) -> str:
    """Where a page served now starts its case stream (`after`): nothing it shows is missed."""
    return ".".join(str(state.feed.case_watermark(kind)) for kind in CASE_KINDS)


@stream_route(
    router,
    "/cases/stream",
    "Live steps of hazards and requests (Server-Sent Events); resume with Last-Event-ID",
)
async def case_stream(
    request: Request,
    principal: Reader,
    state: State,
    last_event_id: LastEventId = None,
    after: Annotated[
        str | None,
        Query(max_length=48, description="like Last-Event-ID (`H.R`), for clients that cannot"),
    ] = None,
):
    """Each event: `id: H.R` (the last hazard step and the last request step the stream has
    passed), `event: case`, `data:` JSON of the step (`case_id`, `kind` hazard or request,
    `action`, `actor`, `note`, `to_status`, the case's `status`, `level`, `grid`, `category`,
    `severity`). Steps of cases in the caller's grids only, each kind in id order; a client
    that reconnects with the last id it saw misses none and sees none twice. The stream ends
    when the caller's token is revoked or their role changes."""
    given = last_event_id if last_event_id is not None else after
    what = "Last-Event-ID" if last_event_id is not None else "after"
    resume = resume_ids(given, len(CASE_KINDS), what) if given is not None else [None, None]
    lanes = [_case_lane(state, kind, at) for kind, at in zip(CASE_KINDS, resume, strict=True)]
    return live_response(request, state, principal, lanes, "case")
