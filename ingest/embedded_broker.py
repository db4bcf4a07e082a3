"""An in-process MQTT broker (amqtt) for the embedded defaults, on a free loopback port.

It speaks MQTT 3.1.1 only, keeps sessions in memory (for clients that give a user name: the
URL it hands out carries one), and lives as long as the process that started it: fine for
the demo and for trying gridwatch out; production uses Mosquitto or EMQX
(see deploy/).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from gridwatch.errors import ServiceUnavailable
from gridwatch.store.embedded import free_port


class EmbeddedBroker:
    """amqtt running on its own event loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        # amqtt keeps no session (and queues nothing) for anonymous clients, so every client
        # of the embedded broker names a user; any name is accepted.
        return f"mqtt://gridwatch@{self.host}:{self.port}"

    def start(self) -> str:
        """Start listening; returns the broker URL."""
        # amqtt logs every refused MQTT 5 probe and client disconnect as an error.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._thread = threading.Thread(target=self._serve, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise ServiceUnavailable(f"embedded MQTT broker did not start: {self._error}")
        return self.url

    def stop(self) -> None:
        """Stop the broker and its thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _serve(self) -> None:
        from amqtt.broker import Broker

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            broker = Broker(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                    "plugins": {
                        "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                            "allow_anonymous": False
                        }
                    },
                }
            )
            try:
                await broker.start()
            except Exception as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stopped.wait()
            await broker.shutdown()

        asyncio.run(main())
