"""The alert engine's reads and writes: homes, their history, open alerts, the outbox."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gridwatch.alerts.activity import Baseline, learn_baseline
from gridwatch.alerts.engine import Home, Signal
from gridwatch.alerts.lifecycle import Escalate, Open, OpenAlert, Resolve
from gridwatch.alerts.partition import NO_GRID_PREFIX, Partition
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
HOMES_DIGEST_EVERY_S = 60.0


def home_key_sql(resident_id: str) -> str:
    """A home's partition key in SQL (grids g joined), as `partition_key` makes it."""
    return f"coalesce(nullif(g.code, ''), '{NO_GRID_PREFIX}' || coalesce({resident_id}, ''))"


# An outbox row's: the grid code its message names (`none` without a grid), else the resident.
OUTBOX_KEY_SQL = (
    "CASE WHEN coalesce(o.payload->>'grid_code', 'none') IN ('', 'none') "
    f"THEN '{NO_GRID_PREFIX}' || coalesce(o.payload->>'resident_id', '') "
    "ELSE o.payload->>'grid_code' END"
)


def partition_sql(key_sql: str) -> str:
    """SQL computing `partition_of(key, count)` with named parameters `partition_count`:
    the first 4 bytes of the key's SHA-256 as an unsigned number, modulo the count."""
    digest = f"encode(sha256(convert_to({key_sql}, 'UTF8')), 'hex')"
    return f"(('x' || left({digest}, 8))::bit(32)::bigint %% %(partition_count)s)"


def partition_params(partition: Partition) -> dict[str, int]:
    return {"partition_count": partition.count, "partition_index": partition.index}


@dataclass(frozen=True, slots=True)
class Scope:
    """The devices and residents whose data an engine reads: its own homes' only. A few
    homes' ids go to the server as arrays; a whole partition's sit in a temporary table of
    the connection (`in_table`), since planning `= ANY` over 100,000 ids costs more per
    poll than the poll."""

    meters: list[str]
    sensors: list[str]
    residents: list[str]
    in_table: bool = False

    def condition(self, column: str, source: str) -> str:
        """SQL keeping the rows whose `column` is one of the scope's `source` ids."""
        if self.in_table:
            return f"{column} IN (SELECT key FROM gw_scope WHERE source = '{source}')"  # noqa: S608 - column and source come from this module
        return f"{column} = ANY(%({source})s)"

    def params(self) -> dict[str, list[str]]:
        if self.in_table:
            return {}
        return {"meter": self.meters, "sensor": self.sensors, "resident": self.residents}

    def write_table(self, conn: psycopg.Connection) -> Scope:
        """This scope in the connection's temporary table; returns it as read from there."""
        with conn.transaction():
            # The key makes a nested loop over it a lookup: the planner may take one when it
            # expects few rows (a rollup just refreshed), and a scan per row took minutes.
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS gw_scope "
                "(source text NOT NULL, key text NOT NULL, PRIMARY KEY (source, key))"
            )
            conn.execute("TRUNCATE gw_scope")
            with conn.cursor() as cur, cur.copy("COPY gw_scope (source, key) FROM STDIN") as copy:
                for source, keys in self.params().items():
                    for key in dict.fromkeys(keys):
                        copy.write_row((source, key))
            conn.execute("ANALYZE gw_scope")
        return replace(self, in_table=True)

    @classmethod
    def of(cls, homes: Iterable[Home]) -> Scope:
        meters: list[str] = []
        sensors: list[str] = []
        residents: list[str] = []
        for home in homes:
            residents.append(home.resident_id)
            sensors.extend(home.sensor_ids)
            if home.meter_id:
                meters.append(home.meter_id)
        return cls(meters, sensors, residents)


