"""The inactivity rules as pure functions of (history, now).

早看窗帘晚看灯: a home that shows no sign of life in the morning window, none in the
evening window, or none for many hours raises an alert; an SOS press or a fall detector
raises one at once; a meter that stops reporting raises `meter_offline` instead, a device
fault that silences the activity rules for that home until its data returns. A registered
absence (外出报备) silences the activity rules while it lasts, and the quiet clock restarts
when it ends.

Nothing here reads a clock or a database: `now` and the home's history are arguments, so
the simulator can run a week in minutes and the tests are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as public_holidays

from gridwatch.model.vocabulary import (
    ACTIVITY_KINDS,
    ALERT_KINDS,
    EVENING,
    FALL,
    METER_OFFLINE,
    MORNING,
    NO_ACTIVITY,
    SOS,
)

SEVERITY = {
    NO_ACTIVITY: "high",
    MORNING: "high",
    EVENING: "high",
    METER_OFFLINE: "low",
    SOS: "critical",
    FALL: "critical",
}

# A late riser's learned morning window may end this late, never later.
LATEST_MORNING_END = time(12, 0)
# The longest quiet or offline threshold a resident's rules may set.
MAX_THRESHOLD = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds of one home: the district's defaults, overridden per resident."""

    no_activity: timedelta = timedelta(hours=12)
    morning: tuple[time, time] = (time(5, 0), time(10, 0))
    evening: tuple[time, time] = (time(17, 0), time(21, 0))
    offline: timedelta = timedelta(minutes=60)
    disabled: frozenset[str] = frozenset()
    # Observed time a home gets after its meter was offline before a quiet rule that came
    # due in the dark may fire: blind time is not quiet time.
    blind_grace: timedelta = timedelta(hours=1)

    def with_overrides(self, overrides: object) -> Rules:
        """These rules changed by a resident's `rules` JSON.

        Keys: `no_activity_h`, `offline_min`, `morning` and `evening` as ["HH:MM", "HH:MM"],
        `disabled` as a list of kinds. Unknown keys or bad values raise ValueError, and only
        ValueError: the engine falls back to the defaults for that resident on it, while any
        other error (or a threshold so long that deadlines overflow) would stop it for all.
        """
        if not isinstance(overrides, dict):
            raise ValueError(f"rules must be a JSON object, got {overrides!r}")
        rules = self
        for key, value in overrides.items():
            if key == "no_activity_h":
                hours = _positive(key, value, MAX_THRESHOLD / timedelta(hours=1))
                rules = replace(rules, no_activity=timedelta(hours=hours))
            elif key == "offline_min":
                minutes = _positive(key, value, MAX_THRESHOLD / timedelta(minutes=1))
                rules = replace(rules, offline=timedelta(minutes=minutes))
            elif key == MORNING:
                rules = replace(rules, morning=_window(key, value))
            elif key == EVENING:
                rules = replace(rules, evening=_window(key, value))
            elif key == "disabled":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"disabled must be a list of alert kinds, got {value!r}")
                unknown = set(value) - set(ALERT_KINDS)
                if unknown:
                    raise ValueError(f"disabled: unknown alert kinds {sorted(unknown)}")
                rules = replace(rules, disabled=frozenset(value))
            else:
                raise ValueError(f"unknown rule setting {key!r}")
        return rules


@dataclass(frozen=True, slots=True)
class Absence:
    """A registered absence (外出报备): the resident is away from `starts_at` to `ends_at`."""

    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Calendar:
    """Which local days are lived like a weekend: Saturdays and Sundays, public holidays,
    but not the weekend days made working days to bridge a holiday (调休)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_rest_day(self, day: date) -> bool:
        if day in self.holidays:
            return True
        return day.weekday() >= 5 and day not in self.workdays


def public_calendar(
    country: str | None,
    years: Iterable[int],
    *,
    holidays: Collection[date] = (),
    workdays: Collection[date] = (),
) -> Calendar:
    """The public holidays and working weekends (调休) of `country` (an ISO code the
    `holidays` package knows, "CN" for China; None for weekends alone) in `years`, with
    `holidays` and `workdays` added on top as local overrides: an override wins."""
    official: frozenset[date] = frozenset()
    official_workdays: frozenset[date] = frozenset()
    if country:
        calendar = public_holidays.country_holidays(country, years=list(years))
        official = frozenset(calendar)
        official_workdays = frozenset(calendar.weekend_workdays)
    extra, working = frozenset(holidays), frozenset(workdays)
    return Calendar(
        holidays=(official - working) | extra,
        workdays=(official_workdays - extra) | working,
    )


@dataclass(frozen=True, slots=True)
class HomeHistory:
    """What the rules need to know of a home's past, as of some moment."""

    monitored_since: datetime
    last_activity: datetime | None = None
    last_evening_sign: datetime | None = None
    has_meter: bool = False
    last_meter_data: datetime | None = None
    # The last span the meter was silent for the offline threshold or longer: from the last
    # reading before it to the first after it.
    blind: tuple[datetime, datetime] | None = None
    absences: tuple[Absence, ...] = ()
    emergencies: tuple[tuple[str, datetime], ...] = ()
    # A late riser's learned end of the morning window, on working days and on rest days.
    morning_end: time | None = None
    rest_morning_end: time | None = None
    calendar: Calendar = Calendar()


