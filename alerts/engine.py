"""The alert engine: keeps every monitored home's history up to date and acts on the rules.

It holds, per home, only what the rules need (the last sign of life, the last evening sign,
the last meter data, absences, unanswered SOS/fall events) and a meter tracker per meter.
New data comes from the store by arrival time; `step(now)` evaluates the homes whose data
changed or whose next deadline has come, plus alerts due to escalate, and writes the
outcome in one transaction. The clock is an argument: wall time in production, simulated
time in the simulator and the tests.

It imports no database driver: its store is any `EngineStore`, as
`gridwatch.store.alert_store.AlertStore` is.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as day_time
from typing import Protocol
from zoneinfo import ZoneInfo

from gridwatch.alerts.activity import Baseline, MeterTracker
from gridwatch.alerts.lifecycle import (
    ESCALATE_AFTER,
    Action,
    Escalate,
    Open,
    OpenAlert,
    Resolve,
    escalation,
    next_escalation,
    plan_home,
)
from gridwatch.alerts.profile import WARM_UP, WEEKENDS, HomeProfile
from gridwatch.alerts.rules import (
    Absence,
    Calendar,
    Condition,
    HomeHistory,
    Rules,
    conditions,
    next_deadline,
)
from gridwatch.model import vocabulary
from gridwatch.model.vocabulary import ACTIVITY_KINDS, EMERGENCY_KINDS, METER_OFFLINE

log = logging.getLogger(__name__)

ACTIVITY_EVENTS = frozenset(vocabulary.ACTIVITY_EVENTS)
EVENING_EVENTS = frozenset({"light_on"})
# How far back a cold start reads raw data: the longest quiet threshold plus a margin.
HISTORY_WINDOW = timedelta(hours=26)
# What is not watched in a home where someone else lives too: only emergencies are.
QUIET_KINDS = frozenset({*ACTIVITY_KINDS, METER_OFFLINE})
SHORT_OVERLAP = timedelta(seconds=5)
FULL_POLL_EVERY_S = 30.0
# Baselines are learned from 01:00-05:00: relearned each day once that night is in.
RELEARN_AFTER = day_time(5, 30)
# Data stamped further ahead of the engine's clock than this is a device with a fast clock;
# it counts as arriving now, so it cannot hold off alerts.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Home:
    """A resident with their devices and grid; the inactivity rules watch those who live
    alone, an SOS button or a fall detector is heard from everyone."""

    resident_id: str
    grid_id: int | None
    grid_code: str | None
    rules: dict[str, object]  # the resident's overrides, as `Rules.with_overrides` reads
    meter_id: str | None
    sensor_ids: tuple[str, ...]
    since: datetime
    living_alone: bool = True


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of data about a home: a meter reading, a sensor event, a visit, a check."""

    source: str  # meter | sensor | visit | check
    key: str  # meter id, device id, or resident id for visits and checks
    at: datetime
    power_w: float | None = None
    energy_kwh: float | None = None
    water_l: float | None = None
    event: str | None = None
    received_at: datetime | None = None  # when it reached ingest, where the store knows


