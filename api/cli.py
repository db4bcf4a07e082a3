"""`gridwatch api` and `gridwatch users`: wired into the main parser by `register()`."""

from __future__ import annotations

import argparse
import logging

from gridwatch.services import Services
from gridwatch.settings import Settings

log = logging.getLogger("gridwatch.api")


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add `api` and `users` to the `gridwatch` subcommands (`common`: the shared flags)."""
    api = commands.add_parser(
        "api", parents=[common], help="serve the HTTP API and the map pages until stopped"
    )
    api.add_argument("--host", help="address to listen on (GRIDWATCH_API_HOST, 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (GRIDWATCH_API_PORT, 8080)")
    api.set_defaults(run=run_api)

    users = commands.add_parser("users", help="API users and their tokens")
    user_commands = users.add_subparsers(title="users commands", metavar="COMMAND")
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
        help="a grid (or community, street) the user is responsible for; repeat for several",
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


def server_config(app, settings: Settings, *, host: str, port: int, log_level: str = "info"):
    """uvicorn's configuration for the API. Forwarded headers are believed only from the
    proxies in GRIDWATCH_API_FORWARDED_ALLOW_IPS: rate limits and the audit go by the
    client's address, which anyone could otherwise claim. Open event streams get 5 s at
    shutdown (a browser left on the live map would hold it up for ever). A request's head
    must arrive within GRIDWATCH_API_HEAD_TIMEOUT_S and fit in 16 KiB; the access log
    shows no credential."""
    import uvicorn

    from gridwatch.api.serving import KEEP_ALIVE_S, MAX_HEAD_BYTES, log_config, timed_protocol

    proxies = list(settings.api_forwarded_allow_ips)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(),
        http=timed_protocol(settings.api_head_timeout_s),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        lifespan="on",  # the pool opens there: a server that cannot open it does not start
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def run_api(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.api.app import create_app
    from gridwatch.api.serving import ApiServer
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
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for
    from gridwatch.store.users import create_user

    with Services(settings) as services, connect(services.database_url()) as conn:
        migrate_for(conn, settings)
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
