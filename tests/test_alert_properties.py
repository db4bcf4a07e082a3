"""Properties of the alert rules and of meter activity, over generated homes and days.

Rules: a home whose resident keeps showing signs of life (more often than the quiet
threshold, and inside every window) never raises an activity alert; `next_deadline` is
always after now and nothing new holds before it. Meters: base load (standby and a fridge
cycling) is never a sign of life, over days; a kettle, a TV and a tap always are, soon.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gridwatch.alerts.activity import Baseline, MeterTracker, learn_baseline
from gridwatch.alerts.lifecycle import Open, OpenAlert, Resolve, plan_home
from gridwatch.alerts.rules import Absence, HomeHistory, Rules, conditions, next_deadline
from gridwatch.model.vocabulary import ACTIVITY_KINDS, ALERT_KINDS, EMERGENCY_KINDS

# Zones without daylight saving, whole and half-hour offsets, east and west.
ZONES = [ZoneInfo(z) for z in ("Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "UTC")]
ZONES.append(ZoneInfo("America/Sao_Paulo"))
DAY = date(2026, 3, 10)
MINUTE = timedelta(minutes=1)
RULES_EXAMPLES = settings(max_examples=150, deadline=None)
METER_EXAMPLES = settings(max_examples=40, deadline=None)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@st.composite
def rules(draw) -> Rules:
    """Defaults or a resident's overrides: thresholds and windows anywhere plausible."""
    if draw(st.booleans()):
        return Rules()
    morning_start = draw(st.integers(4 * 60, 7 * 60))
    morning_end = morning_start + draw(st.integers(60, 5 * 60))
    evening_start = draw(st.integers(15 * 60, 19 * 60))
    evening_end = evening_start + draw(st.integers(60, min(4 * 60, 23 * 60 + 59 - evening_start)))

    def hhmm(m: int) -> str:
        return f"{m // 60:02d}:{m % 60:02d}"

    return Rules().with_overrides(
        {
            "no_activity_h": draw(st.integers(4 * 4, 24 * 4)) / 4,
            "offline_min": draw(st.integers(15, 240)),
            "morning": [hhmm(morning_start), hhmm(morning_end)],
            "evening": [hhmm(evening_start), hhmm(evening_end)],
        }
    )


def local(zone: ZoneInfo, day: int, clock: time) -> datetime:
    return datetime.combine(DAY + timedelta(days=day), clock, zone)


def _in_window(draw, zone, day: int, window: tuple[time, time]) -> datetime:
    start, end = local(zone, day, window[0]), local(zone, day, window[1])
    span = int((end - start) / timedelta(seconds=1))
    return start + timedelta(seconds=draw(st.integers(0, span - 1)))


@st.composite
def lively_homes(draw):
    """A home whose resident shows signs of life often enough, in every window, over days.

    Returns (zone, rules, monitored_since, end, signs, evening_signs, has_meter)."""
    zone = draw(st.sampled_from(ZONES))
    rule = draw(rules())
    days = draw(st.integers(1, 4))
    since = local(zone, 0, time(0, 0))
    end = local(zone, days, time(0, 0))
    signs = [since]
    evening = []
    for day in range(days):
        signs.append(_in_window(draw, zone, day, rule.morning))
        light = _in_window(draw, zone, day, rule.evening)
        evening.append(light)
        signs.append(light)  # a light switched on is a sign of life too
    span_s = int((end - since).total_seconds())
    extra = draw(st.lists(st.integers(0, span_s), max_size=12))
    signs.extend(since + timedelta(seconds=s) for s in extra)
    signs.sort()
    # Fill every gap as long as the quiet threshold with signs at random, shorter spacing.
    gap = rule.no_activity - MINUTE
    filled = [signs[0]]
    for sign in [*signs[1:], end]:
        while sign - filled[-1] >= gap:
            filled.append(filled[-1] + gap * draw(st.floats(0.2, 0.99)))
        filled.append(sign)
    return zone, rule, since, end, filled, sorted(evening), draw(st.booleans())


def _latest(instants: list[datetime], now: datetime) -> datetime | None:
    before = [t for t in instants if t <= now]
    return before[-1] if before else None


