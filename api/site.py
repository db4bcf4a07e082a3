"""The landing page, conformance, health and readiness, who-am-I, login for map pages, and
the API docs (served with local assets, like everything else)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gridwatch.api.auth import SESSION_COOKIE, Caller
from gridwatch.api.responses import JSONResponse
from gridwatch.api.runtime import State
from gridwatch.errors import ConfigError
from gridwatch.ingest.mqtt import tls_context
from gridwatch.maps.texts import texts_for
from gridwatch.store.users import create_session, end_session

router = APIRouter(tags=["service"])
MAX_FORM_BYTES = 4096


@router.get("/", response_class=JSONResponse, summary="Landing page (OGC API)")
def landing(request: Request, state: State):
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "title": "gridwatch",
            "description": "Community grid governance: layers, hazards, alerts, maps.",
            "links": [
                {"href": f"{base}/", "rel": "self", "type": "application/json"},
                {
                    "href": f"{base}/openapi.json",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                },
                {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
                {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
                {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
                {
                    "href": f"{base}/maps/overview",
                    "rel": "alternate",
                    "type": "text/html",
                    "title": "district overview map",
                },
            ],
        }
    )


@router.get("/conformance", response_class=JSONResponse, summary="OGC API conformance classes")
def conformance():
    return JSONResponse(
        {
            "conformsTo": [
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
            ]
        }
    )


@router.get("/healthz", response_class=JSONResponse, summary="The process is up")
def healthz():
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_class=JSONResponse,
    summary="The database and the broker can be reached",
    responses={503: {"description": "something it needs is down"}},
)
async def readyz(state: State):
    database = await anyio.to_thread.run_sync(_database_ready, state, limiter=state.db_limiter)
    broker = await _broker_ready(state.mqtt_url, state.settings.mqtt_ca_file)
    ready = database == "ok" and broker in ("ok", "not configured")
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": database, "broker": broker},
        200 if ready else 503,
    )


def _database_ready(state) -> str:
    try:
        with state.pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means not ready; the reason is what matters
        return f"unreachable: {type(exc).__name__}"


async def _broker_ready(url: str | None, ca_file: Path | None = None) -> str:
    """Connect, say MQTT CONNECT and wait for CONNACK: the broker is there and answers."""
    if not url:
        return "not configured"
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    port = parts.port or (8883 if tls else 1883)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                parts.hostname or "127.0.0.1", port, ssl=tls_context(ca_file) if tls else None
            ),
            2.0,
        )
    except ConfigError as exc:  # an unreadable GRIDWATCH_MQTT_CA_FILE
        return f"misconfigured: {exc}"
    except (OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    try:
        writer.write(_mqtt_connect(parts.username, parts.password))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readexactly(4), 2.0)
        if ack[0] != 0x20:
            return "unreachable: not an MQTT broker"
        if ack[3] != 0:
            return f"refused: CONNACK return code {ack[3]}"
        writer.write(b"\xe0\x00")  # DISCONNECT
        await writer.drain()
        return "ok"
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _mqtt_connect(username: str | None, password: str | None) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a clean session and a throwaway client id."""

    def text(value: str) -> bytes:
        data = value.encode()
        return len(data).to_bytes(2, "big") + data

    flags = 0x02 | (0x80 if username else 0) | (0x40 if username and password else 0)
    body = text("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big")
    body += text(f"gridwatch-readyz-{secrets.token_hex(4)}")
    if username:
        body += text(username)
        if password:
            body += text(password)
    length, encoded = len(body), bytearray()
    while True:  # MQTT's variable-length "remaining length"
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x10]) + bytes(encoded) + body


@router.get("/me", response_class=JSONResponse, summary="Who the token belongs to")
def me(principal: Caller):
    return JSONResponse(
        {
            "name": principal.name,
            "role": principal.role,
            "level": principal.level,
            "grids": list(principal.grid_codes),
            "sees_all_grids": principal.sees_all,
        }
    )


# -- login for people in a browser ---------------------------------------------------------


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(state: State, next: str = "/maps/overview", failed: bool = False):
    return HTMLResponse(_login_page(state, _safe_next(next), failed))


@router.post("/login", include_in_schema=False)
async def login(request: Request, state: State):
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return HTMLResponse(_login_page(state, "/maps/overview", True), 413)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/maps/overview"])[0])
    principal = await state.principal_for_token(token) if token else None
    if principal is None or principal.role == "device":
        return HTMLResponse(_login_page(state, target, True), 401)
    hours = state.settings.api_session_hours
    now = state.now()
    expires = now + timedelta(hours=hours)

    def start_session() -> str:
        with state.pool.connection() as conn:
            return create_session(conn, principal.user_id, now=now, expires_at=expires)

    session_id = await anyio.to_thread.run_sync(start_session, limiter=state.db_limiter)
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, state: State):
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and len(session_id) <= 128:

        def end() -> None:
            with state.pool.connection() as conn:
                end_session(conn, session_id)

        await anyio.to_thread.run_sync(end, limiter=state.db_limiter)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/maps/overview"
    return target[:2000]


def _login_page(state, target: str, failed: bool) -> str:
    t = texts_for(state.settings.lang)
    error = f'<p class="error">{html.escape(t["login_failed"])}</p>' if failed else ""
    return f"""<!doctype html>
<html lang="{t["html_lang"]}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(t["login_title"])} · {html.escape(t["app"])}</title>
<link rel="stylesheet" href="/static/gridwatch/gridwatch.css"></head>
<body class="login"><form method="post" action="/login" class="login-box">
<h1>{html.escape(t["app"])}</h1><p>{html.escape(t["login_prompt"])}</p>{error}
<label>{html.escape(t["login_token"])}
<input name="token" type="password" autocomplete="current-password" required autofocus></label>
<input type="hidden" name="next" value="{html.escape(target, quote=True)}">
<button type="submit">{html.escape(t["login_button"])}</button></form></body></html>"""


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return RedirectResponse("/static/gridwatch/favicon.png", 301)


@router.get("/docs", include_in_schema=False)
def docs() -> Response:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="gridwatch API",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
    )
