"""How uvicorn serves the API: a connection gets a deadline for each request's head, and the
access log never shows a credential, not even one sent in a query string by mistake."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import socket
from urllib.parse import unquote_plus

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from gridwatch.settings import Settings
from gridwatch.store.users import TOKEN_PREFIX

MAX_HEAD_BYTES = 16 * 1024  # request line and headers; more is answered 400
KEEP_ALIVE_S = 5  # an idle connection between requests is closed after this


class ApiServer(uvicorn.Server):
    """uvicorn's server, ending the open alert streams as it begins to shut down: a browser
    on the live map holds its stream open for ever, and uvicorn would wait for it (up to
    its graceful timeout) before stopping."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The FastAPI app this config serves; its state is set by the app's lifespan.
        state = getattr(getattr(self.config.app, "state", None), "gw", None)
        if state is not None:
            state.feed.close_streams()
        await super().shutdown(sockets)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's head. uvicorn times out
    only idle connections, and every byte received restarts that timer: a client sending
    its headers a byte every few seconds (slowloris) held a connection for ever."""

    head_timeout_s = 10.0  # set on the subclass `timed_protocol` makes

    # uvicorn's own override narrows asyncio's BaseTransport to Transport the same way.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._expect_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _expect_head(self) -> None:
        self._cancel_deadline()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def timed_protocol(head_timeout_s: float) -> type[TimedH11Protocol]:
    """The protocol class with this deadline for a request's head."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"head_timeout_s": head_timeout_s})


# Query parameters whose values are credentials by their name, and gridwatch tokens anywhere.
_SECRET_NAME = re.compile(r"token|key|secret|passw|session|auth|sig|cookie", re.IGNORECASE)
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_\-%]+")
REDACTED = "[redacted]"


def redact_target(target: str) -> str:
    """A request target (path and query) with every credential in it replaced."""
    path, sep, query = target.partition("?")
    if sep:
        fields = []
        for field in query.split("&"):
            name, eq, _value = field.partition("=")
            fields.append(
                f"{name}={REDACTED}" if eq and _SECRET_NAME.search(unquote_plus(name)) else field
            )
        path = f"{path}?{'&'.join(fields)}"
    return _TOKEN.sub(TOKEN_PREFIX + REDACTED, path)


class RedactCredentials(logging.Filter):
    """On uvicorn's access log: the request target (the third argument) without credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def log_config() -> dict:
    """uvicorn's logging configuration with the access log's credentials redacted."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["credentials"] = {"()": RedactCredentials}
    config["loggers"]["uvicorn.access"]["filters"] = ["credentials"]
    return config


def server_config(
    app, settings: Settings, *, host: str, port: int, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn's configuration for the API. Forwarded headers are believed only from the
    proxies in GRIDWATCH_API_FORWARDED_ALLOW_IPS: rate limits and the audit go by the
    client's address, which anyone could otherwise claim. Open event streams get 5 s at
    shutdown (a browser left on the live map would hold it up for ever). A request's head
    must arrive within GRIDWATCH_API_HEAD_TIMEOUT_S and fit in 16 KiB; the access log
    shows no credential."""
    proxies = list(settings.api_forwarded_allow_ips)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(),
        http=timed_protocol(settings.api_head_timeout_s),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        lifespan="on",  # the pool opens there: a server that cannot open it does not start
        server_header=False,
        timeout_graceful_shutdown=5,
    )