@RULES_EXAMPLES
@given(home=lively_homes(), data=st.data())
def test_a_lively_home_never_raises_an_activity_alert(home, data):
    zone, rule, since, end, signs, evening, has_meter = home
    span_s = int((end - since).total_seconds())
    samples = data.draw(st.lists(st.integers(0, span_s - 1), min_size=1, max_size=30))
    # Also the very edges: each window's end, each sign and one second before it.
    nows = [since + timedelta(seconds=s) for s in samples]
    for day in range((end - since).days):
        nows += [local(zone, day, rule.morning[1]), local(zone, day, rule.evening[1])]
    nows += [t for sign in signs for t in (sign, sign - timedelta(seconds=1)) if since <= t < end]
    for now in nows:
        history = HomeHistory(
            monitored_since=since,
            last_activity=_latest(signs, now),
            last_evening_sign=_latest(evening, now),
            has_meter=has_meter,
            last_meter_data=now - minutes(data.draw(st.integers(0, 14))) if has_meter else None,
        )
        held = conditions(history, rule, now, zone)
        assert not [c for c in held if c.kind in ACTIVITY_KINDS], (now, held)
        assert held == []


# -- next_deadline -------------------------------------------------------------------------------


@st.composite
def histories(draw, *, simple: bool = False):
    """Any home's history and a `now` after it. `simple`: monitored for long, no absences,
    no emergencies, meter (if any) not offline at now."""
    zone = draw(st.sampled_from(ZONES))
    rule = draw(rules())
    if not simple and draw(st.booleans()):
        disabled = draw(st.lists(st.sampled_from(ALERT_KINDS), unique=True))
        rule = Rules(
            rule.no_activity, rule.morning, rule.evening, rule.offline, frozenset(disabled)
        )
    now = local(zone, 0, time(0, 0)) + minutes(draw(st.integers(0, 3 * 24 * 60)))
    now += timedelta(seconds=draw(st.sampled_from([0, 0, 17, 59])))

    def before(most_h: int) -> datetime:
        return now - minutes(draw(st.integers(0, most_h * 60)))

    monitored = now - timedelta(days=40) if simple else before(60)
    last_activity = draw(st.none() | st.builds(before, st.just(40)))
    last_evening = draw(st.none() | st.builds(before, st.just(60)))
    has_meter = draw(st.booleans())
    last_meter = None
    if has_meter:
        if simple:
            last_meter = now - minutes(draw(st.integers(0, int(rule.offline / MINUTE) - 1)))
        else:
            last_meter = draw(st.none() | st.builds(before, st.just(6)))
    absences: list[Absence] = []
    emergencies: list[tuple[str, datetime]] = []
    if not simple:
        for _ in range(draw(st.integers(0, 2))):
            start = now + minutes(draw(st.integers(-40 * 60, 30 * 60)))
            absences.append(Absence(start, start + minutes(draw(st.integers(1, 30 * 60)))))
        for _ in range(draw(st.integers(0, 2))):
            # In the past, or up to 5 minutes ahead (a fast device clock, as the engine keeps).
            at = now + timedelta(seconds=draw(st.integers(-3 * 3600, 300)))
            emergencies.append((draw(st.sampled_from(EMERGENCY_KINDS)), at))
    morning_end = draw(st.none() | st.sampled_from([time(9, 0), time(10, 45), time(13, 0)]))
    history = HomeHistory(
        monitored_since=monitored,
        last_activity=last_activity,
        last_evening_sign=last_evening,
        has_meter=has_meter,
        last_meter_data=last_meter,
        absences=tuple(absences),
        emergencies=tuple(emergencies),
        morning_end=morning_end,
    )
    return zone, rule, history, now


def _new(history, rule, zone, now, t) -> set:
    return set(conditions(history, rule, t, zone)) - set(conditions(history, rule, now, zone))


