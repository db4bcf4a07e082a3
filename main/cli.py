"""The `gridwatch` command: one Settings per run, built here and passed down."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from gridwatch import __version__
from gridwatch.errors import GridwatchError
from gridwatch.services import Services
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.imports.pipelines import ImportResult

log = logging.getLogger("gridwatch")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = settings_from(args)
        return args.run(settings, args) or 0
    except GridwatchError as exc:
        print(f"gridwatch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = None
        return 0
    except Exception as exc:  # a bug: one line for the person, the traceback with -v
        log.debug("unexpected error", exc_info=True)
        print(
            f"gridwatch: internal error: {type(exc).__name__}: {exc} (run with -v for the "
            "traceback)",
            file=sys.stderr,
        )
        return 70


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with command-line flags taking precedence."""
    overrides = {
        key: value
        for key in ("database_url", "mqtt_url", "mqtt_user", "topic_prefix", "tz", "data_dir")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"GRIDWATCH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise GridwatchError(f"bad setting: {problems}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridwatch",
        description="Community grid governance: MQTT ingest, grids, alerts and maps.",
    )
    parser.add_argument("--version", action="version", version=f"gridwatch {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="PostgreSQL URL (GRIDWATCH_DATABASE_URL)")
    common.add_argument("--mqtt-url", help="mqtt:// or mqtts:// URL (GRIDWATCH_MQTT_URL)")
    common.add_argument(
        "--mqtt-user",
        help="this process's broker user, with the URL's password (GRIDWATCH_MQTT_USER)",
    )
    common.add_argument("--topic-prefix", help="inbound topic prefix (GRIDWATCH_TOPIC_PREFIX)")
    common.add_argument("--tz", help="time zone for local days (GRIDWATCH_TZ)")
    common.add_argument("--data-dir", type=Path, help="data directory (GRIDWATCH_DATA_DIR)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    db = commands.add_parser("db", help="database schema and storage mode")
    db_commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    db_commands.add_parser(
        "migrate", parents=[common], help="create or update the schema (safe to repeat)"
    ).set_defaults(run=run_db_migrate)
    db_commands.add_parser(
        "info", parents=[common], help="storage mode in force and why, table sizes"
    ).set_defaults(run=run_db_info)
    db_commands.add_parser(
        "maintain",
        parents=[common],
        help="make partitions ahead, drop expired ones, refresh hourly rollups",
    ).set_defaults(run=run_db_maintain)

    grids = commands.add_parser("grids", help="grid polygons and hierarchy")
    grid_commands = grids.add_subparsers(title="grids commands", metavar="COMMAND")
    grid_import = grid_commands.add_parser(
        "import",
        parents=[common],
        help="import polygons from any GDAL vector file (GeoJSON, Shapefile, GeoPackage, ...)",
    )
    grid_import.add_argument("file", type=Path, help="the vector file to read")
    grid_import.add_argument(
        "--level",
        choices=["district", "street", "community", "grid"],
        help="level of every feature (default: each feature's 'level' field when the file has "
        "one — values district/street/community/grid or 区/街道/社区/网格 — else grid)",
    )
    grid_import.add_argument(
        "--level-field", help="field holding each feature's level (default: 'level' if present)"
    )
    grid_import.add_argument(
        "--code-field", default="code", help="field holding each feature's code (default: code)"
    )
    grid_import.add_argument(
        "--name-field", default="name", help="field holding each feature's name (default: name)"
    )
    grid_import.add_argument(
        "--parent-field",
        help="field holding the parent's code (default: the polygon of the level above that "
        "contains the feature)",
    )
    grid_import.add_argument(
        "--source-crs",
        metavar="CRS",
        help="what the file's coordinates are, overriding or supplying its own CRS (.prj): "
        "gcj02 for files drawn on AMap/Tencent basemaps, bd09 for Baidu, wgs84, or EPSG:NNNN "
        "(default: the file's CRS)",
    )
    grid_import.add_argument(
        "--layer", help="layer of a multi-layer file such as a GeoPackage (default: the first)"
    )
    grid_import.set_defaults(run=run_grids_import)

    residents = commands.add_parser("residents", help="residents and their devices")
    resident_commands = residents.add_subparsers(title="residents commands", metavar="COMMAND")
    resident_import = resident_commands.add_parser(
        "import", parents=[common], help="import residents from a CSV file"
    )
    resident_import.add_argument("file", type=Path)
    resident_import.set_defaults(run=run_residents_import)
    resident_template = resident_commands.add_parser(
        "template", help="print an empty residents CSV (the header) to fill in"
    )
    resident_template.add_argument(
        "--zh", action="store_true", help="Chinese column names (居民编号,姓名,…)"
    )
    resident_template.set_defaults(run=run_residents_template)

    workers = commands.add_parser("workers", help="grid workers (网格员) and their grids")
    worker_commands = workers.add_subparsers(title="workers commands", metavar="COMMAND")
    worker_import = worker_commands.add_parser(
        "import",
        parents=[common],
        help="import grid workers from a CSV file (worker_id,name,phone,grid_codes or "
        "工号,姓名,电话,负责网格); import the grids first",
    )
    worker_import.add_argument("file", type=Path, help="the CSV file to read")
    worker_import.set_defaults(run=run_workers_import)
    worker_template = worker_commands.add_parser(
        "template", help="print an empty workers CSV (the header) to fill in"
    )
    worker_template.add_argument(
        "--zh", action="store_true", help="Chinese column names (工号,姓名,电话,负责网格)"
    )
    worker_template.set_defaults(run=run_workers_template)
    from gridwatch.privacy_commands import register as register_privacy_commands

    register_privacy_commands(commands, resident_commands, common)
    from gridwatch.keyword_commands import register as register_keyword_commands

    register_keyword_commands(commands, common)

    ingest = commands.add_parser(
        "ingest", parents=[common], help="run the MQTT ingest worker until stopped"
    )
    ingest.add_argument(
        "--shared", metavar="NAME", help="join shared subscription $share/NAME (scale out)"
    )
    ingest.add_argument("--client-id", help="stable MQTT client id (persistent session)")
    ingest.set_defaults(run=run_ingest)

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

    absences = commands.add_parser("absences", help="registered absences (外出报备)")
    absence_commands = absences.add_subparsers(title="absences commands", metavar="COMMAND")
    absence_add = absence_commands.add_parser(
        "add", parents=[common], help="register an absence; activity alerts are silent in it"
    )
    absence_add.add_argument("resident_id")
    absence_add.add_argument("--from", dest="starts", required=True, help="ISO time")
    absence_add.add_argument("--until", dest="ends", required=True, help="ISO time")
    absence_add.add_argument("--note")
    absence_add.add_argument("--by", help="who registered it")
    absence_add.set_defaults(run=run_absences_add)

    from gridwatch.api.cli import register as register_api_commands
    from gridwatch.devices import register_commands as register_device_commands
    from gridwatch.simulators.cli import add_simulate_command

    add_simulate_command(commands, common)
    register_api_commands(commands, common)
    register_device_commands(commands, common)

    demo = commands.add_parser(
        "demo", parents=[common], help="run everything on the sample district until Ctrl-C"
    )
    demo.add_argument(
        "--seconds", type=float, help="stop after this many seconds instead of waiting for Ctrl-C"
    )
    demo.set_defaults(run=run_demo)
    return parser


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


def run_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    with Services(settings) as services, connect(services.database_url()) as conn:
        report = migrate_for(conn, settings)
    applied = ", ".join(report.applied) if report.applied else "none (already up to date)"
    print(f"storage: {report.mode.name} ({report.mode.reason})")
    print(f"migrations applied: {applied}")
    return 0


def run_db_info(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect, describe_url
    from gridwatch.store.info import database_info

    with Services(settings) as services:
        url = services.database_url()
        with connect(url) as conn:
            info = database_info(conn, settings.storage)
    print(f"database: {describe_url(url)}{' (embedded)' if services.embedded_database else ''}")
    print(f"server: {info.server_version}")
    print(f"storage mode in force: {info.mode_in_force or 'none (run gridwatch db migrate)'}")
    if info.recorded_reason:
        print(f"  chosen because: {info.recorded_reason}")
    print(f"detected now: {info.detected.name} ({info.detected.reason})")
    print(f"schema version: {info.schema_version or 'none'}; time zone: {info.tz or '-'}")
    for table, rows, detail in info.tables:
        print(f"  {table:<16} {rows:>12,} rows  {detail}")
    if info.tables:
        print(f"awaiting installation (未接入): {info.awaiting_installation} homes")
    return 0


def run_db_maintain(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.store.db import connect
    from gridwatch.store.maintenance import maintain

    with Services(settings) as services, connect(services.database_url()) as conn:
        report = maintain(
            conn, retention_days=settings.retention_days, ahead_days=settings.partitions_ahead_days
        )
    print(report)
    return 0


def _import_file(
    settings: Settings, path: Path, what: str, importer: Callable[..., ImportResult], unplaced: str
) -> int:
    """Import `path` with `importer` into the migrated database and tell what it did;
    `unplaced` says what the rows left without a parent or grid are."""
    from gridwatch.imports.pipelines import require_file
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    require_file(path)  # before a database is started or migrated for nothing
    with Services(settings) as services, connect(services.database_url()) as conn:
        migrate_for(conn, settings)
        result = importer(conn, path, progress=Progress(what))
    print(result.summary(path, what))
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.without_parent_or_grid:
        print(f"note: {result.without_parent_or_grid} {unplaced}")
    return 0


def run_grids_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_grid_file

    options = (
        "level",
        "code_field",
        "name_field",
        "parent_field",
        "level_field",
        "layer",
        "source_crs",
    )
    importer = functools.partial(import_grid_file, **{o: getattr(args, o) for o in options})
    return _import_file(
        settings,
        args.file,
        "grids",
        importer,
        "features have no parent (import the level above first, or give --parent-field)",
    )


def run_residents_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.residents import residents_template

    sys.stdout.write(residents_template(chinese=args.zh))
    return 0


def run_workers_template(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.workers import workers_template

    sys.stdout.write(workers_template(chinese=args.zh))
    return 0


def run_workers_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_workers_file

    return _import_file(settings, args.file, "workers", import_workers_file, "")


def run_residents_import(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.imports.pipelines import import_residents_file

    return _import_file(
        settings,
        args.file,
        "residents",
        import_residents_file,
        "residents are outside every grid (stored without a grid)",
    )


def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.ingest.worker import IngestWorker
    from gridwatch.store.db import connect
    from gridwatch.store.migrate import migrate_for

    with Services(settings) as services:
        database_url = services.database_url()
        with connect(database_url) as conn:
            migrate_for(conn, settings)
        mqtt_url = services.mqtt_url()
        if services.embedded_broker:
            print(f"embedded MQTT broker listening at {mqtt_url}", flush=True)
        worker = IngestWorker(
            settings,
            database_url=database_url,
            mqtt_url=mqtt_url,
            shared=args.shared,
            client_id=args.client_id,
        )
        run_until_signal(worker.run)
    return 0


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


def parse_time(text: str, settings: Settings):
    """An ISO 8601 time from the command line; without an offset it is local (GRIDWATCH_TZ)."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise GridwatchError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T08:00 or 2026-11-23T08:00+08:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=settings.zone)


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from gridwatch.demo import run_demo as demo

    return demo(settings, seconds=args.seconds)


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


if __name__ == "__main__":
    sys.exit(main())
