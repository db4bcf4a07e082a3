"""The inactivity rules at their edges: pure functions of (history, now), no database.

Every deadline is checked one minute before and one minute after (and at the minute itself
where the rule says "at"), in Asia/Shanghai and in Asia/Kolkata (+05:30, no daylight saving),
so a window boundary cut in UTC or in the wrong zone shows up as a failure.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.alerts import rules
from gridwatch.alerts.profile import HomeProfile
from gridwatch.alerts.rules import Absence, Calendar, Condition, HomeHistory, Rules
from gridwatch.model.vocabulary import EVENING, FALL, METER_OFFLINE, MORNING, NO_ACTIVITY, SOS

SHANGHAI = ZoneInfo("Asia/Shanghai")
KOLKATA = ZoneInfo("Asia/Kolkata")
ZONES = pytest.mark.parametrize("zone", [SHANGHAI, KOLKATA], ids=["shanghai", "kolkata"])
DAY = date(2026, 3, 10)
MINUTE = timedelta(minutes=1)
RULES = Rules()


def at(zone: ZoneInfo, hhmm: str, days: int = 0) -> datetime:
    """Local wall time `hhmm` on DAY + `days` in `zone`."""
    return datetime.combine(DAY + timedelta(days=days), time.fromisoformat(hhmm), zone)


def home(zone: ZoneInfo, **fields) -> HomeHistory:
    """A home monitored for a month, with `fields` as given."""
    fields.setdefault("monitored_since", at(zone, "00:00", -30))
    return HomeHistory(**fields)


def held(history: HomeHistory, now: datetime, zone: ZoneInfo, own: Rules = RULES) -> dict:
    """The conditions holding at `now`, by kind (the first of each kind)."""
    found: dict[str, Condition] = {}
    for condition in rules.conditions(history, own, now, zone):
        found.setdefault(condition.kind, condition)
    return found


def fires_alone(history: HomeHistory, zone: ZoneInfo, kind: str, hhmm: str) -> Condition:
    """Checks that nothing holds a minute before `hhmm` and only `kind` at it and a minute
    after; returns that condition."""
    deadline = at(zone, hhmm)
    assert held(history, deadline - MINUTE, zone) == {}
    fired = held(history, deadline, zone)
    assert set(fired) == {kind}
    assert set(held(history, deadline + MINUTE, zone)) == {kind}
    return fired[kind]


def morning_ends(history: HomeHistory, zone: ZoneInfo, hhmm: str, days: int = 0) -> None:
    """Checks that the morning window of DAY + `days` ends at `hhmm`: no morning alert a
    minute before, one dated 05:00 at it, and that is the deadline seen at 09:00."""
    end = at(zone, hhmm, days)
    assert MORNING not in held(history, end - MINUTE, zone)
    assert held(history, end, zone)[MORNING].since == at(zone, "05:00", days)
    assert rules.next_deadline(history, RULES, at(zone, "09:00", days), zone) == end


# -- no_activity: 12 h -------------------------------------------------------------------------


@ZONES
def test_no_activity_fires_twelve_hours_after_the_last_sign(zone):
    # Active at 08:00 (inside the morning window), lights on last evening and this evening.
    history = home(
        zone,
        last_activity=at(zone, "08:00"),
        last_evening_sign=at(zone, "19:30"),
    )
    fired = fires_alone(history, zone, NO_ACTIVITY, "20:00")
    assert fired.since == at(zone, "08:00")
    assert fired.severity == "high"


@ZONES
def test_no_activity_across_midnight(zone):
    # Up until 23:30, then quiet: the alert is for 11:30 the next day, dated 23:30.
    history = home(
        zone,
        last_activity=at(zone, "23:30"),
        last_evening_sign=at(zone, "19:00"),
    )
    assert held(history, at(zone, "00:30", 1), zone) == {}
    assert NO_ACTIVITY not in held(history, at(zone, "11:29", 1), zone)
    fired = held(history, at(zone, "11:30", 1), zone)
    assert fired[NO_ACTIVITY].since == at(zone, "23:30")
    # The next morning saw nothing either: that window's alert is dated the new day.
    assert fired[MORNING].since == at(zone, "05:00", 1)
    assert NO_ACTIVITY in held(history, at(zone, "11:31", 1), zone)


@ZONES
def test_a_new_home_is_quiet_for_twelve_hours_from_when_monitoring_began(zone):
    history = home(zone, monitored_since=at(zone, "11:00"))
    assert NO_ACTIVITY not in held(history, at(zone, "22:59"), zone)
    assert held(history, at(zone, "23:00"), zone)[NO_ACTIVITY].since == at(zone, "11:00")
    # Its first morning window began before monitoring did: no morning alert that day.
    assert MORNING not in held(history, at(zone, "23:00"), zone)


# -- morning 05:00-10:00 (早看窗帘) ---------------------------------------------------------------


@ZONES
def test_morning_window_fires_at_its_end(zone):
    # Last seen at 04:59, just before the window: nothing in the window itself.
    history = home(
        zone,
        last_activity=at(zone, "04:59"),
        last_evening_sign=at(zone, "19:00", -1),
    )
    assert fires_alone(history, zone, MORNING, "10:00").since == at(zone, "05:00")


@ZONES
@pytest.mark.parametrize("hhmm", ["05:00", "07:30", "09:59"])
def test_a_sign_anywhere_in_the_morning_window_counts(zone, hhmm):
    history = home(
        zone,
        last_activity=at(zone, hhmm),
        last_evening_sign=at(zone, "19:00", -1),
    )
    assert MORNING not in held(history, at(zone, "10:01"), zone)


@ZONES
def test_morning_alert_holds_until_the_next_window_ends(zone):
    # Nothing since yesterday 04:00: yesterday's window missed; at 09:00 today that still
    # holds (today's window is not over yet); at 10:00 today's window takes over.
    history = home(
        zone,
        last_activity=at(zone, "04:00", -1),
        last_evening_sign=at(zone, "04:00", -1),
        monitored_since=at(zone, "00:00", -30),
    )
    assert held(history, at(zone, "09:00"), zone)[MORNING].since == at(zone, "05:00", -1)
    assert held(history, at(zone, "10:00"), zone)[MORNING].since == at(zone, "05:00")


# -- evening 17:00-21:00 (晚看灯) ---------------------------------------------------------------


@ZONES
def test_evening_window_fires_at_its_end_without_a_light_or_power_sign(zone):
    # The door opened at 20:30, but no light went on and no power was used since 17:00.
    history = home(
        zone,
        last_activity=at(zone, "20:30"),
        last_evening_sign=at(zone, "16:59"),
    )
    assert fires_alone(history, zone, EVENING, "21:00").since == at(zone, "17:00")


@ZONES
@pytest.mark.parametrize("hhmm", ["17:00", "20:59"])
def test_a_light_in_the_evening_window_counts(zone, hhmm):
    history = home(zone, last_activity=at(zone, hhmm), last_evening_sign=at(zone, hhmm))
    assert EVENING not in held(history, at(zone, "21:01"), zone)


# -- the windows are cut in local time --------------------------------------------------------


def test_window_boundaries_follow_the_zone():
    # Shanghai is 2 h 30 min ahead of Kolkata. 10:00 in Shanghai is 07:30 in Kolkata.
    last = at(SHANGHAI, "04:00")  # 01:30 in Kolkata: before both mornings
    shanghai = home(SHANGHAI, last_activity=last, last_evening_sign=last)
    kolkata = home(KOLKATA, last_activity=last, last_evening_sign=last)
    ten_in_shanghai = at(SHANGHAI, "10:00")
    assert held(shanghai, ten_in_shanghai - MINUTE, SHANGHAI) == {}
    assert held(shanghai, ten_in_shanghai, SHANGHAI)[MORNING].since == at(SHANGHAI, "05:00")
    # The same instant in Kolkata is 07:30: its window is still open.
    assert held(kolkata, ten_in_shanghai, KOLKATA) == {}
    ten_in_kolkata = at(KOLKATA, "10:00")
    assert ten_in_kolkata - ten_in_shanghai == timedelta(hours=2, minutes=30)
    assert held(kolkata, ten_in_kolkata - MINUTE, KOLKATA) == {}
    assert held(kolkata, ten_in_kolkata, KOLKATA)[MORNING].since == at(KOLKATA, "05:00")
    # And now is the same instant whatever zone it is written in.
    utc = ten_in_kolkata.astimezone(ZoneInfo("UTC"))
    assert held(kolkata, utc, KOLKATA) == held(kolkata, ten_in_kolkata, KOLKATA)


def test_a_window_only_in_one_zone_half_hour_apart():
    # Activity at 05:15 Shanghai = 02:45 Kolkata: inside Shanghai's window, before Kolkata's.
    sign = at(SHANGHAI, "05:15")
    evening = at(SHANGHAI, "19:00", -1)
    assert MORNING not in held(
        home(SHANGHAI, last_activity=sign, last_evening_sign=evening),
        at(SHANGHAI, "10:00"),
        SHANGHAI,
    )
    assert MORNING in held(
        home(KOLKATA, last_activity=sign, last_evening_sign=evening),
        at(KOLKATA, "10:00"),
        KOLKATA,
    )


# -- meter_offline: 60 min, a device fault ----------------------------------------------------


@ZONES
def test_meter_offline_after_sixty_minutes(zone):
    history = home(
        zone,
        last_activity=at(zone, "11:30"),
        last_evening_sign=at(zone, "19:00", -1),
        has_meter=True,
        last_meter_data=at(zone, "12:00"),
    )
    fired = fires_alone(history, zone, METER_OFFLINE, "13:00")
    assert fired.since == at(zone, "12:00")
    assert fired.severity == "low"


@ZONES
def test_a_home_without_a_meter_is_never_offline(zone):
    history = home(zone, last_activity=at(zone, "11:30"), last_evening_sign=at(zone, "19:00", -1))
    assert METER_OFFLINE not in held(history, at(zone, "16:00"), zone)


@ZONES
def test_a_meter_that_never_reported_is_awaiting_installation_not_offline(zone):
    # A district imports its residents before the meters are installed (未接入): nothing is
    # known of such a home, so neither meter_offline nor a quiet rule fires, days later.
    history = home(zone, monitored_since=at(zone, "12:00", -3), has_meter=True)
    assert held(history, at(zone, "12:00"), zone) == {}
    assert held(history, at(zone, "23:00"), zone) == {}
    sos = replace(history, emergencies=(("sos", at(zone, "09:00")),))
    assert set(held(sos, at(zone, "12:00"), zone)) == {SOS}  # a pendant still raises SOS


@ZONES
def test_the_offline_clock_starts_at_a_meters_first_reading(zone):
    history = home(
        zone,
        monitored_since=at(zone, "12:00", -3),
        has_meter=True,
        last_meter_data=at(zone, "12:00"),
        last_activity=at(zone, "12:00"),
        last_evening_sign=at(zone, "19:00", -1),
    )
    assert fires_alone(history, zone, METER_OFFLINE, "13:00").since == at(zone, "12:00")


@ZONES
def test_an_outage_silences_the_activity_rules_until_data_returns(zone):
    # Quiet since last evening; the meter stops at 06:00, inside the morning window.
    quiet = home(
        zone,
        last_activity=at(zone, "21:00", -1),
        last_evening_sign=at(zone, "20:00", -1),
        has_meter=True,
        last_meter_data=at(zone, "06:00"),
    )
    assert held(quiet, at(zone, "06:59"), zone) == {}
    # 09:00 is 12 h after the last sign and 10:00 ends the window: the fault holds, alone.
    for hhmm in ("07:00", "09:00", "09:01", "10:00", "10:01", "15:00"):
        assert set(held(quiet, at(zone, hhmm), zone)) == {METER_OFFLINE}, hhmm
    # Data returns at 15:00, still nobody: both activity rules came due in the dark, so they
    # apply again after an hour of observed time (blind time is not quiet time).
    back = home(
        zone,
        last_activity=at(zone, "21:00", -1),
        last_evening_sign=at(zone, "20:00", -1),
        has_meter=True,
        last_meter_data=at(zone, "15:55"),  # reporting again, at its base load
        blind=(at(zone, "06:00"), at(zone, "15:00")),
    )
    assert held(back, at(zone, "15:59"), zone) == {}
    assert rules.next_deadline(back, RULES, at(zone, "15:00"), zone) == at(zone, "16:00")
    fired = held(back, at(zone, "16:00"), zone)
    assert set(fired) == {NO_ACTIVITY, MORNING}
    assert fired[NO_ACTIVITY].since == at(zone, "21:00", -1)
    assert fired[MORNING].since == at(zone, "05:00")


@ZONES
def test_a_quiet_rule_due_in_an_outage_waits_for_an_hour_of_observed_time(zone):
    # Seen last at 20:45; the meter was offline 06:30-08:16 while the resident got up. The
    # 12-hour rule came due at 08:45, 29 minutes after data returned: before, it fired then
    # and resolved six minutes later, when the first use above the baseline came in.
    history = home(
        zone,
        last_activity=at(zone, "20:45", -1),
        last_evening_sign=at(zone, "20:45", -1),
        has_meter=True,
        last_meter_data=at(zone, "08:50"),
        blind=(at(zone, "06:30"), at(zone, "08:16")),
        morning_end=time(11, 0),
    )
    assert held(history, at(zone, "08:45"), zone) == {}
    assert held(history, at(zone, "09:15"), zone) == {}
    assert set(held(history, at(zone, "09:16"), zone)) == {NO_ACTIVITY}  # still nobody
    seen = replace(history, last_activity=at(zone, "08:51"))
    assert held(seen, at(zone, "09:16"), zone) == {}


@ZONES
def test_a_quiet_rule_due_before_an_outage_is_not_held_back(zone):
    history = home(
        zone,
        last_activity=at(zone, "20:45", -2),
        last_evening_sign=at(zone, "20:45", -1),
        has_meter=True,
        last_meter_data=at(zone, "08:16"),
        blind=(at(zone, "06:30"), at(zone, "08:16")),  # due at 08:45 yesterday
    )
    assert NO_ACTIVITY in held(history, at(zone, "08:16"), zone)


@ZONES
def test_an_outage_does_not_silence_an_sos(zone):
    history = home(
        zone,
        last_activity=at(zone, "08:00"),
        has_meter=True,
        last_meter_data=at(zone, "06:00"),
        emergencies=((SOS, at(zone, "09:00")),),
    )
    assert set(held(history, at(zone, "09:00"), zone)) == {METER_OFFLINE, SOS}


# -- sos and fall: at once, critical ----------------------------------------------------------


@ZONES
@pytest.mark.parametrize("kind", [SOS, FALL])
def test_emergencies_fire_at_once(zone, kind):
    pressed = at(zone, "14:07")
    history = home(
        zone,
        last_activity=pressed,
        last_evening_sign=at(zone, "19:00", -1),
        emergencies=((kind, pressed),),
    )
    assert held(history, pressed - MINUTE, zone) == {}
    fired = held(history, pressed, zone)
    assert set(fired) == {kind}
    assert fired[kind].since == pressed
    assert fired[kind].severity == "critical"


@ZONES
def test_emergencies_fire_during_an_absence(zone):
    history = home(
        zone,
        last_activity=at(zone, "08:00"),
        absences=(Absence(at(zone, "09:00"), at(zone, "18:00")),),
        emergencies=((FALL, at(zone, "12:00")),),
    )
    assert set(held(history, at(zone, "12:00"), zone)) == {FALL}


# -- absences (外出报备) ----------------------------------------------------------------------


@ZONES
def test_an_absence_overlapping_the_morning_window_means_no_morning_alert(zone):
    # Nothing since last night; away 08:00-12:00 (from inside the window to after it).
    history = home(
        zone,
        last_activity=at(zone, "21:30", -1),
        last_evening_sign=at(zone, "20:00", -1),
        absences=(Absence(at(zone, "08:00"), at(zone, "12:00")),),
    )
    # Before the absence, nothing is due yet.
    assert held(history, at(zone, "07:59"), zone) == {}
    # 09:30 would be 12 h quiet, but the absence began first; 10:00 ends the window.
    assert held(history, at(zone, "10:01"), zone) == {}
    assert held(history, at(zone, "12:01"), zone) == {}
    # The quiet clock restarted at 12:00 when the absence ended.
    assert NO_ACTIVITY not in held(history, at(zone, "23:59"), zone)
    fired = held(history, at(zone, "00:00", 1), zone)
    assert fired[NO_ACTIVITY].since == at(zone, "12:00")
    # The morning window was covered in part: no morning alert for that day, ever.
    assert MORNING not in held(history, at(zone, "04:00", 1), zone)


@ZONES
def test_an_absence_ending_inside_the_morning_window(zone):
    # Away from last evening until 07:00, then no sign at all.
    history = home(
        zone,
        last_activity=at(zone, "18:00", -1),
        last_evening_sign=at(zone, "18:00", -1),
        absences=(Absence(at(zone, "18:30", -1), at(zone, "07:00")),),
    )
    assert held(history, at(zone, "06:59"), zone) == {}
    assert held(history, at(zone, "10:01"), zone) == {}
    assert held(history, at(zone, "18:59"), zone) == {}
    fired = held(history, at(zone, "19:00"), zone)
    assert set(fired) == {NO_ACTIVITY}
    assert fired[NO_ACTIVITY].since == at(zone, "07:00")


@ZONES
def test_an_absence_starting_inside_the_evening_window(zone):
    history = home(
        zone,
        last_activity=at(zone, "16:00"),
        last_evening_sign=at(zone, "16:00"),
        absences=(Absence(at(zone, "19:00"), at(zone, "10:00", 1)),),
    )
    assert held(history, at(zone, "18:59"), zone) == {}
    assert held(history, at(zone, "21:01"), zone) == {}
    # Home at 10:00: the morning window was covered too, and the quiet clock starts over.
    assert held(history, at(zone, "10:01", 1), zone) == {}
    assert NO_ACTIVITY not in held(history, at(zone, "21:59", 1), zone)
    assert held(history, at(zone, "22:00", 1), zone)[NO_ACTIVITY].since == at(zone, "10:00", 1)


@ZONES
def test_an_absence_that_ended_before_the_last_sign_changes_nothing(zone):
    history = home(
        zone,
        last_activity=at(zone, "08:00"),
        last_evening_sign=at(zone, "19:30"),
        absences=(Absence(at(zone, "01:00"), at(zone, "06:00")),),
    )
    assert NO_ACTIVITY not in held(history, at(zone, "19:59"), zone)
    assert NO_ACTIVITY in held(history, at(zone, "20:00"), zone)


# -- per-resident overrides -------------------------------------------------------------------


@ZONES
def test_overrides_change_each_threshold(zone):
    own = RULES.with_overrides(
        {
            "no_activity_h": 6,
            "offline_min": 15,
            "morning": ["06:30", "09:30"],
            "evening": ["18:00", "22:15"],
        }
    )
    assert own.no_activity == timedelta(hours=6)
    assert own.offline == timedelta(minutes=15)
    quiet = home(zone, last_activity=at(zone, "06:29"), last_evening_sign=at(zone, "17:59"))
    assert held(quiet, at(zone, "09:29"), zone, own) == {}
    assert set(held(quiet, at(zone, "09:30"), zone, own)) == {MORNING}
    assert NO_ACTIVITY not in held(quiet, at(zone, "12:28"), zone, own)
    assert NO_ACTIVITY in held(quiet, at(zone, "12:29"), zone, own)
    metered = home(
        zone,
        last_activity=at(zone, "11:00"),
        last_evening_sign=at(zone, "19:00", -1),
        has_meter=True,
        last_meter_data=at(zone, "12:00"),
    )
    assert held(metered, at(zone, "12:14"), zone, own) == {}
    assert set(held(metered, at(zone, "12:15"), zone, own)) == {METER_OFFLINE}
    evening = home(
        zone,
        last_activity=at(zone, "22:00"),
        last_evening_sign=at(zone, "17:59"),
    )
    assert EVENING not in held(evening, at(zone, "22:14"), zone, own)
    assert held(evening, at(zone, "22:15"), zone, own)[EVENING].since == at(zone, "18:00")


@ZONES
def test_disabled_kinds_never_fire(zone):
    own = RULES.with_overrides({"disabled": [MORNING, METER_OFFLINE, SOS]})
    history = home(
        zone,
        last_activity=at(zone, "04:00"),
        last_evening_sign=at(zone, "19:00", -1),
        has_meter=True,
        last_meter_data=at(zone, "04:00"),
        emergencies=((SOS, at(zone, "09:00")), (FALL, at(zone, "09:05"))),
    )
    fired = held(history, at(zone, "16:00"), zone, own)
    assert set(fired) == {NO_ACTIVITY, FALL}


def test_overrides_leave_the_defaults_alone():
    changed = RULES.with_overrides({"no_activity_h": 8.5, "disabled": []})
    assert changed.no_activity == timedelta(hours=8, minutes=30)
    longest = RULES.with_overrides({"no_activity_h": 168, "offline_min": 10080})
    assert longest.no_activity == longest.offline == timedelta(days=7)
    assert changed.disabled == frozenset()
    assert Rules() == RULES
    assert RULES.with_overrides({}) == RULES


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"no_activity": 12}, "unknown rule setting 'no_activity'"),
        ({"no_activity_h": 0}, "no_activity_h must be a positive number"),
        ({"no_activity_h": -3}, "no_activity_h must be a positive number"),
        ({"no_activity_h": "12"}, "no_activity_h must be a positive number"),
        ({"no_activity_h": True}, "no_activity_h must be a positive number"),
        ({"no_activity_h": None}, "no_activity_h must be a positive number"),
        ({"offline_min": 0}, "offline_min must be a positive number"),
        ({"no_activity_h": 168.5}, "no_activity_h must be at most 168 (a week)"),
        ({"offline_min": 10081}, "offline_min must be at most 10080 (a week)"),
        ({"morning": ["10:00", "05:00"]}, "morning window must start before it ends"),
        ({"morning": ["05:00", "05:00"]}, "morning window must start before it ends"),
        ({"evening": ["5pm", "9pm"]}, "evening must be two times like"),
        ({"evening": ["17:00"]}, "evening must be two times like"),
        ({"evening": ["17:00", "21:00", "23:00"]}, "evening must be two times like"),
        ({"morning": "05:00-10:00"}, "morning must be two times like"),
        ({"morning": None}, "morning must be two times like"),
        ({"morning": ["05:00", 10]}, "morning must be two times like"),
        ({"disabled": ["sleep", MORNING]}, "disabled: unknown alert kinds ['sleep']"),
    ],
)
def test_bad_overrides_are_refused_with_a_reason(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RULES.with_overrides(overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"no_activity_h": 1e9},  # past year 9999: every evaluation would overflow
        {"no_activity_h": float("inf")},
        {"no_activity_h": float("nan")},
        {"offline_min": 1e12},
        {"disabled": 5},
        {"disabled": None},
        {"disabled": "morning"},  # a string is not a list of kinds
        {"disabled": [["morning"]]},
        {"morning": ["05:00+08:00", "10:00+08:00"]},  # the zone is the district's
        ["no_activity_h", 6],  # not a JSON object at all
        "no_activity_h=6",
    ],
)
def test_overrides_that_would_break_the_engine_are_value_errors(overrides):
    # The engine catches ValueError and falls back to the defaults for that resident; any
    # other exception (TypeError, OverflowError) would stop evaluation for the whole district.
    with pytest.raises(ValueError):
        RULES.with_overrides(overrides)


# -- the late riser -----------------------------------------------------------------------------


@ZONES
@pytest.mark.parametrize(
    ("learned", "end"),
    [
        (None, "10:00"),
        ("09:00", "10:00"),
        ("11:30", "11:30"),
        ("12:00", "12:00"),
        ("13:45", "12:00"),
    ],
)
def test_a_late_risers_morning_window_ends_later_but_never_after_noon(zone, learned, end):
    history = home(
        zone,
        last_activity=at(zone, "04:00"),
        last_evening_sign=at(zone, "19:00", -1),
        morning_end=None if learned is None else time.fromisoformat(learned),
    )
    assert rules.morning_window(history, RULES) == (time(5, 0), time.fromisoformat(end))
    morning_ends(history, zone, end)


# -- resolution --------------------------------------------------------------------------------


@ZONES
@pytest.mark.parametrize("kind", [NO_ACTIVITY, MORNING])
def test_activity_after_since_resolves_activity_alerts(zone, kind):
    since = at(zone, "05:00")
    assert rules.resolution(kind, since, home(zone, last_activity=since - MINUTE)) is None
    assert rules.resolution(kind, since, home(zone)) is None
    reason = rules.resolution(kind, since, home(zone, last_activity=at(zone, "10:42")))
    assert reason is not None and "10:42" in reason


@ZONES
def test_the_evening_alert_is_resolved_by_a_light_or_power_sign(zone):
    since = at(zone, "17:00")
    lit = home(zone, last_activity=at(zone, "21:40"), last_evening_sign=at(zone, "21:40"))
    reason = rules.resolution(EVENING, since, lit)
    assert reason is not None and "21:40" in reason


@ZONES
def test_the_evening_alert_is_not_resolved_by_what_does_not_end_it(zone):
    # A door at 18:00 did not stop the evening alert from firing at 21:00 (no light, no
    # power): it cannot be what resolves it either, or the alert flaps closed and open.
    since = at(zone, "17:00")
    door = home(zone, last_activity=at(zone, "18:00"), last_evening_sign=at(zone, "16:00"))
    assert EVENING in held(door, at(zone, "21:05"), zone)
    assert rules.resolution(EVENING, since, door) is None


@ZONES
@pytest.mark.parametrize("kind", [MORNING, EVENING])
def test_a_sign_at_the_very_start_of_a_window_resolves_its_alert(zone, kind):
    # A sign at exactly 05:00 (or 17:00) keeps the window from firing; arriving late, after
    # the alert opened, it must also close it, or the alert stays open with nothing holding.
    start = at(zone, "05:00" if kind == MORNING else "17:00")
    history = home(zone, last_activity=start, last_evening_sign=start)
    assert kind not in held(history, start + timedelta(hours=6), zone)
    assert rules.resolution(kind, start, history) is not None


@ZONES
def test_meter_data_returning_resolves_meter_offline(zone):
    since = at(zone, "12:00")
    assert rules.resolution(METER_OFFLINE, since, home(zone, has_meter=True)) is None
    stale = home(zone, has_meter=True, last_meter_data=since, last_activity=at(zone, "13:00"))
    assert rules.resolution(METER_OFFLINE, since, stale) is None
    back = home(zone, has_meter=True, last_meter_data=at(zone, "13:20"))
    reason = rules.resolution(METER_OFFLINE, since, back)
    assert reason is not None and "13:20" in reason


@ZONES
@pytest.mark.parametrize("kind", [SOS, FALL])
def test_emergencies_never_resolve_by_themselves(zone, kind):
    since = at(zone, "09:00")
    busy = home(
        zone,
        last_activity=at(zone, "11:00"),
        last_evening_sign=at(zone, "11:00"),
        has_meter=True,
        last_meter_data=at(zone, "11:00"),
        absences=(Absence(at(zone, "08:00"), at(zone, "12:00")),),
    )
    assert rules.resolution(kind, since, busy) is None


@ZONES
def test_an_absence_covering_the_start_resolves_an_activity_alert(zone):
    since = at(zone, "08:00")
    away = home(zone, absences=(Absence(at(zone, "07:00"), at(zone, "20:00")),))
    assert rules.resolution(NO_ACTIVITY, since, away) == "a registered absence covers it"
    assert rules.resolution(METER_OFFLINE, since, away) is None


# -- next_deadline ------------------------------------------------------------------------------


def first_new_condition(history, own, now, zone, horizon=timedelta(days=2)):
    """Step minute by minute: the first instant after `now` where a condition holds that
    did not hold at `now`."""
    before = set(rules.conditions(history, own, now, zone))
    t = now + MINUTE
    while t <= now + horizon:
        if set(rules.conditions(history, own, t, zone)) - before:
            return t
        t += MINUTE
    return None


# Histories (local times on DAY + offset) and the instants, after everything in them and
# before any meter outage, at which to ask for the next deadline.
SCENARIOS = {
    "active this morning": (
        dict(last_activity=("08:00", 0), last_evening_sign=("19:00", -1)),
        ["08:00", "09:59", "10:00", "16:30", "19:59"],
    ),
    "quiet since the small hours": (
        dict(last_activity=("02:10", 0), last_evening_sign=("19:00", -1)),
        ["02:10", "04:59", "06:30", "09:59", "10:00", "13:00"],
    ),
    "no light yet": (
        dict(last_activity=("16:00", 0), last_evening_sign=("08:00", 0)),
        ["16:00", "16:59", "17:00", "20:59", "21:00", "23:59"],
    ),
    "meter reporting": (
        dict(
            last_activity=("08:00", 0),
            last_evening_sign=("19:00", -1),
            has_meter=True,
            last_meter_data=("08:45", 0),
        ),
        ["08:45", "09:00", "09:44"],
    ),
    "late riser": (
        dict(last_activity=("22:00", -1), last_evening_sign=("19:00", -1), morning_end="11:15"),
        ["22:00", "04:59", "06:30", "10:00", "11:14", "11:15"],
    ),
    "already holding": (
        dict(last_activity=("21:00", -2), last_evening_sign=("19:00", -2)),
        ["00:00", "06:30", "10:00", "16:30", "20:59", "21:00"],
    ),
}


def scenario(zone, spec) -> HomeHistory:
    fields = {}
    for key, value in spec.items():
        if key == "morning_end":
            fields[key] = time.fromisoformat(value)
        elif isinstance(value, tuple):
            fields[key] = at(zone, value[0], value[1])
        else:
            fields[key] = value
    return home(zone, **fields)


@ZONES
@pytest.mark.parametrize(
    ("name", "now"), [(name, now) for name, (_, nows) in SCENARIOS.items() for now in nows]
)
def test_next_deadline_is_the_first_moment_a_condition_starts(zone, name, now):
    spec, _ = SCENARIOS[name]
    history = scenario(zone, spec)
    instant = at(zone, now)
    assert instant >= max(v for v in (history.last_activity, history.last_meter_data) if v)
    deadline = rules.next_deadline(history, RULES, instant, zone)
    assert deadline is not None and deadline > instant
    assert deadline == first_new_condition(history, RULES, instant, zone)


@ZONES
def test_next_deadline_wakes_at_the_end_of_an_absence(zone):
    # Early is harmless (the engine looks, finds nothing, sleeps again); late is a missed
    # alert. The end of an absence is a moment the activity rules may speak again.
    history = home(
        zone,
        last_activity=at(zone, "21:00", -1),
        last_evening_sign=at(zone, "19:00", -1),
        absences=(Absence(at(zone, "06:00"), at(zone, "09:00")),),
    )
    deadline = rules.next_deadline(history, RULES, at(zone, "07:00"), zone)
    assert deadline == at(zone, "09:00")
    first = first_new_condition(history, RULES, at(zone, "07:00"), zone)
    assert first == at(zone, "21:00")  # 12 h after the absence; the morning was covered


@ZONES
def test_an_sos_stamped_ahead_of_the_clock_is_due_when_its_time_comes(zone):
    # A device clock a few minutes fast: the engine keeps the SOS (within its tolerance) and
    # must look again when it is due, not at the next window hours later.
    now = at(zone, "14:00")
    history = home(
        zone,
        last_activity=at(zone, "13:55"),
        last_evening_sign=at(zone, "19:00", -1),
        emergencies=((SOS, at(zone, "14:03")),),
    )
    assert held(history, now, zone) == {}
    assert rules.next_deadline(history, RULES, now, zone) == at(zone, "14:03")
    assert first_new_condition(history, RULES, now, zone) == at(zone, "14:03")


@ZONES
def test_next_deadline_with_every_rule_disabled_and_no_meter_is_none(zone):
    own = RULES.with_overrides({"disabled": [NO_ACTIVITY, MORNING, EVENING]})
    history = home(zone, last_activity=at(zone, "08:00"))
    assert rules.next_deadline(history, own, at(zone, "09:00"), zone) is None


# -- rest days: weekends, holidays, 调休 ---------------------------------------------------------

SATURDAY = date(2026, 3, 14)  # DAY is a Tuesday


def test_a_calendar_of_weekends_holidays_and_working_weekends():
    calendar = Calendar(holidays=frozenset({DAY}), workdays=frozenset({SATURDAY}))
    assert calendar.is_rest_day(DAY)  # a Tuesday that is a holiday
    assert not calendar.is_rest_day(SATURDAY)  # a Saturday made a working day (调休)
    assert calendar.is_rest_day(SATURDAY + timedelta(days=1))
    assert not calendar.is_rest_day(DAY + timedelta(days=1))


def test_chinas_public_calendar_comes_from_the_holidays_package_with_overrides_on_top():
    # 2026 as the State Council published it: National Day Oct 1-7, Saturday Oct 10 and
    # Sunday Sep 20 worked in exchange; Spring Festival with Saturdays Feb 14 and 28 worked.
    calendar = rules.public_calendar("CN", [2026])
    assert all(calendar.is_rest_day(date(2026, 10, day)) for day in range(1, 8))
    assert not calendar.is_rest_day(date(2026, 10, 10))  # a working Saturday (调休)
    assert not calendar.is_rest_day(date(2026, 9, 20))  # a working Sunday
    assert not calendar.is_rest_day(date(2026, 2, 14)) and calendar.is_rest_day(date(2026, 2, 17))
    assert not calendar.is_rest_day(date(2026, 10, 9))  # an ordinary Friday

    local = rules.public_calendar(
        "CN", [2026], holidays={date(2026, 12, 7)}, workdays={date(2026, 10, 2)}
    )
    assert local.is_rest_day(date(2026, 12, 7))  # a Monday the district rests
    assert not local.is_rest_day(date(2026, 10, 2))  # a holiday the district works
    assert not rules.public_calendar(None, [2026]).is_rest_day(date(2026, 10, 1))  # weekends alone


@ZONES
@pytest.mark.parametrize(
    ("days", "calendar", "end"),
    [
        (0, Calendar(), "10:00"),  # Tuesday: the working days' window
        (4, Calendar(), "11:30"),  # Saturday: the rest days' learned window
        (5, Calendar(), "11:30"),  # Sunday
        (0, Calendar(holidays=frozenset({DAY})), "11:30"),  # a holiday Tuesday
        (4, Calendar(workdays=frozenset({SATURDAY})), "10:00"),  # a working Saturday (调休)
    ],
)
def test_the_morning_window_of_one_who_sleeps_in_on_rest_days(zone, days, calendar, end):
    history = home(
        zone,
        last_activity=at(zone, "04:00", days),
        last_evening_sign=at(zone, "19:00", days - 1),
        rest_morning_end=time(11, 30),
        calendar=calendar,
    )
    day = DAY + timedelta(days=days)
    assert rules.morning_window(history, RULES, day) == (time(5, 0), time.fromisoformat(end))
    morning_ends(history, zone, end, days)


def test_mornings_are_learned_apart_for_working_days_and_rest_days():
    profile = HomeProfile()
    zone = SHANGHAI
    for n in range(28):
        day = DAY + timedelta(days=n)
        wake = "11:00" if day.weekday() >= 5 else "07:00"
        profile.observe(datetime.combine(day, time.fromisoformat(wake), zone), zone)
        profile.observe(datetime.combine(day, time(21, 0), zone), zone)
    assert profile.morning_end(RULES) is None  # up at 7 on working days: the default 10:00
    assert profile.morning_end(RULES, rest_day=True) == time(11, 45)


def test_too_few_rest_days_learn_from_every_morning():
    profile = HomeProfile()
    zone = SHANGHAI
    for n in range(4):  # Tuesday to Friday only, up at 10:30
        day = DAY + timedelta(days=n)
        profile.observe(datetime.combine(day, time(10, 30), zone), zone)
        profile.observe(datetime.combine(day, time(21, 0), zone), zone)
    assert profile.morning_end(RULES, rest_day=True) == profile.morning_end(RULES) == time(11, 15)
