"""`gridwatch keywords import FILE` and `gridwatch keywords list`: the dispute keyword library
(矛盾纠纷关键词库) on the command line. Wired into the main parser by `register()`."""

from __future__ import annotations

import argparse
import csv
import getpass
import sys
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, file_import, migrated_database
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `keywords import` and `keywords list` (`common`: the shared flags)."""
    keyword_commands = command_group(
        commands, "keywords", "the dispute keyword library (early warning)"
    )
    load = file_import(
        keyword_commands,
        common,
        "replace the active library with a CSV file: category,keyword,weight (weight "
        "optional, 1 by default; UTF-8 or GBK)",
        run_keywords_import,
    )
    load.add_argument("--by", help="who imports it (default: your login name)")
    shown = keyword_commands.add_parser(
        "list", parents=[common], help="the library in use: its version and words per category"
    )
    shown.add_argument(
        "--csv", action="store_true", help="the whole library as CSV, to edit and import again"
    )
    shown.set_defaults(run=run_keywords_list)


def run_keywords_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.keywords import read_keywords_csv
    from gridwatch.imports.pipelines import require_file
    from gridwatch.store.keywords import import_library

    require_file(args.file)
    warnings: list[str] = []
    keywords = read_keywords_csv(args.file, warnings)  # every problem before any write
    with migrated_database(settings) as conn:
        version = import_library(
            conn, keywords, source=args.file.name, by=args.by or getpass.getuser()
        )
    categories = len({k.category for k in keywords})
    print(
        f"{args.file.name}: {len(keywords)} keywords in {categories} categories imported as "
        f"library version {version}, now in use"
    )
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def run_keywords_list(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.keywords import active_library

    with migrated_database(settings) as conn:
        library = active_library(conn)
    if args.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["category", "keyword", "weight"])
        out.writerows((k.category, k.keyword, f"{k.weight:g}") for k in library.keywords)
        return 0
    if library.is_starter:
        print(
            f"library in use: the starter library shipped with gridwatch ({library.source}); "
            "import your own with gridwatch keywords import FILE"
        )
    else:
        at = library.imported_at.astimezone(settings.zone) if library.imported_at else None
        when = at.strftime("%Y-%m-%d %H:%M") if at else "-"
        print(
            f"library in use: version {library.version}, {library.source}, imported {when} "
            f"by {library.imported_by or '-'}"
        )
    for category, count in library.counts().items():
        print(f"  {category}  {count}")
    print(f"{len(library.keywords)} keywords")
    return 0
