"""What the `gridwatch` command groups share: how a group is registered, a register's file
imported (with a progress line) and its empty template, times read from the command line,
someone's personal information forgotten as asked, and running a service until it is told
to stop.

Each group is a module with `register(commands, common)`; `gridwatch.cli` calls them in
order. This module imports none of them.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from gridwatch.errors import GridwatchError

if TYPE_CHECKING:
    import psycopg

    from gridwatch.imports.pipelines import ImportResult
    from gridwatch.settings import Settings

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

log = logging.getLogger("gridwatch")


def command_group(commands: Commands, name: str, help: str) -> Commands:
    """Add the group `gridwatch NAME COMMAND`; its subcommands, to add the commands to."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(title=f"{name} commands", metavar="COMMAND")


def file_import(
    group: Commands,
    common: argparse.ArgumentParser,
    help: str,
    run: Callable,
    file_help: str = "the CSV file to read",
) -> argparse.ArgumentParser:
    """Add `import FILE` to a group's commands: `run` reads the file into the database."""
    command = group.add_parser("import", parents=[common], help=help)
    command.add_argument("file", type=Path, help=file_help)
    command.set_defaults(run=run)
    return command


def forget_command(
    group: Commands,
    common: argparse.ArgumentParser,
    help: str,
    subject: str,
    run: Callable,
    subject_help: str | None = None,
) -> None:
    """Add `forget SUBJECT [--by NAME]` to a group's commands: `run` removes someone's
    personal information and records in the audit who asked."""
    forget = group.add_parser("forget", parents=[common], help=help)
    forget.add_argument(subject, help=subject_help)
    forget.add_argument("--by", help="who asks for it (default: your login name)")
    forget.set_defaults(run=run)


@contextmanager
def forgetting(
    settings: Settings, args: argparse.Namespace
) -> Iterator[tuple[psycopg.Connection, str, datetime]]:
    """For a `forget` command's body: the migrated database, who asks (`--by`, else the
    login name) and now; once the body has said what it removed, who asked, as the audit
    records it (not when it fails)."""
    actor = args.by or getpass.getuser()
    with migrated_database(settings) as conn:
        yield conn, actor, datetime.now(UTC)
    print(f"recorded in the audit as asked by {actor}")


def forgotten_before(what: str, at: datetime, settings: Settings) -> str:
    """That `what` was forgotten before, at `at` (local time): nothing was left to remove."""
    return f"{what} was forgotten on {at.astimezone(settings.zone):%Y-%m-%d %H:%M}"


def register_table(
    commands: Commands,
    common: argparse.ArgumentParser,
    what: str,
    help: str,
    import_help: str,
    zh_columns: str,
    unplaced: str = "",
) -> Commands:
    """Add the group `what` of a register kept as a CSV file (residents, workers, places):
    `import FILE` (through `import_<what>_file` of `gridwatch.imports.pipelines`; `unplaced`
    says what its rows left without a grid are) and `template [--zh]`; its subcommands."""
    group = command_group(commands, what, help)
    file_import(group, common, import_help, functools.partial(_import_table, what, unplaced))
    csv_template(group, what, zh_columns)
    return group


def _import_table(what: str, unplaced: str, settings: Settings, args: argparse.Namespace) -> int:
    pipelines = importlib.import_module("gridwatch.imports.pipelines")
    return import_file(
        settings, args.file, what, getattr(pipelines, f"import_{what}_file"), unplaced
    )


def csv_template(group: Commands, what: str, zh_columns: str) -> None:
    """Add `template [--zh]`: print the header of an empty `what` CSV to fill in (the one
    `gridwatch.imports.<what>` makes with its `<what>_template`)."""
    template = group.add_parser(
        "template", help=f"print an empty {what} CSV (the header) to fill in"
    )
    template.add_argument("--zh", action="store_true", help=f"Chinese column names ({zh_columns})")
    template.set_defaults(run=functools.partial(_print_template, what))


def _print_template(what: str, settings: Settings, args: argparse.Namespace) -> int:
    module = importlib.import_module(f"gridwatch.imports.{what}")
    sys.stdout.write(getattr(module, f"{what}_template")(chinese=args.zh))
    return 0


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


def import_file(
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


def subcommands(commands: Commands, name: str) -> Commands:
    """The subcommands of group `name`, which an earlier group registered: a group may add
    a command to another's (`residents forget` is one of the privacy commands)."""
    group = commands.choices[name]
    return next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))


def parse_time(text: str, settings: Settings) -> datetime:
    """An ISO 8601 time from the command line; without an offset it is local (GRIDWATCH_TZ)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise GridwatchError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T08:00 or 2026-11-23T08:00+08:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=settings.zone)


@contextmanager
def migrated_database(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection to the run's database (the embedded one started for it when no URL is
    set), migrated to this version first: for a command that writes."""
    from gridwatch.services import Services
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    with Services(settings) as services, connect(services.database_url()) as conn:
        migrate_for(conn, settings)
        yield conn


def run_until_signal(work: Callable[[threading.Event], object]) -> None:
    """Run `work(stop)` until SIGINT or SIGTERM sets `stop`; a second signal exits at once."""
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("stopping (signal %d); again to stop at once", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        work(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
