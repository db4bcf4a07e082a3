"""What every request passes first: a size limit on bodies (chunked ones too), no NUL
characters in paths or queries (PostgreSQL text cannot hold them), and security headers on
every response (a page may load scripts only from gridwatch itself)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridwatch.api.responses import dumps

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, tile_hosts: tuple[str, ...] = ()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        images = " ".join(("'self'", "data:", "blob:", *tile_hosts))
        self.csp = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            f"style-src 'self' 'unsafe-inline'; img-src {images}; connect-src 'self'; "
            "font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower():
            await _reject(send, 422, "invalid", "the request path or query holds a NUL character")
            return
        if scope["method"] in _BODY_METHODS:
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                await _too_large(send, self.max_body_bytes)
                return
            body, over = await _read_body(receive, self.max_body_bytes)
            if over:
                await _too_large(send, self.max_body_bytes)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, self._with_headers(send))

    def _with_headers(self, send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra.append((b"content-security-policy", self.csp))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
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
    await _reject(send, 413, "payload_too_large", f"the request body is over {limit} bytes")


async def _reject(send: Send, status: int, error: str, reason: str) -> None:
    body = dumps({"error": error, "reason": reason})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
