"""`gridwatch requests import FILE`: a 12345 work-order export (CSV or XLSX) read into the
requests (诉求), idempotent on 工单编号; `gridwatch requests forget ID`: a requester's
contact removed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gridwatch.commands import forget_command, forgetting, migrated_database
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `requests import` and `requests forget` (`common`: the shared flags)."""
    requests = commands.add_parser("requests", help="citizens' requests (诉求)")
    request_commands = requests.add_subparsers(title="requests commands", metavar="COMMAND")
    request_import = request_commands.add_parser(
        "import",
        parents=[common],
        help="import a 12345 work-order export, CSV or XLSX (工单编号, 来电时间, 诉求内容, "
        "诉求地址, 所属街道, 所属社区, 联系电话, 诉求类型, 办理时限); the same order again "
        "updates it",
    )
    request_import.add_argument("file", type=Path, help="the export to read")
    request_import.set_defaults(run=run_requests_import)
    forget_command(
        request_commands,
        common,
        "remove a requester's contact (name, phone, email, address) from a request and "
        "from their other requests with the same phone or email; the requests stay",
        "request",
        run_requests_forget,
        "the request's id, or its 12345 工单编号",
    )


def run_requests_import(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gridwatch.commands import Progress
    from gridwatch.imports.pipelines import import_work_orders_file, require_file
    from gridwatch.store.warnings import Notify

    require_file(args.file)  # before a database is started or migrated for nothing
    with migrated_database(settings) as conn:
        result = import_work_orders_file(
            conn,
            args.file,
            zone=settings.zone,
            now=datetime.now(UTC),
            notify=Notify(settings.topic_prefix, settings.alert_webhooks),
            progress=Progress("work orders"),
        )
    print(result.summary(args.file, "work orders"))
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.without_parent_or_grid:
        print(
            f"note: {result.without_parent_or_grid} orders name no street of the district; "
            "they wait for an administrator to dispatch them"
        )
    return 0


def run_requests_forget(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.requests import forget_requester

    with forgetting(settings, args) as (conn, actor, now):
        done = forget_requester(conn, args.request, actor=actor, now=now)
        others = len(done.request_ids) - 1
        print(
            f"request {done.request_ids[0]}: requester's name, phone, email, address and "
            f"feedback words {'removed' if done.removed else 'were already gone'}"
            + (f", and from {others} other requests with the same phone or email" if others else "")
            + "; the requests, their text and history kept"
        )
    return 0