class AlertStore:
    """All SQL of the alert engine, over one connection.

    With a `partition`, it reads and writes only that partition's homes: `homes()` returns
    those of the partition as the database has them now, the data read is their devices',
    and `apply` skips what concerns a resident who has meanwhile moved to another partition.
    """

    def __init__(self, conn: psycopg.Connection, partition: Partition | None = None) -> None:
        self.conn = conn
        self.partition = None if partition is None or partition.count == 1 else partition
        self._own: Scope | None = None  # the partition's homes as of the last homes()
        self._homes: list[Home] = []
        self._homes_digest: str | None = None
        self._rows_written_seen: int | None = None
        self._digest_at = 0.0
        self._meta = read_meta(conn)
        conn.commit()

    @property
    def plain(self) -> bool:
        return self._meta.get("mode", PLAIN) == PLAIN

    def homes(self) -> list[Home]:
        """Every resident (of the partition) with their meter, sensors, grid and whether
        they live alone: the same list as last time unless they changed.

        The engine asks every few seconds. Building 100,000 homes costs seconds, a digest
        of their rows a fraction of that, and PostgreSQL's count of rows written to the
        three tables next to nothing: the digest is computed when that count moved, or a
        minute after the last one (the count can be reset, or be seconds late)."""
        changes = self._rows_written()
        if (
            self._homes_digest is not None
            and changes == self._rows_written_seen
            and time.monotonic() - self._digest_at < HOMES_DIGEST_EVERY_S
        ):
            return self._homes
        self._rows_written_seen, self._digest_at = changes, time.monotonic()
        where, params = "", {}
        if self.partition is not None:
            where = f"WHERE {partition_sql(home_key_sql('r.id'))} = %(partition_index)s"
            params = partition_params(self.partition)
        # Before the rows: a change in between makes the next digest differ, not go unseen.
        # A sum of row hashes: no sort, so a fraction of reading the rows even at 100,000.
        [(digest,)] = self.conn.execute(
            f"""
            SELECT concat_ws(':', count(*),
                sum(hashtextextended(concat_ws('|', r.id, r.grid_id, g.code, r.rules,
                                               r.created_at, r.living_alone), 0)::numeric),
                (SELECT sum(hashtextextended(concat_ws('|', kind, id, resident_id), 0)::numeric)
                 FROM devices WHERE resident_id IS NOT NULL))
            FROM residents r LEFT JOIN grids g ON g.id = r.grid_id
            {where}
            """,  # noqa: S608 - SQL made here from constants; every value is a parameter
            params,
        ).fetchall()
        if digest == self._homes_digest:
            self.conn.commit()
            return self._homes
        rows = self.conn.execute(
            f"""
            SELECT r.id, r.grid_id, g.code, r.rules, r.created_at, r.living_alone,
                   d.meter, coalesce(d.sensors, '{{}}')
            FROM residents r LEFT JOIN grids g ON g.id = r.grid_id
            LEFT JOIN (
                SELECT resident_id, min(id) FILTER (WHERE kind = 'meter') AS meter,
                       array_agg(id ORDER BY id) FILTER (WHERE kind = 'sensor') AS sensors
                FROM devices WHERE resident_id IS NOT NULL GROUP BY resident_id
            ) d ON d.resident_id = r.id
            {where}
            ORDER BY r.id
            """,  # noqa: S608 - SQL made here from constants; every value is a parameter
            params,
        ).fetchall()
        self.conn.commit()
        homes = [
            Home(rid, gid, code, rules or {}, meter, tuple(sensors), created, alone)
            for rid, gid, code, rules, created, alone, meter, sensors in rows
        ]
        if self.partition is not None:
            self._own = Scope.of(homes).write_table(self.conn)
        self._homes_digest, self._homes = digest, homes
        return homes

    def _rows_written(self) -> int | None:
        """Rows inserted, updated and deleted so far in residents, devices and grids."""
        [(value,)] = self.conn.execute(
            "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables "
            "WHERE relid IN ('residents'::regclass, 'devices'::regclass, 'grids'::regclass)"
        ).fetchall()
        self.conn.commit()
        return value

    def _scope(self, homes: list[Home] | None) -> Scope | None:
        """Whose data to read: these homes', else the partition's, else everyone's (None)."""
        return Scope.of(homes) if homes is not None else self._own

    def baselines(
        self, as_of: datetime, tz: str, homes: list[Home] | None = None
    ) -> dict[str, Baseline]:
        """Each meter's night baseline from the hourly rollup of the 28 days before `as_of`
        (of these homes' meters, or the partition's)."""
        since = as_of - timedelta(days=28)
        if self.plain:
            from zoneinfo import ZoneInfo

            refresh_meter_hourly(self.conn, since=since, zone=ZoneInfo(tz))
        scope = self._scope(homes)
        rows = self.conn.execute(
            f"""
            SELECT meter_id, array_agg(power_w_avg), array_agg(power_w_max)
            FROM meter_hourly
            WHERE bucket >= %(since)s AND bucket < %(as_of)s
              AND extract(hour FROM bucket AT TIME ZONE %(tz)s) BETWEEN 1 AND 4
              AND power_w_avg IS NOT NULL
              {"" if scope is None else "AND " + scope.condition("meter_id", "meter")}
            GROUP BY meter_id
            """,  # noqa: S608 - SQL made here from constants; every value is a parameter
            {"since": since, "as_of": as_of, "tz": tz, **(scope.params() if scope else {})},
        ).fetchall()
        self.conn.commit()
        return {meter: learn_baseline(list(means), list(peaks)) for meter, means, peaks in rows}

    def signals_between(
        self, since: datetime, until: datetime, homes: list[Home] | None = None
    ) -> Iterator[Signal]:
        """Everything observed in (since, until], in time order (for a cold start); only
        these homes' data when given, else the partition's. Also what had arrived by
        `until` stamped later than it: a device clock ahead of ours, whose signs count as
        now (the engine caps them); read by device time alone they would never be read."""
        yield from self._signals(
            "observed_at > %(since)s AND (observed_at <= %(until)s OR received_at <= %(until)s)",
            {"since": since, "until": until},
            self._scope(homes),
        )

    def signals_received_after(self, watermark: datetime) -> tuple[list[Signal], datetime | None]:
        """What arrived after `watermark` (by received_at), in time order, and the newest
        received_at among the devices' rows (checks by people carry no received_at)."""
        where, params = "received_at > %(w)s", {"w": watermark}
        signals = []
        newest = None
        for signal in self._signals(where, params, self._own, tail=True):
            signals.append(signal)
            # Checks move no watermark: their arrival is the database's clock, not ingest's.
            received = signal.received_at
            if signal.source != "check" and (newest is None or received > newest):
                newest = received
        if self._own is not None:
            # The watermark follows everyone's data, not only the partition's: a partition
            # whose homes were quiet for an hour must not re-read that hour on every poll.
            newest = self._newest_received(where, params)
        return signals, newest

    def _newest_received(self, where: str, params: dict[str, Any]) -> datetime | None:
        self._read_the_tail()
        [(value,)] = self.conn.execute(
            f"SELECT greatest((SELECT max(received_at) FROM meter_readings WHERE {where}), "  # noqa: S608 - built from constants; values are parameters
            f"(SELECT max(received_at) FROM sensor_events WHERE {where}), "
            f"(SELECT max(received_at) FROM patrol_checkins WHERE {where}))",
            params,
        ).fetchall()
        self.conn.commit()
        return value

    def _read_the_tail(self) -> None:
        """Plan this transaction's reads for a thin slice at the newest end of received_at.

        A partition that was never analysed (a new day's, or any with autovacuum off) looks
        to the planner like a table to read whole, in parallel and JIT-compiled: a poll that
        finds a few thousand rows took 100-1,000 ms over a week of a district's readings, and
        under 1 ms through the b-trees of migration 012 with these settings.
        """
        self.conn.execute(
            "SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true),"
            " set_config('max_parallel_workers_per_gather', '0', true)"
        )

    def _signals(
        self, where: str, params: dict[str, Any], scope: Scope | None, *, tail: bool = False
    ):
        """One round trip over the four sources, ordered by observation time, so that each
        meter's readings come in order and a home's signs of life too; only the scope's
        devices and residents when there is one. `tail`: the condition selects the newest
        few seconds of arrivals."""
        # A check is polled by when it was recorded, like device data, so a host whose clock
        # is behind cannot slip it under the watermark; it is observed at `at`.
        check_where = where.replace("observed_at", "at")
        meters = sensors = residents = ""
        if scope is not None:
            params = {**params, **scope.params()}
            meters = "AND " + scope.condition("meter_id", "meter")
            sensors = "AND " + scope.condition("device_id", "sensor")
            residents = "AND " + scope.condition("resident_id", "resident")
        query = f"""
            SELECT 'meter', meter_id, observed_at, received_at, power_w, energy_kwh, water_l,
                   NULL::text
            FROM meter_readings WHERE {where} {meters}
            UNION ALL
            SELECT 'sensor', device_id, observed_at, received_at, NULL, NULL, NULL, event
            FROM sensor_events WHERE {where} {sensors}
            UNION ALL
            SELECT 'visit', resident_id, observed_at, received_at, NULL, NULL, NULL, NULL
            FROM patrol_checkins WHERE {where} {residents}
              AND kind = 'visit' AND status IN ('ok', 'concern') AND resident_id IS NOT NULL
            UNION ALL
            SELECT 'check', resident_id, at, received_at, NULL, NULL, NULL, NULL
            FROM resident_checks WHERE {check_where} {residents}
            ORDER BY 3
        """  # noqa: S608 - `where` is one of this class's own conditions; values are parameters
        if tail:
            self._read_the_tail()
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            for source, key, at, received, power, energy, water, event in cur:
                yield Signal(source, key, at, power, energy, water, event, received)
        self.conn.commit()

    def latest_received(self) -> datetime | None:
        """The newest received_at over the time-series tables."""
        self._read_the_tail()
        [(value,)] = self.conn.execute(
            "SELECT greatest((SELECT max(received_at) FROM meter_readings), "
            "(SELECT max(received_at) FROM sensor_events), "
            "(SELECT max(received_at) FROM patrol_checkins))"
        ).fetchall()
        self.conn.commit()
        return value

    def last_meter_readings(self, meters: Sequence[str]) -> dict[str, datetime]:
        """The newest reading (device time) of each of `meters` that ever reported; a meter
        that never did is not in the answer (imported, not yet installed: 未接入)."""
        if not meters:
            return {}
        rows = self.conn.execute(
            "SELECT meter_id, max(observed_at) FROM meter_readings "
            "WHERE meter_id = ANY(%s) GROUP BY meter_id",
            (list(meters),),
        ).fetchall()
        self.conn.commit()
        return dict(rows)

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

    def profiles(self, homes: list[Home] | None = None) -> dict[str, HomeProfile]:
        """The learned profile of every home that has one (of these homes, or the partition)."""
        scope = self._scope(homes)
        found = {}
        for resident, first, rest_first, quiet, last_seen in self.conn.execute(
            "SELECT resident_id, first_activity_s, rest_first_activity_s, quiet_s, last_seen "
            "FROM home_profiles"
            + ("" if scope is None else " WHERE " + scope.condition("resident_id", "resident")),
            scope.params() if scope else {},
        ):
            profile = HomeProfile(last_seen=last_seen)
            profile.first_activity_s.extend(first)
            profile.rest_first_activity_s.extend(rest_first)
            profile.quiet_s.extend(quiet)
            found[resident] = profile
        self.conn.commit()
        return found

    def save_profiles(self, profiles: dict[str, HomeProfile]) -> None:
        """Upsert the given homes' profiles in one transaction. Not limited to the partition:
        an engine letting go of a home that moved hands over what it learned this way."""
        if not profiles:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO home_profiles
                    (resident_id, first_activity_s, rest_first_activity_s, quiet_s, last_seen)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (resident_id) DO UPDATE SET
                    first_activity_s = EXCLUDED.first_activity_s,
                    rest_first_activity_s = EXCLUDED.rest_first_activity_s,
                    quiet_s = EXCLUDED.quiet_s, last_seen = EXCLUDED.last_seen,
                    updated_at = now()
                """,
                [
                    (
                        r,
                        list(p.first_activity_s),
                        list(p.rest_first_activity_s),
                        list(p.quiet_s),
                        p.last_seen,
                    )
                    for r, p in profiles.items()
                ],
            )

    def open_alerts(self) -> list[OpenAlert]:
        """Every alert not resolved (of the partition's homes as the database has them now;
        an alert whose resident was deleted goes with the partition of an empty id)."""
        where, params = "", {}
        if self.partition is not None:
            where = f"AND {partition_sql(home_key_sql('a.resident_id'))}"
            where = f"{where} = %(partition_index)s"
            params = partition_params(self.partition)
        rows = self.conn.execute(
            f"""
            SELECT a.id, a.resident_id, a.kind, a.since, a.status, a.level, a.opened_at
            FROM alerts a LEFT JOIN residents r ON r.id = a.resident_id
                 LEFT JOIN grids g ON g.id = r.grid_id
            WHERE a.status <> 'resolved' {where}
            """,  # noqa: S608 - SQL made here from constants; every value is a parameter
            params,
        ).fetchall()
        self.conn.commit()
        return [OpenAlert(*row) for row in rows]

    def _grid_codes(self, residents: Iterable[str | None]) -> dict[str | None, str | None]:
        """Each resident's grid code as the database has it now."""
        ids = sorted({r for r in residents if r is not None})
        return dict(
            self.conn.execute(
                "SELECT r.id, g.code FROM residents r LEFT JOIN grids g ON g.id = r.grid_id "
                "WHERE r.id = ANY(%s)",
                (ids,),
            ).fetchall()
        )

    def _owned(
        self, residents: Iterable[str | None], codes: dict[str | None, str | None]
    ) -> set[str | None]:
        """Which of these residents are in the partition, by their grid `codes` now."""
        wanted = set(residents)
        if self.partition is None:
            return wanted
        return {r for r in wanted if self.partition.owns(codes.get(r), r)}

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
        and so is a Resolve or Escalate of an alert a person or another engine changed
        meanwhile, and any action for a resident who has moved out of the partition.
        Messages name the resident's grid as the database has it now (`grid_codes`, the
        engine's view, only for a resident no longer there).
        """
        opened: list[OpenAlert] = []
        with self.conn.transaction():
            # Checked inside the transaction, without a lock (an import holds its residents'
            # rows for its whole length): a move that commits in between can let one last
            # write through, which the constraints above keep from doubling anything.
            residents = [_resident_of(action) for action in actions]
            # The grid now, not the one the engine last saw: a resident who moved is announced
            # on their new grid's topic.
            codes: dict[str | None, str | None] = dict(grid_codes.items())
            codes.update(self._grid_codes(residents))
            owned = self._owned(residents, codes)
            for action in actions:
                if _resident_of(action) not in owned:
                    continue
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
                    codes.get(alert.resident_id),
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
        # From the level the engine saw to the next: two engines that both think it due
        # (one about to let the home go) write it once.
        done = self.conn.execute(
            "UPDATE alerts SET level = %s, updated_at = now() "
            "WHERE id = %s AND status = 'open' AND level = %s",
            (action.level, action.alert.id, action.alert.level),
        ).rowcount
        if not done:
            return None
        escalated = replace(action.alert, level=action.level)
        note = f"not acknowledged; escalated to {action.level}"
        return escalated, "escalated", note, {}


def _resident_of(action: Open | Resolve | Escalate) -> str | None:
    return action.resident_id if isinstance(action, Open) else action.alert.resident_id


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
        [(absence_id,)] = conn.execute(
            "INSERT INTO absences (resident_id, starts_at, ends_at, note, created_by) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (resident_id, starts_at, ends_at, note, created_by),
        ).fetchall()
        return absence_id


def residents_with_open_alerts(conn: psycopg.Connection) -> set[str]:
    """Residents with an alert not yet resolved."""
    rows = conn.execute(
        "SELECT DISTINCT resident_id FROM alerts "
        "WHERE status <> 'resolved' AND resident_id IS NOT NULL"
    ).fetchall()
    return {resident_id for (resident_id,) in rows}


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


def _outbox_partition(partition: Partition | None) -> tuple[str, dict[str, int]]:
    """The condition (on alert_outbox o) that a row is this partition's to deliver: each row
    has one grid code, so exactly one of N delivery loops sends it, a topic's in order."""
    if partition is None or partition.count == 1:
        return "", {}
    return f"AND {partition_sql(OUTBOX_KEY_SQL)} = %(partition_index)s", partition_params(partition)


def unpublished(
    conn: psycopg.Connection, limit: int = 500, partition: Partition | None = None
) -> list[tuple[int, str, dict]]:
    """Outbox rows not yet acknowledged by the broker (the partition's), oldest first."""
    where, params = _outbox_partition(partition)
    rows = conn.execute(
        f"SELECT o.id, o.topic, o.payload FROM alert_outbox o WHERE o.published_at IS NULL "  # noqa: S608 - built from constants; values are parameters
        f"{where} ORDER BY o.id LIMIT %(limit)s",
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
        f"""
        SELECT d.outbox_id, d.url, d.attempts, o.payload
        FROM webhook_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id
        WHERE d.delivered_at IS NULL AND d.next_attempt_at <= %(now)s {where}
        ORDER BY d.next_attempt_at LIMIT %(limit)s
        """,  # noqa: S608 - SQL made here from constants; every value is a parameter
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
