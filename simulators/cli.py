"""`gridwatch simulate` at work: publish the sample district's simulated life over MQTT,
paced to simulated time, with a ground-truth file; or, with --load, a fixed-rate meter load.
The command and its options are registered by `gridwatch.simulate_commands`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gridwatch.errors import ConfigError
from gridwatch.settings import Settings

if TYPE_CHECKING:
    from gridwatch.simulators.faults import FaultRates


def run_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Publish a scenario (or a load) to the configured broker; returns the exit code."""
    from gridwatch.ingest.mqtt import BrokerAddress, publisher
    from gridwatch.simulators.publish import AckWindow

    if settings.mqtt_url is None:
        raise ConfigError(
            "gridwatch simulate publishes to a running broker: set GRIDWATCH_MQTT_URL or "
            "--mqtt-url (the embedded broker lives only inside `gridwatch demo`)"
        )
    address = BrokerAddress.from_url(settings.mqtt_url, settings.mqtt_ca_file)
    client = publisher(address, args.client_id or f"gridwatch-simulate-{os.getpid()}")
    stop = threading.Event()
    try:
        window = AckWindow(client)
        if args.load:
            return _run_load(settings, args, window, stop)
        return _run_scenario(settings, args, window, stop)
    except KeyboardInterrupt:
        stop.set()
        print("simulate: interrupted", file=sys.stderr)
        return 130
    finally:
        client.disconnect()
        client.loop_stop()


def scenario_from_args(settings: Settings, args: argparse.Namespace):
    """The Scenario that `gridwatch simulate` with these options publishes."""
    from gridwatch.simulators.scenario import Scenario

    tz = settings.zone
    start = args.start or datetime.now(tz).replace(second=0, microsecond=0)
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    rates = dataclasses.replace(fault_rates(args), rescue_after_h=args.rescue_after)
    if args.clean_delivery:
        rates = rates.without_delivery_faults()
    try:
        return Scenario(
            sample_district(args.residents),
            start,
            args.days,
            args.seed,
            meter_interval_s=args.meter_interval,
            tz=tz,
            prefix=settings.topic_prefix,
            holidays=args.holiday,
            rates=rates,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def fault_rates(args: argparse.Namespace) -> FaultRates:
    """The incident rates of --falls, --sos, --outages and --absences
    (`gridwatch.simulate_commands.add_fault_rate_options`); the other rates their defaults."""
    from gridwatch.simulators.faults import FaultRates

    return FaultRates(
        falls=args.rate_falls,
        sos=args.rate_sos,
        meter_outages=args.rate_meter_outages,
        absences=args.rate_absences,
    )


def _run_scenario(settings: Settings, args, window, stop: threading.Event) -> int:
    from gridwatch.simulators.faults import GroundTruthLog
    from gridwatch.simulators.publish import publish_paced

    scenario = scenario_from_args(settings, args)
    _warn_if_ahead(scenario, args.speed, settings.max_future_s)
    incidents = scenario.ground_truth()
    print(
        f"simulating {len(scenario.residents)} residents and {len(scenario.workers)} grid "
        f"workers from {scenario.start.isoformat()} for {args.days:g} days at "
        f"{'full speed' if args.speed == 0 else f'{args.speed:g}x'}; "
        f"{_incident_summary(incidents)}",
        flush=True,
    )
    truth = GroundTruthLog(args.ground_truth, incidents) if args.ground_truth else None
    try:
        report = publish_paced(
            window,
            scenario.messages(record=truth),
            speed=args.speed,
            stop=stop,
            progress=_print_progress(scenario.start, scenario.end),
        )
    finally:
        if truth is not None:
            truth.close()
    faults = ", ".join(f"{n} {kind}" for kind, n in sorted(scenario.delivery_counts.items()))
    print(
        f"published {report.published:,} messages in {report.seconds:.1f} s "
        f"({report.rate:,.0f}/s), {report.acknowledged:,} acknowledged"
        + (f"; delivery faults: {faults}" if faults else ""),
        flush=True,
    )
    if truth is not None:
        print(f"ground truth: {truth.written} records in {truth.path}", flush=True)
    return 0 if report.acknowledged >= report.published else 1


def _run_load(settings: Settings, args, window, stop: threading.Event) -> int:
    from gridwatch.simulators.publish import publish_load

    print(
        f"load: {args.devices:,} meters, {args.rate:,.0f} msgs/s for {args.duration:g} s "
        f"to {settings.topic_prefix}/meter/LOAD*",
        flush=True,
    )
    report = publish_load(
        window,
        devices=args.devices,
        rate=args.rate,
        duration_s=args.duration,
        prefix=settings.topic_prefix,
        tz=settings.zone,
        seed=args.seed,
        stop=stop,
        progress=_print_progress(None, None),
    )
    print(
        f"published {report.published:,} messages in {report.seconds:.1f} s "
        f"({report.rate:,.0f}/s of {args.rate:,.0f}/s asked), "
        f"{report.acknowledged:,} acknowledged",
        flush=True,
    )
    return 0 if report.acknowledged >= report.published else 1


def sample_district(residents: int | None = None):
    """The sample district, or its first `residents` residents with their grids' workers."""
    from gridwatch.simulators.district import build_sample_district

    district = build_sample_district()
    if residents is None or residents >= len(district.residents):
        return district
    chosen = district.residents[:residents]
    grids = {r.grid_code for r in chosen}
    workers = [w for w in district.workers if w.grid_code in grids]
    return dataclasses.replace(district, residents=chosen, workers=workers)


def _warn_if_ahead(scenario, speed: float, max_future_s: int) -> None:
    """Say so when simulated time will run further ahead of the clock than ingest accepts."""
    now = datetime.now(scenario.tz)
    wall_span = (scenario.end - scenario.start) / speed if speed > 0 else timedelta(0)
    lead = scenario.end - (max(now, scenario.start) + wall_span)
    if lead.total_seconds() > max_future_s:
        print(
            f"simulate: warning: simulated time will run up to {lead} ahead of the clock; "
            f"ingest dead-letters ts more than {max_future_s} s ahead "
            "(GRIDWATCH_MAX_FUTURE_S): start earlier (--start), lower --speed, or raise it",
            file=sys.stderr,
        )


def _incident_summary(records: list[dict]) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["kind"]] = counts.get(record["kind"], 0) + 1
    if not counts:
        return "no incidents"
    return "incidents: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _print_progress(start: datetime | None, end: datetime | None):
    def report(tick) -> None:
        where = ""
        if tick.sim_time is not None and start is not None and end is not None:
            done = (tick.sim_time - start) / (end - start)
            where = f"sim {tick.sim_time:%Y-%m-%d %H:%M} ({100 * done:.0f}%), "
        late = f", {tick.behind_s:.1f} s behind schedule" if tick.behind_s > 1 else ""
        print(
            f"{where}{tick.published:,} published ({tick.published / tick.seconds:,.0f}/s), "
            f"{tick.published - tick.acknowledged:,} awaiting ack{late}",
            file=sys.stderr,
            flush=True,
        )

    return report
