"""The alert engine's reads and writes: homes, their history, open alerts, the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gridwatch.alerts.activity import Baseline, learn_baseline
from gridwatch.alerts.engine import Home, Signal
from gridwatch.alerts.lifecycle import Escalate, Open, OpenAlert, Resolve
from gridwatch.alerts.profile import HomeProfile
from gridwatch.alerts.rules import Absence
from gridwatch.errors import Conflict, NotFound
from gridwatch.store.migrate import read_meta
from gridwatch.store.mode import PLAIN
from gridwatch.store.rollups import refresh_meter_hourly

ACTIVITY_EVENTS = (
    "door_open",
    "motion",
    "curtain_open",
    "curtain_close",
    "light_on",
    "light_off",
    "button",
)
EMERGENCY_EVENTS = ("sos", "fall")


class AlertStore:
    """All SQL of the alert engine, over one connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._meta = read_meta(conn)
        conn.commit()

    @property
    def plain(self) -> bool:
        return self._meta.get("mode", PLAIN) == PLAIN

    def homes(self) -> list[Home]:
        """Every resident with their meter, sensors, grid and whether they live alone."""
        rows = self.conn.execute(
            """
            SELECT r.id, r.grid_id, g.code, r.rules, r.created_at, r.living_alone,
                   (SELECT min(d.id) FROM devices d
                     WHERE d.resident_id = r.id AND d.kind = 'meter'),
                   coalesce((SELECT array_agg(d.id ORDER BY d.id) FROM devices d
                             WHERE d.resident_id = r.id AND d.kind = 'sensor'), '{}')
            FROM residents r LEFT JOIN grids g ON g.id = r.grid_id
            ORDER BY r.id
            """
        ).fetchall()
        self.conn.commit()
        return [
            Home(rid, gid, code, rules or {}, meter, tuple(sensors), created, alone)
            for rid, gid, code, rules, created, alone, meter, sensors in rows
        ]

    def baselines(self, as_of: datetime, tz: str) -> dict[str, Baseline]:
        """Each meter's night baseline from the hourly rollup of the 28 days before `as_of`."""
        since = as_of - timedelta(days=28)
        if self.plain:
            from zoneinfo import ZoneInfo

            refresh_meter_hourly(self.conn, since=since, zone=ZoneInfo(tz))
        rows = self.conn.execute(
            """
            SELECT meter_id, array_agg(power_w_avg), array_agg(power_w_max)
            FROM meter_hourly
            WHERE bucket >= %(since)s AND bucket < %(as_of)s
              AND extract(hour FROM bucket AT TIME ZONE %(tz)s) BETWEEN 1 AND 4
              AND power_w_avg IS NOT NULL
            GROUP BY meter_id
            """,
            {"since": since, "as_of": as_of, "tz": tz},
        ).fetchall()
        self.conn.commit()
        return {meter: learn_baseline(list(means), list(peaks)) for meter, means, peaks in rows}

    def signals_between(self, since: datetime, until: datetime) -> Iterator[Signal]:
        """Everything observed in (since, until], in time order (for a cold start)."""
        for signal, _received in self._signals(
            "observed_at",
            "observed_at > %(since)s AND observed_at <= %(until)s",
            {"since": since, "until": until},
        ):
            yield signal

    def signals_received_after(self, watermark: datetime) -> tuple[list[Signal], datetime | None]:
        """What arrived after `watermark` (by received_at), in time order, and the newest
        received_at among the devices' rows (checks by people carry no received_at)."""
        signals = []
        newest = None
        for signal, received in self._signals(
            "received_at", "received_at > %(w)s", {"w": watermark}
        ):
            signals.append(signal)
            # Checks move no watermark: their arrival is the database's clock, not ingest's.
            if signal.source != "check" and (newest is None or received > newest):
                newest = received
        return signals, newest

    def _signals(self, column: str, where: str, params: dict[str, Any]):
        """One round trip over the four sources, ordered by observation time, so that each
        meter's readings come in order and a home's signs of life too."""
        # A check is polled by when it was recorded, like device data, so a host whose clock
        # is behind cannot slip it under the watermark; it is observed at `at`.
        check_where = where.replace("observed_at", "at")
        query = f"""
            SELECT 'meter', meter_id, observed_at, received_at, power_w, energy_kwh, water_l,
                   NULL::text
            FROM meter_readings WHERE {where}
            UNION ALL
            SELECT 'sensor', device_id, observed_at, received_at, NULL, NULL, NULL, event
            FROM sensor_events WHERE {where}
            UNION ALL
            SELECT 'visit', resident_id, observed_at, received_at, NULL, NULL, NULL, NULL
            FROM patrol_checkins WHERE {where}
              AND kind = 'visit' AND status IN ('ok', 'concern') AND resident_id IS NOT NULL
            UNION ALL
            SELECT 'check', resident_id, at, received_at, NULL, NULL, NULL, NULL
            FROM resident_checks WHERE {check_where}
            ORDER BY 3
        """  # noqa: S608 - `where` is one of this class's own conditions; values are parameters
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            for source, key, at, received, power, energy, water, event in cur:
                yield Signal(source, key, at, power, energy, water, event), received
        self.conn.commit()

    def latest_received(self) -> datetime | None:
        """The newest received_at over the time-series tables."""
        value = self.conn.execute(
            "SELECT greatest((SELECT max(received_at) FROM meter_readings), "
            "(SELECT max(received_at) FROM sensor_events), "
            "(SELECT max(received_at) FROM patrol_checkins))"
        ).fetchone()[0]
        self.conn.commit()
        return value

    def absences(self, after: datetime) -> dict[str, list[Absence]]:
        """Registered absences that end after `after`, by resident."""
        found: dict[str, list[Absence]] = {}
        for resident, starts, ends in self.conn.execute(
            "SELECT resident_id, starts_at, ends_at FROM absences WHERE ends_at > %s", (after,)
        ):
            found.setdefault(resident, []).append(Absence(starts, ends))
        self.conn.commit()
        return found

    def emergencies_resolved(self) -> dict[tuple[str, str], datetime]:
        """For each (resident, sos|fall), when their last such alert was resolved."""
        rows = self.conn.execute(
            "SELECT resident_id, kind, max(resolved_at) FROM alerts "
            "WHERE kind IN ('sos', 'fall') AND resolved_at IS NOT NULL GROUP BY 1, 2"
        ).fetchall()
        self.conn.commit()
        return {(resident, kind): at for resident, kind, at in rows}

    def profiles(self) -> dict[str, HomeProfile]:
        """The learned profile of every home that has one."""
        found = {}
        for resident, first, quiet, last_seen in self.conn.execute(
            "SELECT resident_id, first_activity_s, quiet_s, last_seen FROM home_profiles"
        ):
            profile = HomeProfile(last_seen=last_seen)
            profile.first_activity_s.extend(first)
            profile.quiet_s.extend(quiet)
            found[resident] = profile
        self.conn.commit()
        return found

    def save_profiles(self, profiles: dict[str, HomeProfile]) -> None:
        """Upsert the given homes' profiles in one transaction."""
        if not profiles:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO home_profiles (resident_id, first_activity_s, quiet_s, last_seen)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (resident_id) DO UPDATE SET
                    first_activity_s = EXCLUDED.first_activity_s, quiet_s = EXCLUDED.quiet_s,
                    last_seen = EXCLUDED.last_seen, updated_at = now()
                """,
                [
                    (r, list(p.first_activity_s), list(p.quiet_s), p.last_seen)
                    for r, p in profiles.items()
                ],
            )

    def open_alerts(self) -> list[OpenAlert]:
        """Every alert not resolved."""
        rows = self.conn.execute(
            "SELECT id, resident_id, kind, since, status, level, opened_at FROM alerts "
            "WHERE status <> 'resolved'"
        ).fetchall()
        self.conn.commit()
        return [OpenAlert(*row) for row in rows]

    def apply(
        self,
        actions: list[Open | Resolve | Escalate],
        now: datetime,
        *,
        grid_codes: dict[str, str | None],
        topic_prefix: str,
        webhooks: tuple[str, ...] = (),
    ) -> list[OpenAlert]:
        """Write the actions, their events and outbox rows in one transaction.

        Returns the alerts opened (with their ids). An Open that meets an alert already
        open for the same resident and kind (another engine got there first) is skipped,
        and so is a Resolve or Escalate of an alert a person changed meanwhile.
        """
        opened: list[OpenAlert] = []
        with self.conn.transaction():
            for action in actions:
                change = self._apply_one(action, now)
                if change is None:
                    continue
                alert, state, note, extra = change
                if state == "open":
                    opened.append(alert)
                event_id = write_event(self.conn, alert, now, state, "gridwatch", note)
                write_outbox(
                    self.conn,
                    alert,
                    event_id,
                    state,
                    now,
                    grid_codes.get(alert.resident_id),
                    topic_prefix,
                    webhooks,
                    extra,
                )
        return opened

    def _apply_one(self, action, now: datetime):
        if isinstance(action, Open):
            condition = action.condition
            row = self.conn.execute(
                """
                INSERT INTO alerts (resident_id, kind, grid_id, severity, since, opened_at)
                SELECT id, %s, grid_id, %s, %s, %s FROM residents WHERE id = %s
                ON CONFLICT (resident_id, kind) WHERE status <> 'resolved' DO NOTHING
                RETURNING id
                """,
                (condition.kind, condition.severity, condition.since, now, action.resident_id),
            ).fetchone()
            if row is None:
                return None
            alert = OpenAlert(
                row[0], action.resident_id, condition.kind, condition.since, "open", "grid", now
            )
            return alert, "open", condition.kind, {"severity": condition.severity}
        if isinstance(action, Resolve):
            done = self.conn.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = %s, "
                "resolved_by = 'gridwatch', resolution = %s, updated_at = now() "
                "WHERE id = %s AND status <> 'resolved'",
                (now, action.reason, action.alert.id),
            ).rowcount
            if not done:
                return None
            return action.alert, "resolved", action.reason, {"reason": action.reason}
        done = self.conn.execute(
            "UPDATE alerts SET level = %s, updated_at = now() WHERE id = %s AND status = 'open'",
            (action.level, action.alert.id),
        ).rowcount
        if not done:
            return None
        escalated = replace(action.alert, level=action.level)
        note = f"not acknowledged; escalated to {action.level}"
        return escalated, "escalated", note, {}


def write_event(
    conn: psycopg.Connection,
    alert: OpenAlert,
    at: datetime,
    state: str,
    actor: str | None,
    note: str | None,
) -> int:
    """Record one step of an alert's life in alert_events; returns the event id."""
    return conn.execute(
        "INSERT INTO alert_events (alert_id, at, action, actor, note, level) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (alert.id, at, state, actor, note, alert.level),
    ).fetchone()[0]


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
    outbox_id = conn.execute(
        "INSERT INTO alert_outbox (alert_id, event_id, topic, payload) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (alert.id, event_id, f"{topic_prefix}/alerts/{code}", Jsonb(payload)),
    ).fetchone()[0]
    for url in webhooks:
        conn.execute(
            "INSERT INTO webhook_deliveries (outbox_id, url) VALUES (%s, %s)", (outbox_id, url)
        )