@dataclass(frozen=True, slots=True, order=True)
class Condition:
    """An alert condition that holds: of `kind`, in force since `since`."""

    kind: str
    since: datetime
    severity: str = field(compare=False, default="high")
    # When it came to hold, where that is not `since` (a window's end); else `since`.
    due_at: datetime | None = field(compare=False, default=None)

    @property
    def due(self) -> datetime:
        return self.due_at or self.since


def meter_offline_deadline(history: HomeHistory, rules: Rules) -> datetime | None:
    """When the meter counts as offline if nothing more arrives; None without a meter, and
    for a meter never yet heard from: its clock starts at its first reading."""
    if not history.has_meter or history.last_meter_data is None:
        return None
    if METER_OFFLINE in rules.disabled:
        return None
    return history.last_meter_data + rules.offline


def awaiting_installation(history: HomeHistory) -> bool:
    """A home whose meter was imported but has never reported, and with no other sign of
    life yet (未接入): nothing is known of it, so only SOS and falls can alert."""
    return history.has_meter and history.last_meter_data is None and history.last_activity is None


def no_activity_deadline(history: HomeHistory, rules: Rules) -> datetime:
    """When `no_activity` fires if nothing more arrives: quiet for the threshold, outside
    any absence (the quiet clock restarts when an absence ends)."""
    base = max(history.last_activity or history.monitored_since, history.monitored_since)
    deadline = base + rules.no_activity
    for absence in sorted(history.absences, key=lambda a: a.starts_at):
        if absence.starts_at < deadline and absence.ends_at > base:
            base = max(base, absence.ends_at)
            deadline = base + rules.no_activity
    return deadline


