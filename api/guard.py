"""What every request passes first: security headers on every response (a page may load
scripts only from gridwatch itself), a size limit on bodies (chunked ones too), no NUL
characters in paths or queries (PostgreSQL text cannot hold them)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridwatch.api.responses import dumps

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


STATIC_PREFIX = "/static/"


def page_policy(tile_hosts: tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy of HTML pages: scripts, styles and data only from
    gridwatch itself, images also from the map tile servers, never framed."""
    images = " ".join(("'self'", "data:", "blob:", *tile_hosts))
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        f"style-src 'self' 'unsafe-inline'; img-src {images}; connect-src 'self'; "
        "font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )


# Every response; JSON and other data may be neither run as a page nor framed.
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
DATA_POLICY = b"default-src 'none'; frame-ancestors 'none'"


def data_headers() -> dict[str, str]:
    """The security headers of a non-HTML response that does not pass `SecurityHeaders`
    (the one an unexpected error makes, outside the middleware)."""
    headers = {name.decode(): value.decode() for name, value in COMMON_HEADERS}
    headers["content-security-policy"] = DATA_POLICY.decode()
    headers["cache-control"] = "no-store"
    return headers


class SecurityHeaders:
    """Security headers on every response, and `Cache-Control: no-store` on all but the
    static assets: layers, pages and errors can hold residents' personal information, and
    no browser or proxy cache should keep them."""

    def __init__(self, app: ASGIApp, *, tile_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.page_policy = page_policy(tile_hosts).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = dict(headers).get(b"content-type", b"")
                policy = self.page_policy if content_type.startswith(b"text/html") else DATA_POLICY
                extra = [*COMMON_HEADERS, (b"content-security-policy", policy)]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """A streamed body went over its limit while the app read it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
        self.limit = limit


class RequestGuard:
    """A size limit on request bodies (chunked ones too), enforced while they arrive, and no
    NUL characters in paths or queries.

    A multipart body to a path `takes_photos` names may be larger (`photo_body_bytes`): it is
    not read ahead but streamed to the app, and reading past the limit raises BodyTooLarge
    in the app (which answers 413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        photo_body_bytes: int = 0,
        takes_photos: Callable[[str], bool] = lambda path: False,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.photo_body_bytes = photo_body_bytes
        self.takes_photos = takes_photos

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower():
            await reject(send, 422, "invalid", "the request path or query holds a NUL character")
            return
        if scope["method"] in _BODY_METHODS and self._photos(scope):
            length = _content_length(scope)
            if length is not None and length > self.photo_body_bytes:
                await _too_large(send, self.photo_body_bytes)
                return
            receive = _bounded(receive, self.photo_body_bytes)
        elif scope["method"] in _BODY_METHODS:
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                await _too_large(send, self.max_body_bytes)
                return
            body, over = await _read_body(receive, self.max_body_bytes)
            if over:
                await _too_large(send, self.max_body_bytes)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _photos(self, scope: Scope) -> bool:
        """A multipart body to a write that takes photos."""
        if not self.photo_body_bytes or not self.takes_photos(scope["path"]):
            return False
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                return value.split(b";")[0].strip().lower() == b"multipart/form-data"
        return False


def _bounded(receive: Receive, limit: int) -> Receive:
    """`receive` that raises BodyTooLarge once more than `limit` bytes of body came."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return bounded


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send, limit: int) -> None:
    await reject(send, 413, "payload_too_large", f"the request body is over {limit} bytes")


async def reject(
    send: Send, status: int, error: str, reason: str, headers: list | None = None
) -> None:
    """Answer with a JSON error before the app sees the request."""
    body = dumps({"error": error, "reason": reason})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
