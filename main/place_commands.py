"""`gridwatch places import|template`: the register of places a community inspects
(安全巡查: shops, restaurants, small workshops and warehouses)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gridwatch.commands import register_table

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `places import` and `places template` (`common`: the shared flags)."""
    register_table(
        commands,
        common,
        "places",
        "places inspected on a schedule (安全巡查)",
        "import places from a CSV file (place_id,name,kind,address,lat,lon,grid_code,contact,"
        "phone,inspect_every_days[,building_code,unit_code] or 场所编号,名称,类型,…); import "
        "the grids first, and the buildings and units a place names",
        "场所编号,名称,类型,…",
        "places are outside every grid (stored without a grid)",
    )
