"""The FastAPI application: `create_app(settings, database_url=...)`.

Its lifespan opens the connection pool and starts the live alert feed, and stops them on
the way out. The API only serves and writes: hazard deadlines are set when a hazard is
stored, and overdue hazards escalate in `gridwatch alerts` (`gridwatch.dispatch.clocks`).
Nothing is global: two apps in one process (tests do that) share nothing.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool, PoolTimeout

from gridwatch import __version__
from gridwatch.api import (
    absences,
    alerts,
    audit,
    collections,
    console,
    contacts,
    coverage,
    hazards,
    live,
    map_pages,
    media,
    open311,
    phone,
    photos,
    places,
    reports,
    requests,
    site,
)
from gridwatch.api.guard import RequestGuard, SecurityHeaders
from gridwatch.api.http_errors import install_error_handlers
from gridwatch.api.ratelimit import RateBuckets, RateLimit, TokenBuckets
from gridwatch.api.runtime import ApiState, Clock, wall_clock
from gridwatch.api.stream import AlertFeed
from gridwatch.errors import ServiceUnavailable
from gridwatch.maps.tiles import tiles_for
from gridwatch.settings import Settings
from gridwatch.store.changes import ChangeWatcher
from gridwatch.store.db import describe_url

DESCRIPTION = """
Layers of the district as **OGC API - Features** (GeoJSON, WGS-84), patrol check-ins and
hazard reports (the same payloads as MQTT), the hazard loop (发现-上报-处置-反馈) with its
ledger, citizens' requests (诉求) and their loop, Open311 GeoReport v2 at `/open311/v2/`,
alerts with a live stream, registered absences, patrol coverage, and map pages.

Every route but `/healthz`, `/readyz`, the landing page and the docs needs
`Authorization: Bearer <token>` (`gridwatch users add NAME --role ...` prints one).
Errors are JSON: `{"error": "...", "reason": "..."}`.
"""


def create_app(
    settings: Settings,
    *,
    database_url: str,
    mqtt_url: str | None = None,
    clock: Clock = wall_clock,
    feed_poll_s: float = 0.5,
) -> FastAPI:
    """The API over `database_url`; `clock` is injected so tests can move time."""
    tiles_for(settings.tiles, tianditu_key=settings.tianditu_key)  # a bad setting fails now

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = ConnectionPool(
            database_url,
            min_size=2,
            max_size=settings.api_pool_size,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": 10},
            name="gridwatch-api",
        )
        try:
            pool.open(wait=True, timeout=30)
        except PoolTimeout:
            pool.close()
            raise ServiceUnavailable(
                f"cannot connect to PostgreSQL at {describe_url(database_url)}"
            ) from None
        changes = ChangeWatcher(database_url)
        state = ApiState(
            settings,
            pool,
            feed=AlertFeed(pool, poll_s=feed_poll_s, changes=changes),
            coverage=coverage.CoverageCache(),
            clock=clock,
            mqtt_url=mqtt_url,
        )
        state.db_limiter = anyio.CapacityLimiter(settings.api_pool_size)
        state.changes = changes
        await anyio.to_thread.run_sync(state.changes.start)
        app.state.gw = state
        await state.feed.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(state.changes.stop)
            await state.feed.stop()
            pool.close()

    app = FastAPI(
        title="gridwatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /openapi.json are api/site.py's, in Chinese or English
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    # Map pages and layers shrink several times over a phone's link; event streams are
    # never compressed (Starlette leaves text/event-stream alone).
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    # Outermost last: headers on every answer, CORS (preflights are not counted), rate
    # limits before a body is read, then the size limit while it is read.
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.api_max_body_bytes,
        photo_body_bytes=media.photo_body_limit(
            settings.api_max_body_bytes, settings.media_max_bytes
        ),
        takes_photos=media.takes_photos,
    )
    if settings.api_rate_per_s > 0:
        app.add_middleware(RateLimit, **rate_limits(settings))
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_credentials=False,  # bearer tokens only: cookies never go cross-origin
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        SecurityHeaders,
        tile_hosts=tiles_for(settings.tiles, tianditu_key=settings.tianditu_key).hosts,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = collections.advertise_page_sizes(
                FastAPI.openapi(app), settings.api_default_limit, settings.api_max_limit
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    routers = (
        site,
        collections,
        reports,
        hazards,
        requests,
        open311,
        alerts,
        live,
        absences,
        coverage,
        map_pages,
        console,
        places,
        phone,
        audit,
        photos,
        contacts,
    )
    for module in routers:
        app.include_router(module.router)
    # Our own assets, then the vendored libraries: static/vendor/<library> is served as
    # /static/<library>.
    app.mount(
        "/static",
        StaticFiles(
            packages=[("gridwatch.maps", "static"), ("gridwatch.maps", "static/vendor")],
            follow_symlink=False,
        ),
        name="static",
    )
    return app


def rate_limits(settings: Settings) -> RateBuckets:
    """The buckets of one app, from the settings."""
    failures_per_min = settings.api_auth_failures_per_min
    return RateBuckets(
        per_token=TokenBuckets(settings.api_rate_per_s, settings.api_rate_burst),
        per_page=TokenBuckets(settings.api_page_rate_per_s, settings.api_page_burst),
        anonymous=TokenBuckets(settings.api_anonymous_rate_per_s, settings.api_anonymous_burst),
        failures=TokenBuckets(failures_per_min / 60, max(failures_per_min, 1.0)),
    )
