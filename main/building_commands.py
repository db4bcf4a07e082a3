"""`gridwatch units import|template` and `gridwatch contacts import|template|forget`: the
units (单元) of buildings, and the unit heads (单元长) and building leads (楼栋长) a grid
worker calls first about a home. Buildings come in with `grids import --level building`."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, file_import, forget_command, migrated_database
from gridwatch.import_commands import _csv_template, _import_file
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add the `units` and `contacts` groups (`common`: the shared flags)."""
    units = command_group(commands, "units", "units (单元) of buildings")
    file_import(
        units,
        common,
        "import units from a CSV file (building_code,unit_code,name,address,lat,lon or "
        "楼栋编码,单元编码,名称,地址,纬度,经度); import the buildings first "
        "(grids import FILE --level building)",
        run_units_import,
    )
    _csv_template(units, "units", "楼栋编码,单元编码,名称,地址,纬度,经度", run_units_template)

    contacts = command_group(
        commands, "contacts", "unit heads (单元长) and building leads (楼栋长) to call first"
    )
    file_import(
        contacts,
        common,
        "import unit heads and building leads from a CSV file (contact_id,name,role,"
        "building_code,unit_code,phone[,webhook_url] or 联系人编号,姓名,角色,楼栋编码,单元编码,"
        "电话[,推送地址]); import the buildings and units first",
        run_contacts_import,
    )
    _csv_template(contacts, "contacts", "联系人编号,姓名,角色,…", run_contacts_template)
    forget_command(
        contacts,
        common,
        "remove a contact's name, phone and webhook; their role and building stay",
        "contact_id",
        run_contacts_forget,
    )


def run_units_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_units_file

    return _import_file(settings, args.file, "units", import_units_file, "")


def run_units_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.units import units_template

    sys.stdout.write(units_template(chinese=args.zh))
    return 0


def run_contacts_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_contacts_file

    return _import_file(settings, args.file, "contacts", import_contacts_file, "")


def run_contacts_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.contacts import contacts_template

    sys.stdout.write(contacts_template(chinese=args.zh))
    return 0


def run_contacts_forget(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.contacts import forget_contact

    actor = args.by or getpass.getuser()
    with migrated_database(settings) as conn:
        done = forget_contact(conn, args.contact_id, actor=actor, now=datetime.now(UTC))
    if done.already:
        since = done.at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
        print(f"contact {done.contact_id} was forgotten on {since}")
    else:
        print(
            f"contact {done.contact_id} forgotten: name, phone and webhook removed; their "
            "role and building kept"
        )
    if done.deliveries:
        print(f"{done.deliveries} notice(s) still waiting for their webhook dropped")
    print(f"recorded in the audit as asked by {actor}")
    return 0
