"""Residents' days: a routine per resident drawn from the seed, a plan for each day, and the
power, water and sensor events that plan leaves at home.

Times in a plan are seconds after local midnight. Each resident's routine and each day's plan
come from their own random stream (seed, resident id, date), so a resident lives the same
days whatever else the run holds (a subset of residents, other incidents, another interval).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gridwatch.model.rows import ResidentRow

MINUTE = 60
HOUR = 3600
DAY = 86400

# Sensor roles by the last part of the device id ("S00001-door"); a pendant is worn and
# carries both an SOS key and a fall detector.
_ROLE_SUFFIXES = {
    "door": "door",
    "curtain": "curtain",
    "light": "light",
    "motion": "motion",
    "pir": "motion",
    "sos": "sos",
    "button": "sos",
    "pendant": "pendant",
    "fall": "fall",
}

# Above this a fridge plus standby never goes (the largest fridge and standby drawn below).
BASE_LOAD_CEILING_W = 30.0 + 150.0


@dataclass(frozen=True, slots=True)
class HomeDevices:
    """A resident's meter and sensors by role, read from the device ids' suffixes."""

    meter_id: str | None
    sensors: tuple[str, ...] = ()
    door: str | None = None
    curtain: str | None = None
    light: str | None = None
    motion: str | None = None
    sos_button: str | None = None
    fall_detector: str | None = None

    @classmethod
    def of(cls, resident: ResidentRow) -> HomeDevices:
        """Sort a resident's sensor ids into roles; unknown suffixes are ignored."""
        roles: dict[str, str] = {}
        for sensor in resident.sensor_ids:
            role = _ROLE_SUFFIXES.get(sensor.rsplit("-", 1)[-1].lower())
            if role == "pendant":
                roles.setdefault("sos", sensor)
                roles.setdefault("fall", sensor)
            elif role is not None:
                roles.setdefault(role, sensor)
        return cls(
            meter_id=resident.meter_id,
            sensors=tuple(resident.sensor_ids),
            door=roles.get("door"),
            curtain=roles.get("curtain"),
            light=roles.get("light"),
            motion=roles.get("motion"),
            sos_button=roles.get("sos"),
            fall_detector=roles.get("fall"),
        )

    @property
    def sos_device(self) -> str | None:
        """Where an SOS press comes from: an SOS button or pendant, else the home hub's panic
        key, which reports through the first sensor so the alert still finds the resident."""
        return self.sos_button or self.door or (self.sensors[0] if self.sensors else None)

    def device(self, role: str) -> str | None:
        """The device id for a role used in plans (door, curtain, light, motion)."""
        return getattr(self, role)


@dataclass(frozen=True, slots=True)
class Routine:
    """How one resident lives: habits in seconds after midnight, appliances in watts."""

    wake_s: float
    wake_sd_s: float
    bed_s: float
    late_riser: bool
    standby_w: float
    fridge_w: float
    fridge_period_min: int
    fridge_on_min: int
    fridge_phase_min: int
    kettle_w: float
    cooker_w: float
    tv_w: float
    light_w: float
    small_load_w: float
    water_heater_w: float  # 0: gas water heater
    watches_tv: bool
    errand_chance: float
    walk_chance: float
    day_out_chance: float
    night_trip_chance: float
    epoch_ts: bool  # the home's sensors send ts as epoch seconds instead of ISO 8601


