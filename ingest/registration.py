"""With GRIDWATCH_REQUIRE_REGISTERED_DEVICES on, only registered devices may publish.

A message's topic identity (the meter id, the sensor id, the worker id of a patrol,
hazard or OwnTracks message) must be registered for that kind and not revoked; any other
message becomes a dead letter naming why. The registry is an in-memory set per kind, so
the check costs a set lookup per message. It is reloaded when the tables change (the
worker looks every few seconds) and, so that a device registered a moment ago is let in,
on an unknown id, at most once per `miss_reload_s`.
"""

from __future__ import annotations

import logging
import time

import psycopg

from gridwatch.ingest.hazard import HazardReport
from gridwatch.ingest.meter import MeterReading
from gridwatch.ingest.patrol import PatrolCheckin
from gridwatch.ingest.sensor import SensorEvent
from gridwatch.store.devices import TopicIdentities, load_topic_identities, registry_version

log = logging.getLogger(__name__)

MISS_RELOAD_S = 3.0


class RegistrationCheck:
    """Refuses messages from topic identities that are not registered (or were revoked)."""

    def __init__(self, conn: psycopg.Connection, *, miss_reload_s: float = MISS_RELOAD_S) -> None:
        self.miss_reload_s = miss_reload_s
        self.identities = self._load(conn)
        self._loaded_at = time.monotonic()

    def refuse_unregistered(self, messages: list, conn: psycopg.Connection) -> int:
        """Turn each message from an unregistered identity into a dead letter; returns how many."""
        refused = [m for m in messages if m.reading is not None and self._refusal(m.reading)]
        if refused and time.monotonic() - self._loaded_at >= self.miss_reload_s:
            self.reload_if_changed(conn)
            self._loaded_at = time.monotonic()
            refused = [m for m in refused if self._refusal(m.reading)]
        for message in refused:
            message.reason = self._refusal(message.reading)
            message.reading = None
        return len(refused)

    def reload_if_changed(self, conn: psycopg.Connection) -> bool:
        """Reload the registry when the devices or workers changed since it was loaded."""
        with conn.transaction():
            if registry_version(conn) == self.identities.version:
                return False
        self.identities = self._load(conn)
        log.info(
            "device registry reloaded: %d meters, %d sensors, %d workers",
            len(self.identities.meters),
            len(self.identities.sensors),
            len(self.identities.workers),
        )
        return True

    def _refusal(self, reading: object) -> str | None:
        """Why this reading's source may not publish; None when it may."""
        ids = self.identities
        match reading:
            case MeterReading(meter_id=source):
                allowed, revoked, what = ids.meters, ids.revoked_meters, "meter"
            case SensorEvent(device_id=source):
                allowed, revoked, what = ids.sensors, ids.revoked_sensors, "sensor"
            case PatrolCheckin(worker_id=source) | HazardReport(reporter_id=source):
                allowed, revoked, what = ids.workers, ids.revoked_workers, "worker"
            case _:
                return None
        if source in allowed:
            return None
        if source in revoked:
            return f"{what} {source!r} was revoked (gridwatch devices add gives it new credentials)"
        owner = (
            f"APP --kind app --worker {source}" if what == "worker" else f"{source} --kind {what}"
        )
        return f"{what} {source!r} is not registered (gridwatch devices add {owner})"

    @staticmethod
    def _load(conn: psycopg.Connection) -> TopicIdentities:
        with conn.transaction():
            return load_topic_identities(conn)
