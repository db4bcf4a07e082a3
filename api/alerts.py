"""Alerts for people: acknowledge, resolve (with `checked: true` when someone saw the person
well), and the live stream of alert events as Server-Sent Events with Last-Event-ID resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from gridwatch.api.auth import Reader, authenticate
from gridwatch.api.bodies import AckBody, AlertResolveBody
from gridwatch.api.collections import get_visible_alert
from gridwatch.api.disclosure import (
    alert_resident,
    record_reads,
    record_reads_apart,
    shown_in_clear,
)
from gridwatch.api.features import alert_feature, event_json, warning_event_json
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.responses import GeoJSONResponse, dumps
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.api.stream import AlertEvent, events_between
from gridwatch.errors import GridwatchError
from gridwatch.maps.tiles import display_transform
from gridwatch.store.alerts import acknowledge_alert, get_alert, resolve_alert
from gridwatch.store.users import Principal
from gridwatch.store.warnings import WarningRow, warnings_between

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]
KEEPALIVE_S = 15.0
STREAM_RECHECK_MAX_S = 10.0
REPLAY_PAGE = 500  # events read and sent at a time when a client catches up


@router.post(
    "/alerts/{alert_id}/ack",
    response_class=GeoJSONResponse,
    summary="Acknowledge an alert: someone takes it, escalation stops",
    responses={409: {"description": "the alert is not open"}},
)
def ack(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    alert_id: AlertId,
    body: AckBody | None = None,
):
    return _alert_step(
        acknowledge_alert,
        request,
        principal,
        conn,
        state,
        alert_id,
        note=body.note if body else None,
    )


@router.post(
    "/alerts/{alert_id}/resolve",
    response_class=GeoJSONResponse,
    summary="Resolve an alert with what was found",
    responses={409: {"description": "the alert is already resolved"}},
)
def resolve(
    request: Request,
    principal: Reader,
    conn: Conn,
    state: State,
    alert_id: AlertId,
    body: AlertResolveBody,
):
    return _alert_step(
        resolve_alert,
        request,
        principal,
        conn,
        state,
        alert_id,
        reason=body.reason,
        checked=body.checked,
    )


def _alert_step(
    step: Callable[..., object],
    request: Request,
    principal: Principal,
    conn,
    state: ApiState,
    alert_id: int,
    **fields,
) -> GeoJSONResponse:
    """A person's step on an alert they can see (`step` with `fields`), and the alert after."""
    get_visible_alert(conn, principal, alert_id)
    step(
        conn,
        alert_id,
        actor=principal.name,
        now=state.now(),
        topic_prefix=state.settings.topic_prefix,
        webhooks=state.settings.alert_webhooks,
        **fields,
    )
    row = get_alert(conn, alert_id)
    record_reads(conn, principal, request, shown_in_clear(principal, [row], alert_resident))
    return GeoJSONResponse(alert_feature(row, principal))


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
    def scope(self) -> list[int] | None:
        return None if self.principal.sees_all else self.principal.scope_param()

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


