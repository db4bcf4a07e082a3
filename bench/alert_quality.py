"""Alert quality on the simulated district: recall, detection delay, false alerts.

    python bench/alert_quality.py [--days 7] [--seed 1] [--residents 2000]
        [--meter-interval 60] [--warmup-days 3] [--database-url URL] [--plot week.png]

Creates a fresh database on the server of --database-url (default GRIDWATCH_DATABASE_URL,
else postgresql://postgres@127.0.0.1:5432/postgres), runs the simulator through the real
parsers, writer and alert engine on one simulated clock, and prints as its last line one
JSON object with incidents, detected, recall, median_delay_min, max_delay_min,
false_alerts_per_100_resident_days (by kind, with total) and
outages_reported_as_inactivity.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import uuid
from zoneinfo import ZoneInfo

import orjson
import psycopg

from gridwatch.simulators.faults import FaultRates
from gridwatch.simulators.quality import quality_report, run_quality


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--meter-interval", type=int, default=60)
    parser.add_argument("--warmup-days", type=float, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "GRIDWATCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--falls", type=float, help="falls per 100 resident-days")
    parser.add_argument("--sos", type=float, help="SOS presses per 100 resident-days")
    parser.add_argument("--outages", type=float, help="meter outages per 100 resident-days")
    parser.add_argument("--absences", type=float, help="absences per 100 resident-days")
    parser.add_argument("--plot", help="write a PNG of one resident's week here")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name = f"gw_quality_{uuid.uuid4().hex[:8]}"
    base = args.database_url.rsplit("/", 1)[0]
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    zone = ZoneInfo("Asia/Shanghai")
    last = {"day": None}

    def progress(now, total):
        day = now.date()
        if day != last["day"]:
            last["day"] = day
            print(
                f"  simulated {now:%Y-%m-%d}: {total:,} messages so far",
                file=sys.stderr,
                flush=True,
            )

    try:
        rates = FaultRates()
        for name in ("falls", "sos", "absences"):
            if getattr(args, name) is not None:
                rates = dataclasses.replace(rates, **{name: getattr(args, name)})
        if args.outages is not None:
            rates = dataclasses.replace(rates, meter_outages=args.outages)
        run = run_quality(
            url,
            residents=args.residents,
            days=args.days,
            seed=args.seed,
            meter_interval_s=args.meter_interval,
            warmup_days=args.warmup_days,
            progress=progress,
            rates=rates,
        )
        report = quality_report(run, zone)
        if args.plot:
            from gridwatch.simulators.quality_plot import plot_week

            resident = plot_week(url, run, zone, args.plot)
            print(f"plot of {resident}'s week: {args.plot}", file=sys.stderr)
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for key, value in report.items():
        print(f"{key}: {value}")
    print(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