# -- what people do: acknowledge, resolve, register absences --------------------------------


def acknowledge_alert(
    conn: psycopg.Connection,
    alert_id: int,
    *,
    actor: str,
    note: str | None,
    now: datetime,
    topic_prefix: str,
    webhooks: tuple[str, ...] = (),
) -> None:
    """A duty officer or grid worker takes the alert: escalation stops."""
    with conn.transaction():
        alert = _alert_for_update(conn, alert_id)
        if alert.status != "open":
            raise Conflict(f"alert {alert_id} is {alert.status}, not open")
        conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s,"
            " updated_at = now() WHERE id = %s",
            (now, actor, alert_id),
        )
        _person_event(
            conn, alert, "acknowledge", "acknowledged", actor, note, now, topic_prefix, webhooks
        )


def resolve_alert(
    conn: psycopg.Connection,
    alert_id: int,
    *,
    actor: str,
    reason: str,
    checked: bool,
    now: datetime,
    topic_prefix: str,
    webhooks: tuple[str, ...] = (),
) -> None:
    """Close the alert with a reason; `checked` records that someone saw the person well,
    which counts as a sign of life (the engine will not reopen it for the same quiet)."""
    with conn.transaction():
        alert = _alert_for_update(conn, alert_id)
        if alert.status == "resolved":
            raise Conflict(f"alert {alert_id} is already resolved")
        conn.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = %s, resolved_by = %s, "
            "resolution = %s, updated_at = now() WHERE id = %s",
            (now, actor, reason, alert_id),
        )
        if checked and alert.resident_id:
            conn.execute(
                "INSERT INTO resident_checks (resident_id, at, actor, note, alert_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (alert.resident_id, now, actor, reason, alert_id),
            )
        _person_event(
            conn, alert, "resolve", "resolved", actor, reason, now, topic_prefix, webhooks
        )


