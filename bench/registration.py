"""Benchmark the registration check of ingest against parsing the same messages.

    python bench/registration.py [--meters 100000] [--messages 300000] [--database-url URL]

A fresh database (created on the --database-url server, default GRIDWATCH_DATABASE_URL,
else postgresql://postgres@127.0.0.1:5432/postgres, and dropped afterwards) gets --meters
registered meters. Batches of 3,000 meter messages are parsed by the meter parser (what
ingest does for every message anyway: the baseline) and then checked: once from registered
meters, once from unregistered ones (every message a dead letter; the registry is reloaded
at most once per few seconds however many miss). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg

from gridwatch.ingest import meter
from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.registration import RegistrationCheck
from gridwatch.ingest.writer import Message
from gridwatch.store.migrate import migrate

BATCH = 3000
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("GRIDWATCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()
    name = f"gwbench_registration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = args.database_url.rpartition("/")
    try:
        with psycopg.connect(f"{base}/{name}") as conn:
            migrate(conn)
            results = measure(conn, args.meters, args.messages)
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(results))


def measure(conn: psycopg.Connection, meters: int, messages: int) -> dict:
    ids = [f"M{n:07d}" for n in range(meters)]
    with conn.cursor().copy("COPY devices (kind, id) FROM STDIN") as copy:
        for meter_id in ids:
            copy.write_row(("meter", meter_id))
    conn.commit()
    check = RegistrationCheck(conn)
    received = datetime.now(UTC)
    ctx = ParseContext(received, ZoneInfo("Asia/Shanghai"))
    payload = orjson.dumps({"ts": (received - timedelta(minutes=1)).isoformat(), "power_w": 1.0})
    batches = max(1, messages // BATCH)

    def batch_of(prefix: str, number: int) -> list[tuple[str, bytes]]:
        return [
            (f"{prefix}{ids[(number * BATCH + i) % meters][1:]}", payload) for i in range(BATCH)
        ]

    timings = {"parse": 0.0, "check_registered": 0.0, "check_unregistered": 0.0}
    refused = {"check_registered": 0, "check_unregistered": 0}
    for number in range(batches):
        for phase, prefix in (("check_registered", "M"), ("check_unregistered", "X")):
            raw = batch_of(prefix, number)
            started = time.perf_counter()
            parsed = [
                Message("t", data, received, meter.parse(meter_id, data, ctx))
                for meter_id, data in raw
            ]
            middle = time.perf_counter()
            refused[phase] += check.refuse_unregistered(parsed, conn)
            ended = time.perf_counter()
            timings["parse"] += middle - started
            timings[phase] += ended - middle
    per_message = {
        k: v / (batches * BATCH * (2 if k == "parse" else 1)) for k, v in timings.items()
    }
    for phase, seconds in per_message.items():
        line = f"{phase:<20} {seconds * 1e6:7.3f} us/message"
        if phase != "parse":
            line += (
                f"  ({seconds / per_message['parse']:.3f} x parsing; {refused[phase]:,} refused)"
            )
        print(line)
    return {
        "meters": meters,
        "messages_per_phase": batches * BATCH,
        "us_per_message": {k: round(v * 1e6, 3) for k, v in per_message.items()},
        "ratio_to_parse": {
            k: round(v / per_message["parse"], 4) for k, v in per_message.items() if k != "parse"
        },
        "refused": refused,
    }


if __name__ == "__main__":
    main()
