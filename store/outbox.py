"""The alert outbox: each alert step queued in the transaction that made it, for MQTT and
every webhook, and taken by the delivery loop of its partition (one grid code, one loop)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.alerts.partition import NO_GRID_PREFIX, Partition

# The start of the partition key of a home without a grid, followed by the resident's id.
NO_GRID = sql.Literal(NO_GRID_PREFIX)

# An outbox row's: the grid code its message names (`none` without a grid), else the resident.
OUTBOX_KEY_SQL = sql.SQL(
    "CASE WHEN coalesce(o.payload->>'grid_code', 'none') IN ('', 'none') "
    "THEN {} || coalesce(o.payload->>'resident_id', '') "
    "ELSE o.payload->>'grid_code' END"
).format(NO_GRID)

_PARTITION = sql.SQL(
    "(('x' || left(encode(sha256(convert_to({}, 'UTF8')), 'hex'), 8))::bit(32)::bigint"
    " %% %(partition_count)s)"
)


def partition_sql(key: sql.Composable) -> sql.Composed:
    """SQL computing `partition_of(key, count)` with named parameters `partition_count`:
    the first 4 bytes of the key's SHA-256 as an unsigned number, modulo the count."""
    return _PARTITION.format(key)


def in_partition(key: sql.Composable) -> sql.Composed:
    """SQL true where `key` falls in the partition of `partition_params`."""
    return sql.SQL("{} = %(partition_index)s").format(partition_sql(key))


def partition_params(partition: Partition) -> dict[str, int]:
    return {"partition_count": partition.count, "partition_index": partition.index}


def write_outbox(
    conn: psycopg.Connection,
    alert: OpenAlert,
    event_id: int,
    state: str,
    now: datetime,
    grid_code: str | None,
    topic_prefix: str,
    webhooks: tuple[str, ...],
    extra: dict,
) -> None:
    """Queue an alert state change for MQTT (`{prefix}/alerts/{grid}`) and every webhook."""
    code = grid_code or "none"
    payload = {
        "alert_id": alert.id,
        "event_id": event_id,
        "state": state,
        "resident_id": alert.resident_id,
        "kind": alert.kind,
        "grid_code": code,
        "level": alert.level,
        "since": alert.since.isoformat(),
        "at": now.isoformat(),
        **extra,
    }
    [(outbox_id,)] = conn.execute(
        "INSERT INTO alert_outbox (alert_id, event_id, topic, payload) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (alert.id, event_id, f"{topic_prefix}/alerts/{code}", Jsonb(payload)),
    ).fetchall()
    for url in webhooks:
        conn.execute(
            "INSERT INTO webhook_deliveries (outbox_id, url) VALUES (%s, %s)", (outbox_id, url)
        )


def _outbox_partition(partition: Partition | None) -> tuple[sql.Composable, dict[str, int]]:
    """The condition (on alert_outbox o) that a row is this partition's to deliver: each row
    has one grid code, so exactly one of N delivery loops sends it, a topic's in order."""
    if partition is None or partition.count == 1:
        return sql.SQL(""), {}
    return sql.SQL("AND {}").format(in_partition(OUTBOX_KEY_SQL)), partition_params(partition)


def unpublished(
    conn: psycopg.Connection, limit: int = 500, partition: Partition | None = None
) -> list[tuple[int, str, dict]]:
    """Outbox rows not yet acknowledged by the broker (the partition's), oldest first."""
    where, params = _outbox_partition(partition)
    rows = conn.execute(
        sql.SQL(
            "SELECT o.id, o.topic, o.payload FROM alert_outbox o WHERE o.published_at IS NULL "
            "{} ORDER BY o.id LIMIT %(limit)s"
        ).format(where),
        {**params, "limit": limit},
    ).fetchall()
    conn.commit()
    return rows


def mark_published(conn: psycopg.Connection, ids: list[int], at: datetime) -> None:
    """Record that the broker has these outbox rows (PUBACK received)."""
    with conn.transaction():
        conn.execute("UPDATE alert_outbox SET published_at = %s WHERE id = ANY(%s)", (at, ids))


def due_webhooks(
    conn: psycopg.Connection, now: datetime, limit: int = 100, partition: Partition | None = None
) -> list[tuple[int, str, int, dict]]:
    """Webhook deliveries (the partition's) whose next attempt has come: (outbox id, url,
    attempts, payload)."""
    where, params = _outbox_partition(partition)
    rows = conn.execute(
        sql.SQL(
            """
            SELECT d.outbox_id, d.url, d.attempts, o.payload
            FROM webhook_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id
            WHERE d.delivered_at IS NULL AND d.next_attempt_at <= %(now)s {}
            ORDER BY d.next_attempt_at, d.outbox_id LIMIT %(limit)s
            """
        ).format(where),
        {**params, "now": now, "limit": limit},
    ).fetchall()
    conn.commit()
    return rows


def record_webhook_attempt(
    conn: psycopg.Connection,
    outbox_id: int,
    url: str,
    *,
    delivered_at: datetime | None,
    error: str | None,
    next_attempt_at: datetime,
) -> None:
    """Mark a delivery done, or count a failed attempt and when to try again."""
    with conn.transaction():
        conn.execute(
            """
            UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = %s,
                last_error = %s, next_attempt_at = %s
            WHERE outbox_id = %s AND url = %s
            """,
            (delivered_at, error, next_attempt_at, outbox_id, url),
        )


def write_warning_outbox(
    conn: psycopg.Connection,
    warning_id: int,
    payload: dict,
    grid_code: str | None,
    topic_prefix: str,
    webhooks: tuple[str, ...],
) -> None:
    """Queue a level-2 warning for MQTT (`{prefix}/alerts/{grid}`) and every webhook, beside
    the alert changes: the same delivery loop sends it, in order with its grid's alerts."""
    code = grid_code or "none"
    [(outbox_id,)] = conn.execute(
        "INSERT INTO alert_outbox (warning_id, topic, payload) VALUES (%s, %s, %s) RETURNING id",
        (warning_id, f"{topic_prefix}/alerts/{code}", Jsonb({**payload, "grid_code": code})),
    ).fetchall()
    for url in webhooks:
        conn.execute(
            "INSERT INTO webhook_deliveries (outbox_id, url) VALUES (%s, %s)", (outbox_id, url)
        )


def write_case_outbox(
    conn: psycopg.Connection,
    case_kind: str,
    case_event_id: int,
    payload: dict,
    topic_prefix: str,
    webhooks: Sequence[str],
    now: datetime,
) -> None:
    """Queue a case's step for the webhooks of the contacts of its building: beside alert
    changes, sent and retried by the same delivery, but not published on MQTT (the row is
    marked published as it is written)."""
    code = payload.get("grid_code") or "none"
    [(outbox_id,)] = conn.execute(
        "INSERT INTO alert_outbox (case_kind, case_event_id, topic, payload, published_at) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (case_kind, case_event_id, f"{topic_prefix}/cases/{code}", Jsonb(payload), now),
    ).fetchall()
    for url in webhooks:
        conn.execute(
            "INSERT INTO webhook_deliveries (outbox_id, url) VALUES (%s, %s)", (outbox_id, url)
        )
