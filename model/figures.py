"""What a grid holds and has open, counted: read by the store, drawn by the maps and served by
the API's grids layer; defined here, below all three, so that each shows the same figures."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class GridCounts:
    """A grid's figures: its own, or summed over the grids below it (`add`)."""

    residents: int = 0
    open_alerts: int = 0
    open_hazards: int = 0
    overdue_hazards: int = 0
    checkins: int = 0  # patrol check-ins in the window asked (the maps: today)
    buildings: int = 0  # below the grid: its buildings (楼栋), their units (单元)
    units: int = 0
    contacts: int = 0  # and the unit heads and building leads to call there

    def add(self, other: GridCounts) -> None:
        """Count `other`'s figures in with these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
