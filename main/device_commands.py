"""`gridwatch devices`: register meters, sensors and patrol apps and issue their broker
credentials, kept in step with a Mosquitto password file when one is named."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from gridwatch.commands import command_group, migrated_database
from gridwatch.errors import Conflict
from gridwatch.ingest.broker_credentials import (
    check_broker_user,
    new_password,
    password_file_users,
    password_hash,
    remove_password_line,
    set_password_line,
)
from gridwatch.services import Services
from gridwatch.settings import Settings
from gridwatch.store.devices import (
    KINDS,
    DeviceRow,
    Registration,
    check_owner,
    list_devices,
    register_device,
    revoke_device,
)

if TYPE_CHECKING:
    from gridwatch.commands import Commands

RELOAD_HINT = "reload the broker to apply it (systemctl reload mosquitto, or kill -HUP its pid)"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """A registered device's password (in clear, to show once) and its password file line."""

    registration: Registration
    password: str
    password_line: str
    replaced_line: bool  # the password file had a line for this broker user


def add_device(
    conn: psycopg.Connection,
    device_id: str,
    *,
    kind: str,
    resident_id: str | None = None,
    worker_id: str | None = None,
    password_file: Path | None = None,
) -> IssuedCredentials:
    """Register a device with a new password; write its line into `password_file` if given.

    The file is written before the registration commits, so a file that cannot be written
    leaves nothing registered.
    """
    check_owner(kind, resident_id, worker_id)
    check_broker_user(device_id, f"{kind} id")
    if worker_id is not None:
        check_broker_user(worker_id, "worker id")
    password = new_password()
    with conn.transaction():
        registration = register_device(
            conn, device_id, kind=kind, resident_id=resident_id, worker_id=worker_id
        )
        user = registration.device.broker_user
        line = f"{user}:{password_hash(password)}"
        replaced = False
        if password_file is not None:
            # A line no device of ours ever had belongs to someone else (the gridwatch
            # services' own user, say): replacing it would lock them out.
            if not registration.user_had_credentials and user in password_file_users(password_file):
                raise Conflict(
                    f"{password_file} already has a line for {user!r} that no gridwatch device "
                    "was given; choose another id, or remove that line first"
                )
            replaced = set_password_line(password_file, user, line)
    return IssuedCredentials(registration, password, line, replaced)


def revoke(
    conn: psycopg.Connection,
    device_id: str,
    *,
    kind: str | None = None,
    password_file: Path | None = None,
) -> tuple[DeviceRow, bool, bool]:
    """Revoke a device; returns it, whether its broker user is now unused, and whether its
    line was removed from `password_file`."""
    with conn.transaction():
        device, user_unused = revoke_device(conn, device_id, kind=kind)
        removed = False
        if password_file is not None and user_unused:
            removed = remove_password_line(password_file, device.broker_user)
    return device, user_unused, removed


# -- command line --------------------------------------------------------------------------


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `devices add|list|revoke` to the `gridwatch` subcommands."""
    device_commands = command_group(commands, "devices", "devices and their broker credentials")
    add = device_commands.add_parser(
        "add",
        parents=[common],
        help="register a device and print its broker password (shown only once, last line)",
    )
    add.add_argument("device_id", metavar="ID", help="meter or sensor id; an app's own name")
    add.add_argument("--kind", required=True, choices=KINDS)
    owner = add.add_mutually_exclusive_group()
    owner.add_argument("--resident", metavar="R", help="resident a meter or sensor belongs to")
    owner.add_argument("--worker", metavar="W", help="worker id an app publishes as")
    add.add_argument(
        "--password-file",
        type=Path,
        metavar="F",
        help="Mosquitto password file to add the device's line to (else the line is printed)",
    )
    add.set_defaults(run=run_devices_add)
    listing = device_commands.add_parser("list", parents=[common], help="list devices")
    listing.add_argument("--kind", choices=KINDS)
    listing.set_defaults(run=run_devices_list)
    revoke_parser = device_commands.add_parser(
        "revoke", parents=[common], help="revoke a device: it may no longer publish"
    )
    revoke_parser.add_argument("device_id", metavar="ID")
    revoke_parser.add_argument("--kind", choices=KINDS, help="needed when ID names two kinds")
    revoke_parser.add_argument(
        "--password-file", type=Path, metavar="F", help="remove the device's line from this file"
    )
    revoke_parser.set_defaults(run=run_devices_revoke)


def run_devices_add(settings: Settings, args: argparse.Namespace) -> int:

    # Bad arguments are told before a database is started for nothing.
    check_owner(args.kind, args.resident, args.worker)
    check_broker_user(args.device_id, f"{args.kind} id")
    with migrated_database(settings) as conn:
        issued = add_device(
            conn,
            args.device_id,
            kind=args.kind,
            resident_id=args.resident,
            worker_id=args.worker,
            password_file=args.password_file,
        )
    device = issued.registration.device
    print(
        f"{device.kind} {device.id} registered ({_owner(device)}); broker user {device.broker_user}"
    )
    if device.kind == "app" and not issued.registration.known_worker:
        print(f"note: {device.worker_id} is not an imported worker; the app may still publish")
    if args.password_file is not None:
        done = "replaced" if issued.replaced_line else "added"
        print(f"{args.password_file}: line for {device.broker_user} {done}; {RELOAD_HINT}")
    else:
        print(
            f"Put this line in the broker's password file (replacing any line for "
            f"{device.broker_user}), then {RELOAD_HINT}:"
        )
        print(issued.password_line)
    print("Its password follows; it is shown only this once (the broker keeps only a hash):")
    print(issued.password)
    return 0


def run_devices_list(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect

    with Services(settings) as services, connect(services.database_url()) as conn:
        devices = list_devices(conn, kind=args.kind)
    for device in devices:
        issued = device.credentials_issued_at
        credentials = f"issued {issued:%Y-%m-%d %H:%M}" if issued else "no credentials"
        state = f"revoked {device.revoked_at:%Y-%m-%d %H:%M}" if device.revoked_at else "active"
        print(
            f"{device.kind:<7} {device.id:<20} {_owner(device):<24} "
            f"user {device.broker_user:<20} {credentials:<24} {state}"
        )
    return 0


def run_devices_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect

    with Services(settings) as services, connect(services.database_url()) as conn:
        device, user_unused, removed = revoke(
            conn, args.device_id, kind=args.kind, password_file=args.password_file
        )
    user = device.broker_user
    print(
        f"{device.kind} {device.id} revoked; with GRIDWATCH_REQUIRE_REGISTERED_DEVICES on, "
        "ingest refuses its messages within 10 s"
    )
    if not user_unused:
        print(f"broker user {user} stays: another active device logs in with it")
    elif removed:
        print(f"{args.password_file}: line for {user} removed; {RELOAD_HINT}")
    elif args.password_file is not None:
        print(f"{args.password_file}: had no line for {user}; nothing to remove")
    else:
        print(
            f"Remove the line for {user} from the broker's password file "
            f"(mosquitto_passwd -D FILE {user}), then {RELOAD_HINT}"
        )
    return 0


def _owner(device: DeviceRow) -> str:
    if device.worker_id is not None:
        return f"worker {device.worker_id}"
    return f"resident {device.resident_id}" if device.resident_id else "no resident"
