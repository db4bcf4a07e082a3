"""`gridwatch simulate`: the command and its options; `gridwatch.simulators.cli` runs it."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gridwatch.simulators.cli import run_simulate
from gridwatch.simulators.faults import FaultRates

if TYPE_CHECKING:
    from gridwatch.commands import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add `simulate` and its options (`common`: the shared flags)."""
    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="publish a simulated district (homes, patrols, hazards, faults) or a load over MQTT",
        description="Publish the sample district's residents' days, patrols, hazards and "
        "injected faults over MQTT (QoS 1), paced to simulated time; with --load, meter "
        "readings from many synthetic meters at a fixed rate.",
    )
    run = simulate.add_argument_group("simulated district")
    run.add_argument(
        "--speed",
        type=_non_negative_float,
        default=60.0,
        metavar="N",
        help="N times real time (1440: a day a minute; 0: as fast as the broker "
        "takes it; default 60)",
    )
    run.add_argument(
        "--start",
        type=_iso_time,
        metavar="ISO",
        help="simulated start, ISO 8601 (naive: GRIDWATCH_TZ; default now)",
    )
    run.add_argument("--seed", type=int, default=1, help="same seed, same messages (default 1)")
    add_district_options(run)
    run.add_argument(
        "--ground-truth",
        type=Path,
        metavar="FILE",
        help="write every injected incident and fault here (JSON lines)",
    )
    run.add_argument(
        "--holiday",
        type=date.fromisoformat,
        action="append",
        default=[],
        metavar="DATE",
        help="a public holiday (lived like a weekend); repeatable",
    )
    add_fault_rate_options(run)
    run.add_argument(
        "--rescue-after",
        type=float,
        metavar="HOURS",
        help="a fallen resident is helped up after this long (default: never)",
    )
    run.add_argument(
        "--clean-delivery",
        action="store_true",
        help="no duplicates, late or malformed messages, no skewed clocks",
    )

    load = simulate.add_argument_group("load (benchmarks)")
    load.add_argument(
        "--load",
        action="store_true",
        help="publish readings of --devices synthetic meters at --rate msgs/s",
    )
    add_load_options(load)
    load.add_argument(
        "--duration",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds to run (default 60)",
    )
    simulate.add_argument("--client-id", help="MQTT client id of the publisher")
    simulate.set_defaults(run=run_simulate)


def add_district_options(
    options: argparse._ActionsContainer, *, residents: int | None = None, days: float = 1.0
) -> None:
    """--days, --residents and --meter-interval of a simulated sample district; the benches
    that simulate one (bench/storage.py, bench/alert_quality.py) take them too."""
    options.add_argument(
        "--days", type=_positive_float, default=days, help=f"days to simulate (default {days:g})"
    )
    options.add_argument(
        "--residents",
        type=_positive_int,
        default=residents,
        metavar="N",
        help="only the first N residents of the sample district (and the workers of their grids)"
        + (f"; default {residents}" if residents is not None else ""),
    )
    options.add_argument(
        "--meter-interval",
        type=int,
        default=60,
        metavar="S",
        help="seconds between meter reports, whole minutes (default 60)",
    )


def add_fault_rate_options(options: argparse._ActionsContainer) -> None:
    """--falls, --sos, --outages and --absences: incidents per 100 resident-days, read into
    `FaultRates` by `gridwatch.simulators.cli.fault_rates`."""
    for flag, field, what in (
        ("--falls", "falls", "falls"),
        ("--sos", "sos", "SOS presses"),
        ("--outages", "meter_outages", "meter outages"),
        ("--absences", "absences", "registered absences"),
    ):
        default = getattr(FaultRates(), field)
        options.add_argument(
            flag,
            type=float,
            dest=f"rate_{field}",
            default=default,
            metavar="RATE",
            help=f"{what} per 100 resident-days (default {default:g})",
        )


def add_load_options(options: argparse._ActionsContainer, *, rate: float = 1000.0) -> None:
    """--devices and --rate of a meter load; bench/soak.py takes them to pass on to
    `simulate --load`, so both check them alike."""
    options.add_argument(
        "--devices", type=_positive_int, default=100_000, help="meters of the load (default 100000)"
    )
    options.add_argument(
        "--rate",
        type=_positive_float,
        default=rate,
        help=f"messages per second (default {rate:g})",
    )


def _iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T06:00:00+08:00)"
        ) from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