@RULES_EXAMPLES
@given(case=histories(), fractions=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=12))
def test_nothing_new_holds_before_the_next_deadline(case, fractions):
    zone, rule, history, now = case
    deadline = next_deadline(history, rule, now, zone)
    if deadline is None:  # nothing can ever start: check a week ahead
        deadline = now + timedelta(days=7)
    assert deadline > now
    instants = [now + (deadline - now) * f for f in fractions]
    instants += [deadline - timedelta(microseconds=1), deadline - timedelta(seconds=1)]
    for t in instants:
        if now <= t < deadline:
            assert not _new(history, rule, zone, now, t), (t, deadline)


@RULES_EXAMPLES
@given(case=histories(simple=True))
def test_in_a_plain_home_something_new_holds_at_the_deadline(case):
    # Without absences, emergencies or an outage, every candidate deadline is real: the
    # engine neither sleeps past an alert nor wakes for nothing.
    zone, rule, history, now = case
    deadline = next_deadline(history, rule, now, zone)
    assert deadline is not None and deadline > now
    assert _new(history, rule, zone, now, deadline)
    assert not _new(history, rule, zone, now, deadline - timedelta(microseconds=1))


@RULES_EXAMPLES
@given(case=histories(), steps=st.lists(st.integers(0, 24 * 60), min_size=1, max_size=6))
def test_repeated_looks_never_hold_two_alerts_of_a_kind_nor_flap(case, steps):
    zone, rule, history, now = case
    ids = itertools.count(1)
    open_alerts: list[OpenAlert] = []
    for offset in [0, 0, *sorted(steps)]:
        t = now + minutes(offset)
        actions = plan_home("R1", history, rule, t, zone, list(open_alerts))
        resolved = {a.alert.kind for a in actions if isinstance(a, Resolve)}
        opened = [a.condition.kind for a in actions if isinstance(a, Open)]
        assert not resolved & set(opened), actions  # no close-and-reopen in one look
        for action in actions:
            if isinstance(action, Resolve):
                open_alerts.remove(action.alert)
            else:
                c = action.condition
                open_alerts.append(OpenAlert(next(ids), "R1", c.kind, c.since, "open", "grid", t))
        kinds = [a.kind for a in open_alerts]
        assert len(kinds) == len(set(kinds))
        # A second look at the same moment changes nothing.
        assert plan_home("R1", history, rule, t, zone, list(open_alerts)) == []


# -- meters: base load, kettle, TV, water --------------------------------------------------------

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # a midnight; the nights are 01:00-05:00 of this clock
LEARN_DAYS = 3


@st.composite
def base_loads(draw, standby=(5.0, 30.0)):
    """Standby plus a fridge: 80-150 W for 10-20 min, one cycle every 40-60 min."""
    return {
        "standby": draw(st.floats(*standby)),
        "fridge": draw(st.floats(80.0, 150.0)),
        "on": draw(st.integers(10, 20)),
        "period": draw(st.integers(40, 60)),
        "phase": draw(st.integers(0, 59)),
        "interval": draw(st.sampled_from([1, 2, 3, 5])),
    }


def watts(load: dict, days: int) -> list[float]:
    """Power of each minute of `days` days."""
    return [
        load["standby"]
        + (load["fridge"] if (m + load["phase"]) % load["period"] < load["on"] else 0)
        for m in range(days * 1440)
    ]


def meter_readings(power: list[float], interval: int, water: list[float] | None = None):
    """(minute, power_w, water_l): each reading's power the mean over the interval before it,
    its water the register at that minute; like the simulator's meters."""
    prefix = list(itertools.accumulate(power, initial=0.0))
    taps = list(itertools.accumulate(water, initial=0.0)) if water else None
    for m in range(interval, len(power) + 1, interval):
        mean = (prefix[m] - prefix[m - interval]) / interval
        yield m, mean, (100.0 + taps[m]) if taps else 100.0


def learned(load: dict) -> Baseline:
    """The baseline the store would learn from the first nights (hourly means and peaks of
    the readings in 01:00-05:00)."""
    hours: dict[int, list[float]] = {}
    for m, power_w, _ in meter_readings(watts(load, LEARN_DAYS), load["interval"]):
        hour = m // 60  # the store buckets a reading by its own time
        if 1 <= hour % 24 <= 4:
            hours.setdefault(hour, []).append(power_w)
    means = [sum(v) / len(v) for v in hours.values()]
    peaks = [max(v) for v in hours.values()]
    return learn_baseline(means, peaks)