def draw_routine(resident_id: str, seed: int) -> Routine:
    """The resident's habits, the same for the same (seed, resident) in every run."""
    rng = random.Random(f"{seed}/{resident_id}/routine")  # noqa: S311 - a seeded simulation, not a secret
    late_riser = rng.random() < 0.05
    if late_riser:
        wake = rng.uniform(9.5, 10.5) * HOUR
        bed = rng.uniform(22.5, 23.5) * HOUR
    else:
        wake = min(max(rng.gauss(6.5 * HOUR, 45 * MINUTE), 5 * HOUR), 8.5 * HOUR)
        bed = rng.uniform(21.0, 23.0) * HOUR
    period = rng.randint(40, 60)
    return Routine(
        wake_s=wake,
        wake_sd_s=rng.uniform(8, 20) * MINUTE,
        bed_s=bed,
        late_riser=late_riser,
        standby_w=rng.uniform(5.0, 30.0),
        fridge_w=rng.uniform(80.0, 150.0),
        fridge_period_min=period,
        fridge_on_min=rng.randint(10, 20),
        fridge_phase_min=rng.randrange(period),
        kettle_w=rng.uniform(1500.0, 2000.0),
        cooker_w=rng.uniform(800.0, 2000.0),
        tv_w=rng.uniform(80.0, 150.0),
        light_w=rng.uniform(15.0, 60.0),
        small_load_w=rng.uniform(15.0, 50.0),
        water_heater_w=rng.uniform(1500.0, 2500.0) if rng.random() < 0.4 else 0.0,
        watches_tv=rng.random() < 0.85,
        errand_chance=rng.uniform(0.3, 0.7),
        walk_chance=rng.uniform(0.1, 0.5),
        day_out_chance=rng.uniform(0.02, 0.12),
        night_trip_chance=rng.uniform(0.1, 0.7),
        epoch_ts=rng.random() < 0.5,
    )


@dataclass(slots=True)
class DayPlan:
    """One resident's day, in seconds after local midnight: when awake, when out, what runs.

    `loads` are [start, end) spans in whole minutes with the watts they add above base load;
    `water` is (minute, litres); `events` is (second, device role, event).
    """

    wake_s: int
    sleep_s: int
    dusk_s: int
    away: list[tuple[int, int]] = field(default_factory=list)
    loads: list[tuple[int, int, float]] = field(default_factory=list)
    water: list[tuple[int, float]] = field(default_factory=list)
    events: list[tuple[int, str, str]] = field(default_factory=list)

    def at_home(self, second: int) -> bool:
        """Whether the resident is at home at this second of the day."""
        return not any(leave <= second < back for leave, back in self.away)

    def awake_at_home(self) -> list[tuple[int, int]]:
        """Spans of the day when the resident is up and at home."""
        return _subtract([(self.wake_s, self.sleep_s)], self.away)

    def suppress(self, start_s: int, end_s: int) -> None:
        """No activity at all in [start_s, end_s): loads cut, water and events dropped."""
        first, last = start_s // MINUTE, -(-end_s // MINUTE)
        self.loads = [
            (a, b, w) for s, e, w in self.loads for a, b in _subtract([(s, e)], [(first, last)])
        ]
        self.water = [(m, litres) for m, litres in self.water if not first <= m < last]
        self.events = [ev for ev in self.events if not start_s <= ev[0] < end_s]

    def leave_for(self, start_s: int, end_s: int) -> None:
        """The resident goes out at start_s and comes back at end_s (either may lie outside
        the day): nothing happens at home in between, the door opens at both ends."""
        self.suppress(max(start_s, 0), min(end_s, DAY + HOUR))
        self.away.append((start_s, end_s))
        if 0 <= start_s - MINUTE < DAY:
            self.events.append((start_s - MINUTE, "door", "door_open"))
        if 0 <= end_s < DAY:
            self.events.append((end_s, "door", "door_open"))
            if self.dusk_s <= end_s < self.sleep_s:  # home after dark: lights on, curtains shut
                self.events.append((end_s + 90, "light", "light_on"))
                self.events.append((end_s + 5 * MINUTE, "curtain", "curtain_close"))
        self.events.sort()