@dataclass(slots=True)
class HomeState:
    """The engine's running summary of one home."""

    home: Home
    rules: Rules
    monitored_since: datetime
    tracker: MeterTracker | None
    profile: HomeProfile = field(default_factory=HomeProfile)
    last_activity: datetime | None = None
    last_evening_sign: datetime | None = None
    last_meter_data: datetime | None = None
    blind: tuple[datetime, datetime] | None = None  # the meter's last outage
    absences: list[Absence] = field(default_factory=list)
    emergencies: list[tuple[str, datetime]] = field(default_factory=list)
    calendar: Calendar = WEEKENDS
    effective: Rules | None = None
    effective_new: bool = False  # whether `effective` was made for a new home
    # The learned ends of the morning window, of working days and of rest days.
    mornings: tuple[day_time | None, day_time | None] | None = None

    def effective_rules(self, now: datetime | None = None) -> Rules:
        """The home's rules with what its profile has learned (a long sleeper's nights);
        `now` tells whether the home is still new (watched for under WARM_UP)."""
        new_home = now is not None and now - self.monitored_since < WARM_UP
        if self.effective is None or new_home != self.effective_new:
            own = "no_activity_h" in self.home.rules
            self.effective = self.profile.rules_for(self.rules, overridden=own, new_home=new_home)
            self.effective_new = new_home
        return self.effective

    def history(self) -> HomeHistory:
        if self.mornings is None:
            self.mornings = (
                self.profile.morning_end(self.rules),
                self.profile.morning_end(self.rules, rest_day=True),
            )
        return HomeHistory(
            monitored_since=self.monitored_since,
            last_activity=self.last_activity,
            last_evening_sign=self.last_evening_sign,
            has_meter=self.tracker is not None,
            last_meter_data=self.last_meter_data,
            blind=self.blind,
            absences=tuple(self.absences),
            emergencies=tuple(self.emergencies),
            morning_end=self.mornings[0],
            rest_morning_end=self.mornings[1],
            calendar=self.calendar,
        )

    def sign_of_life(
        self, at: datetime, zone: ZoneInfo, *, evening: bool, abnormal: bool = False
    ) -> bool:
        """Record a sign of life; True when the learned profile changed. `abnormal` says
        the quiet before it is not to be learned (it raised an alert)."""
        self.last_activity = _later(self.last_activity, at)
        if evening:
            self.last_evening_sign = _later(self.last_evening_sign, at)
        previous = self.profile.last_seen
        # A quiet as long as the alarm threshold was an incident or an absence, not a night.
        away = previous is not None and (
            any(a.starts_at < at and a.ends_at > previous for a in self.absences)
            or at - previous >= self.effective_rules(at).no_activity
        )
        if self.profile.observe(at, zone, away=away or abnormal, calendar=self.calendar):
            self.effective = None
            self.mornings = None
            return True
        return False


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


class EngineStore(Protocol):
    """What the engine reads and writes: the homes, their data and alerts. `homes` args
    limit a read to those homes' data; None reads all the store serves."""

    def homes(self) -> list[Home]:
        """Every watched resident; the same list object as last time if nothing changed."""
        ...

    def baselines(
        self, as_of: datetime, tz: str, homes: list[Home] | None = None
    ) -> dict[str, Baseline]:
        """Each meter's night baseline as of `as_of` (nights in zone `tz`)."""
        ...

    def profiles(self, homes: list[Home] | None = None) -> dict[str, HomeProfile]:
        """The learned profile of every home that has one."""
        ...

    def save_profiles(self, profiles: dict[str, HomeProfile]) -> None:
        """Keep these homes' profiles."""
        ...

    def latest_received(self) -> datetime | None:
        """The newest arrival time of any data."""
        ...

    def signals_between(
        self, since: datetime, until: datetime, homes: list[Home] | None = None
    ) -> Iterable[Signal]:
        """What was observed in (since, until], in time order."""
        ...

    def signals_received_after(self, watermark: datetime) -> tuple[list[Signal], datetime | None]:
        """What arrived after `watermark`, in time order, and the newest arrival time."""
        ...

    def last_meter_readings(self, meters: Sequence[str]) -> dict[str, datetime]:
        """The newest reading of each of `meters` that ever reported."""
        ...

    def absences(self, after: datetime) -> dict[str, list[Absence]]:
        """Registered absences that end after `after`, by resident."""
        ...

    def emergencies_resolved(self) -> dict[tuple[str, str], datetime]:
        """When each (resident, sos|fall)'s last such alert was resolved."""
        ...

    def open_alerts(self) -> list[OpenAlert]:
        """Every alert not resolved."""
        ...

    def apply(
        self, actions: list[Action], now: datetime, *, grid_codes: dict[str, str | None]
    ) -> list[OpenAlert]:
        """Write the actions (with their events and deliveries, wherever the store sends them);
        returns the alerts opened."""
        ...


