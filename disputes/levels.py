"""How urgent a warning is: level 1 for a sign, level 2 when signs accumulate in a grid or
concern someone with nobody at home to notice (the seeds' second-level warning, 二级预警).

A level-2 warning is for the community level at once; a level-1 warning stays with the grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

REPEAT_HITS = 3
REPEAT_WINDOW = timedelta(days=7)

ALONE = "lives_alone"
REPEATED = "repeated"


@dataclass(frozen=True, slots=True)
class WarningLevel:
    level: int  # 1 or 2
    reason: str | None  # why level 2: ALONE or REPEATED; None at level 1


def warning_level(others: int, *, in_grid: bool, visit_to_resident_alone: bool) -> WarningLevel:
    """The level of a category's hit, given how many other hits of that category its grid
    has within one `REPEAT_WINDOW` with it (`others_in_window`). A hit outside every grid
    accumulates with nothing."""
    if visit_to_resident_alone:
        return WarningLevel(2, ALONE)
    if in_grid and others + 1 >= REPEAT_HITS:
        return WarningLevel(2, REPEATED)
    return WarningLevel(1, None)


def others_in_window(at: datetime, others: Iterable[datetime]) -> int:
    """The most of `others` that lie in one span of `REPEAT_WINDOW` together with `at`.

    Both ways in time: a text that arrives late (a phone offline for a day) still makes the
    third of three, and the count does not depend on which of two texts was stored first."""
    near = sorted(t for t in others if abs(t - at) < REPEAT_WINDOW)
    starts = [t for t in near if t <= at] + [at]
    return max(sum(1 for t in near if start <= t < start + REPEAT_WINDOW) for start in starts)
