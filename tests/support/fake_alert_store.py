"""The alert engine's store in memory, and the homes, signals and simulated clock of engine
scenarios: `FakeStore` has the methods of `AlertStore` and keeps rows in lists, so a test of
the engine runs in milliseconds. Used by the engine's tests and the partition tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gridwatch.alerts.engine import AlertEngine, Home, Signal
from gridwatch.alerts.lifecycle import Escalate, Open, OpenAlert, Resolve
from gridwatch.alerts.rules import Absence

ZONE = ZoneInfo("Asia/Shanghai")
MINUTE = timedelta(minutes=1)


def at(hhmm: str, days: int = 0) -> datetime:
    return datetime.combine(
        datetime(2026, 3, 10).date() + timedelta(days=days), time.fromisoformat(hhmm), ZONE
    )


@dataclass
class Row:
    alert: OpenAlert
    resolved_at: datetime | None = None
    resolved_by: str | None = None


@dataclass
class FakeStore:
    """The engine's store in memory: homes, signals by arrival, absences, alerts. Signals
    are visible once the clock reaches their arrival time."""

    homes_: list[Home]
    clock: datetime | None = None
    signals: list[tuple[datetime, Signal]] = field(default_factory=list)  # (received, signal)
    absences_: dict[str, list[Absence]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (alert id, state, level)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- reads --
    def homes(self):
        return list(self.homes_)

    def baselines(self, as_of, tz, homes=None):
        return {}

    def profiles(self, homes=None):
        return {}

    def save_profiles(self, profiles):
        pass

    def latest_received(self):
        return max((r for r, _ in self.signals if r <= self.clock), default=None)

    def signals_between(self, since, until, homes=None):
        keys = None
        if homes is not None:
            keys = {k for h in homes for k in (h.resident_id, h.meter_id, *h.sensor_ids)}
        return [
            s
            for r, s in self.signals
            if since < s.at
            and (s.at <= until or r <= until)
            and r <= self.clock
            and (keys is None or s.key in keys)
        ]

    def signals_received_after(self, watermark):
        new = [(r, s) for r, s in self.signals if watermark < r <= self.clock]
        return [s for _, s in new], max((r for r, _ in new), default=None)

    def last_meter_readings(self, meters):
        found = {}
        for received, s in self.signals:
            if s.source == "meter" and s.key in meters and received <= self.clock:
                found[s.key] = max(found.get(s.key, s.at), s.at)
        return found

    def absences(self, after):
        return {k: [a for a in v if a.ends_at > after] for k, v in self.absences_.items() if v}

    def emergencies_resolved(self):
        found = {}
        for row in self.rows:
            if row.alert.kind in ("sos", "fall") and row.resolved_at is not None:
                key = (row.alert.resident_id, row.alert.kind)
                found[key] = max(found.get(key, row.resolved_at), row.resolved_at)
        return found

    def open_alerts(self):
        return [r.alert for r in self.rows if r.alert.status != "resolved"]

    # -- writes --
    def apply(self, actions, now, *, grid_codes):
        opened = []
        for action in actions:
            if isinstance(action, Open):
                c = action.condition
                if any(
                    r.alert.resident_id == action.resident_id
                    and r.alert.kind == c.kind
                    and r.alert.status != "resolved"
                    for r in self.rows
                ):
                    continue
                alert = OpenAlert(
                    next(self.ids), action.resident_id, c.kind, c.since, "open", "grid", now
                )
                self.rows.append(Row(alert))
                self.events.append((alert.id, "open", "grid"))
                opened.append(alert)
            elif isinstance(action, Resolve):
                row = self._row(action.alert.id)
                if row.alert.status == "resolved":
                    continue
                self._resolve(row, now, "gridwatch")
            elif isinstance(action, Escalate):
                row = self._row(action.alert.id)
                if row.alert.status != "open":
                    continue
                row.alert = replace(row.alert, level=action.level)
                self.events.append((row.alert.id, "escalated", action.level))
        return opened

    # -- what people do --
    def resolve_by_person(self, alert_id: int, now: datetime, *, checked: bool) -> None:
        row = self._row(alert_id)
        self._resolve(row, now, "duty officer")
        if checked:  # resolve_alert writes a resident_checks row: a sign of life
            self.signals.append((now, Signal("check", row.alert.resident_id, now)))

    def _resolve(self, row: Row, now: datetime, by: str) -> None:
        row.alert = replace(row.alert, status="resolved")
        row.resolved_at, row.resolved_by = now, by
        self.events.append((row.alert.id, "resolved", row.alert.level))

    def _row(self, alert_id: int) -> Row:
        return next(r for r in self.rows if r.alert.id == alert_id)

    def alerts_of(self, kind: str) -> list[OpenAlert]:
        return [r.alert for r in self.rows if r.alert.kind == kind]


def lit_yesterday(store: FakeStore, key: str = "S00001-door") -> None:
    """Yesterday evening's light, so only today's rules speak."""
    store.signals.append(sensor(at("19:00", -1), "light_on", key))


def a_home(resident="R00001", *, since=None, meter="M00001", sensors=("S00001-door",), rules=None):
    return Home(resident, 7, "G007", rules or {}, meter, sensors, since or at("00:00", -30))


def meter(at_: datetime, power_w: float = 40.0, key: str = "M00001") -> tuple:
    return (at_, Signal("meter", key, at_, power_w=power_w, water_l=100.0))


def sensor(at_: datetime, event: str, key: str = "S00001-door") -> tuple:
    return (at_, Signal("sensor", key, at_, event=event))


def readings(start: datetime, end: datetime, every=timedelta(minutes=5)) -> list[tuple]:
    """Base-load meter readings from `start` to `end`, each arriving when stamped."""
    out, t = [], start
    while t <= end:
        out.append(meter(t))
        t += every
    return out


def started(store: FakeStore, now: datetime) -> AlertEngine:
    store.clock = now
    engine = AlertEngine(store, zone=ZONE)
    engine.load(now)
    engine.step(now)
    return engine


def step_through(engine: AlertEngine, store: FakeStore, until: datetime) -> list:
    """The service loop on a simulated clock, a look a minute: poll, refresh, step."""
    actions = []
    t = store.clock
    while t < until:
        t = min(t + MINUTE, until)
        store.clock = t
        engine.poll()
        engine.refresh_absences(t)
        actions += engine.step(t)
    return actions
