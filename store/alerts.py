"""Alerts as people see and handle them: pages of the alerts layer, one alert, its events,
and the steps people take (acknowledge, resolve), each queued for delivery like the engine's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.errors import Conflict
from gridwatch.store.filters import (
    Filters,
    Placed,
    all_of,
    count_per_day,
    where_columns,
    where_filters,
)
from gridwatch.store.outbox import write_outbox
from gridwatch.store.paging import Listing, Page, fetch_one, fetch_rows

ACTIVE_STATUSES = ("open", "acknowledged")  # not yet resolved: the desk's live list


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    resident_id: str | None
    kind: str
    grid_id: int | None
    grid_code: str | None
    status: str
    severity: str
    level: str
    since: datetime
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    lon: float | None
    lat: float | None
    name: str | None
    phone: str | None
    address: str | None
    police_grid_id: int | None = None  # the resident's: an alert is where they live


_ALERT_SELECT = sql.SQL(
    "a.id, a.resident_id, a.kind, a.grid_id, g.code AS grid_code, a.status, a.severity, "
    "a.level, a.since, a.opened_at, a.updated_at, a.acknowledged_at, a.acknowledged_by, "
    "a.resolved_at, a.resolved_by, a.resolution, r.lon, r.lat, r.name, r.phone, r.address, "
    "r.police_grid_id"
)


# An alert with its resident `r`: an alert is where the resident lives, in either system.
_WITH_HOME = sql.SQL("alerts a LEFT JOIN residents r ON r.id = a.resident_id")
_ALERT_FROM = sql.SQL("{} LEFT JOIN grids g ON g.id = a.grid_id").format(_WITH_HOME)
_ALERTS = Listing(
    AlertRow, _ALERT_SELECT, _ALERT_FROM, sql.SQL("a.id DESC"), sql.SQL("a.id < %(after)s")
)


def alert_page(
    conn: psycopg.Connection,
    filters: Filters,
    *,
    limit: int,
    after: int | None = None,
    statuses: Sequence[str] | None = None,
    level: str | None = None,
    kind: str | None = None,
) -> Page[AlertRow]:
    """Alerts newest first; positions are the residents' homes."""
    # An alert has no position of its own: it is where the resident lives.
    where, params = where_filters(filters, alias="a", time_column="opened_at", position_alias="r")
    where_columns(where, params, "a", status=statuses, level=level, kind=kind)
    keyset = None if after is None else {"after": after}
    return _ALERTS.page(conn, where, params, after=keyset, limit=limit)


def all_alerts(conn: psycopg.Connection) -> list[AlertRow]:
    """Every alert in `alert_page`'s order."""
    return _ALERTS.all(conn)


def get_alert(conn: psycopg.Connection, alert_id: int) -> AlertRow:
    return _ALERTS.one(conn, sql.SQL("a.id = %s"), (alert_id,), f"no alert {alert_id}")


def write_event(
    conn: psycopg.Connection,
    alert: OpenAlert,
    at: datetime,
    state: str,
    actor: str | None,
    note: str | None,
) -> int:
    """Record one step of an alert's life in alert_events; returns the event id."""
    [(event_id,)] = conn.execute(
        "INSERT INTO alert_events (alert_id, at, action, actor, note, level) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (alert.id, at, state, actor, note, alert.level),
    ).fetchall()
    return event_id


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


def residents_with_open_alerts(conn: psycopg.Connection) -> set[str]:
    """Residents with an alert not yet resolved."""
    rows = conn.execute(
        "SELECT DISTINCT resident_id FROM alerts "
        "WHERE status <> 'resolved' AND resident_id IS NOT NULL"
    ).fetchall()
    return {resident_id for (resident_id,) in rows}


def _alert_for_update(conn: psycopg.Connection, alert_id: int) -> OpenAlert:
    query = (
        "SELECT id, resident_id, kind, since, status, level, opened_at FROM alerts "
        "WHERE id = %s FOR UPDATE"
    )
    return fetch_one(conn, OpenAlert, query, (alert_id,), f"no alert {alert_id}")


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