def plan_day(routine: Routine, rng: random.Random, *, weekend: bool) -> DayPlan:
    """What the resident does on one day; weekends and holidays start later and go out more."""
    r = routine
    wake = r.wake_s + rng.gauss(0.0, r.wake_sd_s) + (rng.uniform(20, 60) * MINUTE if weekend else 0)
    wake = int(min(max(wake, 4.5 * HOUR), 11 * HOUR))
    sleep = int(min(max(rng.gauss(r.bed_s, 20 * MINUTE), wake + 9 * HOUR), 23.8 * HOUR))
    dusk = int(rng.uniform(17.0, 18.0) * HOUR)
    plan = DayPlan(wake, sleep, dusk)

    away: list[tuple[int, int]] = []
    if rng.random() < (r.day_out_chance * 2.5 if weekend else r.day_out_chance):
        leave = max(int(rng.gauss(9 * HOUR, 25 * MINUTE)), wake + 45 * MINUTE)
        away.append((leave, int(rng.uniform(16.0, 18.0) * HOUR)))
    else:
        if rng.random() < min(r.errand_chance * (1.3 if weekend else 1.0), 0.95):
            leave = wake + int(rng.uniform(50, 120) * MINUTE)
            away.append((leave, leave + int(rng.uniform(40, 120) * MINUTE)))
        if rng.random() < min(r.walk_chance * (1.5 if weekend else 1.0), 0.9):
            leave = int(rng.uniform(14.5, 16.0) * HOUR)
            away.append((leave, leave + int(rng.uniform(30, 90) * MINUTE)))
    away = [(a, min(b, sleep - 30 * MINUTE)) for a, b in away if a < sleep - 60 * MINUTE]

    def load(start_s: float, minutes: float, watts: float) -> None:
        first = int(start_s) // MINUTE
        plan.loads.append((first, first + max(1, round(minutes)), watts))

    def water(at_s: float, litres: float) -> None:
        plan.water.append((int(at_s) // MINUTE, litres))

    def event(at_s: float, role: str, name: str) -> None:
        plan.events.append((int(at_s), role, name))

    # Up: small loads (radio, charger, lamp) all day, the morning routine, a light if dark.
    load(wake, (sleep - wake) / MINUTE, r.small_load_w)
    water(wake + 2 * MINUTE, 6.0)
    water(wake + rng.uniform(5, 12) * MINUTE, rng.uniform(8, 15))
    if wake < 6.9 * HOUR:
        lights_off = rng.uniform(7.2, 7.7) * HOUR
        load(wake, (lights_off - wake) / MINUTE, r.light_w)
        event(wake + 30, "light", "light_on")
        event(lights_off, "light", "light_off")
    if rng.random() < 0.95:
        event(wake + rng.uniform(5, 30) * MINUTE, "curtain", "curtain_open")

    breakfast = wake + rng.uniform(10, 25) * MINUTE
    load(breakfast, rng.uniform(3, 5), r.kettle_w)
    water(breakfast, 1.5)
    if rng.random() < 0.5:
        load(breakfast + 5 * MINUTE, rng.uniform(8, 15), r.cooker_w)
    if r.watches_tv and rng.random() < 0.5:
        load(breakfast + rng.uniform(20, 40) * MINUTE, rng.uniform(30, 90), r.tv_w)

    lunch = max(rng.uniform(11.3, 12.2) * HOUR, wake + 90 * MINUTE)
    load(lunch, rng.uniform(15, 35), r.cooker_w)
    water(lunch, rng.uniform(3, 8))
    water(lunch + 40 * MINUTE, rng.uniform(5, 12))
    if r.watches_tv and rng.random() < 0.4:
        load(rng.uniform(14.0, 15.5) * HOUR, rng.uniform(60, 120), r.tv_w)

    supper = rng.uniform(17.2, 18.5) * HOUR
    load(supper, rng.uniform(15, 30), r.cooker_w)
    water(supper, rng.uniform(3, 8))
    water(supper + 40 * MINUTE, rng.uniform(5, 12))
    tv_on, tv_off = rng.uniform(18.7, 19.5) * HOUR, sleep - rng.uniform(10, 40) * MINUTE
    if r.watches_tv and tv_off > tv_on:
        load(tv_on, (tv_off - tv_on) / MINUTE, r.tv_w)
    if rng.random() < 0.3:
        shower = rng.uniform(19.5, 20.5) * HOUR
        if r.water_heater_w:
            load(shower - 25 * MINUTE, rng.uniform(20, 30), r.water_heater_w)
        for minute in range(10):
            water(shower + minute * MINUTE, rng.uniform(4, 6))
    water(sleep - rng.uniform(10, 20) * MINUTE, rng.uniform(5, 10))
    toilet = wake + rng.uniform(2, 3) * HOUR
    while toilet < sleep - HOUR:
        water(toilet, 6.0)
        toilet += rng.uniform(2, 3.5) * HOUR
    if rng.random() < r.night_trip_chance:  # up in the night: a flush and nothing else
        night = rng.uniform(1.5, 4.0) * HOUR
        water(night, 6.0)
        event(night - 30, "motion", "motion")

    # Motion sensors fire now and then while someone moves about (the PIR has a cooldown).
    moment = wake + rng.uniform(1, 5) * MINUTE
    while moment < sleep:
        event(moment, "motion", "motion")
        moment += rng.uniform(10, 40) * MINUTE

    # Evening: lights from dusk to bed (晚看灯), curtains drawn.
    plan.loads.append((dusk // MINUTE, -(-sleep // MINUTE), r.light_w))
    event(dusk + rng.uniform(0, 5) * MINUTE, "light", "light_on")
    event(dusk + rng.uniform(0, 60) * MINUTE, "curtain", "curtain_close")
    event(sleep, "light", "light_off")
    # Nothing planned runs past bedtime (the night trip is water only).
    bedtime = -(-sleep // MINUTE)
    plan.loads = [(s, min(e, bedtime), w) for s, e, w in plan.loads if s < bedtime]
    for leave, back in away:
        plan.leave_for(leave, back)
    plan.events.sort()
    return plan


class BaseLoads:
    """Standby and fridge cycling of every home: power that is not a sign of anyone."""

    def __init__(self, routines: Sequence[Routine]) -> None:
        self.standby = np.array([r.standby_w for r in routines])[:, None]
        self.fridge = np.array([r.fridge_w for r in routines])[:, None]
        self.period = np.array([r.fridge_period_min for r in routines])[:, None]
        self.on = np.array([r.fridge_on_min for r in routines])[:, None]
        self.phase = np.array([r.fridge_phase_min for r in routines])[:, None]

    def minutes(self, first_minute: int, count: int) -> np.ndarray:
        """Watts (homes by minutes) from absolute minute `first_minute` (epoch minutes), so a
        fridge cycle runs on across midnight."""
        t = np.arange(first_minute, first_minute + count)[None, :]
        fridge_on = (t + self.phase) % self.period < self.on
        return self.standby + self.fridge * fridge_on


def render_activity(plans: Sequence[DayPlan], minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """Watts above base load and litres of water (homes by minutes) that the plans make."""
    power = np.zeros((len(plans), minutes))
    water = np.zeros((len(plans), minutes))
    for row, plan in enumerate(plans):
        line = power[row]
        for start, end, watts in plan.loads:
            line[max(start, 0) : end] += watts
        taps = water[row]
        for minute, litres in plan.water:
            if 0 <= minute < minutes:
                taps[minute] += litres
    return power, water


def _subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `spans` outside every hole (all half-open)."""
    for hole_start, hole_end in holes:
        kept = []
        for start, end in spans:
            if hole_end <= start or end <= hole_start:
                kept.append((start, end))
                continue
            if start < hole_start:
                kept.append((start, hole_start))
            if hole_end < end:
                kept.append((hole_end, end))
        spans = kept
    return [(s, e) for s, e in spans if e > s]
