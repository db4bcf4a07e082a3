"""How urgent a warning is: level 1 for a sign, level 2 when signs accumulate in a grid or
concern someone with nobody at home to notice (the seeds' second-level warning, 二级预警).

A level-2 warning is for the community level at once; a level-1 warning stays with the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

REPEAT_HITS = 3
REPEAT_WINDOW = timedelta(days=7)

ALONE = "lives_alone"
REPEATED = "repeated"


@dataclass(frozen=True, slots=True)
class WarningLevel:
    level: int  # 1 or 2
    reason: str | None  # why level 2: ALONE or REPEATED; None at level 1


def warning_level(
    earlier_in_window: int, *, in_grid: bool, visit_to_resident_alone: bool
) -> WarningLevel:
    """The level of a category's hit, given how many warnings of that category its grid had
    in the `REPEAT_WINDOW` before it. A hit outside every grid accumulates with nothing."""
    if visit_to_resident_alone:
        return WarningLevel(2, ALONE)
    if in_grid and earlier_in_window + 1 >= REPEAT_HITS:
        return WarningLevel(2, REPEATED)
    return WarningLevel(1, None)
