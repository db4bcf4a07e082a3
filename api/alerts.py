"""Alerts for people: acknowledge, resolve (with `checked: true` when someone saw the person
well), and the live stream of alert events as Server-Sent Events with Last-Event-ID resume."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from gridwatch.api.auth import Reader
from gridwatch.api.bodies import AckBody, AlertResolveBody
from gridwatch.api.collections import get_visible_alert
from gridwatch.api.disclosure import (
    alert_resident,
    record_reads,
    record_reads_apart,
    shown_in_clear,
)
from gridwatch.api.features import alert_feature, event_json
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.responses import GeoJSONResponse, dumps
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.api.stream import events_between
from gridwatch.maps.tiles import display_transform
from gridwatch.store.alert_store import acknowledge_alert, resolve_alert
from gridwatch.store.api_layers import get_alert
from gridwatch.store.users import Principal

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]
KEEPALIVE_S = 15.0


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
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="like Last-Event-ID, for clients that cannot set it"),
    ] = None,
    crs: Annotated[
        Literal["wgs84", "gcj02"], Query(description="positions for GCJ-02 map tiles")
    ] = "wgs84",
):
    """Each event: `id:` the alert_events id, `event: alert`, `data:` JSON. Events are in
    id order; a client that reconnects with the last id it saw misses none and sees none
    twice. Only alerts of the caller's grids are sent."""
    resume = after
    if last_event_id is not None:
        try:
            resume = int(last_event_id)
        except ValueError:
            raise BadRequest("Last-Event-ID must be an event id (an integer)") from None
        if not 0 <= resume <= 2**62:
            raise BadRequest("Last-Event-ID is out of range")
    feed = state.feed
    scope = None if principal.sees_all else principal.scope_param()
    display = display_transform(crs)

    def frame(event) -> bytes:
        data = dumps(event_json(event, principal, display)).decode()
        return f"id: {event.id}\nevent: alert\ndata: {data}\n\n".encode()

    async def audited(events: list) -> bytes:
        """Frames of `events`, sent only once the audit holds whose names they show."""
        shown = shown_in_clear(principal, events, alert_resident)
        if shown:
            await anyio.to_thread.run_sync(
                record_reads_apart, state, principal, request, shown, limiter=state.db_limiter
            )
        return b"".join(frame(event) for event in events)

    async def events():
        queue = feed.subscribe()
        try:
            floor = feed.watermark
            yield f"retry: 3000\n: gridwatch alert stream, from event {floor}\n\n".encode()
            if resume is not None and resume < floor:
                missed = await anyio.to_thread.run_sync(
                    _missed, state, resume, floor, scope, limiter=state.db_limiter
                )
                if missed:
                    yield await audited(missed)
            if resume is not None:
                floor = max(floor, resume)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:  # fell behind; the client reconnects and catches up
                    return
                if event.id <= floor:
                    continue
                floor = event.id
                if scope is None or event.grid_id in principal.grid_ids:
                    yield await audited([event])
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _missed(state, after: int, upto: int, scope):
    with state.pool.connection() as conn:
        return events_between(conn, after, upto, scope=scope)