def active_minutes(baseline: Baseline, readings) -> list[int]:
    tracker = MeterTracker(baseline)
    return [m for m, p, w in readings if tracker.observe(T0 + minutes(m), p, None, w)]


def active_with_use(load: dict, start: int, length: int, use_w: float) -> list[int]:
    """The minutes seen active on the day after the learning nights when something drawing
    `use_w` runs for `length` minutes from minute `start`."""
    power = watts(load, LEARN_DAYS + 1)
    for m in range(start, start + length):
        power[m] += use_w
    return active_minutes(learned(load), meter_readings(power, load["interval"]))


def active_with_water(load: dict, litres_at: dict[int, float]) -> list[int]:
    """The minutes seen active on the day after the learning nights when water is drawn:
    `litres_at` minute -> litres."""
    power = watts(load, LEARN_DAYS + 1)
    water = [0.0] * len(power)
    for minute, litres in litres_at.items():
        water[minute] = litres
    return active_minutes(learned(load), meter_readings(power, load["interval"], water))


HEAVY_FRIDGE = {"standby": 30.0, "fridge": 150.0, "on": 20, "period": 40, "phase": 0}


@METER_EXAMPLES
@given(load=base_loads(), days=st.integers(2, 4), new_home=st.booleans())
@example(load={**HEAVY_FRIDGE, "interval": 1}, days=2, new_home=True)
@example(load={**HEAVY_FRIDGE, "interval": 5}, days=2, new_home=True)
@example(load={**HEAVY_FRIDGE, "interval": 1}, days=2, new_home=False)
def test_base_load_is_never_a_sign_of_life(load, days, new_home):
    # A new home (too few nights) has the default baseline; others the learned one.
    baseline = Baseline() if new_home else learned(load)
    power = watts(load, LEARN_DAYS + days)
    assert active_minutes(baseline, meter_readings(power, load["interval"])) == []


@METER_EXAMPLES
@given(
    load=base_loads(),
    new_home=st.booleans(),
    gap_start=st.integers(LEARN_DAYS * 1440, LEARN_DAYS * 1440 + 600),
    gap=st.integers(30, 6 * 60),
)
@example(
    load={"standby": 8.36, "fridge": 139.3, "on": 11, "period": 48, "phase": 7, "interval": 5},
    new_home=False,
    gap_start=4800,
    gap=281,
)
def test_base_load_after_a_gap_in_the_readings_is_not_a_sign_of_life(
    load, new_home, gap_start, gap
):
    # The meter was offline (readings lost); the first reading back may catch the fridge
    # running. That is not an hour of someone using the home.
    baseline = Baseline() if new_home else learned(load)
    power = watts(load, LEARN_DAYS + 1)
    kept = [
        r for r in meter_readings(power, load["interval"]) if not gap_start < r[0] < gap_start + gap
    ]
    assert active_minutes(baseline, kept) == []


@METER_EXAMPLES
@given(
    load=base_loads(),
    start=st.integers(LEARN_DAYS * 1440, (LEARN_DAYS + 1) * 1440 - 30),
    kettle_w=st.floats(1500.0, 2500.0),
    length=st.integers(2, 5),
)
def test_a_kettle_is_a_sign_of_life_within_minutes(load, start, kettle_w, length):
    active = active_with_use(load, start, length, kettle_w)
    # The first reading whose interval holds the kettle's minutes, or the next one.
    assert any(start < m <= start + length + load["interval"] for m in active), active


@METER_EXAMPLES
@given(
    load=base_loads(standby=(25.0, 35.0)),
    start=st.integers(LEARN_DAYS * 1440, LEARN_DAYS * 1440 + 600),
)
def test_a_tv_is_a_sign_of_life_within_an_hour(load, start):
    active = active_with_use(load, start, 180, 100.0)
    assert any(start < m <= start + 60 for m in active), active


