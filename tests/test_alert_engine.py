"""The alert engine over an in-memory store: what it does between the rules and the database.

A `FakeStore` (`tests.support.fake_alert_store`) has the methods of `AlertStore` and keeps
rows in lists, so each test runs in milliseconds and names one behaviour of the engine: when
it looks at a home, what it absorbs, what it writes. The same paths through PostgreSQL and
the broker are in test_alert_service.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from gridwatch.alerts.activity import Baseline
from gridwatch.alerts.engine import Signal
from gridwatch.alerts.lifecycle import Escalate, Open
from gridwatch.alerts.rules import Absence
from gridwatch.model.vocabulary import EVENING, METER_OFFLINE, NO_ACTIVITY, SOS
from tests.support.fake_alert_store import (
    MINUTE,
    FakeStore,
    a_home,
    at,
    lit_yesterday,
    meter,
    readings,
    sensor,
    started,
    step_through,
)

# -- the engine's own behaviour ---------------------------------------------------------------


def test_quiet_home_gets_one_no_activity_alert_at_the_deadline_and_it_resolves_on_activity():
    store = FakeStore([a_home()])
    lit_yesterday(store)
    store.signals += readings(at("06:00"), at("22:00", 1))
    store.signals.append(sensor(at("08:00"), "door_open"))
    store.clock = at("08:30")
    engine = started(store, at("08:30"))
    assert step_through(engine, store, at("19:59")) == []
    actions = step_through(engine, store, at("20:01"))
    assert [(type(a).__name__, a.condition.kind) for a in actions] == [("Open", NO_ACTIVITY)]
    assert store.alerts_of(NO_ACTIVITY)[0].since == at("08:00")
    store.signals.append(sensor(at("20:30"), "door_open"))
    actions = step_through(engine, store, at("20:31"))
    assert [type(a).__name__ for a in actions if not isinstance(a, Escalate)] == ["Resolve"]
    assert [a.status for a in store.alerts_of(NO_ACTIVITY)] == ["resolved"]


@pytest.mark.parametrize(("registered_days_ago", "alerted"), [(1, False), (30, True)])
def test_a_new_homes_long_first_night_is_not_an_alert(registered_days_ago, alerted):
    # A long sleeper's first night under watch: quiet from 19:30 to 09:00, 13.5 h. Nothing of
    # the home's nights is learned yet, so a new home's quiet rule allows the most stretch
    # its bound allows (4 h); a home watched for a month and no long nights learned does not.
    store = FakeStore([a_home(since=at("12:00", -registered_days_ago), meter=None)])
    store.signals.append(sensor(at("19:30", -1), "door_open"))
    store.clock = at("19:31", -1)
    engine = started(store, at("19:31", -1))
    step_through(engine, store, at("08:59"))
    store.signals.append(sensor(at("09:00"), "door_open"))
    step_through(engine, store, at("09:01"))
    assert bool(store.alerts_of(NO_ACTIVITY)) is alerted


def test_an_sos_from_a_device_clock_a_few_minutes_fast_opens_at_once():
    # No other data arrives for the home afterwards (its meter reports to the minute): only
    # the engine's own schedule can bring it back to the home.
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-pendant"))])
    store.signals.append(sensor(at("13:55"), "door_open"))
    store.clock = at("14:00")
    engine = started(store, at("14:00"))
    # Received at 14:00, stamped 14:03 by a fast clock: the press is now, not in 3 minutes.
    store.signals.append((at("14:00"), Signal("sensor", "S00001-pendant", at("14:03"), event=SOS)))
    actions = step_through(engine, store, at("14:01"))
    assert [a.condition.kind for a in actions if isinstance(a, Open)] == [SOS]
    assert store.alerts_of(SOS)[0].since <= at("14:01")


def test_escalation_every_thirty_minutes_until_acknowledged():
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-pendant"))])
    lit_yesterday(store)
    store.signals.append(sensor(at("09:00"), "door_open"))
    store.signals.append(sensor(at("09:30"), SOS, key="S00001-pendant"))
    store.clock = at("09:00")
    engine = started(store, at("09:00"))
    step_through(engine, store, at("09:30"))
    (sos,) = store.alerts_of(SOS)
    step_through(engine, store, at("09:59"))
    assert store.events == [(sos.id, "open", "grid")]
    step_through(engine, store, at("10:00"))
    assert store.events[-1] == (sos.id, "escalated", "community")
    step_through(engine, store, at("10:30"))
    assert store.events[-1] == (sos.id, "escalated", "street")
    step_through(engine, store, at("13:00"))
    assert len(store.events) == 3


def test_a_home_with_bad_rules_is_watched_with_the_defaults(caplog):
    store = FakeStore([a_home(meter=None, rules={"no_activity_h": 1e9, "disabled": 5})])
    lit_yesterday(store)
    store.signals.append(sensor(at("08:00"), "door_open"))
    store.clock = at("08:30")
    engine = started(store, at("08:30"))
    assert "bad rules" in caplog.text
    actions = step_through(engine, store, at("20:01"))
    assert [a.condition.kind for a in actions if isinstance(a, Open)] == [NO_ACTIVITY]


def test_an_absence_registered_while_quiet_silences_the_home_and_restarts_the_clock():
    store = FakeStore([a_home(meter=None)])
    store.signals.append(sensor(at("08:00"), "door_open"))
    store.signals.append(sensor(at("19:00", -1), "light_on"))
    store.clock = at("09:00")
    engine = started(store, at("09:00"))
    step_through(engine, store, at("12:00"))
    store.absences_["R00001"] = [Absence(at("12:00"), at("18:00", 1))]
    assert step_through(engine, store, at("05:59", 2)) == []
    actions = step_through(engine, store, at("06:00", 2))
    assert [(a.condition.kind, a.condition.since) for a in actions] == [
        (NO_ACTIVITY, at("18:00", 1))
    ]


# -- bugs in alerts/engine.py, kept failing until fixed ------------------------------------------


def test_an_evening_alert_resolved_with_a_check_is_not_reopened():
    # Door at 18:00, no light or power 17:00-21:00: the evening alert opens at 21:00. The
    # grid worker visits at 21:30, finds the resident well and resolves it with --checked.
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-light"))])
    store.signals.append(sensor(at("08:00"), "door_open"))
    store.signals.append(sensor(at("18:00"), "door_open"))
    store.clock = at("18:00")
    engine = started(store, at("18:00"))
    step_through(engine, store, at("21:30"))
    (evening,) = store.alerts_of(EVENING)
    store.resolve_by_person(evening.id, at("21:30"), checked=True)
    step_through(engine, store, at("22:30"))
    assert [a.status for a in store.alerts_of(EVENING)] == ["resolved"]


def test_a_resident_registered_just_now_is_not_alerted_for_the_past():
    now = at("12:00")
    store = FakeStore([a_home(since=now - MINUTE)])
    store.signals.append(meter(now - timedelta(hours=3), key="M-other"))  # someone's data
    engine = started(store, now)
    assert store.rows == []
    # A meter imported but never heard from is awaiting installation (未接入), not offline,
    # and nothing is known of the home: no alert for a day.
    step_through(engine, store, now + timedelta(hours=24))
    assert store.rows == []
    # Its offline clock starts at its first reading.
    first = now + timedelta(hours=24, minutes=5)
    store.signals.append(meter(first))
    step_through(engine, store, first + timedelta(minutes=59))
    assert store.rows == []
    step_through(engine, store, first + timedelta(minutes=60))
    assert [a.kind for a in store.open_alerts()] == [METER_OFFLINE]


def test_a_meter_silent_for_longer_than_the_day_read_at_a_start_is_offline_not_new():
    now = at("12:00")
    store = FakeStore([a_home(since=now - timedelta(days=30))])
    store.signals.append(meter(now - timedelta(days=3)))  # its last reading, 3 days ago
    store.clock = now
    started(store, now)
    assert [a.kind for a in store.open_alerts()] == [METER_OFFLINE]


def test_an_engine_on_a_database_without_any_data_keeps_polling():
    store = FakeStore([a_home()])
    engine = started(store, at("12:00"))
    assert engine.poll() == 0
    store.signals.append(sensor(at("12:00"), "door_open"))
    store.clock = at("12:01")
    assert engine.poll() == 1


def test_the_quiet_of_an_incident_is_not_learned_as_a_long_night():
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-light"))])
    door, light = "S00001-door", "S00001-light"

    def ordinary_day(day: int) -> None:
        for hhmm in ("06:00", "08:00", "10:00", "12:00", "14:00", "16:00", "18:00", "20:00"):
            store.signals.append(sensor(at(hhmm, day), "door_open", door))
        store.signals.append(sensor(at("19:00", day), "light_on", light))
        store.signals.append(sensor(at("22:00", day), "light_off", light))

    store.signals.append(sensor(at("22:00", -1), "light_off", light))
    for day in (0, 1, 2):  # three ordinary days, eight-hour nights
        ordinary_day(day)
    engine = started(store, at("05:00"))
    step_through(engine, store, at("23:00", 2))
    # Day 3: nothing after 22:00 on day 2. The alert at 10:00 on day 3; a visit at 11:00
    # finds her on the floor, conscious: resolved with a check.
    step_through(engine, store, at("10:00", 3))
    (incident,) = store.alerts_of(NO_ACTIVITY)
    assert incident.opened_at == at("10:00", 3)
    step_through(engine, store, at("11:00", 3))
    store.resolve_by_person(incident.id, at("11:00", 3), checked=True)
    for hhmm in ("12:00", "14:00", "16:00", "18:00", "20:00"):
        store.signals.append(sensor(at(hhmm, 3), "door_open", door))
    store.signals.append(sensor(at("19:00", 3), "light_on", light))
    store.signals.append(sensor(at("22:00", 3), "light_off", light))
    # Day 4: quiet again from 22:00. The alert is due at 10:00, as before.
    step_through(engine, store, at("10:01", 4))
    assert [a.opened_at for a in store.alerts_of(NO_ACTIVITY)] == [at("10:00", 3), at("10:00", 4)]


def test_someone_who_does_not_live_alone_is_heard_on_sos_but_not_watched_for_quiet():
    # A resident with family at home: no quiet alerts, but their SOS must never be lost.
    home = dataclasses.replace(a_home(sensors=("S00001-door",)), living_alone=False)
    store = FakeStore([home])
    store.clock = at("08:00")
    engine = started(store, at("08:00"))
    assert step_through(engine, store, at("23:00", 1)) == []  # a day and more of quiet
    store.signals.append(sensor(at("23:05", 1), SOS))
    actions = step_through(engine, store, at("23:06", 1))
    assert [(type(a).__name__, a.condition.kind) for a in actions] == [("Open", SOS)]


def test_meter_baselines_are_learned_again_each_morning_once_the_night_is_in():
    learned_at: list[datetime] = []

    @dataclass
    class LearningStore(FakeStore):
        def baselines(self, as_of, tz, homes=None):
            learned_at.append(as_of)
            # A home whose nights turn out busier than the defaults assume.
            return {"M00001": Baseline(night_mean_w=200.0, night_peak_w=400.0)}

    store = LearningStore([a_home()])
    engine = started(store, at("14:00"))
    assert learned_at == [at("14:00")]  # at load
    state = engine.homes["R00001"]
    state.tracker.baseline = Baseline()  # as a new meter's defaults would be
    assert not engine.relearn_baselines_if_due(at("23:59"))
    assert not engine.relearn_baselines_if_due(at("05:29", 1))  # the night is not all in
    assert engine.relearn_baselines_if_due(at("05:30", 1))
    assert state.tracker.baseline == Baseline(night_mean_w=200.0, night_peak_w=400.0)
    assert not engine.relearn_baselines_if_due(at("18:00", 1))  # once a day
    assert engine.relearn_baselines_if_due(at("06:10", 2))
    assert learned_at == [at("14:00"), at("05:30", 1), at("06:10", 2)]


def test_an_sos_resolved_by_a_person_is_not_opened_again_by_a_restarted_engine():
    # A restarted engine's first poll reads the last two minutes' arrivals again.
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-pendant"))])
    lit_yesterday(store)
    store.signals.append((at("14:00"), Signal("sensor", "S00001-pendant", at("13:59"), event=SOS)))
    engine = started(store, at("14:00"))
    assert [a.status for a in store.alerts_of(SOS)] == ["open"]
    store.resolve_by_person(store.alerts_of(SOS)[0].id, at("14:01"), checked=True)
    engine = started(store, at("14:01"))
    # The service's loop: a poll and a step each second, the alerts reread every 5 s.
    store.clock = at("14:01") + timedelta(seconds=1)
    engine.poll()
    assert engine.step(store.clock) == []
    assert [a.status for a in store.alerts_of(SOS)] == ["resolved"]
