"""`gridwatch residents forget ID` and `gridwatch audit`: residents' personal information on
the command line. Wired into the main parser by `register()`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING

from gridwatch.commands import (
    forget_command,
    forgetting,
    forgotten_before,
    parse_time,
    subcommands,
)
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands

SHOWN_IDS = 5


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `residents forget` and `audit` (`common`: the shared flags); `residents` is
    registered before."""
    forget_command(
        subcommands(commands, "residents"),
        common,
        "remove a resident's personal information, keep their anonymous history",
        "resident_id",
        run_forget,
    )

    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="who saw which residents' personal information, and who had one forgotten",
    )
    audit.add_argument("--resident", metavar="ID", help="only entries naming this resident")
    audit.add_argument("--user", metavar="NAME", help="only this user's entries")
    audit.add_argument("--since", metavar="TIME", help="ISO time; without an offset, local")
    audit.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.set_defaults(run=run_audit)


def run_forget(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.media.blobs import delete_photos, media_store
    from gridwatch.store.personal_data import forget_resident

    store = media_store(settings)
    with forgetting(settings, args) as (conn, actor, now):
        done = forget_resident(
            conn,
            args.resident_id,
            actor=actor,
            now=now,
            remove_photos=partial(delete_photos, store),
        )
        if done.already:
            since = forgotten_before(f"resident {done.resident_id}", done.at, settings)
            print(f"{since}; notes written since removed")
        else:
            print(
                f"resident {done.resident_id} forgotten: name, phone, address, home position, "
                "notes and the link from patrol visits removed; meter readings, sensor events, "
                "alerts and their history kept"
            )
        if done.photos:
            print(f"{done.photos} photo(s) of their home visits deleted from {store.describe()}")
    return 0


def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from gridwatch.errors import GridwatchError
    from gridwatch.store.db import connect
    from gridwatch.store.personal_data import audit_entries

    if args.limit < 1:
        raise GridwatchError("--limit must be at least 1")
    since = parse_time(args.since, settings) if args.since else None
    with Services(settings) as services, connect(services.database_url()) as conn:
        rows = audit_entries(
            conn, resident=args.resident, user=args.user, since=since, limit=args.limit + 1
        )
    for row in rows[: args.limit]:
        if args.json:
            print(orjson.dumps(asdict(row)).decode())
            continue
        local = row.at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S")
        who = f"{row.actor} ({row.role})" if row.role else row.actor
        where = f" from {row.client}" if row.client else ""
        shown = ", ".join(row.resident_ids[:SHOWN_IDS])
        more = len(row.resident_ids) - SHOWN_IDS
        residents = f"{shown}, ... (+{more})" if more > 0 else shown
        count = len(row.resident_ids)
        print(
            f"{local}  {who}  {row.action}  {row.what}{where}  "
            f"{count} resident{'s' if count != 1 else ''}: {residents}"
        )
    if len(rows) > args.limit:
        print(
            f"more than {args.limit} entries match: narrow with --since, --user or --resident, "
            "or raise --limit",
            file=sys.stderr,
        )
    return 0
