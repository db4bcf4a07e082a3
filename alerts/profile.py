"""What a home's days usually look like, learned as they pass: when the first sign of life
of the morning comes, on working days and on rest days, and how long its quiet nights last.

A late riser (up at 10:30 every day) gets a later morning window, and a long sleeper a
longer quiet threshold, so neither is an alarm every morning; both stay bounded (the morning
window never past noon, the quiet threshold at most four hours over the district's), so a
fall is still found the same morning. Mornings are learned apart for working days and for
weekends and holidays: one who sleeps in on Sundays gets a later window on Sundays only,
and keeps the early one, and the early alert, for the rest of the week.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gridwatch.alerts.activity import percentile
from gridwatch.alerts.rules import LATEST_MORNING_END, Calendar, Rules

DAYS_KEPT = 28
# The district's morning window opens at 05:00: what the rule looks at is what is learned.
MORNING_STARTS = time(5, 0)
QUIET_WORTH_NOTING = timedelta(hours=3)
MORNING_MARGIN = timedelta(minutes=45)
QUIET_MARGIN = timedelta(hours=1)
MAX_QUIET_EXTENSION = timedelta(hours=4)
MIN_SAMPLES = 3
# A home is new, and its nights unknown, for its first days of being watched.
WARM_UP = timedelta(days=MIN_SAMPLES)
WEEKENDS = Calendar()  # Saturdays and Sundays, no holidays


def _days() -> deque[int]:
    return deque(maxlen=DAYS_KEPT)


@dataclass(slots=True)
class HomeProfile:
    """Recent first-activity times (seconds after local midnight) of working days and of
    rest days, and long quiet spells."""

    first_activity_s: deque[int] = field(default_factory=_days)
    quiet_s: deque[int] = field(default_factory=_days)
    last_seen: datetime | None = None
    rest_first_activity_s: deque[int] = field(default_factory=_days)

    def observe(
        self, at: datetime, zone: ZoneInfo, *, away: bool = False, calendar: Calendar = WEEKENDS
    ) -> bool:
        """Take a sign of life at `at`; True if the profile changed.

        Signs no later than the last one taken are ignored (replays, late data); `away` says
        the quiet before this sign was a registered absence, which tells nothing of the
        home's nights.
        """
        previous = self.last_seen
        if previous is not None and at <= previous:
            return False
        self.last_seen = at
        local = at.astimezone(zone)
        first_today = local.time() >= MORNING_STARTS and (
            previous is None
            or previous.astimezone(zone).date() < local.date()
            or previous.astimezone(zone).time() < MORNING_STARTS
        )
        if first_today:
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            if calendar.is_rest_day(local.date()):
                self.rest_first_activity_s.append(seconds)
            else:
                self.first_activity_s.append(seconds)
        quiet = False
        if previous is not None and at - previous >= QUIET_WORTH_NOTING and not away:
            quiet = True
            self.quiet_s.append(int((at - previous).total_seconds()))
        return first_today or quiet

    def morning_end(self, rules: Rules, *, rest_day: bool = False) -> time | None:
        """A later end of the morning window for a late riser, on working days or on rest
        days; None for everyone else. Too few mornings of the kind: all mornings count.

        A home with fewer than MIN_SAMPLES mornings in all is still being learned: its
        window ends at LATEST_MORNING_END. With the district's default window, the late
        risers among newly watched homes (one in twenty in the simulated district) each
        raised a false morning alert on each of their first days; the quiet rule still
        watches them meanwhile.
        """
        samples: Collection[int] = self.rest_first_activity_s if rest_day else self.first_activity_s
        if len(samples) < MIN_SAMPLES:
            samples = [*self.first_activity_s, *self.rest_first_activity_s]
        if len(samples) < MIN_SAMPLES:
            return LATEST_MORNING_END
        usual = timedelta(seconds=percentile(samples, 0.8)) + MORNING_MARGIN
        default_end = rules.morning[1]
        if usual <= timedelta(hours=default_end.hour, minutes=default_end.minute):
            return None
        latest = timedelta(hours=LATEST_MORNING_END.hour, minutes=LATEST_MORNING_END.minute)
        usual = min(usual, latest)
        return time(int(usual.total_seconds()) // 3600, int(usual.total_seconds()) % 3600 // 60)

    def rules_for(self, rules: Rules, overridden: bool, *, new_home: bool = False) -> Rules:
        """The rules with the quiet threshold stretched to this home's long nights, unless
        the resident's own rules set it.

        A `new_home` (watched for less than MIN_SAMPLES days) with fewer than MIN_SAMPLES
        mornings learned gets the most stretch the bound allows: the long sleepers among
        newly watched homes each raised a false quiet alert on their first nights (42 over
        the sample district's three days of warm-up). Its morning window, at noon meanwhile,
        still finds a fall the same morning.
        """
        if overridden:
            return rules
        learning = len(self.first_activity_s) + len(self.rest_first_activity_s) < MIN_SAMPLES
        if new_home and learning:
            return replace(rules, no_activity=rules.no_activity + MAX_QUIET_EXTENSION)
        if len(self.quiet_s) < MIN_SAMPLES:
            return rules
        usual = timedelta(seconds=percentile(self.quiet_s, 0.95)) + QUIET_MARGIN
        stretched = min(max(usual, rules.no_activity), rules.no_activity + MAX_QUIET_EXTENSION)
        return rules if stretched == rules.no_activity else replace(rules, no_activity=stretched)
