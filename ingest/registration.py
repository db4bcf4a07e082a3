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
from operator import attrgetter
from typing import TYPE_CHECKING

import psycopg

from gridwatch.ingest.topics import Reading
from gridwatch.model.records import HazardReport, MeterReading, PatrolCheckin, SensorEvent
from gridwatch.store.devices import TopicIdentities, load_topic_identities, registry_version

if TYPE_CHECKING:  # the writer calls this check, so it imports this module
    from gridwatch.ingest.writer import Message

log = logging.getLogger(__name__)

# Each kind of reading: which registry its source is looked up in, and how to get it.
_SOURCE: dict[type[object], tuple[str, attrgetter[str]]] = {
    MeterReading: ("meter", attrgetter("meter_id")),
    SensorEvent: ("sensor", attrgetter("device_id")),
    PatrolCheckin: ("worker", attrgetter("worker_id")),
    HazardReport: ("worker", attrgetter("reporter_id")),
}

MISS_RELOAD_S = 3.0


class RegistrationCheck:
    """Refuses messages from topic identities that are not registered (or were revoked)."""

    def __init__(self, conn: psycopg.Connection, *, miss_reload_s: float = MISS_RELOAD_S) -> None:
        self.miss_reload_s = miss_reload_s
        self.identities = self._load(conn)
        self._loaded_at = time.monotonic()

    def refuse_unregistered(self, messages: list[Message], conn: psycopg.Connection) -> int:
        """Turn each message from an unregistered identity into a dead letter; returns how many."""
        refused = self._unregistered(messages)
        if refused and time.monotonic() - self._loaded_at >= self.miss_reload_s:
            self.reload_if_changed(conn)
            self._loaded_at = time.monotonic()
            refused = self._unregistered(refused)
        for message in refused:
            message.reason = self._refusal(message.reading)
            message.reading = None
        return len(refused)

    def _unregistered(self, messages: list[Message]) -> list[Message]:
        # The hot path, once per message: a type lookup, an attribute and a set lookup.
        allowed = self.identities.allowed
        refused: list[Message] = []
        for message in messages:
            reading = message.reading
            source = _SOURCE.get(type(reading))
            if source is not None and source[1](reading) not in allowed[source[0]]:
                refused.append(message)
        return refused

    def reload_if_changed(self, conn: psycopg.Connection) -> bool:
        """Reload the registry when the devices or workers changed since it was loaded."""
        with conn.transaction():
            if registry_version(conn) == self.identities.version:
                return False
        self.identities = self._load(conn)
        log.info(
            "device registry reloaded: %s",
            ", ".join(f"{len(ids)} {kind}s" for kind, ids in self.identities.allowed.items()),
        )
        return True

    def _refusal(self, reading: Reading | None) -> str:
        """Why this reading's source may not publish."""
        what, source_of = _SOURCE[type(reading)]
        source = source_of(reading)
        if source in self.identities.revoked[what]:
            return f"{what} {source!r} was revoked (gridwatch devices add gives it new credentials)"
        owner = (
            f"APP --kind app --worker {source}" if what == "worker" else f"{source} --kind {what}"
        )
        return f"{what} {source!r} is not registered (gridwatch devices add {owner})"

    @staticmethod
    def _load(conn: psycopg.Connection) -> TopicIdentities:
        with conn.transaction():
            return load_topic_identities(conn)
