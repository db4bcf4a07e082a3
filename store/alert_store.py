"""The alert engine's repository: homes, their history and signs, open alerts, and the engine's
steps written with their events and outbox rows (alerts.engine.EngineStore, implemented)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from gridwatch.alerts.activity import Baseline, learn_baseline
from gridwatch.alerts.engine import Home, Signal
from gridwatch.alerts.lifecycle import Action, Open, OpenAlert, Resolve
from gridwatch.alerts.partition import Partition
from gridwatch.alerts.profile import HomeProfile
from gridwatch.alerts.rules import Absence
from gridwatch.store.alerts import write_event
from gridwatch.store.migrate import read_meta
from gridwatch.store.mode import PLAIN
from gridwatch.store.outbox import NO_GRID, in_partition, partition_params, write_outbox
from gridwatch.store.rollups import refresh_meter_hourly

HOMES_DIGEST_EVERY_S = 60.0


def home_key_sql(resident_id: sql.Composable) -> sql.Composed:
    """A home's partition key in SQL (grids g joined), as `partition_key` makes it."""
    return sql.SQL("coalesce(nullif(g.code, ''), {} || coalesce({}, ''))").format(
        NO_GRID, resident_id
    )


_RESIDENT_ID = sql.Identifier("r", "id")
_ALERT_RESIDENT_ID = sql.Identifier("a", "resident_id")

# Conditions on a time-series table in which {observed} is its time of observation: the
# column `observed_at`, or `at` for a check by a person.
_OBSERVED = sql.Identifier("observed_at")
_CHECKED = sql.Identifier("at")
_OBSERVED_BETWEEN = sql.SQL(
    "{observed} > %(since)s AND ({observed} <= %(until)s OR received_at <= %(until)s)"
)
_RECEIVED_AFTER = sql.SQL("received_at > %(w)s")

_HOMES_DIGEST = sql.SQL(
    """
    SELECT concat_ws(':', count(*),
        sum(hashtextextended(concat_ws('|', r.id, r.grid_id, g.code, r.rules,
                                       r.created_at, r.living_alone), 0)::numeric),
        (SELECT sum(hashtextextended(concat_ws('|', kind, id, resident_id), 0)::numeric)
         FROM devices WHERE resident_id IS NOT NULL))
    FROM residents r LEFT JOIN grids g ON g.id = r.grid_id
    {}
    """
)

_HOMES = sql.SQL(
    """
    SELECT r.id, r.grid_id, g.code, r.rules, r.created_at, r.living_alone,
           d.meter, coalesce(d.sensors, '{{}}')
    FROM residents r LEFT JOIN grids g ON g.id = r.grid_id
    LEFT JOIN (
        SELECT resident_id, min(id) FILTER (WHERE kind = 'meter') AS meter,
               array_agg(id ORDER BY id) FILTER (WHERE kind = 'sensor') AS sensors
        FROM devices WHERE resident_id IS NOT NULL GROUP BY resident_id
    ) d ON d.resident_id = r.id
    {}
    ORDER BY r.id
    """
)

