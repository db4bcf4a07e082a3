"""One place where errors become HTTP: every error body is JSON with a reason a person can act
on, `{"error": "...", "reason": "..."}`; tracebacks go to the log, never to the client."""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridwatch.api.guard import data_headers
from gridwatch.api.responses import JSONResponse
from gridwatch.errors import (
    Conflict,
    Forbidden,
    GridwatchError,
    InputFileError,
    NotFound,
    ServiceUnavailable,
    first_line,
)
from gridwatch.ingest.payload import InvalidPayload
from gridwatch.media.photos import PhotoTooLarge, UnsupportedPhoto

log = logging.getLogger("gridwatch.api")


class Unauthorized(GridwatchError):
    """No credentials, or credentials that name no active user."""


class BadRequest(GridwatchError):
    """A parameter or body the API cannot act on; the message says which and why."""


class UnknownParameter(BadRequest):
    """A query parameter the route does not know (a typo would otherwise be ignored)."""


class UnsupportedMediaType(GridwatchError):
    """A body in a format the route does not take."""


class PayloadTooLarge(GridwatchError):
    """A request body over the size limit."""


class LoginRequired(GridwatchError):
    """A browser asked for a map page without a session: send it to the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__("log in to see this page")
        self.next_path = next_path


_STATUS: list[tuple[type[Exception], int, str]] = [
    (UnknownParameter, 400, "unknown_parameter"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (PhotoTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (UnsupportedPhoto, 415, "unsupported_media_type"),
    (BadRequest, 422, "invalid"),
    (InvalidPayload, 422, "invalid"),
    (InputFileError, 422, "invalid"),
    (ServiceUnavailable, 503, "unavailable"),
]

_HTTP_WORDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


def error_response(status: int, error: str, reason: str, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="gridwatch"'} if status == 401 else None
    return JSONResponse({"error": error, "reason": reason, **extra}, status, headers=headers)


def status_of(exc: Exception) -> tuple[int, str]:
    for kind, status, word in _STATUS:
        if isinstance(exc, kind):
            return status, word
    if isinstance(exc, GridwatchError):
        return 422, "invalid"
    return 500, "internal"


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to JSON with a reason."""

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", 303)

    @app.exception_handler(GridwatchError)
    async def domain_error(request: Request, exc: GridwatchError):
        status, word = status_of(exc)
        return error_response(status, word, str(exc))

    @app.exception_handler(InvalidPayload)
    async def invalid_payload(request: Request, exc: InvalidPayload):
        return error_response(422, "invalid", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        word = _HTTP_WORDS.get(exc.status_code, "error")
        reason = exc.detail if isinstance(exc.detail, str) else word.replace("_", " ")
        if exc.status_code == 404 and reason == "Not Found":
            reason = f"no route {request.url.path}"
        response = error_response(exc.status_code, word, reason)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError):
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0:1])
        return error_response(503, "unavailable", "the database is unavailable; try again")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        # The request body is never logged: it can hold residents' personal information. Nor
        # is a driver error's DETAIL or CONTEXT, which quote the values of the row at fault.
        if isinstance(exc, psycopg.Error):
            log.error(
                "internal error on %s %s: %s: %s\n%s",
                request.method,
                request.url.path,
                type(exc).__name__,
                first_line(exc),
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
        else:
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        response = error_response(500, "internal", "internal error; the server log has the details")
        # This response is made outside the middleware, so it adds the security headers itself.
        response.headers.update(data_headers())
        return response
