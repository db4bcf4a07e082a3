"""The API in a thread of another command (`gridwatch demo`): start it next to the ingest
worker, print where the maps are, stop it with the rest."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime

import psycopg
import uvicorn

from gridwatch.api.app import create_app
from gridwatch.errors import NotFound, ServiceUnavailable
from gridwatch.settings import Settings
from gridwatch.store.users import create_user, revoke_user

DEMO_OFFICER = "duty-demo"


class BackgroundApi:
    """uvicorn serving `create_app()` in a daemon thread; `url` once started."""

    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str,
        mqtt_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.host = host or settings.api_host
        self.port = settings.api_port if port is None else port
        app = create_app(settings, database_url=database_url, mqtt_url=mqtt_url)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", server_header=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> str:
        """Start serving; returns the base URL. ServiceUnavailable if it does not come up."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"the API did not start on {self.url} (is the port taken? set "
                    "GRIDWATCH_API_PORT)"
                )
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def demo_duty_officer(conn: psycopg.Connection) -> str:
    """A fresh token for the demo's district-wide duty officer (the previous one is revoked)."""
    with contextlib.suppress(NotFound):  # the first demo run has none to revoke
        revoke_user(conn, DEMO_OFFICER, now=datetime.now(UTC))
    return create_user(conn, DEMO_OFFICER, role="duty_officer")
