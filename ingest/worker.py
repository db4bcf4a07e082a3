"""The ingest worker: MQTT in, batches written, acknowledged only after they commit.

Two threads. paho's network thread only appends each message to an in-memory queue. The
batch thread takes up to `batch_size` messages (or what arrived in `batch_ms`, or what is
there once the stream pauses for `batch_idle_ms`), parses them, writes them in one
transaction, and only then acknowledges them to the broker, in the order they arrived.
A crash before the commit leaves them unacknowledged, so the broker delivers them again
and the dedupe keys store them once.

While the database is away nothing is acknowledged: the batch is retried every second,
and the broker stops sending once the unacknowledged window (MQTT 5 Receive Maximum, or
the broker's max_inflight_messages) is full, which bounds the worker's memory.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.errors import ServiceUnavailable, first_line
from gridwatch.ingest.mqtt import (
    BatchAckClient,
    BrokerAddress,
    connect_properties,
    new_client,
    probe_protocol,
)
from gridwatch.ingest.payload import Ignored, InvalidPayload, ParseContext
from gridwatch.ingest.topics import TopicRouter, subscriptions
from gridwatch.ingest.writer import BatchWriter, Message, WriteResult, add_counts
from gridwatch.settings import Settings
from gridwatch.store.db import connect, describe_url, is_outage
from gridwatch.store.migrate import read_meta
from gridwatch.store.warnings import Notify

log = logging.getLogger(__name__)

_MAX_PENDING = 200_000  # received but not yet written; past this the network thread waits
RETRY_MAX_S = 1.0  # longest wait between two attempts to write a batch
EMPTY = "empty (retained clear)"  # why an empty message is ignored

# A message as the network thread hands it over: topic (bytes when not UTF-8), payload,
# packet id, QoS, connection generation, arrival (epoch seconds), retained. A plain tuple:
# one is made per message.
_Inbound = tuple[str | bytes, bytes, int, int, int, float, bool]


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    warnings: int = 0
    findings: int = 0  # hazards opened by inspections' findings
    acked: int = 0
    batches: int = 0
    db_failures: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    ignored_by: dict[str, int] = field(default_factory=dict)  # per reason: "owntracks lwt", …

    @property
    def ignored(self) -> int:
        return sum(self.ignored_by.values())

    def add(self, result: WriteResult) -> None:
        add_counts(self.by_kind, result.stored)
        self.stored += sum(result.stored.values())
        self.duplicates += result.duplicates
        self.dead_letters += result.dead_letters
        self.warnings += result.warnings
        self.findings += result.findings
        add_counts(self.ignored_by, result.ignored_by)


class IngestWorker:
    """One ingest process's worth of work; `run()` blocks until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str,
        mqtt_url: str,
        shared: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.address = BrokerAddress.from_url(mqtt_url, settings.mqtt_ca_file)
        self.shared = shared
        self.client_id = client_id or default_client_id(settings.mqtt_client_id, shared)
        self.router = TopicRouter(settings.topic_prefix, settings.owntracks_topic)
        self.stats = IngestStats()
        self.subscribed = threading.Event()
        self._inbox: deque[_Inbound] = deque()
        self._generation = 0
        self._client: BatchAckClient | None = None
        self._connack = threading.Event()  # the broker answered the first CONNECT
        self._connack_reason: ReasonCode | None = None
        self._writer: BatchWriter | None = None
        self._stopping = False

    # -- MQTT side (paho's network thread) --------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connack_reason = reason
        self._connack.set()
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.address, reason)
            return
        self._generation += 1
        log.info(
            "connected to %s as %s, user %s (session %s)",
            self.address,
            self.client_id,
            self.address.username,
            "resumed" if flags.session_present else "new",
        )
        filters = subscriptions(
            self.settings.topic_prefix, self.shared, self.settings.owntracks_topic
        )
        if client.protocol == mqtt.MQTTv5:
            # Retained copies only for a new subscription, not again when a session resumes.
            options = SubscribeOptions(
                qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            client.subscribe([(f, options) for f in filters])
        else:
            client.subscribe([(f, 1) for f in filters])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", ", ".join(failed))
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.subscribed.clear()
        if not self._stopping:
            log.warning("disconnected from %s (%s); reconnecting", self.address, reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        while len(self._inbox) > _MAX_PENDING:
            time.sleep(0.01)
        self._inbox.append(
            (
                topic_of(message),
                # Received payloads are bytes (bytes() of bytes is the object itself); paho
                # types the attribute bytes | bytearray for the messages it sends.
                bytes(message.payload),
                message.mid,
                message.qos,
                self._generation,
                time.time(),
                message.retain,
            )
        )

    def _start_mqtt(self) -> BatchAckClient:
        """Connect with MQTT 5 where the broker speaks it, else 3.1.1; raise if refused."""
        # The probe goes without a user: under this worker's user it could end its session.
        protocol = probe_protocol(self.address, anonymous=True)
        client = self._connect(protocol)
        if not self._connack.wait(10):
            self._stop_client(client)
            raise ServiceUnavailable(f"the MQTT broker at {self.address} did not answer CONNECT")
        reason = self._connack_reason
        if reason is not None and reason.is_failure:
            self._stop_client(client)
            raise ServiceUnavailable(f"the MQTT broker at {self.address} refused us: {reason}")
        self._client = client
        return client

    def _connect(self, protocol: MQTTProtocolVersion) -> BatchAckClient:
        """A client of this worker's persistent session, connecting (not yet answered)."""
        client = new_client(self.address, self.client_id, protocol=protocol, persistent=True)
        client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        s = self.settings
        self._connack.clear()
        try:
            if protocol == mqtt.MQTTv5:
                client.connect(
                    self.address.host,
                    self.address.port,
                    keepalive=s.mqtt_keepalive_s,
                    clean_start=False,
                    properties=connect_properties(s.mqtt_session_expiry_s, s.mqtt_receive_maximum),
                )
            else:
                client.connect(self.address.host, self.address.port, keepalive=s.mqtt_keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            raise ServiceUnavailable(
                f"cannot reach the MQTT broker at {self.address}: {exc}"
            ) from None
        client.loop_start()
        return client

    def _stop_client(self, client: BatchAckClient) -> None:
        self._stopping = True  # no "reconnecting" warning for a client set aside
        client.disconnect()
        client.loop_stop()
        self._stopping = False

    # -- batch side ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> IngestStats:
        """Connect, subscribe and write batches until `stop` is set; then drain and disconnect."""
        last_housekeeping = time.monotonic()
        last_report = time.monotonic()
        try:
            self._writer = self._open_writer()
            client = self._start_mqtt()
            while True:
                stopping = stop.is_set()
                batch = self._take_batch(stopping)
                if batch:
                    self._process(batch, client, stop)
                elif stopping:
                    break
                now = time.monotonic()
                if now - last_housekeeping > 10:
                    self._housekeeping()
                    last_housekeeping = now
                if now - last_report > 60:
                    self._report()
                    last_report = now
        finally:
            self._stopping = True
            if self._client is not None:
                self._client.disconnect()
                self._client.loop_stop()
            if self._writer is not None:
                self._writer.conn.close()
        self._report()
        return self.stats

    def _take_batch(self, stopping: bool) -> list[_Inbound]:
        s = self.settings
        inbox = self._inbox
        deadline = time.monotonic() + 0.5
        while True:
            pending = len(inbox)
            if pending >= s.batch_size or (pending and stopping):
                break
            if pending:
                now = time.time()
                if (now - inbox[0][5]) * 1000 >= s.batch_ms:
                    break
                if (now - inbox[-1][5]) * 1000 >= s.batch_idle_ms:
                    break
            elif stopping or time.monotonic() > deadline:
                return []
            time.sleep(0.002)
        count = min(len(inbox), s.batch_size)
        return [inbox.popleft() for _ in range(count)]

    def _process(
        self, batch: list[_Inbound], client: BatchAckClient, stop: threading.Event
    ) -> None:
        s = self.settings
        zone = s.zone
        max_future = timedelta(seconds=s.max_future_s)
        max_age = timedelta(days=s.retention_days)
        messages: list[Message] = []
        for topic, payload, _mid, _qos, _gen, arrived, retained in batch:
            received_at = datetime.fromtimestamp(arrived, UTC)
            ctx = ParseContext(
                received_at, zone, max_future, max_age, s.max_payload_bytes, retained
            )
            messages.append(parse_message(self.router, topic, payload, ctx))
        result = self._write_until_committed(messages, stop)
        if result is None:
            return
        self.stats.received += len(batch)
        self.stats.batches += 1
        self.stats.add(result)
        self._ack(batch, client)

    def _ack(self, batch: list[_Inbound], client: BatchAckClient) -> None:
        # Only messages of the current connection: after a reconnect the broker redelivers
        # the older ones itself, and an old packet id may by now name another message.
        generation = self._generation
        mids = [m[2] for m in batch if m[3] == 1 and m[4] == generation]
        client.ack_all(mids)
        self.stats.acked += len(mids)

    def _write_until_committed(
        self, messages: list[Message], stop: threading.Event
    ) -> WriteResult | None:
        """Write the batch, retrying every second at most; None if stopped before it could
        commit. Not a longer backoff: while the database is away the broker holds the
        district's messages, and each second of waiting after it is back is a second more
        of lag on every alert; a refused connection costs next to nothing."""
        delay = 0.25
        grace_until = None
        while True:
            try:
                if self._writer is None:
                    self._writer = self._open_writer()
                return self._writer.write(messages)
            except (psycopg.Error, ServiceUnavailable) as exc:
                self.stats.db_failures += 1
                if isinstance(exc, ServiceUnavailable) or is_outage(exc):
                    log.warning(
                        "database unavailable (%s); holding %d messages unacknowledged",
                        first_line(exc),
                        len(messages) + len(self._inbox),
                    )
                else:
                    # Not the input (the writer dead-letters every row whose values the database
                    # rejects) nor an outage: a bug or a schema out of step with this release.
                    # Hold the batch unacknowledged rather than lose it.
                    log.exception("batch of %d could not be written; holding it", len(messages))
                self._close_writer()
            if stop.is_set():
                grace_until = grace_until or time.monotonic() + 5
                if time.monotonic() > grace_until:
                    log.warning(
                        "stopping with %d messages unwritten; the broker keeps them", len(messages)
                    )
                    return None
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _open_writer(self) -> BatchWriter:
        conn = connect(self.database_url)
        meta = read_meta(conn)
        if "mode" not in meta:
            conn.close()
            raise ServiceUnavailable(
                f"the database at {describe_url(self.database_url)} has no gridwatch schema: "
                "run `gridwatch db migrate` first"
            )
        from zoneinfo import ZoneInfo

        return BatchWriter(
            conn,
            mode=meta["mode"],
            zone=ZoneInfo(meta.get("tz", self.settings.tz)),
            require_registered=self.settings.require_registered_devices,
            deadlines=deadlines_from_hours(self.settings.hazard_deadlines_h),
            notify=Notify(self.settings.topic_prefix, self.settings.alert_webhooks),
        )

    def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(psycopg.Error):
                self._writer.conn.close()
            self._writer = None

    def _housekeeping(self) -> None:
        try:
            if self._writer is not None:
                self._writer.reload_grids_if_changed()
                self._writer.reload_registrations_if_changed()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._close_writer()

    def _report(self) -> None:
        st = self.stats
        log.info(
            "ingest: %d received, %d stored %s, %d duplicates, %d dead letters, "
            "%d dispute warnings, %d hazards from inspections' findings, %d ignored %s, "
            "%d pending",
            st.received,
            st.stored,
            st.by_kind,
            st.duplicates,
            st.dead_letters,
            st.warnings,
            st.findings,
            st.ignored,
            st.ignored_by,
            len(self._inbox),
        )


def topic_of(message: mqtt.MQTTMessage) -> str | bytes:
    """The topic as text, or its raw bytes when they are not UTF-8.

    MQTT requires UTF-8 but a lax broker may pass anything on, and paho's `topic` raises on
    it; raised in on_message, that would end paho's network thread and with it the
    subscription, so the bytes are kept for a dead letter instead.
    """
    try:
        return message.topic
    except UnicodeDecodeError:
        return message._topic  # paho keeps the raw topic only here


def parse_message(
    router: TopicRouter, topic: str | bytes, payload: bytes, ctx: ParseContext
) -> Message:
    """What parsing makes of one message: a reading, a dead letter's reason, or why it is
    ignored (a clear, a retained copy without its device time, an OwnTracks type not stored)."""
    received_at = ctx.received_at
    if isinstance(topic, bytes):
        shown = topic.decode("utf-8", "backslashreplace")
        return Message(shown, payload, received_at, reason="topic is not UTF-8 text")
    if not payload:
        # How MQTT clears a retained message; brokers pass the clear on to subscribers
        # without the retain flag, so every empty message is taken for one. No reading.
        return Message(topic, payload, received_at, ignored=EMPTY)
    try:
        return Message(topic, payload, received_at, router.parse(topic, payload, ctx))
    except InvalidPayload as exc:
        return Message(topic, payload, received_at, reason=str(exc))
    except Ignored as exc:
        return Message(topic, payload, received_at, ignored=str(exc))
    except Exception as exc:  # a parser bug must not take the worker down
        log.exception("parser failed on a message on %r", topic)
        reason = f"internal parser error: {type(exc).__name__}: {first_line(exc)[:200]}"
        return Message(topic, payload, received_at, reason=reason)


def default_client_id(base: str, shared: str | None) -> str:
    """A stable client id: the same after a restart, so the persistent session is found again."""
    if shared:
        return f"{base}-{shared}-{socket.gethostname()}"
    return base
