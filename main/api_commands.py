"""`gridwatch api` and `gridwatch users`: serve the HTTP API and the map pages, and manage
the API's users and their tokens."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, migrated_database
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `api` and `users` to the `gridwatch` subcommands (`common`: the shared flags)."""
    api = commands.add_parser(
        "api", parents=[common], help="serve the HTTP API and the map pages until stopped"
    )
    api.add_argument("--host", help="address to listen on (GRIDWATCH_API_HOST, 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (GRIDWATCH_API_PORT, 8080)")
    api.set_defaults(run=run_api)

    user_commands = command_group(commands, "users", "API users and their tokens")
    add = user_commands.add_parser(
        "add",
        parents=[common],
        help="create a user; prints the token (shown only once) on the last line",
    )
    add.add_argument("name", help="user name; for a grid worker, their worker id (e.g. W001)")
    add.add_argument(
        "--role", required=True, choices=["admin", "duty_officer", "grid_worker", "device"]
    )
    add.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="CODE",
        help="a grid (or community, street) the user is responsible for, of either grid system "
        "(a police officer's 警格 or 派出所 too); repeat for several",
    )
    add.add_argument(
        "--level",
        choices=["street", "community"],
        help="a duty officer's level; the --grid codes must be of it",
    )
    add.set_defaults(run=run_users_add)
    user_commands.add_parser("list", parents=[common], help="list users").set_defaults(
        run=run_users_list
    )
    revoke = user_commands.add_parser(
        "revoke", parents=[common], help="revoke a user's token and end their sessions"
    )
    revoke.add_argument("name")
    revoke.set_defaults(run=run_users_revoke)


def run_api(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.api.app import create_app
    from gridwatch.api.serving import ApiServer, server_config
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    with Services(settings) as services:
        database_url = services.database_url()
        with connect(database_url) as conn:
            migrate_for(conn, settings)
        app = create_app(settings, database_url=database_url, mqtt_url=settings.mqtt_url)
        print(
            f"gridwatch API on http://{host}:{port}/ (maps: /maps/overview, docs: /docs)",
            flush=True,
        )
        ApiServer(server_config(app, settings, host=host, port=port)).run()
    return 0


def run_users_add(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.users import create_user

    with migrated_database(settings) as conn:
        token = create_user(
            conn, args.name, role=args.role, grid_codes=tuple(args.grid), level=args.level
        )
    scope = f", grids {', '.join(args.grid)}" if args.grid else ""
    level = f", {args.level} level" if args.level else ""
    print(f"user {args.name} ({args.role}{level}{scope}) created.")
    print("Its token follows; it is shown only this once (only its SHA-256 is stored):")
    print(token)
    return 0


def run_users_list(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect
    from gridwatch.store.users import list_users

    with Services(settings) as services, connect(services.database_url()) as conn:
        users = list_users(conn)
    for user in users:
        state = f"revoked {user.revoked_at:%Y-%m-%d}" if user.revoked_at else "active"
        grids = ",".join(user.grids) or "all grids"
        print(f"{user.name:<20} {user.role:<13} {user.level or '-':<10} {grids:<30} {state}")
    return 0


def run_users_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gridwatch.store.db import connect
    from gridwatch.store.users import revoke_user

    with Services(settings) as services, connect(services.database_url()) as conn:
        revoke_user(conn, args.name, now=datetime.now(UTC))
    print(
        f"user {args.name} revoked; running API servers forget its token within "
        f"{settings.api_token_cache_s:g} s"
    )
    return 0
