"""Sending alert state changes: MQTT `{prefix}/alerts/{grid_code}` at QoS 1, and webhooks.

Both read from the outbox that the engine writes in the same transaction as the alert, and
mark a row sent only once the broker acknowledged it or the webhook answered 2xx, so a
receiver that is down gets everything when it is back. Webhook requests carry an
`Idempotency-Key` (the outbox id): a receiver that saw a retry can tell.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from paho.mqtt.client import MQTTMessageInfo

from gridwatch.ingest.mqtt import broker_acknowledged

WEBHOOK_TIMEOUT_S = 5.0
MAX_BACKOFF = timedelta(minutes=10)


def retry_after(attempts: int, now: datetime) -> datetime:
    """When to try a failed delivery again: 2, 4, 8 … seconds, at most ten minutes."""
    return now + min(timedelta(seconds=2 ** min(attempts + 1, 20)), MAX_BACKOFF)


def post_webhook(url: str, outbox_id: int, payload: Mapping[str, Any]) -> str | None:
    """POST one alert change as JSON; None on a 2xx answer, else what went wrong."""
    if urlsplit(url).scheme not in ("http", "https"):
        return "not an http:// or https:// URL"
    # Only http(s), checked above (and when the setting is read): no file: or other schemes.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": f"gridwatch-alert-outbox-{outbox_id}",
            "User-Agent": "gridwatch",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable: {reason}"
    return None if 200 <= status < 300 else f"HTTP {status}"


class Publisher(Protocol):
    """What the handover needs of an MQTT client: paho's `Client.publish`."""

    def publish(self, topic: str, payload: str, qos: int) -> MQTTMessageInfo: ...


class MqttHandover:
    """Outbox rows handed to one paho client and not yet acknowledged by the broker.

    Each row is handed over once per client: paho keeps a QoS 1 message until its PUBACK,
    across reconnects, and sends it again itself. Handing a row over again because its
    PUBACK is late (a broker restarting, a dead link) would queue a second copy, and paho
    would send both once the broker is back.
    """

    def __init__(self, client: Publisher) -> None:
        self.client = client
        self.pending: dict[int, MQTTMessageInfo] = {}  # outbox id -> the message with paho

    def hand_over(self, rows: Sequence[tuple[int, str, Mapping[str, Any]]]) -> int:
        """Publish at QoS 1 the rows not already with paho; returns how many were new."""
        new = 0
        for outbox_id, topic, payload in rows:
            if outbox_id not in self.pending:
                payload_text = json.dumps(payload, ensure_ascii=False)
                self.pending[outbox_id] = self.client.publish(topic, payload_text, qos=1)
                new += 1
        return new

    def acknowledged(self) -> list[int]:
        """The ids the broker has acknowledged since the last call."""
        done = [outbox_id for outbox_id, info in self.pending.items() if broker_acknowledged(info)]
        for outbox_id in done:
            del self.pending[outbox_id]
        return done
