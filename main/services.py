"""The database and broker a command talks to: the configured ones, or embedded ones.

With GRIDWATCH_DATABASE_URL unset an embedded PostgreSQL runs from the data directory;
with GRIDWATCH_MQTT_URL unset a private broker (Mosquitto where installed, else amqtt)
runs for as long as the command, on 127.0.0.1, with credentials kept in the data directory.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from gridwatch.ingest.embedded_broker import EmbeddedBroker
from gridwatch.settings import Settings
from gridwatch.store.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


class Services(AbstractContextManager):
    """Resolves URLs lazily and stops whatever it started on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._postgres: EmbeddedPostgres | None = None
        self._broker: EmbeddedBroker | None = None
        self._database_url = settings.database_url
        self._mqtt_url = settings.mqtt_url

    @property
    def embedded_database(self) -> bool:
        return self.settings.database_url is None

    @property
    def embedded_broker(self) -> bool:
        return self.settings.mqtt_url is None

    def database_url(self) -> str:
        """The configured database, or an embedded one started (or joined) now."""
        if self._database_url is None:
            self._postgres = EmbeddedPostgres(self.settings.data_dir / "postgres")
            self._database_url = self._postgres.start()
            log.info("embedded PostgreSQL at %s", self._database_url)
        return self._database_url

    def mqtt_url(self) -> str:
        """The configured broker, or an embedded one started now (credentials in the URL)."""
        if self._mqtt_url is None:
            self._broker = EmbeddedBroker(self.settings.data_dir)
            self._mqtt_url = self._broker.start()
            log.info("embedded MQTT broker (%s) at %s", self._broker.kind, self._broker.address)
        return self._mqtt_url

    @property
    def broker(self) -> EmbeddedBroker | None:
        """The embedded broker, once started."""
        return self._broker

    def __exit__(self, *exc_info) -> None:
        if self._broker is not None:
            self._broker.stop()
        if self._postgres is not None:
            self._postgres.stop()
