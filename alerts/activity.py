"""Signs of life in a home's meter readings, against what the home uses when no one is up.

A fridge cycling and standby load are not activity. Each home has a learned `Baseline`
(from its night hours over the last weeks); a reading is a sign of life when the power
jumps well above the night's peaks (a kettle, a cooker, a washing machine), when the power
has stayed well above the night's mean for a while and still does (a TV, lights, a heater),
or when the water register moves (a tap, a flush: a fridge uses no water).

"Stayed high for a while" is a running level that rises slowly and falls fast. Rising
over an hour, a fridge's on-cycle of 10-20 minutes never lifts it to the bar; falling within
minutes, it follows the home down as soon as the TV, the lights or the cooker are off; and
after a clear drop it starts again from the night's level, so a fridge that happens to be
running when the cooker goes off does not hold it up. A plain hourly mean rose and fell
alike, so an hour of cooking kept a fallen person "active" for two more hours, and every
quiet deadline after a fall came that much late.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# Time constants of the running level: rising, longer than a fridge's on-cycle, so its
# cycling does not look like someone watching TV; falling, a few minutes, so the level
# follows the home down as soon as the TV, the lights or the cooker are off.
RISE_TAU_S = 3600.0
FALL_TAU_S = 180.0
# One reading stands for at most this much time in the running level. After a gap (a meter
# that was offline, readings lost) the power in between is unknown: a fridge caught running
# in the first reading back must not count as an hour of someone using the home.
MAX_READING_S = 900.0
WATER_STEP_L = 0.5
DEFAULT_NIGHT_MEAN_W = 80.0
DEFAULT_NIGHT_PEAK_W = 180.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """A home's load with no one up: mean and peak power over its night hours."""

    night_mean_w: float = DEFAULT_NIGHT_MEAN_W
    night_peak_w: float = DEFAULT_NIGHT_PEAK_W

    @property
    def spike_w(self) -> float:
        """Power at or above this is an appliance someone switched on."""
        return max(self.night_peak_w * 1.25, self.night_peak_w + 60.0)

    @property
    def sustained_w(self) -> float:
        """A running level at or above this is someone using the home (TV, lights, heat)."""
        return self.night_mean_w + max(40.0, 0.5 * self.night_mean_w)


def learn_baseline(night_means_w: list[float], night_peaks_w: list[float]) -> Baseline:
    """A baseline from hourly night means and peaks (a few weeks of 01:00-05:00 hours).

    The 95th percentiles: the running level of a quiet home swings with its fridge's cycles,
    and the bar must sit above those swings, or a fridge would keep a fallen person "active".
    Too little history (under a dozen night hours) keeps the defaults, those of a small
    household with a fridge.
    """
    if len(night_means_w) < 12 or len(night_peaks_w) < 12:
        return Baseline()
    return Baseline(percentile(night_means_w, 0.95), percentile(night_peaks_w, 0.95))


class MeterTracker:
    """Follows one meter's readings in time order and says which are signs of life."""

    __slots__ = ("baseline", "last_at", "last_energy", "last_power_w", "last_water", "running_w")

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.last_at: datetime | None = None
        self.last_water: float | None = None
        self.last_energy: float | None = None
        self.running_w: float | None = None
        self.last_power_w: float | None = None

    def observe(
        self,
        at: datetime,
        power_w: float | None,
        energy_kwh: float | None = None,
        water_l: float | None = None,
    ) -> bool:
        """Take one reading; True when it shows someone is up and about."""
        previous = self.last_at
        if previous is not None and at <= previous:
            # Late or repeated: only what the reading shows by itself counts.
            return power_w is not None and power_w >= self.baseline.spike_w
        active = False
        elapsed = (at - previous).total_seconds() if previous is not None else None
        if power_w is None and energy_kwh is not None and self.last_energy is not None and elapsed:
            power_w = max(0.0, (energy_kwh - self.last_energy) * 3.6e6 / elapsed)
        if power_w is not None:
            if power_w >= self.baseline.spike_w:
                active = True
            # A cooker's kilowatts are a spike, seen above; in the level they would only
            # make its fall take longer. A step down is judged on the power itself: the cap
            # would hide the part of a load above the spike bar, and a load stopping as the
            # fridge starts would leave a step under the margin (200 W stopping as an 80 W
            # fridge starts, a 145 W bar: 40 W of a 100 W step).
            level_w = min(power_w, self.baseline.spike_w)
            night_mean_w = self.baseline.night_mean_w
            margin_w = self.baseline.sustained_w - night_mean_w
            if self.running_w is None:
                self.running_w = min(level_w, night_mean_w)
            elif self.last_power_w is not None and power_w < self.last_power_w - margin_w:
                # A clear drop: what was on is off. What is left may be the fridge running,
                # which has to earn the bar from the night's level like any fridge cycle.
                self.running_w = min(level_w, night_mean_w, self.running_w)
            else:
                tau = RISE_TAU_S if level_w > self.running_w else FALL_TAU_S
                weight = 1.0 - math.exp(-min(elapsed or 0.0, MAX_READING_S) / tau)
                self.running_w += weight * (level_w - self.running_w)
            self.last_power_w = power_w
            if self.running_w >= self.baseline.sustained_w:
                active = True
        if water_l is not None:
            if self.last_water is not None and water_l - self.last_water >= WATER_STEP_L:
                active = True
            self.last_water = water_l
        if energy_kwh is not None:
            self.last_energy = energy_kwh
        self.last_at = at
        return active


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile of `values` with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