@lru_cache(maxsize=4096)  # the same few windows for every home in a pass
def window_on(day: date, window: tuple[time, time], zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The window's start and end on a local day, as aware datetimes."""
    return datetime.combine(day, window[0], zone), datetime.combine(day, window[1], zone)


def morning_window(
    history: HomeHistory, rules: Rules, day: date | None = None
) -> tuple[time, time]:
    """The morning window of this home on `day` (a working day if not given): later for a
    late riser, and on rest days for one who sleeps in then, never past noon."""
    start, end = rules.morning
    rest = day is not None and history.calendar.is_rest_day(day)
    learned = history.rest_morning_end if rest else history.morning_end
    if learned is not None and learned > end:
        end = min(learned, LATEST_MORNING_END)
    return start, end


def _window_fires(
    start: datetime, end: datetime, last_sign: datetime | None, history: HomeHistory
) -> bool:
    """Whether a window that has ended saw no sign of life and counts (not absent, monitored)."""
    if history.monitored_since > start:
        return False
    if any(a.starts_at < end and a.ends_at > start for a in history.absences):
        return False
    return last_sign is None or last_sign < start


WindowOf = Callable[[date], tuple[time, time]]


def _window_condition(
    kind: str,
    window_of: WindowOf,
    last_sign: datetime | None,
    history: HomeHistory,
    now: datetime,
    zone: ZoneInfo,
) -> Condition | None:
    today = now.astimezone(zone).date()
    for day in (today, today - timedelta(days=1)):
        start, end = window_on(day, window_of(day), zone)
        if end <= now:
            if _window_fires(start, end, last_sign, history):
                return Condition(kind, start, SEVERITY[kind], due_at=end)
            return None
    return None


def _next_window_end(
    window_of: WindowOf,
    last_sign: datetime | None,
    history: HomeHistory,
    now: datetime,
    zone: ZoneInfo,
) -> datetime:
    today = now.astimezone(zone).date()
    for offset in range(3):
        day = today + timedelta(days=offset)
        start, end = window_on(day, window_of(day), zone)
        if end > now and (last_sign is None or last_sign < start or start > now):
            return end
    day = today + timedelta(days=3)
    return window_on(day, window_of(day), zone)[1]


def _morning_of(history: HomeHistory, rules: Rules) -> WindowOf:
    return lambda day: morning_window(history, rules, day)


def _evening_of(rules: Rules) -> WindowOf:
    return lambda day: rules.evening


def _meter_offline(history: HomeHistory, rules: Rules, now: datetime) -> Condition | None:
    deadline = meter_offline_deadline(history, rules)
    if deadline is None or deadline > now:
        return None
    return Condition(METER_OFFLINE, deadline - rules.offline, SEVERITY[METER_OFFLINE])


def absent_at(history: HomeHistory, instant: datetime) -> bool:
    """Whether a registered absence covers `instant`."""
    return any(a.starts_at <= instant < a.ends_at for a in history.absences)


def conditions(
    history: HomeHistory, rules: Rules, now: datetime, zone: ZoneInfo
) -> list[Condition]:
    """Every alert condition that holds for this home at `now`."""
    found: list[Condition] = []
    for kind, at in history.emergencies:
        if kind not in rules.disabled and at <= now:
            found.append(Condition(kind, at, SEVERITY[kind]))
    offline = _meter_offline(history, rules, now)
    if offline is not None:
        found.append(offline)
        return found  # a device fault is not an inactive person
    if awaiting_installation(history) or absent_at(history, now):
        return found
    if NO_ACTIVITY not in rules.disabled:
        deadline = no_activity_deadline(history, rules)
        if deadline <= now and not _came_due_blind(history, rules, deadline, now):
            found.append(
                Condition(NO_ACTIVITY, deadline - rules.no_activity, SEVERITY[NO_ACTIVITY])
            )
    if MORNING not in rules.disabled:
        morning = _window_condition(
            MORNING, _morning_of(history, rules), history.last_activity, history, now, zone
        )
        if morning is not None and not _came_due_blind(history, rules, morning.due, now):
            found.append(morning)
    if EVENING not in rules.disabled:
        evening = _window_condition(
            EVENING, _evening_of(rules), history.last_evening_sign, history, now, zone
        )
        if evening is not None and not _came_due_blind(history, rules, evening.due, now):
            found.append(evening)
    return found


def _came_due_blind(history: HomeHistory, rules: Rules, due: datetime, now: datetime) -> bool:
    """Whether a quiet rule due at `due` came due while the meter was offline and the home
    has not yet had its grace of observed time since the data returned. A rule due before
    the outage began is not held back."""
    blind = history.blind
    return blind is not None and blind[0] < due and now < blind[1] + rules.blind_grace


def next_deadline(
    history: HomeHistory, rules: Rules, now: datetime, zone: ZoneInfo
) -> datetime | None:
    """The earliest moment after `now` at which a new condition would start to hold if no
    more data arrived; the engine sleeps until then (or until data comes)."""
    candidates: list[datetime] = []
    offline = meter_offline_deadline(history, rules)
    if offline is not None and offline > now:
        candidates.append(offline)
    if NO_ACTIVITY not in rules.disabled:
        deadline = no_activity_deadline(history, rules)
        if deadline > now:
            candidates.append(deadline)
    if MORNING not in rules.disabled:
        morning_of = _morning_of(history, rules)
        candidates.append(_next_window_end(morning_of, history.last_activity, history, now, zone))
    if EVENING not in rules.disabled:
        sign = history.last_evening_sign
        candidates.append(_next_window_end(_evening_of(rules), sign, history, now, zone))
    for absence in history.absences:
        if absence.ends_at > now:
            candidates.append(absence.ends_at)
    if history.blind is not None and history.blind[1] + rules.blind_grace > now:
        candidates.append(history.blind[1] + rules.blind_grace)
    # An SOS or fall stamped a little ahead of the clock (a device clock running fast) holds
    # from its own time: the engine must look then, not at the next window hours later.
    for kind, at in history.emergencies:
        if kind not in rules.disabled and at > now:
            candidates.append(at)
    return min(candidates) if candidates else None


def resolution(kind: str, since: datetime, history: HomeHistory) -> str | None:
    """Why an open alert of `kind` (in force since `since`) is over, or None if it is not.

    Activity alerts end when a sign of life comes after they began (for a window alert, the
    sign the window looks for, from its start on: a door at 18:00 does not stop the evening
    alert from firing, so it cannot resolve it either, or the alert would close and reopen
    on every look); `meter_offline` when the meter reports again; SOS and fall alerts only
    by a person's hand.
    """
    if kind in ACTIVITY_KINDS:
        sign = history.last_evening_sign if kind == EVENING else history.last_activity
        # A window alert is dated its window's start, and a sign at that very minute is in
        # the window; a no_activity alert is dated its last sign, which cannot end it.
        if sign is not None and (sign > since or (sign == since and kind != NO_ACTIVITY)):
            return f"activity returned at {sign.isoformat(timespec='minutes')}"
        for absence in history.absences:
            if absence.starts_at <= since < absence.ends_at:
                return "a registered absence covers it"
        return None
    if kind == METER_OFFLINE:
        if history.last_meter_data is not None and history.last_meter_data > since:
            return f"meter data returned at {history.last_meter_data.isoformat(timespec='minutes')}"
        return None
    return None


def _positive(key: str, value: object, most: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    if value > most:
        raise ValueError(f"{key} must be at most {most:g} (a week), got {value!r}")
    return float(value)


def _window(key: str, value: object) -> tuple[time, time]:
    not_two_times = ValueError(f"{key} must be two times like ['05:00', '10:00'], got {value!r}")
    if not isinstance(value, Iterable):
        raise not_two_times
    try:
        start, end = (time.fromisoformat(v) for v in value)
    except (TypeError, ValueError):
        raise not_two_times from None
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError(f"{key} times are local (GRIDWATCH_TZ), without an offset: {value!r}")
    if not start < end:
        raise ValueError(f"{key} window must start before it ends, got {value!r}")
    return start, end
