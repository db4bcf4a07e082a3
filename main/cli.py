"""The `gridwatch` command: one Settings per run, built here and passed down. Each command
group is a module of its own with `register(commands, common)`, called here in order."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from gridwatch import (
    __version__,
    alert_commands,
    api_commands,
    building_commands,
    db_commands,
    demo,
    device_commands,
    import_commands,
    ingest_commands,
    keyword_commands,
    place_commands,
    privacy_commands,
    request_commands,
    simulate_commands,
)
from gridwatch.errors import GridwatchError
from gridwatch.settings import Settings

# The command groups in the order `gridwatch --help` lists them; privacy_commands adds
# `forget` to the `residents` of import_commands.
GROUPS = (
    db_commands,
    import_commands,
    building_commands,
    privacy_commands,
    place_commands,
    keyword_commands,
    ingest_commands,
    alert_commands,
    request_commands,
    simulate_commands,
    api_commands,
    device_commands,
    demo,
)

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
    """The parser of `gridwatch`: the shared flags, then every group's commands."""
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
    for group in GROUPS:
        group.register(commands, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
