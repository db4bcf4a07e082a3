"""`gridwatch places import|template`: the register of places a community inspects
(安全巡查: shops, restaurants, small workshops and warehouses)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, csv_template, file_import, import_file
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `places import` and `places template` (`common`: the shared flags)."""
    places = command_group(commands, "places", "places inspected on a schedule (安全巡查)")
    file_import(
        places,
        common,
        "import places from a CSV file (place_id,name,kind,address,lat,lon,grid_code,contact,"
        "phone,inspect_every_days or 场所编号,名称,类型,…); import the grids first",
        run_places_import,
    )
    csv_template(places, "places", "场所编号,名称,类型,…", run_places_template)


def run_places_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_places_file

    return import_file(
        settings,
        args.file,
        "places",
        import_places_file,
        "places are outside every grid (stored without a grid)",
    )


def run_places_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.places import places_template

    sys.stdout.write(places_template(chinese=args.zh))
    return 0
