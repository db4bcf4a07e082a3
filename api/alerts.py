"""Alerts for people: acknowledge, resolve (with `checked: true` when someone saw the person
well), and the live stream of alert events as Server-Sent Events with Last-Event-ID resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from gridwatch.api.auth import Reader
from gridwatch.api.bodies import AckBody, AlertResolveBody, Strict, with_body
from gridwatch.api.collections import get_visible_alert
from gridwatch.api.disclosure import (
    ALERT_RESIDENT,
    record_reads,
    shown_in_clear,
)
from gridwatch.api.features import alert_feature, event_json, warning_event_json
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.live import REPLAY_PAGE, Lane, LastEventId, live_response, stream_route
from gridwatch.api.responses import GeoJSONResponse
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.api.stream import AlertEvent, events_between
from gridwatch.maps.tiles import display_transform
from gridwatch.store.alerts import acknowledge_alert, get_alert, resolve_alert
from gridwatch.store.filters import Filters
from gridwatch.store.users import Principal
from gridwatch.store.warnings import WarningRow, warnings_between

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]


def _alert_route(
    action: str,
    step: Callable[..., object],
    model: type[Strict],
    summary: str,
    conflict: str,
    *,
    optional: bool = False,
) -> None:
    """Register `/alerts/{alert_id}/{action}`: `step` with the fields of its body (`model`;
    its defaults where an `optional` body is left out)."""

    def handler(
        request: Request,
        principal: Reader,
        conn: Conn,
        state: State,
        alert_id: AlertId,
        body=None,
    ):
        fields = (body or model()).model_dump()
        return _alert_step(step, request, principal, conn, state, alert_id, **fields)

    handler.__name__ = handler.__qualname__ = action
    router.post(
        f"/alerts/{{alert_id}}/{action}",
        response_class=GeoJSONResponse,
        summary=summary,
        responses={409: {"description": conflict}},
    )(with_body(handler, model, optional=optional))


_alert_route(
    "ack",
    acknowledge_alert,
    AckBody,
    "Acknowledge an alert: someone takes it, escalation stops",
    "the alert is not open",
    optional=True,
)
_alert_route(
    "resolve",
    resolve_alert,
    AlertResolveBody,
    "Resolve an alert with what was found",
    "the alert is already resolved",
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
    record_reads(conn, principal, request, shown_in_clear(principal, [row], ALERT_RESIDENT))
    return GeoJSONResponse(alert_feature(row, principal))


@stream_route(
    router, "/alerts/stream", "Live alert events (Server-Sent Events); resume with Last-Event-ID"
)
async def stream(
    request: Request,
    principal: Reader,
    state: State,
    last_event_id: LastEventId = None,
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
    display = display_transform(crs)
    lanes = [
        Lane(
            AlertEvent,
            lambda event: isinstance(event, AlertEvent),
            "alert",
            lambda: feed.watermark,
            resume,
            _missed,
            lambda event, principal: event_json(event, principal, display),
        )
    ]
    if warnings:
        lanes.append(
            Lane(
                WarningRow,
                lambda event: isinstance(event, WarningRow),
                "warning",
                lambda: feed.warning_watermark,
                resume_warning,
                _missed_warnings,
                lambda row, principal: warning_event_json(row, principal, display),
            )
        )
    return live_response(request, state, principal, lanes, "alert")


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


def _missed(state, after: int, upto: int, filters: Filters):
    with state.pool.connection() as conn:
        return events_between(conn, after, upto, filters=filters, limit=REPLAY_PAGE)


def _missed_warnings(state, after: int, upto: int, filters: Filters):
    with state.pool.connection() as conn:
        return warnings_between(conn, after, upto, level=2, filters=filters, limit=REPLAY_PAGE)
