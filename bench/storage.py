"""Storage per resident and day: the simulator's traffic through the real parsers and batch
writer into a fresh database, then the size on disk of each table.

    python bench/storage.py [--residents 300] [--days 1] [--meter-interval 60]
        [--project 1000000] [--database-url URL] [--keep]

The sample district's first --residents residents (meters, door/curtain/light sensors, some
SOS buttons and fall detectors, their grid workers' patrols and visits, hazards) live
--days simulated days from a fixed Monday, with the simulator's usual incidents but no
delivery faults (no duplicates or garbage: this measures what is kept). Every message is
parsed and written as the ingest worker does (`TopicRouter.parse`, `BatchWriter.write`,
COPY), in one-hour steps. Then VACUUM ANALYZE, and per table: rows, bytes on disk
(`pg_total_relation_size` summed over its partitions: heap, TOAST and every index),
bytes per row. The messages per resident and day by kind and the bytes per resident and
day are projected to --project residents. The last line is one JSON object.

On a TimescaleDB server (gridwatch chose timescale storage) sizes come from
`hypertable_size()` (a hypertable's parent is empty: its chunks hold the rows); then every
chunk is compressed (`compress_chunk`, what the policy does after 7 days) and measured
again, and the projection uses that measured ratio. On plain PostgreSQL there is no
compression and the projection's compressed figure uses --compression-ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psycopg
from psycopg import sql

from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter
from gridwatch.simulate_commands import add_district_options
from gridwatch.simulators.cli import sample_district
from gridwatch.simulators.faults import FaultRates
from gridwatch.simulators.sample import load_sample_district
from gridwatch.simulators.scenario import Scenario
from gridwatch.store.migrate import migrate, read_meta
from gridwatch.store.partitions import TIMESERIES_TABLES

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 2, tzinfo=ZONE)  # a Monday
TABLES = ("meter_readings", "sensor_events", "patrol_checkins", "hazard_reports", "dead_letters")
STEP = timedelta(hours=1)


def table_size(conn: psycopg.Connection, table: str, mode: str) -> tuple[int, int]:
    """(rows, bytes on disk of the table with its partitions or chunks, TOAST and indexes)."""
    name = sql.Identifier(table)
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()[0]
    if mode == "timescale" and table in TIMESERIES_TABLES:
        size = conn.execute("SELECT hypertable_size(%s::regclass)", (table,)).fetchone()[0]
        return rows, int(size or 0)
    # A partitioned table's own size is 0: its partitions hold the rows and indexes.
    size = conn.execute(
        "SELECT greatest(pg_total_relation_size(%(t)s::regclass), (SELECT coalesce(sum("
        "pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%(t)s::regclass)))",
        {"t": table},
    ).fetchone()[0]
    return rows, int(size)


def compress_all(conn: psycopg.Connection) -> float:
    """Compress every chunk of every time-series hypertable; returns the seconds it took."""
    started = time.perf_counter()
    for table in TIMESERIES_TABLES:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::regclass) c",
            (table,),
        )
    return time.perf_counter() - started


def write_day(url: str, scenario: Scenario) -> Counter:
    """Every message of the scenario parsed and written as the worker does; counts by kind."""
    kinds: Counter = Counter()
    router = TopicRouter("gw")
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        writer = BatchWriter(conn, mode=read_meta(conn)["mode"], zone=ZONE)
        for step_end, batch in scenario.messages_by_step(STEP):
            messages = []
            for _at, topic, payload in batch:
                kinds[topic.split("/")[1] if topic.startswith("gw/") else "owntracks"] += 1
                ctx = ParseContext(step_end, ZONE)
                messages.append(parse_message(router, topic, payload, ctx))
            if messages:
                writer.write(messages)
                conn.commit()
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_district_options(parser, residents=300)
    parser.add_argument("--project", type=int, default=1_000_000, help="residents to project to")
    parser.add_argument(
        "--compression-ratio",
        type=float,
        default=10.0,
        help="raw / compressed for the projection (TimescaleDB documents more than 90%% saved)",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("GRIDWATCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.compression_ratio < 1:
        parser.error("need a compression ratio >= 1")

    name = f"gw_bench_storage_{uuid.uuid4().hex[:8]}"
    url = f"{args.database_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        report = run(args, url)
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(orjson.dumps(report).decode())
    return 0


def run(args, url: str) -> dict:
    district = sample_district(args.residents)
    residents = len(district.residents)
    with psycopg.connect(url) as conn:
        mode = migrate(conn, tz=ZONE.key).mode.name
        load_sample_district(conn, Path(tempfile.mkdtemp(prefix="gw-storage-")), district=district)
        conn.execute("UPDATE residents SET created_at = %s", (START - timedelta(days=30),))
    rates = FaultRates().without_delivery_faults()
    scenario = Scenario(
        district, START, args.days, meter_interval_s=args.meter_interval, tz=ZONE, rates=rates
    )
    started = time.perf_counter()
    kinds = write_day(url, scenario)
    write_s = time.perf_counter() - started
    compressed: dict[str, tuple[int, int]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        sizes = {table: table_size(conn, table, mode) for table in TABLES}
        if mode == "timescale":
            compress_s = compress_all(conn)
            conn.execute("VACUUM ANALYZE")
            compressed = {table: table_size(conn, table, mode) for table in TABLES}
    resident_days = residents * args.days
    messages = sum(kinds.values())
    print(
        f"{residents} residents, {args.days:g} days, meters every {args.meter_interval} s "
        f"({mode} storage): {messages:,} messages written in {write_s:.1f} s "
        f"({messages / write_s:,.0f}/s)"
    )
    per_day = {kind: round(n / resident_days, 1) for kind, n in sorted(kinds.items())}
    print(f"messages per resident and day: {per_day}")
    total_bytes = 0
    per_row = {}
    for table, (rows, size) in sizes.items():
        total_bytes += size
        per_row[table] = round(size / rows, 1) if rows else None
        shown = f"{per_row[table]:,.0f} B/row" if rows else "-"
        # Few rows: the per-row figure is mostly the empty pages of each daily partition.
        print(f"  {table:<16} {rows:>10,} rows {size / 1e6:>9.1f} MB  {shown}")
    ratio, ratio_source = args.compression_ratio, "assumed"
    ratios: dict[str, float | None] = {}
    if compressed:
        for table, (_rows, size) in compressed.items():
            before = sizes[table][1]
            ratios[table] = round(before / size, 2) if size and sizes[table][0] else None
            shown = f"{ratios[table]:.1f}:1" if ratios[table] else "-"
            print(f"  {table:<16} compressed {size / 1e6:>9.1f} MB  ({shown})")
        ratio = total_bytes / sum(size for _rows, size in compressed.values())
        ratio_source = "measured"
        print(f"compressed every chunk in {compress_s:.1f} s: {ratio:.1f}:1 over all tables")
    bytes_per_resident_day = total_bytes / resident_days
    projected_gb = bytes_per_resident_day * args.project / 1e9
    print(
        f"{bytes_per_resident_day / 1e3:,.1f} kB per resident and day; {args.project:,} "
        f"residents: {projected_gb:,.1f} GB per day uncompressed, "
        f"{projected_gb / ratio:,.1f} GB at {ratio:.1f}:1 ({ratio_source}), "
        f"{projected_gb * 400 / ratio / 1e3:,.1f} TB for 400 days compressed"
    )
    return {
        "residents": residents,
        "days": args.days,
        "meter_interval_s": args.meter_interval,
        "storage": mode,
        "messages": messages,
        "messages_per_resident_day": per_day,
        "rows": {t: r for t, (r, _s) in sizes.items()},
        "bytes": {t: s for t, (_r, s) in sizes.items()},
        "bytes_per_row": per_row,
        "bytes_per_resident_day": round(bytes_per_resident_day),
        "project_residents": args.project,
        "projected_gb_per_day": round(projected_gb, 2),
        "projected_gb_per_day_compressed": round(projected_gb / ratio, 2),
        "compression_ratio": round(ratio, 2),
        "compression_ratio_source": ratio_source,
        "compressed_bytes": {t: s for t, (_r, s) in compressed.items()},
        "compression_ratio_per_table": ratios,
        "write_s": round(write_s, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