def add_absence(
    conn: psycopg.Connection,
    resident_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    note: str | None = None,
    created_by: str | None = None,
) -> int:
    """Register an absence (外出报备); the activity rules are silent while it lasts."""
    if ends_at <= starts_at:
        raise Conflict("an absence must end after it starts")
    with conn.transaction():
        if conn.execute("SELECT 1 FROM residents WHERE id = %s", (resident_id,)).fetchone() is None:
            raise NotFound(f"no resident {resident_id!r}")
        return conn.execute(
            "INSERT INTO absences (resident_id, starts_at, ends_at, note, created_by) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (resident_id, starts_at, ends_at, note, created_by),
        ).fetchone()[0]


def _alert_for_update(conn: psycopg.Connection, alert_id: int) -> OpenAlert:
    row = conn.execute(
        "SELECT id, resident_id, kind, since, status, level, opened_at FROM alerts "
        "WHERE id = %s FOR UPDATE",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return OpenAlert(*row)


def _person_event(
    conn,
    alert: OpenAlert,
    action: str,
    state: str,
    actor: str,
    note: str | None,
    now: datetime,
    topic_prefix: str,
    webhooks: tuple[str, ...],
) -> None:
    grid_code = conn.execute(
        "SELECT g.code FROM residents r LEFT JOIN grids g ON g.id = r.grid_id WHERE r.id = %s",
        (alert.resident_id,),
    ).fetchone()
    event_id = write_event(conn, alert, now, state, actor, note)
    write_outbox(
        conn,
        alert,
        event_id,
        state,
        now,
        grid_code[0] if grid_code else None,
        topic_prefix,
        webhooks,
        {"by": actor, "note": note},
    )


# -- the outbox: MQTT and webhooks -----------------------------------------------------------


def unpublished(conn: psycopg.Connection, limit: int = 500) -> list[tuple[int, str, dict]]:
    """Outbox rows not yet acknowledged by the broker, oldest first."""
    rows = conn.execute(
        "SELECT id, topic, payload FROM alert_outbox WHERE published_at IS NULL "
        "ORDER BY id LIMIT %s",
        (limit,),
    ).fetchall()
    conn.commit()
    return rows


def mark_published(conn: psycopg.Connection, ids: list[int], at: datetime) -> None:
    """Record that the broker has these outbox rows (PUBACK received)."""
    with conn.transaction():
        conn.execute("UPDATE alert_outbox SET published_at = %s WHERE id = ANY(%s)", (at, ids))


def due_webhooks(
    conn: psycopg.Connection, now: datetime, limit: int = 100
) -> list[tuple[int, str, int, dict]]:
    """Webhook deliveries whose next attempt has come: (outbox id, url, attempts, payload)."""
    rows = conn.execute(
        """
        SELECT d.outbox_id, d.url, d.attempts, o.payload
        FROM webhook_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id
        WHERE d.delivered_at IS NULL AND d.next_attempt_at <= %s
        ORDER BY d.next_attempt_at LIMIT %s
        """,
        (now, limit),
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