@METER_EXAMPLES
@given(
    load=base_loads(),
    at=st.integers(LEARN_DAYS * 1440, (LEARN_DAYS + 1) * 1440 - 10),
    litres=st.floats(0.5, 20.0),
)
def test_water_use_is_a_sign_of_life_at_the_next_reading(load, at, litres):
    # A flush, a kettle filled, hands washed: within one minute.
    active = active_with_water(load, {at: litres})
    first_reading_after = (at // load["interval"] + 1) * load["interval"]
    assert first_reading_after in active, (first_reading_after, active)


@METER_EXAMPLES
@given(
    load=base_loads(),
    at=st.integers(LEARN_DAYS * 1440, (LEARN_DAYS + 1) * 1440 - 10),
    litres=st.floats(1.0, 20.0),
    share=st.floats(0.0, 1.0),
)
def test_a_litre_split_across_two_readings_is_still_seen(load, at, litres, share):
    # A draw straddling a reading: each part alone may be under 0.5 L only if the draw is
    # under 1 L (0.5-1 L straddling two readings is not seen: a per-reading step, so that a
    # leaking cistern's trickle is not taken for a person).
    boundary = (at // load["interval"] + 1) * load["interval"]
    active = active_with_water(load, {boundary - 1: litres * share, boundary: litres * (1 - share)})
    assert boundary in active or boundary + load["interval"] in active


@METER_EXAMPLES
@given(
    load=base_loads(),
    start=st.integers(LEARN_DAYS * 1440, LEARN_DAYS * 1440 + 600),
    length=st.integers(20, 240),
    use_w=st.floats(60.0, 3000.0),
)
# 200 W that stops a minute into a reading, just as an 80 W fridge starts: the step down
# (205 W to 105 W) is clear, though the cap at the spike bar (145 W) left only 40 W of it.
@example(
    load={"standby": 5.0, "fridge": 80.0, "on": 10, "period": 51, "phase": 21, "interval": 2},
    start=4685,
    length=240,
    use_w=200.0,
)
def test_use_that_stops_is_no_longer_seen_within_minutes(load, start, length, use_w):
    # Cooking, a TV or a heater for a while, then a fall: the home shows base load only.
    # Signs of life must end within a few minutes, or every quiet deadline after a fall
    # comes late by as much. A load that stops as the fridge starts leaves a step down
    # smaller than the bar's margin when it draws less than the fridge plus that margin (twice
    # the margin when the stop falls inside a reading's interval and the step is split over
    # two readings): it cannot be told from a TV still on for the rest of that cycle, and that
    # much is the bound.
    stop = start + length
    active = active_with_use(load, start, length, use_w)
    baseline = learned(load)
    interval = load["interval"]
    last_covering = -(-stop // interval) * interval
    masked = use_w <= load["fridge"] + 2 * (baseline.sustained_w - baseline.night_mean_w)
    bound = last_covering + 2 * interval + (load["on"] if masked else 0)
    assert all(m <= bound for m in active), (last_covering, bound, active)


def test_an_hour_of_cooking_is_not_seen_after_it_ends():
    # The case that had a fallen resident "active" for two hours: a home with a fridge, an
    # hour at the cooker, then nothing but the fridge.
    baseline = Baseline(night_mean_w=55.0, night_peak_w=165.0)
    fridge = [20.0 + (140.0 if m % 60 < 15 else 0.0) for m in range(600)]
    power = fridge[:300] + [f + 1600.0 for f in fridge[300:360]] + fridge[360:]
    active = active_minutes(baseline, meter_readings(power, 5))
    assert active and max(active) <= 365, active  # the reading that covers 355-360, or the next


def test_a_tv_alone_is_seen_through_the_running_mean():
    # The properties above mostly see a TV through the spike it makes on top of the fridge;
    # here nothing spikes (a home whose nights peak high), so only the hour's mean can tell.
    baseline = Baseline(night_mean_w=30.0, night_peak_w=400.0)
    power = [30.0] * 600 + [130.0] * 120
    active = active_minutes(baseline, meter_readings(power, 5))
    assert active and 600 < active[0] <= 660  # within the hour the TV is on
    assert active_minutes(baseline, meter_readings([30.0] * 720, 5)) == []