class AlertEngine:
    """Evaluates the rules for every monitored home and records what they decide."""

    def __init__(
        self,
        store: EngineStore,
        *,
        zone: ZoneInfo,
        calendar: Calendar = WEEKENDS,
        defaults: Rules | None = None,
        escalate_after: timedelta = ESCALATE_AFTER,
        overlap: timedelta = timedelta(seconds=120),
    ) -> None:
        self.store = store
        self.zone = zone
        self.calendar = calendar
        self.defaults = defaults or Rules()
        self.escalate_after = escalate_after
        self.overlap = overlap
        self.homes: dict[str, HomeState] = {}
        self._by_meter: dict[str, HomeState] = {}
        self._by_sensor: dict[str, HomeState] = {}
        self._open: dict[str, list[OpenAlert]] = {}
        self._dirty: set[str] = set()
        self._due: list[tuple[datetime, str]] = []
        self._watermark: datetime | None = None
        self._now: datetime | None = None
        self._profiles_changed: set[str] = set()
        self._homes_read: list[Home] | None = None
        self._last_full_poll = 0.0
        self._baselines_day: date | None = None  # the local day baselines were learned on
        # When each home's last SOS or fall alert was resolved, by (resident, kind).
        self._resolved: dict[tuple[str, str], datetime] = {}

    # -- loading ------------------------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Read the homes, baselines and the last day of data, as of `now`."""
        self._now = now
        self.homes.clear()
        self._by_meter.clear()
        self._by_sensor.clear()
        self._open = {}
        self._watermark = self.store.latest_received()
        self._homes_read = self.store.homes()
        self._adopt(self._homes_read, now, only_these=False)
        self._baselines_day = now.astimezone(self.zone).date()
        self._dirty = set(self.homes)

    def refresh_homes(self, now: datetime) -> tuple[int, int]:
        """Re-read who is watched and take in what changed since: residents imported or
        removed, devices moved, a resident moved to another grid (and so, with partitions,
        perhaps to another engine). A home that left or changed is let go (its profile saved
        first), one that came or changed is read afresh with its last day of data. Returns
        (taken in, let go)."""
        self._now = now
        homes = self.store.homes()
        if homes is self._homes_read:  # the store's own answer: nothing changed
            return 0, 0
        self._homes_read = homes
        current = {home.resident_id: home for home in homes}
        leaving = [r for r, state in self.homes.items() if current.get(r) != state.home]
        coming = [
            home
            for resident, home in current.items()
            if resident not in self.homes or self.homes[resident].home != home
        ]
        self._release(leaving)
        self._adopt(coming, now, only_these=True)
        return len(coming), len(leaving)

    def _adopt(self, homes: list[Home], now: datetime, *, only_these: bool) -> None:
        """Start watching `homes`: rules, baselines, profiles, absences, open alerts, then the
        last day of their data. `only_these`: read these homes' data, not all of it."""
        if not homes:
            return
        subset = homes if only_these else None
        baselines = self.store.baselines(now, self.zone.key, subset)
        profiles = self.store.profiles(subset)
        for home in homes:
            state = self._home_state(home, baselines, profiles)
            self.homes[home.resident_id] = state
            if home.meter_id:
                self._by_meter[home.meter_id] = state
            for sensor in home.sensor_ids:
                self._by_sensor[sensor] = state
            self._dirty.add(home.resident_id)
        adopted = {home.resident_id for home in homes}
        for resident, absences in self.store.absences(now - HISTORY_WINDOW).items():
            if resident in adopted:
                self.homes[resident].absences = absences
        for alert in self.store.open_alerts():
            # After a load, also those of residents no longer there: they still escalate.
            if alert.resident_id in adopted or not only_these:
                self._open.setdefault(alert.resident_id, []).append(alert)
        # Open alerts first: a quiet that raised one is not learned as a night. Resolutions
        # too: the last day's data holds the presses whose alert a person has resolved, and
        # they must not open a second alert after a restart.
        self._resolved = self.store.emergencies_resolved()
        self._absorb(self.store.signals_between(now - HISTORY_WINDOW, now, subset), live=False)
        # A meter silent for longer than the day just read is offline since its last
        # reading, not awaiting installation: look further back for those alone.
        silent = [
            home.meter_id
            for home in homes
            if home.meter_id and self.homes[home.resident_id].last_meter_data is None
        ]
        for meter, at in self.store.last_meter_readings(silent).items():
            state = self._by_meter[meter]
            state.last_meter_data = _later(state.last_meter_data, min(at, now))

    def _home_state(
        self, home: Home, baselines: dict[str, Baseline], profiles: dict[str, HomeProfile]
    ) -> HomeState:
        try:
            rules = self.defaults.with_overrides(home.rules)
        except ValueError as exc:
            log.warning(
                "resident %s: bad rules %s (%s); using defaults", home.resident_id, home.rules, exc
            )
            rules = self.defaults
        if not home.living_alone:
            rules = replace(rules, disabled=rules.disabled | QUIET_KINDS)
        tracker = None
        if home.meter_id:
            tracker = MeterTracker(baselines.get(home.meter_id, Baseline()))
        # Watched from when the resident was registered: a home imported a minute ago has
        # not been quiet for twelve hours.
        state = HomeState(home, rules, home.since, tracker, calendar=self.calendar)
        if home.resident_id in profiles:
            state.profile = profiles[home.resident_id]
        return state

    def _release(self, residents: list[str]) -> None:
        """Stop watching these homes; what they learned is saved for whoever watches next."""
        if not residents:
            return
        leaving = set(residents)
        self.store.save_profiles(
            {r: self.homes[r].profile for r in self._profiles_changed & leaving}
        )
        self._profiles_changed -= leaving
        for resident in residents:
            state = self.homes.pop(resident)
            meter = state.home.meter_id
            if meter is not None and self._by_meter.get(meter) is state:
                del self._by_meter[meter]
            for sensor in state.home.sensor_ids:
                if self._by_sensor.get(sensor) is state:
                    del self._by_sensor[sensor]
            self._open.pop(resident, None)
            self._dirty.discard(resident)

    def relearn_baselines(self, now: datetime) -> None:
        """Learn each meter's night baseline again from the 28 days before `now` (daily)."""
        baselines = self.store.baselines(now, self.zone.key)
        for meter, state in self._by_meter.items():
            if meter in baselines and state.tracker is not None:
                state.tracker.baseline = baselines[meter]
        self._baselines_day = now.astimezone(self.zone).date()

    def relearn_baselines_if_due(self, now: datetime) -> bool:
        """Relearn the baselines once a day, when the night just past is in; True if it did.
        A new meter's first nights then count from its first morning, not from a restart."""
        local = now.astimezone(self.zone)
        if self._baselines_day is not None and (
            local.date() <= self._baselines_day or local.time() < RELEARN_AFTER
        ):
            return False
        self.relearn_baselines(now)
        return True

    def _load_absences_and_alerts(self, now: datetime) -> None:
        for resident, absences in self.store.absences(now - HISTORY_WINDOW).items():
            if resident in self.homes:
                self.homes[resident].absences = absences
                self._dirty.add(resident)
        self._forget_resolved_emergencies(self.homes)
        self._open = {}
        for alert in self.store.open_alerts():
            self._open.setdefault(alert.resident_id, []).append(alert)

    def _forget_resolved_emergencies(self, residents: Iterable[str]) -> None:
        self._resolved = resolved = self.store.emergencies_resolved()
        for resident in residents:
            state = self.homes[resident]
            state.emergencies = [
                (kind, at)
                for kind, at in state.emergencies
                if at > resolved.get((resident, kind), at - timedelta(seconds=1))
            ]

    def _resolved_already(
        self, resident: str, kind: str, at: datetime, came: datetime | None
    ) -> bool:
        """Whether a person has resolved this press's alert: it happened (`at`), or came in,
        no later than the home's last resolution of its kind. Polls read the last minutes'
        arrivals again, and a press read again must not open a second alert."""
        resolved = self._resolved.get((resident, kind))
        if resolved is None:
            return False
        return at <= resolved or (came is not None and came <= resolved)

    # -- new data -----------------------------------------------------------------------------

    def poll(self) -> int:
        """Take in what arrived since the last poll; returns how many signals.

        Each poll looks a few seconds behind its watermark; every half minute it looks the
        whole `overlap` back, for batches that committed long after they arrived (a
        database outage): re-reading is harmless, every update takes the later value.
        """
        if self._watermark is None:  # nothing ever received: look back as far as a cold start
            self._watermark = (self._now or datetime.now(self.zone)) - HISTORY_WINDOW
        overlap = min(self.overlap, SHORT_OVERLAP)
        if time.monotonic() - self._last_full_poll >= FULL_POLL_EVERY_S:
            overlap = self.overlap
            self._last_full_poll = time.monotonic()
        signals, newest = self.store.signals_received_after(self._watermark - overlap)
        if newest is not None:
            self._watermark = max(self._watermark, newest)
        self._absorb(signals)
        return len(signals)

    def refresh_absences(self, now: datetime) -> None:
        """Re-read absences and alerts changed by people (registrations, acks, resolutions)."""
        for state in self.homes.values():
            if state.absences:
                state.absences = []
                self._dirty.add(state.home.resident_id)
        self._load_absences_and_alerts(now)

    def _absorb(self, signals: Iterable[Signal], *, live: bool = True) -> None:
        """Take signals in; `live`: they are new arrivals, not the past day read at a start
        (where a meter's first reading read is not its first reading ever)."""
        horizon = (self._now or datetime.max.replace(tzinfo=self.zone)) + FUTURE_TOLERANCE
        for signal in signals:
            at = min(signal.at, horizon)
            if signal.source == "meter":
                state = self._by_meter.get(signal.key)
                if state is None or state.tracker is None:  # not a watched home's meter
                    continue
                if state.last_meter_data is None:  # its first: the offline clock starts
                    self._dirty.add(state.home.resident_id)
                    if live and state.last_activity is None:
                        # Awaiting installation until now: the home is watched from here,
                        # not quiet since it was registered days before its meter came.
                        state.monitored_since = max(state.monitored_since, at)
                previous = state.last_meter_data
                if previous is not None and at - previous >= state.effective_rules().offline:
                    state.blind = (previous, at)  # data returns after an outage
                    self._dirty.add(state.home.resident_id)
                state.last_meter_data = _later(state.last_meter_data, at)
                if state.tracker.observe(at, signal.power_w, signal.energy_kwh, signal.water_l):
                    self._sign_of_life(state, at, evening=True)
            elif signal.source == "sensor":
                state = self._by_sensor.get(signal.key)
                if state is None:
                    continue
                if signal.event in EMERGENCY_KINDS:
                    resident = state.home.resident_id
                    if self._resolved_already(resident, signal.event, at, signal.received_at):
                        continue
                    if (signal.event, at) not in state.emergencies:
                        state.emergencies.append((signal.event, at))
                        self._dirty.add(resident)  # at once, whatever else
                    continue
                if signal.event in ACTIVITY_EVENTS:
                    self._sign_of_life(state, at, evening=signal.event in EVENING_EVENTS)
            else:  # a visit that found the resident, or a person's check
                state = self.homes.get(signal.key)
                if state is None:
                    continue
                # Someone saw the resident well: as good as the lights being on.
                self._sign_of_life(state, at, evening=True)
            # New data can only end conditions, never start one (deadlines move later, and
            # they are in the heap), so a home needs a look now only if it has open alerts.
            if self._open.get(state.home.resident_id):
                self._dirty.add(state.home.resident_id)

    def _sign_of_life(self, state: HomeState, at: datetime, *, evening: bool) -> None:
        # A quiet that raised an activity alert was not a normal night: not learned.
        alarmed = any(a.kind in ACTIVITY_KINDS for a in self._open.get(state.home.resident_id, ()))
        if state.sign_of_life(at, self.zone, evening=evening, abnormal=alarmed):
            self._profiles_changed.add(state.home.resident_id)

    def save_profiles(self) -> int:
        """Write the profiles learned since the last save; returns how many."""
        changed = {r: self.homes[r].profile for r in self._profiles_changed if r in self.homes}
        self.store.save_profiles(changed)
        self._profiles_changed.clear()
        return len(changed)

    # -- evaluation ---------------------------------------------------------------------------

    def step(self, now: datetime) -> list[Action]:
        """Evaluate the homes that need it at `now` and write the outcome; returns the actions."""
        self._now = now
        due = set(self._dirty)
        while self._due and self._due[0][0] <= now:
            due.add(heapq.heappop(self._due)[1])
        actions: list[Action] = []
        for resident in due:
            state = self.homes.get(resident)
            if state is None:
                continue
            if any(at > now for _kind, at in state.emergencies):
                # A press stamped ahead by a fast device clock happened now, not later.
                state.emergencies = [(kind, min(at, now)) for kind, at in state.emergencies]
            actions.extend(
                plan_home(
                    resident,
                    state.history(),
                    state.effective_rules(now),
                    now,
                    self.zone,
                    self._open.get(resident, []),
                )
            )
        for alerts in self._open.values():
            for alert in alerts:
                level = escalation(alert, now, self.escalate_after)
                if level is not None:
                    actions.append(Escalate(alert, level))
        if actions:
            self._apply(actions, now)
        for resident in due:
            if resident in self.homes:  # not one let go since it was scheduled
                self._schedule(resident, now)
        self._dirty.clear()
        return actions

    def _apply(self, actions: list[Action], now: datetime) -> None:
        # Only the homes these actions touch: the outbox needs their grids.
        touched = {a.resident_id if isinstance(a, Open) else a.alert.resident_id for a in actions}
        grid_codes = {r: self.homes[r].home.grid_code for r in touched if r in self.homes}
        opened = self.store.apply(actions, now, grid_codes=grid_codes)
        for action in actions:
            if isinstance(action, Resolve):
                alerts = self._open.get(action.alert.resident_id, [])
                alerts[:] = [a for a in alerts if a.id != action.alert.id]
                if action.alert.kind in EMERGENCY_KINDS:
                    state = self.homes.get(action.alert.resident_id)
                    if state is not None:
                        state.emergencies = [e for e in state.emergencies if e[1] > now]
            elif isinstance(action, Escalate):
                alerts = self._open.get(action.alert.resident_id, [])
                alerts[:] = [
                    replace(a, level=action.level) if a.id == action.alert.id else a for a in alerts
                ]
        for alert in opened:
            self._open.setdefault(alert.resident_id, []).append(alert)

    def _schedule(self, resident: str, now: datetime) -> None:
        state = self.homes[resident]
        deadline = next_deadline(state.history(), state.effective_rules(now), now, self.zone)
        for alert in self._open.get(resident, []):
            up = next_escalation(alert, self.escalate_after)
            if up is not None and (deadline is None or up < deadline):
                deadline = up
        if deadline is not None:
            heapq.heappush(self._due, (deadline, resident))

    def next_due(self) -> datetime | None:
        """The earliest deadline the engine is waiting for."""
        return self._due[0][0] if self._due else None

    def open_conditions(self, now: datetime) -> list[tuple[Home, Condition]]:
        """Every condition that holds at `now` for every home (no writes): for replays."""
        found = []
        for state in self.homes.values():
            for condition in conditions(
                state.history(), state.effective_rules(now), now, self.zone
            ):
                found.append((state.home, condition))
        return found
