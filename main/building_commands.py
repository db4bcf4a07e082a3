"""`gridwatch units import|template` and `gridwatch contacts import|template|forget`: the
units (单元) of buildings, and the unit heads (单元长) and building leads (楼栋长) a grid
worker calls first about a home. Buildings come in with `grids import --level building`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gridwatch.commands import forget_command, forgetting, forgotten_before, register_table
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add the `units` and `contacts` groups (`common`: the shared flags)."""
    register_table(
        commands,
        common,
        "units",
        "units (单元) of buildings",
        "import units from a CSV file (building_code,unit_code,name,address,lat,lon or "
        "楼栋编码,单元编码,名称,地址,纬度,经度); import the buildings first "
        "(grids import FILE --level building)",
        "楼栋编码,单元编码,名称,地址,纬度,经度",
    )
    contacts = register_table(
        commands,
        common,
        "contacts",
        "unit heads (单元长) and building leads (楼栋长) to call first",
        "import unit heads and building leads from a CSV file (contact_id,name,role,"
        "building_code,unit_code,phone[,webhook_url] or 联系人编号,姓名,角色,楼栋编码,单元编码,"
        "电话[,推送地址]); import the buildings and units first",
        "联系人编号,姓名,角色,…",
    )
    forget_command(
        contacts,
        common,
        "remove a contact's name, phone and webhook; their role and building stay",
        "contact_id",
        run_contacts_forget,
    )


def run_contacts_forget(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.contacts import forget_contact

    with forgetting(settings, args) as (conn, actor, now):
        done = forget_contact(conn, args.contact_id, actor=actor, now=now)
        if done.already:
            print(forgotten_before(f"contact {done.contact_id}", done.at, settings))
        else:
            print(
                f"contact {done.contact_id} forgotten: name, phone and webhook removed; their "
                "role and building kept"
            )
        if done.deliveries:
            print(f"{done.deliveries} notice(s) still waiting for their webhook dropped")
    return 0
