"""Alert lifecycle without a database: one alert per condition, resolution, escalation.

`plan_home` is applied to a list of open alerts the way the store applies it (a Resolve
closes, an Open adds), so repeated looks at a home show what the duty officer would see.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.alerts import lifecycle
from gridwatch.alerts.lifecycle import ESCALATE_AFTER, Open, OpenAlert, Resolve
from gridwatch.alerts.rules import Absence, HomeHistory, Rules
from gridwatch.model.vocabulary import EVENING, FALL, METER_OFFLINE, MORNING, NO_ACTIVITY, SOS

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
MINUTE = timedelta(minutes=1)
RULES = Rules()
_ids = itertools.count(1)


def at(hhmm: str, days: int = 0) -> datetime:
    return datetime.combine(DAY + timedelta(days=days), time.fromisoformat(hhmm), ZONE)


def home(**fields) -> HomeHistory:
    fields.setdefault("monitored_since", at("00:00", -30))
    return HomeHistory(**fields)


def look(history: HomeHistory, now: datetime, open_alerts: list[OpenAlert]) -> list:
    """One look at the home: the plan, applied to `open_alerts` in place like the store."""
    actions = lifecycle.plan_home("R00001", history, RULES, now, ZONE, list(open_alerts))
    for action in actions:
        if isinstance(action, Resolve):
            open_alerts[:] = [a for a in open_alerts if a.id != action.alert.id]
        else:
            c = action.condition
            open_alerts.append(
                OpenAlert(next(_ids), action.resident_id, c.kind, c.since, "open", "grid", now)
            )
    return actions


def kinds(actions) -> list[tuple[str, str]]:
    return sorted(
        (type(a).__name__, a.condition.kind if isinstance(a, Open) else a.alert.kind)
        for a in actions
    )


def alert(kind: str, opened_at: datetime, *, status="open", level="grid", since=None):
    return OpenAlert(next(_ids), "R00001", kind, since or opened_at, status, level, opened_at)


# -- one alert per condition --------------------------------------------------------------------


def test_a_condition_opens_one_alert_and_later_looks_add_nothing():
    quiet = home(last_activity=at("08:00"), last_evening_sign=at("19:30"))
    open_alerts: list[OpenAlert] = []
    assert look(quiet, at("19:59"), open_alerts) == []
    assert kinds(look(quiet, at("20:00"), open_alerts)) == [("Open", NO_ACTIVITY)]
    for minutes in (0, 1, 5, 60, 120):
        assert look(quiet, at("20:00") + timedelta(minutes=minutes), open_alerts) == []
    assert [a.kind for a in open_alerts] == [NO_ACTIVITY]


@pytest.mark.parametrize("status", ["open", "acknowledged"])
@pytest.mark.parametrize("kind", [NO_ACTIVITY, MORNING, EVENING, METER_OFFLINE, SOS, FALL])
def test_never_a_second_alert_for_a_kind_already_open(kind, status):
    # Everything holds at once: quiet for days, meter silent, an SOS and a fall pressed.
    history = home(
        monitored_since=at("00:00", -30),
        last_activity=at("04:00", -2),
        last_evening_sign=at("04:00", -2),
        emergencies=((SOS, at("09:00")), (SOS, at("09:30")), (FALL, at("09:10"))),
    )
    since = at("00:00", -1)
    if kind == METER_OFFLINE:
        history = home(has_meter=True, last_meter_data=at("08:00"))
        since = at("08:00")
    existing = alert(kind, at("09:00", -1), status=status, since=since)
    actions = lifecycle.plan_home("R00001", history, RULES, at("11:00"), ZONE, [existing])
    opened = [a.condition.kind for a in actions if isinstance(a, Open)]
    assert kind not in opened
    assert len(opened) == len(set(opened))  # two SOS presses are one SOS alert


def test_two_presses_of_sos_open_one_alert():
    history = home(
        last_activity=at("09:00"),
        last_evening_sign=at("19:00", -1),
        emergencies=((SOS, at("09:00")), (SOS, at("09:01"))),
    )
    open_alerts: list[OpenAlert] = []
    assert kinds(look(history, at("09:01"), open_alerts)) == [("Open", SOS)]
    assert look(history, at("09:02"), open_alerts) == []


def test_the_evening_alert_does_not_flap_when_a_door_opened_in_the_window():
    # The door opened at 18:00 (activity), but no light or power in 17:00-21:00: the evening
    # alert fires at 21:00. Every later look (new meter data every few minutes) must leave
    # it alone until a light or power sign comes.
    history = home(last_activity=at("18:00"), last_evening_sign=at("08:00"))
    open_alerts: list[OpenAlert] = []
    assert kinds(look(history, at("21:00"), open_alerts)) == [("Open", EVENING)]
    for minutes in (5, 10, 15):
        assert look(history, at("21:00") + timedelta(minutes=minutes), open_alerts) == []
    lit = home(last_activity=at("21:20"), last_evening_sign=at("21:20"))
    assert kinds(look(lit, at("21:20"), open_alerts)) == [("Resolve", EVENING)]
    assert open_alerts == []


def test_late_data_that_does_not_end_the_quiet_keeps_the_alert_open():
    # Opened at 20:00 for quiet since 08:00; then a reading stamped 08:30 arrives late (a
    # meter that buffered). The person has still been quiet for 12 h: the alert must stay
    # open (and acknowledged, if it was), not close saying "activity returned at 08:30" and
    # reopen as a new alert that pages everyone again.
    open_alerts = [alert(NO_ACTIVITY, at("20:00"), status="acknowledged", since=at("08:00"))]
    late = home(last_activity=at("08:30"), last_evening_sign=at("19:30"))
    assert look(late, at("21:00"), open_alerts) == []
    assert open_alerts[0].status == "acknowledged"
    # Activity that does end the quiet resolves it.
    back = home(last_activity=at("21:05"), last_evening_sign=at("21:05"))
    actions = look(back, at("21:05"), open_alerts)
    assert kinds(actions) == [("Resolve", NO_ACTIVITY)]
    assert "21:05" in actions[0].reason


def test_late_meter_data_that_does_not_end_the_outage_keeps_meter_offline_open():
    open_alerts = [alert(METER_OFFLINE, at("13:00"), since=at("12:00"))]
    seen = {"last_activity": at("11:00"), "last_evening_sign": at("19:00", -1)}
    late = home(has_meter=True, last_meter_data=at("12:10"), **seen)
    assert look(late, at("14:00"), open_alerts) == []
    back = home(has_meter=True, last_meter_data=at("14:02"), **seen)
    assert kinds(look(back, at("14:02"), open_alerts)) == [("Resolve", METER_OFFLINE)]


# -- resolution through the plan -----------------------------------------------------------------


def test_activity_resolves_every_activity_alert_at_once():
    # Missed morning and 12 h quiet, then the kettle at 10:30: both close, nothing opens.
    quiet = home(last_activity=at("21:30", -1), last_evening_sign=at("20:00", -1))
    open_alerts: list[OpenAlert] = []
    assert kinds(look(quiet, at("10:00"), open_alerts)) == [
        ("Open", MORNING),
        ("Open", NO_ACTIVITY),
    ]
    back = home(last_activity=at("10:30"), last_evening_sign=at("10:30"))
    assert kinds(look(back, at("10:30"), open_alerts)) == [
        ("Resolve", MORNING),
        ("Resolve", NO_ACTIVITY),
    ]
    assert open_alerts == []


def test_meter_offline_resolves_when_data_returns_and_the_activity_rules_take_over():
    history = home(
        last_activity=at("21:00", -1),
        last_evening_sign=at("20:00", -1),
        has_meter=True,
        last_meter_data=at("06:00"),
    )
    open_alerts: list[OpenAlert] = []
    assert kinds(look(history, at("07:00"), open_alerts)) == [("Open", METER_OFFLINE)]
    assert look(history, at("10:00"), open_alerts) == []  # activity rules silent in the outage
    back = home(
        last_activity=at("21:00", -1),
        last_evening_sign=at("20:00", -1),
        has_meter=True,
        last_meter_data=at("11:00"),
    )
    assert kinds(look(back, at("11:00"), open_alerts)) == [
        ("Open", MORNING),
        ("Open", NO_ACTIVITY),
        ("Resolve", METER_OFFLINE),
    ]


@pytest.mark.parametrize("kind", [SOS, FALL])
def test_emergencies_stay_open_whatever_happens(kind):
    pressed = at("09:00")
    history = home(
        last_activity=at("12:00"),
        last_evening_sign=at("12:00"),
        has_meter=True,
        last_meter_data=at("12:00"),
        emergencies=((kind, pressed),),
    )
    open_alerts = [alert(kind, pressed)]
    assert look(history, at("12:00"), open_alerts) == []
    assert [a.kind for a in open_alerts] == [kind]


def test_an_absence_registered_over_the_start_of_an_alert_resolves_it():
    open_alerts = [alert(NO_ACTIVITY, at("20:00"), since=at("08:00"))]
    away = home(
        last_activity=at("08:00"),
        last_evening_sign=at("19:30"),
        absences=(Absence(at("07:30"), at("09:00", 1)),),
    )
    actions = look(away, at("20:10"), open_alerts)
    assert kinds(actions) == [("Resolve", NO_ACTIVITY)]
    assert actions[0].reason == "a registered absence covers it"


# -- escalation: grid → community → street, 30 min each, only while open ------------------------


@pytest.mark.parametrize("kind", [NO_ACTIVITY, MORNING, EVENING, SOS, FALL])
def test_an_unacknowledged_alert_goes_up_every_thirty_minutes(kind):
    opened = at("20:00")
    grid = alert(kind, opened)
    assert lifecycle.escalation(grid, opened) is None
    assert lifecycle.escalation(grid, opened + 30 * MINUTE - timedelta(seconds=1)) is None
    assert lifecycle.escalation(grid, opened + 30 * MINUTE) == "community"
    assert lifecycle.escalation(grid, opened + 31 * MINUTE) == "community"
    community = alert(kind, opened, level="community")
    assert lifecycle.escalation(community, opened + 59 * MINUTE) is None
    assert lifecycle.escalation(community, opened + 60 * MINUTE) == "street"
    street = alert(kind, opened, level="street")
    assert lifecycle.escalation(street, opened + timedelta(hours=9)) is None
    # An engine that was down for 70 minutes goes straight to the level due.
    assert lifecycle.escalation(grid, opened + 70 * MINUTE) == "street"


def test_next_escalation_names_each_step_and_none_at_the_top():
    opened = at("20:00")
    assert ESCALATE_AFTER == 30 * MINUTE
    assert lifecycle.next_escalation(alert(NO_ACTIVITY, opened)) == opened + 30 * MINUTE
    assert (
        lifecycle.next_escalation(alert(NO_ACTIVITY, opened, level="community"))
        == opened + 60 * MINUTE
    )
    assert lifecycle.next_escalation(alert(NO_ACTIVITY, opened, level="street")) is None


@pytest.mark.parametrize("kind", [NO_ACTIVITY, SOS])
def test_an_acknowledged_alert_does_not_escalate(kind):
    opened = at("20:00")
    acked = alert(kind, opened, status="acknowledged")
    for minutes in (30, 60, 600):
        assert lifecycle.escalation(acked, opened + minutes * MINUTE) is None
    assert lifecycle.next_escalation(acked) is None
    acked_at_community = alert(kind, opened, status="acknowledged", level="community")
    assert lifecycle.escalation(acked_at_community, opened + 60 * MINUTE) is None


def test_meter_offline_never_escalates():
    opened = at("13:00")
    for level in ("grid", "community"):
        fault = alert(METER_OFFLINE, opened, level=level)
        for minutes in (30, 60, 24 * 60):
            assert lifecycle.escalation(fault, opened + minutes * MINUTE) is None
        assert lifecycle.next_escalation(fault) is None


def test_a_clock_behind_the_opening_time_does_not_escalate():
    # An engine restarted with a clock (or a simulated day) earlier than when the alert was
    # opened must not read the negative age as "long overdue" and page the street at once.
    opened = at("20:00")
    grid = alert(NO_ACTIVITY, opened)
    for minutes in (1, 29, 31, 45, 61, 24 * 60):
        assert lifecycle.escalation(grid, opened - minutes * MINUTE) is None
