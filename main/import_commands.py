"""`gridwatch grids|residents|workers import` and the CSV templates: files read into the
database, with a progress line for long imports."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, file_import, migrated_database
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands
    from gridwatch.imports.pipelines import ImportResult


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

    resident_commands = command_group(commands, "residents", "residents and their devices")
    file_import(resident_commands, common, "import residents from a CSV file", run_residents_import)
    _csv_template(resident_commands, "residents", "居民编号,姓名,…", run_residents_template)

    worker_commands = command_group(commands, "workers", "grid workers (网格员) and their grids")
    file_import(
        worker_commands,
        common,
        "import grid workers from a CSV file (worker_id,name,phone,grid_codes or "
        "工号,姓名,电话,负责网格); import the grids first",
        run_workers_import,
    )
    _csv_template(worker_commands, "workers", "工号,姓名,电话,负责网格", run_workers_template)


def _csv_template(group: Commands, what: str, zh_columns: str, run: Callable) -> None:
    """Add `template [--zh]`: print the header of an empty `what` CSV to fill in."""
    template = group.add_parser(
        "template", help=f"print an empty {what} CSV (the header) to fill in"
    )
    template.add_argument("--zh", action="store_true", help=f"Chinese column names ({zh_columns})")
    template.set_defaults(run=run)


class Progress:
    """A one-line progress report on stderr for long imports."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._last = -1
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent == self._last:
            return
        self._last = percent
        if self._tty:
            end = "\n" if done >= total else ""
            print(f"\r{self.what}: {done}/{total} ({percent}%)", end=end, file=sys.stderr)
        elif percent % 25 == 0:
            print(f"{self.what}: {done}/{total} ({percent}%)", file=sys.stderr)


def _import_file(
    settings: Settings, path: Path, what: str, importer: Callable[..., ImportResult], unplaced: str
) -> int:
    """Import `path` with `importer` into the migrated database and tell what it did;
    `unplaced` says what the rows left without a parent or grid are."""
    from gridwatch.imports.pipelines import require_file

    require_file(path)  # before a database is started or migrated for nothing
    with migrated_database(settings) as conn:
        result = importer(conn, path, progress=Progress(what))
    print(result.summary(path, what))
    for warning in result.warnings:
        print(f"warning: {warning}")
    for note in result.notes:
        print(f"note: {note}")
    if result.without_parent_or_grid:
        print(f"note: {result.without_parent_or_grid} {unplaced}")
    return 0


def run_grids_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_grid_file

    options = (
        "level",
        "code_field",
        "name_field",
        "parent_field",
        "level_field",
        "layer",
        "source_crs",
        "system",
    )
    importer = functools.partial(import_grid_file, **{o: getattr(args, o) for o in options})
    return _import_file(
        settings,
        args.file,
        "buildings" if args.level == "building" else "grids",
        importer,
        "features have no parent (import the level above first, or give --parent-field)",
    )


def run_residents_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.residents import residents_template

    sys.stdout.write(residents_template(chinese=args.zh))
    return 0


def run_workers_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.workers import workers_template

    sys.stdout.write(workers_template(chinese=args.zh))
    return 0


def run_workers_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_workers_file

    return _import_file(settings, args.file, "workers", import_workers_file, "")


def run_residents_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_residents_file

    return _import_file(
        settings,
        args.file,
        "residents",
        import_residents_file,
        "residents are outside every grid (stored without a grid)",
    )
