"""MQTT connections with paho v2: URL parsing, TLS, MQTT 5 with a fallback to 3.1.1.

A subscriber that must not lose messages asks for a persistent session: a stable client id,
clean start off and a session expiry (MQTT 5), or clean session off (3.1.1). Brokers that
do not speak MQTT 5 (the embedded amqtt, old Mosquitto) refuse the first CONNECT with
"unsupported protocol version"; the client then reconnects with 3.1.1 and remembers it.
"""

from __future__ import annotations

import ssl
import struct
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.errors import ConfigError, ServiceUnavailable


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca_file: Path | None = None  # mqtts: the CA to check the broker by; None: the system's

    @classmethod
    def from_url(cls, url: str, ca_file: Path | None = None) -> BrokerAddress:
        """Read mqtt://user:pass@host:1883 or mqtts://host:8883 (checked against `ca_file`)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ConfigError(f"MQTT URL {url!r} has no host")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"MQTT URL {url!r} has a bad port") from None
        return cls(
            parts.hostname,
            port,
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            ca_file if tls else None,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class BatchAckClient(mqtt.Client):
    """A paho client that acknowledges a whole batch of QoS 1 messages in one write.

    `Client.ack` queues one PUBACK at a time, and each wakes the network thread through its
    socket pair and costs a send: at thousands of messages per second that is a tenth of
    the worker's time. A PUBACK is four fixed bytes in MQTT 3.1.1 and 5 alike (packet type,
    length 2, packet id; MQTT 5 lets a success omit its reason code), so a batch's PUBACKs
    go out as one buffer through paho's own outgoing queue.
    """

    def ack_all(self, mids: list[int]) -> None:
        """Acknowledge the QoS 1 messages with these packet ids, in this order."""
        if not mids:
            return
        if not self._manual_ack or not hasattr(self, "_packet_queue"):
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        self._packet_queue(mqtt.PUBACK, packet, 0, 1)


_PUBACK = struct.Struct("!BBH")


def new_client(
    address: BrokerAddress,
    client_id: str = "",
    *,
    protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    persistent: bool = False,
) -> BatchAckClient:
    """A paho client for `address` (not yet connected)."""
    # MQTT 5 has no clean session flag (its clean start is given to connect); None says so.
    clean_session = None if protocol == mqtt.MQTTv5 else not persistent
    client = BatchAckClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=protocol,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(tls_context(address.ca_file))
    return client


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client TLS context that checks the broker's certificate and host name against
    `ca_file` (PEM), or the system's CAs when None."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"GRIDWATCH_MQTT_CA_FILE {ca_file}: not a readable PEM CA certificate ({exc})"
        ) from None
    context.sslsocket_class = _ClosedOnFailedHandshake
    return context


class _ClosedOnFailedHandshake(ssl.SSLSocket):
    """paho leaves the socket of a failed handshake (an untrusted certificate) open for the
    garbage collector, once per reconnect attempt; this one closes itself."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # not a failure: a non-blocking handshake goes on later
        except (OSError, ValueError):
            self.close()
            raise


def connect_properties(session_expiry_s: int, receive_maximum: int) -> Properties:
    """MQTT 5 CONNECT properties of a persistent subscriber with bounded in-flight messages."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho leaves its __init__ unannotated
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = max(1, min(receive_maximum, 65535))
    return props


def is_protocol_refusal(reason: ReasonCode | int) -> bool:
    """Whether a CONNACK refused the protocol version (the broker speaks only 3.1.1)."""
    value = reason.value if isinstance(reason, ReasonCode) else reason
    return value in (1, 0x84)


def probe_protocol(
    address: BrokerAddress, timeout_s: float = 10.0, *, anonymous: bool = False
) -> MQTTProtocolVersion:
    """Connect to learn whether the broker speaks MQTT 5; raise if it cannot be reached or
    (unless `anonymous`) refuses the address's credentials.

    The protocol is asked without credentials: amqtt misreads an MQTT 5 CONNECT that carries
    them and never answers, and a broker that makes the user name the client id
    (deploy/mosquitto.conf) would hand a probe under a worker's user that worker's session,
    which the probe's clean start would end. Refused for want of a user, a broker still tells
    its protocol by the reason code it refuses with. The credentials are then checked with
    MQTT 5 where the broker speaks it (`anonymous`: not at all)."""
    reason = _connack_of(replace(address, username=None, password=None), timeout_s)
    if is_protocol_refusal(reason) or 0 < reason.value < 0x80:  # MQTT 3.1.1's codes
        return mqtt.MQTTv311
    if not anonymous:
        if address.username is not None:
            reason = _connack_of(address, timeout_s)
        if reason.is_failure:
            raise ServiceUnavailable(f"the MQTT broker at {address} refused us: {reason}")
    return mqtt.MQTTv5


def _connack_of(address: BrokerAddress, timeout_s: float) -> ReasonCode:
    """The reason code of the CONNACK that answers one MQTT 5 CONNECT (clean start)."""
    result: dict[str, ReasonCode] = {}
    done = threading.Event()

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        result["reason"] = reason
        done.set()

    def on_fail(client: mqtt.Client, userdata: object) -> None:
        done.set()

    client = new_client(address, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_connect_fail = on_fail
    try:
        client.connect(address.host, address.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        raise ServiceUnavailable(f"cannot reach the MQTT broker at {address}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise ServiceUnavailable(f"the MQTT broker at {address} did not answer CONNECT")
    finally:
        client.disconnect()
        client.loop_stop()
    if "reason" not in result:
        raise ServiceUnavailable(f"the MQTT broker at {address} closed the connection")
    return result["reason"]


def broker_acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker has acknowledged a QoS 1 message handed to paho.

    paho marks a message published while the connection is down as failed (rc NO_CONN) and
    raises on every question about it, yet keeps it and sends it after reconnecting: it is
    queued, not failed."""
    if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
        info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


def publisher(address: BrokerAddress, client_id: str = "") -> mqtt.Client:
    """A connected, running publisher for simulators, the demo and benchmarks."""
    protocol = probe_protocol(address)
    client = new_client(address, client_id, protocol=protocol)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    code = client.connect(address.host, address.port, keepalive=30)
    if code != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise ServiceUnavailable(f"cannot connect to the MQTT broker at {address}: {code}")
    client.loop_start()
    return client
