"""`gridwatch alerts` and `gridwatch absences`: the alert engine and its delivery run until
stopped, which alerts hold as of a time, a person's steps on an alert, registered absences."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from gridwatch.commands import command_group, parse_time, run_until_signal
from gridwatch.errors import GridwatchError
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `alerts [evaluate|ack|resolve]` and `absences add` (`common`: the shared flags)."""
    alerts = commands.add_parser(
        "alerts", parents=[common], help="run the alert engine and its delivery until stopped"
    )
    alerts.add_argument(
        "--partition",
        metavar="I/N",
        help="watch only partition I (0 to N-1) of N, by grid; run one process per partition",
    )
    alerts.set_defaults(run=run_alerts)
    alert_commands = alerts.add_subparsers(title="alerts commands", metavar="COMMAND")
    evaluate = alert_commands.add_parser(
        "evaluate", parents=[common], help="which alerts hold as of a time (no writes)"
    )
    evaluate.add_argument("--at", required=True, help="ISO time; without offset: GRIDWATCH_TZ")
    evaluate.add_argument("--json", action="store_true", help="one JSON object per line")
    evaluate.set_defaults(run=run_alerts_evaluate)
    ack = alert_commands.add_parser("ack", parents=[common], help="acknowledge an alert")
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--by", required=True, help="who takes it")
    ack.add_argument("--note")
    ack.set_defaults(run=run_alerts_ack)
    resolve = alert_commands.add_parser("resolve", parents=[common], help="resolve an alert")
    resolve.add_argument("alert_id", type=int)
    resolve.add_argument("--by", required=True)
    resolve.add_argument("--reason", required=True)
    resolve.add_argument(
        "--checked", action="store_true", help="someone checked with the person: all well"
    )
    resolve.set_defaults(run=run_alerts_resolve)

    absence_commands = command_group(commands, "absences", "registered absences (外出报备)")
    absence_add = absence_commands.add_parser(
        "add", parents=[common], help="register an absence; activity alerts are silent in it"
    )
    absence_add.add_argument("resident_id")
    absence_add.add_argument("--from", dest="starts", required=True, help="ISO time")
    absence_add.add_argument("--until", dest="ends", required=True, help="ISO time")
    absence_add.add_argument("--note")
    absence_add.add_argument("--by", help="who registered it")
    absence_add.set_defaults(run=run_absences_add)


def run_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.alerts.partition import Partition
    from gridwatch.dispatch.service import run_alerts as serve
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    partition = None
    if args.partition is not None:
        try:
            partition = Partition.parse(args.partition)
        except ValueError as exc:
            raise GridwatchError(f"--partition {args.partition}: {exc}") from None
    with Services(settings) as services:
        database_url = services.database_url()
        with connect(database_url) as conn:
            migrate_for(conn, settings)
        mqtt_url = services.mqtt_url()
        run_until_signal(lambda stop: serve(settings, database_url, mqtt_url, stop, partition))
    return 0


def run_alerts_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from gridwatch.dispatch.service import make_engine
    from gridwatch.store.db import connect

    at = parse_time(args.at, settings)
    with Services(settings) as services, connect(services.database_url()) as conn:
        engine = make_engine(settings, conn)
        engine.load(at)
        found = sorted(engine.open_conditions(at), key=lambda hc: (hc[1].since, hc[0].resident_id))
    for home, condition in found:
        record = {
            "resident_id": home.resident_id,
            "kind": condition.kind,
            "grid_code": home.grid_code,
            "since": condition.since.isoformat(),
            "severity": condition.severity,
        }
        if args.json:
            print(orjson.dumps(record).decode())
        else:
            local = condition.since.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
            print(
                f"{home.resident_id:<10} {condition.kind:<14} {home.grid_code or '-':<14} "
                f"since {local}  {condition.severity}"
            )
    if not args.json:
        print(f"{len(found)} alerts hold as of {at.isoformat()}", file=sys.stderr)
    return 0


def _alert_step(settings: Settings, step: Callable[..., object], alert_id: int, **fields) -> None:
    """A person's step on an alert (`step` with `fields`), published and sent on like the API's."""
    from datetime import UTC, datetime

    from gridwatch.store.db import connect

    with Services(settings) as services, connect(services.database_url()) as conn:
        step(
            conn,
            alert_id,
            now=datetime.now(UTC),
            topic_prefix=settings.topic_prefix,
            webhooks=settings.alert_webhooks,
            **fields,
        )


def run_alerts_ack(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.alerts import acknowledge_alert

    _alert_step(settings, acknowledge_alert, args.alert_id, actor=args.by, note=args.note)
    print(f"alert {args.alert_id} acknowledged by {args.by}")
    return 0


def run_alerts_resolve(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.alerts import resolve_alert

    _alert_step(
        settings,
        resolve_alert,
        args.alert_id,
        actor=args.by,
        reason=args.reason,
        checked=args.checked,
    )
    print(f"alert {args.alert_id} resolved by {args.by}: {args.reason}")
    return 0


def run_absences_add(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.absences import add_absence
    from gridwatch.store.db import connect

    starts, ends = parse_time(args.starts, settings), parse_time(args.ends, settings)
    with Services(settings) as services, connect(services.database_url()) as conn:
        absence_id = add_absence(
            conn,
            args.resident_id,
            starts_at=starts,
            ends_at=ends,
            note=args.note,
            created_by=args.by,
        )
    print(
        f"absence {absence_id} registered for {args.resident_id}: "
        f"{starts.isoformat()} to {ends.isoformat()}"
    )
    return 0
