"""`gridwatch grids|residents|workers import` and the CSV templates: files read into the
database, with a progress line for long imports."""

from __future__ import annotations

import argparse
import functools
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, file_import, import_file, register_table
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `grids import`, `residents import|template` and `workers import|template`
    (`common`: the shared flags)."""
    grid_commands = command_group(commands, "grids", "grid polygons and hierarchy")
    grid_import = file_import(
        grid_commands,
        common,
        "import polygons from any GDAL vector file (GeoJSON, Shapefile, GeoPackage, ...)",
        run_grids_import,
        file_help="the vector file to read",
    )
    grid_import.add_argument(
        "--level",
        choices=["district", "street", "community", "grid", "building"],
        help="level of every feature (default: each feature's 'level' field when the file has "
        "one — values district/street/community/grid/building or 区/街道/社区/网格/楼栋 — else "
        "grid); buildings (楼栋) lie below the grids, each in the grid that holds it",
    )
    grid_import.add_argument(
        "--level-field", help="field holding each feature's level (default: 'level' if present)"
    )
    grid_import.add_argument(
        "--code-field", default="code", help="field holding each feature's code (default: code)"
    )
    grid_import.add_argument(
        "--name-field", default="name", help="field holding each feature's name (default: name)"
    )
    grid_import.add_argument(
        "--parent-field",
        help="field holding the parent's code (default: the polygon of the level above that "
        "contains the feature)",
    )
    grid_import.add_argument(
        "--source-crs",
        metavar="CRS",
        help="what the file's coordinates are, overriding or supplying its own CRS (.prj): "
        "gcj02 for files drawn on AMap/Tencent basemaps, bd09 for Baidu, wgs84, or EPSG:NNNN "
        "(default: the file's CRS)",
    )
    grid_import.add_argument(
        "--layer", help="layer of a multi-layer file such as a GeoPackage (default: the first)"
    )
    grid_import.add_argument(
        "--system",
        choices=["management", "police"],
        default="management",
        help="the grid system the file's polygons belong to: management (网格, the default) or "
        "police (警格: 分局/派出所/警务区/警格 as district/street/community/grid); every point "
        "is placed in a grid of each",
    )

    register_table(
        commands,
        common,
        "residents",
        "residents and their devices",
        "import residents from a CSV file",
        "居民编号,姓名,…",
        "residents are outside every grid (stored without a grid)",
    )
    register_table(
        commands,
        common,
        "workers",
        "grid workers (网格员) and their grids",
        "import grid workers from a CSV file (worker_id,name,phone,grid_codes or "
        "工号,姓名,电话,负责网格); import the grids first",
        "工号,姓名,电话,负责网格",
    )


def run_grids_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.geo.grids import GridFileOptions
    from gridwatch.imports.pipelines import import_grid_file

    # The flags are named as the options of reading a grid file are, and --system.
    options = (*GridFileOptions.__optional_keys__, "system")
    importer = functools.partial(import_grid_file, **{o: getattr(args, o) for o in options})
    return import_file(
        settings,
        args.file,
        "buildings" if args.level == "building" else "grids",
        importer,
        "features have no parent (import the level above first, or give --parent-field)",
    )
