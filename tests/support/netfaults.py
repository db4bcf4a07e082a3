"""A TCP fault proxy: what a bad network does between gridwatch and its broker or database.

Put a `FaultProxy` in front of Mosquitto or PostgreSQL and point gridwatch at the proxy's
port; then `cut()` every connection (a broker or database restart as the client sees it, a
NAT that forgot the flow), `blackhole(seconds)` (a link that silently stops carrying
anything: no reset, no FIN, so only keepalives can notice), `latency(seconds)` and
`throttle(bytes_per_s)` (a slow link, or a consumer slowed to a fraction of its speed).

The fault tests and `bench/soak.py` use it (`gridwatch.simulators.faults` garbles messages;
this garbles the network). It needs nothing but the standard library, so a bench imports
it without the test suite's plugins, and it runs its own event loop in a thread, so
synchronous tests and benches drive it with plain calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 64 * 1024
THROTTLED_CHUNK = 4096  # smaller reads while throttled, so the pacing is smooth


@dataclass
class _Faults:
    """What the proxy does to traffic right now; read by every pump on every chunk."""

    blackhole_until: float = 0.0  # time.monotonic() until which nothing moves
    latency_s: float = 0.0
    bytes_per_s: float | None = None
    # Set whenever traffic may move again; made afresh in the proxy's loop when it starts.
    healed: asyncio.Event = field(default_factory=asyncio.Event)

    def blackholed(self) -> float:
        """Seconds the black hole still lasts (0 when there is none)."""
        return max(0.0, self.blackhole_until - time.monotonic())


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Forwards TCP connections from 127.0.0.1:`port` to `upstream_host`:`upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.connections_made = 0
        self._faults = _Faults()
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen (on a free port unless one was given) and forward until `close()`."""
        ready = threading.Event()
        self._loop = loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(
            target=run, name=f"fault-proxy-{self.upstream}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start listening")
        return self

    async def _listen(self) -> None:
        self._faults.healed = asyncio.Event()
        self._faults.healed.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._loop is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, scheme: str, rest: str = "") -> str:
        """A URL naming the proxy, e.g. url("mqtt") or url("postgresql", "/db")."""
        return f"{scheme}://127.0.0.1:{self.port}{rest}"

    # -- faults --------------------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection (new ones are forwarded again); returns how many."""
        return self._call(self._cut)

    async def _cut(self) -> int:
        count = len(self._links)
        self._abort_all()
        return count

    def blackhole(self, seconds: float) -> None:
        """Carry nothing, either way, for `seconds`: bytes wait unread, connections made
        meanwhile wait unanswered; what is still connected afterwards flows on intact."""
        self._call(self._blackhole, seconds)

    async def _blackhole(self, seconds: float) -> None:
        self._faults.blackhole_until = time.monotonic() + seconds
        self._faults.healed.clear()
        asyncio.get_running_loop().call_later(seconds, self._end_blackhole)

    def _end_blackhole(self) -> None:
        if self._faults.blackholed() <= 0:
            self._faults.healed.set()

    def heal(self) -> None:
        """End any black hole, latency and throttle now."""
        self._call(self._heal)

    async def _heal(self) -> None:
        self._faults.blackhole_until = 0.0
        self._faults.latency_s = 0.0
        self._faults.bytes_per_s = None
        self._faults.healed.set()

    def latency(self, seconds: float) -> None:
        """Delay every chunk by `seconds`, each way (0: none)."""
        self._faults.latency_s = max(0.0, seconds)

    def throttle(self, bytes_per_s: float | None) -> None:
        """Carry at most `bytes_per_s` each way per connection (None: as fast as it goes)."""
        self._faults.bytes_per_s = bytes_per_s

    # -- forwarding ----------------------------------------------------------------------------

    def _call(self, coroutine_function: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        if self._loop is None:
            raise RuntimeError("the fault proxy is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine_function(*args), self._loop)
        return future.result(10)

    def _abort_all(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._faults.healed.wait()  # a black hole answers no one
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            link.abort()
            self._links.discard(link)
            return
        if link not in self._links:  # cut while connecting
            up_writer.transport.abort()
            return
        self.connections_made += 1
        link.upstream = up_writer
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        faults = self._faults
        try:
            while True:
                await faults.healed.wait()
                size = THROTTLED_CHUNK if faults.bytes_per_s else CHUNK
                data = await reader.read(size)
                if not data:
                    break
                if faults.latency_s:
                    await asyncio.sleep(faults.latency_s)
                await faults.healed.wait()  # a hole that opened while this chunk was read
                writer.write(data)
                await writer.drain()
                if faults.bytes_per_s:
                    await asyncio.sleep(len(data) / faults.bytes_per_s)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        # One side ended: end the other too, as a TCP connection through a NAT would.
        link.abort()
        self._links.discard(link)


@contextlib.contextmanager
def fault_proxy(upstream_host: str, upstream_port: int) -> Iterator[FaultProxy]:
    """A running FaultProxy for the duration of a `with` block."""
    proxy = FaultProxy(upstream_host, upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