@dataclass(frozen=True, slots=True)
class AlertTally:
    """How many alerts not yet resolved share a kind, a level and a status."""

    kind: str
    level: str
    status: str
    count: int


def open_alert_tally(conn: psycopg.Connection, filters: Filters) -> list[AlertTally]:
    """Alerts not yet resolved that `filters` select (a scope, police grids too), by kind,
    level and status: the scope's own count, which the desk's sum of
    `open_alert_tally_by_grid` must equal (tested)."""
    where, params = where_filters(filters, alias="a", position_alias="r")
    where.append(sql.SQL("a.status <> 'resolved'"))
    with conn.cursor(row_factory=class_row(AlertTally)) as cur:
        return cur.execute(
            sql.SQL(
                "SELECT a.kind, a.level, a.status, count(*) AS count FROM {} "
                "WHERE {} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ).format(_WITH_HOME, all_of(where)),
            params,
        ).fetchall()


def alerts_opened_daily(
    conn: psycopg.Connection, filters: Filters, *, start: datetime, end: datetime, zone
) -> dict[date, int]:
    """Alerts opened in [start, end) that `filters` select, per local day of `zone`: the
    scope's own count, which the desk's sum of `alerts_opened_daily_by_grid` must equal
    (tested)."""
    where, params = where_filters(filters, alias="a", position_alias="r")
    opened_at = sql.SQL("a.opened_at")
    return count_per_day(
        conn, _WITH_HOME, opened_at, where, params, start=start, end=end, zone=zone
    )


def active_alerts(conn: psycopg.Connection) -> list[AlertRow]:
    """Every open or acknowledged alert, in `alert_page`'s order (newest first)."""
    query = sql.SQL("SELECT {} FROM {} WHERE a.status = ANY(%s) ORDER BY a.id DESC").format(
        _ALERT_SELECT, _ALERT_FROM
    )
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        return cur.execute(query, (list(ACTIVE_STATUSES),)).fetchall()


def open_alert_tally_by_grid(conn: psycopg.Connection) -> list[tuple[Placed, AlertTally]]:
    """`open_alert_tally` of every grid and police grid (the resident's) apart, in its order
    (kind, level, status): summed over the pairs a caller sees either grid of, in this order,
    it is that caller's tally."""
    rows = conn.execute(
        sql.SQL(
            "SELECT a.grid_id, r.police_grid_id, a.kind, a.level, a.status, count(*) FROM {} "
            "WHERE a.status <> 'resolved' GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 4, 5, 1, 2"
        ).format(_WITH_HOME)
    ).fetchall()
    return [((grid, police), AlertTally(*tally)) for grid, police, *tally in rows]


def alerts_opened_daily_by_grid(
    conn: psycopg.Connection, *, start: datetime, end: datetime, zone
) -> dict[Placed, dict[date, int]]:
    """`alerts_opened_daily` of every grid and police grid (the resident's) apart (None:
    outside every grid of that system)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT a.grid_id, r.police_grid_id, (a.opened_at AT TIME ZONE %(tz)s)::date, "
            "count(*) FROM {} WHERE a.opened_at >= %(start)s AND a.opened_at < %(end)s "
            "GROUP BY 1, 2, 3"
        ).format(_WITH_HOME),
        {"start": start, "end": end, "tz": zone.key},
    ).fetchall()
    days: dict[Placed, dict[date, int]] = {}
    for grid, police, day, count in rows:
        days.setdefault((grid, police), {})[day] = count
    return days


def alert_history(conn: psycopg.Connection, alert_id: int) -> list[AlertStep]:
    """The alert's events, oldest first."""
    query = "SELECT id, at, action, actor, note, level FROM alert_events WHERE alert_id = %s"
    query += " ORDER BY id"
    return fetch_rows(conn, AlertStep, query, (alert_id,))


@dataclass(frozen=True, slots=True)
class AlertStep:
    """One row of an alert's history (alert_events)."""

    id: int
    at: datetime
    action: str
    actor: str | None
    note: str | None
    level: str | None