_SIGNALS = sql.SQL(
    """
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
    """
)


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

    def condition(self, column: str, source: str) -> sql.Composed:
        """SQL keeping the rows whose `column` is one of the scope's `source` ids."""
        if self.in_table:
            return sql.SQL("{} IN (SELECT key FROM gw_scope WHERE source = {})").format(
                sql.Identifier(column), sql.Literal(source)
            )
        return sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(source))

    def and_condition(self, column: str, source: str) -> sql.Composed:
        """`AND` and the condition, to follow others."""
        return sql.SQL("AND {}").format(self.condition(column, source))

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
    What `apply` writes to the outbox goes out on `topic_prefix`'s alert topics and to
    `webhooks`: where the deployment delivers, which the engine's rules need not know.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        partition: Partition | None = None,
        *,
        topic_prefix: str = "gw",
        webhooks: Iterable[str] = (),
    ) -> None:
        self.conn = conn
        self.partition = None if partition is None or partition.count == 1 else partition
        self.topic_prefix = topic_prefix
        self.webhooks = tuple(webhooks)
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
        where: sql.Composable = sql.SQL("")
        params: dict[str, int] = {}
        if self.partition is not None:
            where = sql.SQL("WHERE {}").format(in_partition(home_key_sql(_RESIDENT_ID)))
            params = partition_params(self.partition)
        # Before the rows: a change in between makes the next digest differ, not go unseen.
        # A sum of row hashes: no sort, so a fraction of reading the rows even at 100,000.
        [(digest,)] = self.conn.execute(_HOMES_DIGEST.format(where), params).fetchall()
        if digest == self._homes_digest:
            self.conn.commit()
            return self._homes
        rows = self.conn.execute(_HOMES.format(where), params).fetchall()
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
        meters = sql.SQL("") if scope is None else scope.and_condition("meter_id", "meter")
        rows = self.conn.execute(
            sql.SQL(
                """
                SELECT meter_id, array_agg(power_w_avg), array_agg(power_w_max)
                FROM meter_hourly
                WHERE bucket >= %(since)s AND bucket < %(as_of)s
                  AND extract(hour FROM bucket AT TIME ZONE %(tz)s) BETWEEN 1 AND 4
                  AND power_w_avg IS NOT NULL
                  {}
                GROUP BY meter_id
                """
            ).format(meters),
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
            _OBSERVED_BETWEEN,
            {"since": since, "until": until},
            self._scope(homes),
        )

    def signals_received_after(self, watermark: datetime) -> tuple[list[Signal], datetime | None]:
        """What arrived after `watermark` (by received_at), in time order, and the newest
        received_at among the devices' rows (checks by people carry no received_at)."""
        where, params = _RECEIVED_AFTER, {"w": watermark}
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

    def _newest_received(self, where: sql.SQL, params: dict[str, Any]) -> datetime | None:
        self._read_the_tail()
        [(value,)] = self.conn.execute(
            sql.SQL(
                "SELECT greatest((SELECT max(received_at) FROM meter_readings WHERE {where}), "
                "(SELECT max(received_at) FROM sensor_events WHERE {where}), "
                "(SELECT max(received_at) FROM patrol_checkins WHERE {where}))"
            ).format(where=where.format(observed=_OBSERVED)),
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
        self, where: sql.SQL, params: dict[str, Any], scope: Scope | None, *, tail: bool = False
    ):
        """One round trip over the four sources, ordered by observation time, so that each
        meter's readings come in order and a home's signs of life too; only the scope's
        devices and residents when there is one. `where` is a condition in which
        `{observed}` stands for the table's time of observation. `tail`: the condition
        selects the newest few seconds of arrivals."""
        meters: sql.Composable = sql.SQL("")
        sensors: sql.Composable = sql.SQL("")
        residents: sql.Composable = sql.SQL("")
        if scope is not None:
            params = {**params, **scope.params()}
            meters = scope.and_condition("meter_id", "meter")
            sensors = scope.and_condition("device_id", "sensor")
            residents = scope.and_condition("resident_id", "resident")
        # A check is polled by when it was recorded, like device data, so a host whose clock
        # is behind cannot slip it under the watermark; it is observed at `at`.
        query = _SIGNALS.format(
            where=where.format(observed=_OBSERVED),
            check_where=where.format(observed=_CHECKED),
            meters=meters,
            sensors=sensors,
            residents=residents,
        )
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
        where: sql.Composable = sql.SQL("")
        if scope is not None:
            where = sql.SQL(" WHERE {}").format(scope.condition("resident_id", "resident"))
        for resident, first, rest_first, quiet, last_seen in self.conn.execute(
            sql.SQL(
                "SELECT resident_id, first_activity_s, rest_first_activity_s, quiet_s, last_seen "
                "FROM home_profiles{}"
            ).format(where),
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
        where: sql.Composable = sql.SQL("")
        params: dict[str, int] = {}
        if self.partition is not None:
            where = sql.SQL("AND {}").format(in_partition(home_key_sql(_ALERT_RESIDENT_ID)))
            params = partition_params(self.partition)
        rows = self.conn.execute(
            sql.SQL(
                """
                SELECT a.id, a.resident_id, a.kind, a.since, a.status, a.level, a.opened_at
                FROM alerts a LEFT JOIN residents r ON r.id = a.resident_id
                     LEFT JOIN grids g ON g.id = r.grid_id
                WHERE a.status <> 'resolved' {}
                """
            ).format(where),
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
        self, actions: list[Action], now: datetime, *, grid_codes: dict[str, str | None]
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
                    self.topic_prefix,
                    self.webhooks,
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


def _resident_of(action: Action) -> str | None:
    return action.resident_id if isinstance(action, Open) else action.alert.resident_id