@router.get(
    "/alerts/stream",
    summary="Live alert events (Server-Sent Events); resume with Last-Event-ID",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    principal: Reader,
    state: State,
    last_event_id: Annotated[str | None, Header(max_length=48)] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="like Last-Event-ID, for clients that cannot set it"),
    ] = None,
    crs: Annotated[
        Literal["wgs84", "gcj02"], Query(description="positions for GCJ-02 map tiles")
    ] = "wgs84",
    warnings: Annotated[
        bool,
        Query(description="also level-2 dispute warnings (`event: warning`); ids become A.W"),
    ] = False,
    after_warning: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="with `warnings`: the warning id to resume after"),
    ] = None,
):
    """Each event: `id:` the alert_events id, `event: alert`, `data:` JSON. Events are in
    id order; a client that reconnects with the last id it saw misses none and sees none
    twice. Only alerts of the caller's grids are sent. The caller is looked up again every
    few seconds: the stream ends when their token is revoked or their role changes, and
    follows their grids when those change.

    With `warnings=true` the level-2 dispute warnings of the caller's grids come too, as
    `event: warning` (the fields MQTT and webhooks receive, with `grid`, `lon`, `lat`), and
    every id is `A.W`: the last alert event and the last warning the stream has passed, so
    that Last-Event-ID resumes both."""
    resume, resume_warning = _resume_ids(last_event_id, after, after_warning)
    feed = state.feed
    viewer = StreamViewer(request, principal, stream_recheck_s(state.settings))
    display = display_transform(crs)
    at = {"alert": 0, "warning": 0}  # the stream's position in each kind

    def frame_id(kind: str, row_id: int) -> str:
        at[kind] = row_id
        return f"{at['alert']}.{at['warning']}" if warnings else str(row_id)

    def frame(event) -> bytes:
        if isinstance(event, WarningRow):
            data = dumps(warning_event_json(event, viewer.principal, display)).decode()
            return f"id: {frame_id('warning', event.id)}\nevent: warning\ndata: {data}\n\n".encode()
        data = dumps(event_json(event, viewer.principal, display)).decode()
        return f"id: {frame_id('alert', event.id)}\nevent: alert\ndata: {data}\n\n".encode()

    async def audited(events: list) -> bytes:
        """Frames of `events`, sent only once the audit holds whose names they show."""
        shown = shown_in_clear(
            viewer.principal, [e for e in events if isinstance(e, AlertEvent)], alert_resident
        )
        if shown:
            await anyio.to_thread.run_sync(
                record_reads_apart,
                state,
                viewer.principal,
                request,
                shown,
                limiter=state.db_limiter,
            )
        return b"".join(frame(event) for event in events)

    async def missed(read, after: int, upto: int):
        """What the client missed, a page at a time (the history can be long)."""
        while await viewer.still_allowed():
            page = await anyio.to_thread.run_sync(
                read, state, after, upto, viewer.scope, limiter=state.db_limiter
            )
            if page:
                yield await audited(page)
            if len(page) < REPLAY_PAGE:
                return
            after = page[-1].id

    async def events():
        queue = feed.subscribe()
        try:
            floor = feed.watermark
            warning_floor = feed.warning_watermark
            # A comment, never an `event:` without data: clients that parse every event
            # line (not only complete events) have nothing to trip on.
            at["alert"] = floor if resume is None else resume
            at["warning"] = warning_floor if resume_warning is None else resume_warning
            start = f"{at['alert']}.{at['warning']}" if warnings else str(at["alert"])
            yield f"retry: 3000\n: gridwatch alert stream, after event {start}\n\n".encode()
            if resume is not None and resume < floor:
                async for frames in missed(_missed, resume, floor):
                    yield frames
            if resume is not None:
                floor = max(floor, resume)
            at["alert"] = floor
            if warnings and resume_warning is not None and resume_warning < warning_floor:
                async for frames in missed(_missed_warnings, resume_warning, warning_floor):
                    yield frames
            if resume_warning is not None:
                warning_floor = max(warning_floor, resume_warning)
            at["warning"] = warning_floor
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
                is_warning = isinstance(event, WarningRow)
                passed = warning_floor if is_warning else floor
                if event is _NOTHING or event.id <= passed or (is_warning and not warnings):
                    if time.monotonic() - quiet_since >= KEEPALIVE_S:
                        quiet_since = time.monotonic()
                        yield b": keepalive\n\n"
                    continue
                if is_warning:
                    warning_floor = event.id
                else:
                    floor = event.id
                if viewer.principal.sees_grid(event.grid_id):
                    quiet_since = time.monotonic()
                    yield await audited([event])
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_ids(
    last_event_id: str | None, after: int | None, after_warning: int | None
) -> tuple[int | None, int | None]:
    """Where a stream resumes, in alert events and in warnings: Last-Event-ID (`A` or `A.W`)
    before the query's `after` and `after_warning`."""
    if last_event_id is None:
        return after, after_warning
    alert_part, dot, warning_part = last_event_id.partition(".")
    try:
        ids = [int(alert_part), int(warning_part) if dot else None]
    except ValueError:
        raise BadRequest("Last-Event-ID must be an event id (an integer, or A.W)") from None
    if not all(0 <= i <= 2**62 for i in ids if i is not None):
        raise BadRequest("Last-Event-ID is out of range")
    return ids[0], ids[1] if dot else after_warning


_NOTHING = object()  # no event came while the stream waited


def _missed(state, after: int, upto: int, scope):
    with state.pool.connection() as conn:
        return events_between(conn, after, upto, scope=scope, limit=REPLAY_PAGE)


def _missed_warnings(state, after: int, upto: int, scope):
    with state.pool.connection() as conn:
        return warnings_between(conn, after, upto, level=2, scope=scope, limit=REPLAY_PAGE)
