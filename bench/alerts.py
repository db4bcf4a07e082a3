"""Alert engine at scale: one evaluation pass, and deadline → MQTT latency in continuous mode.

    python bench/alerts.py [--residents 100000] [--fire 1000] [--spread-s 60]
        [--meter-interval 60] [--history 4] [--partitions N] [--grids 8] [--database-url URL]
        [--mqtt-url URL] [--profile] [--keep]

The requirement: at 100,000 residents one evaluation pass takes under 5 s, and in continuous
mode every alert is committed and published within 10 s of its deadline.

A fresh database (on the server of --database-url) gets --grids square grids and N residents
living alone, each with a meter and a door sensor, registered 30 days ago, bulk-loaded with
COPY. Every meter has --history readings 15 minutes apart over the last hour, the oldest
one a kettle (a sign of life, so no activity rule holds), the newest 0-15 minutes old, so
nothing fires for 45 minutes.

1. eval_pass_s: an engine made by the service's `make_engine` loads (`load_s`), then steps
   once at the same `now`: every home is dirty after a load, so the step evaluates all N
   (rules, lifecycle, next deadline into the heap). Repeated with every home marked dirty
   again and the heap emptied; the best of three is `eval_pass_s`. Nothing holds, so the
   passes write nothing (checked). The CPU time of the thread is printed beside each wall
   time: on a shared machine the difference is the neighbours' share.
2. poll_s: the same engine then polls once, as the service does every second, after the
   meters' last `overlap` seconds (the 120 s the engine re-reads on every poll) have been
   written at the live rate (below). refresh_homes_s: it looks at who it watches, as the
   service does every 5 seconds; homes_digest_s: the same with the digest of the homes that
   the service computes at least once a minute (nothing changed: nothing taken in or let go).
   With --partitions N (N > 1), N more engines, one per partition (`--partition I/N`), each
   load, make their passes and poll the same way, one after the other: the per-partition
   figures, and their ratio to the one engine's measured just before.
3. fire_latency: --fire homes (spread evenly over the ids) get their readings moved so that
   their last one is exactly 60 minutes (the default `meter_offline` threshold) before a
   deadline; the deadlines are spread over --spread-s seconds starting after the measured
   load and pass have had time to run twice. `meter_offline` is the rule with an exact
   deadline: last meter data + 60 min, whatever the time of day. Then the real service,
   `gridwatch.dispatch.service.run_alerts`, runs in a thread (its engine and delivery threads,
   a private topic prefix and client id) while a paho subscriber on `{prefix}/alerts/#`
   stamps every message on arrival; latency = arrival wall time - the home's deadline
   (`engine_lag`: the engine's clock when it opened the alert - the deadline). Meanwhile the
   other meters keep reporting every --meter-interval seconds (COPY straight into
   meter_readings, as the ingest worker writes them; 0 turns this off), so the service polls
   in its steady state from its first poll on.

Missing alerts (expected but not received within 30 s of the last deadline) and unexpected
ones (any other resident or kind) are listed. The last line printed is one JSON object with
`eval_pass_s` and `fire_latency_p95_s`, and `load_s`, `eval_pass_cpu_s`, `poll_s`, `fired`,
`expected`, `missing`, `fire_latency_max_s`, `engine_lag_p95_s`, `loadavg_*` and more; the
exit status is 0 when both targets are met and every expected alert came exactly as
expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import math
import os
import pstats
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import shapely

from gridwatch.alerts.engine import AlertEngine
from gridwatch.alerts.partition import Partition
from gridwatch.alerts.rules import Rules
from gridwatch.dispatch.service import make_engine, run_alerts
from gridwatch.model.vocabulary import METER_OFFLINE
from gridwatch.settings import Settings
from gridwatch.store import alert_store
from gridwatch.store.migrate import migrate

# Run as `python bench/alerts.py`, the path has bench/ but not the checkout's root, which
# holds tests/support: the alert subscriber, shared with the tests.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.support.broker import Subscriber

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
EVAL_PASS_TARGET_S = 5.0
LATENCY_TARGET_S = 10.0
GRACE_S = 30.0  # how long after the last deadline a missing alert is still waited for
READING_EVERY = timedelta(minutes=15)
BASE_W = 40.0  # a fridge and standby: no sign of life
KETTLE_W = 2000.0  # a sign of life by itself
GRID_DEG = 0.01
ORIGIN_LON, ORIGIN_LAT = 109.84, 40.65  # Baotou
OFFLINE = Rules().offline


# -- the district -----------------------------------------------------------------------------


def meter_of(index: int) -> str:
    return f"M{index:07d}"


def resident_of(index: int) -> str:
    return f"R{index:07d}"


def fire_indices(residents: int, fire: int) -> list[int]:
    """The homes whose meter goes quiet during the bench, spread evenly over the ids."""
    step = residents / fire
    return [int(k * step) for k in range(fire)]


def load_district(
    conn: psycopg.Connection, residents: int, now: datetime, grid_count: int = 8
) -> None:
    """`grid_count` square grids, residents living alone (registered 30 days ago) spread over
    them in turn, and their devices, by COPY."""
    rows = max(1, round(math.sqrt(grid_count / 2)))
    columns = math.ceil(grid_count / rows)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY grids (code, name, level, geometry, min_lon, min_lat, max_lon, max_lat, "
            "area_m2) FROM STDIN"
        ) as copy:
            for row in range(rows):
                for column in range(min(columns, grid_count - row * columns)):
                    x0 = ORIGIN_LON + column * GRID_DEG
                    y0 = ORIGIN_LAT + row * GRID_DEG
                    square = shapely.box(x0, y0, x0 + GRID_DEG, y0 + GRID_DEG)
                    width_m = GRID_DEG * 111_320 * math.cos(math.radians(y0))
                    code = f"BENCH-{row:02d}{column:02d}"
                    area_m2 = width_m * GRID_DEG * 111_320
                    copy.write_row((code, code, "grid", square.wkb, *square.bounds, area_m2))
        grids = cur.execute("SELECT id, min_lon, min_lat FROM grids ORDER BY code").fetchall()
        registered = now - timedelta(days=30)
        with cur.copy(
            "COPY residents (id, name, grid_id, lat, lon, living_alone, created_at) FROM STDIN"
        ) as copy:
            for i in range(residents):
                gid, lon, lat = grids[i % len(grids)]
                spot = (i // len(grids)) % 10_000 / 10_000 * GRID_DEG
                copy.write_row(
                    (resident_of(i), f"resident {i}", gid, lat + spot, lon + spot, True, registered)
                )
        with cur.copy("COPY devices (kind, id, resident_id, created_at) FROM STDIN") as copy:
            for i in range(residents):
                copy.write_row(("meter", meter_of(i), resident_of(i), registered))
                copy.write_row(("sensor", f"S{i:07d}-door", resident_of(i), registered))
    conn.commit()


def copy_history(conn: psycopg.Connection, lasts: dict[str, datetime], history: int) -> int:
    """For each meter, `history` readings 15 min apart up to its last one, the oldest a
    kettle (a sign of life); received a second after each was observed."""
    rows = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY meter_readings (meter_id, observed_at, received_at, power_w) FROM STDIN"
        ) as copy,
    ):
        for meter, last in lasts.items():
            for k in range(history):
                at = last - READING_EVERY * (history - 1 - k)
                power = KETTLE_W if k == 0 else BASE_W + (k % 3)
                copy.write_row((meter, at, at + timedelta(seconds=1), power))
                rows += 1
    conn.commit()
    return rows


def copy_live_readings(
    conn: psycopg.Connection, meters: list[str], start: int, count: int, at: datetime
) -> int:
    """`count` base-load readings of the meters from position `start` on (wrapping), at `at`."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY meter_readings (meter_id, observed_at, received_at, power_w) FROM STDIN"
        ) as copy,
    ):
        for k in range(count):
            copy.write_row((meters[(start + k) % len(meters)], at, at, BASE_W))
    conn.commit()
    return count


class Feeder:
    """The other meters keep reporting: every second, the share of them due that second."""

    def __init__(self, url: str, meters: list[str], interval_s: float) -> None:
        self.url = url
        self.meters = meters
        self.per_second = len(meters) / interval_s if interval_s > 0 else 0.0
        self.position = 0
        self.rows = 0
        self.late_ticks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-feeder", daemon=True)

    def prefill(self, seconds: float, until: datetime) -> int:
        """The last `seconds` of readings, as if the meters had been reporting all along."""
        if not self.per_second:
            return 0
        with psycopg.connect(self.url) as conn:
            for s in range(int(seconds), 0, -1):
                self._tick(conn, until - timedelta(seconds=s))
        return self.rows

    def _tick(self, conn: psycopg.Connection, at: datetime) -> None:
        due = int(self.position + self.per_second) - int(self.position)
        self.rows += copy_live_readings(conn, self.meters, int(self.position), due, at)
        self.position += self.per_second

    def _run(self) -> None:
        with psycopg.connect(self.url) as conn:
            tick = time.monotonic()
            while not self.stop.is_set():
                self._tick(conn, datetime.now(UTC))
                tick += 1.0
                if time.monotonic() > tick:
                    self.late_ticks += 1
                self.stop.wait(max(0.0, tick - time.monotonic()))

    def start(self) -> None:
        if self.per_second:
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Passes:
    """Wall and CPU seconds (this thread) of the load and of each full pass."""

    load_s: float = 0.0
    load_cpu_s: float = 0.0
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    actions: int = 0


def evaluation_passes(engine: AlertEngine, now: datetime, passes: int, profile: bool) -> Passes:
    """Load at `now`, then time full passes over every home at the same `now`."""
    timed = Passes()
    wall, cpu = time.perf_counter(), time.thread_time()
    engine.load(now)
    timed.load_s, timed.load_cpu_s = time.perf_counter() - wall, time.thread_time() - cpu
    for n in range(passes + (1 if profile else 0)):
        if n:  # as right after a load: every home to look at, nothing scheduled yet
            engine._dirty = set(engine.homes)
            engine._due = []
        if profile and n == passes:
            profiler = cProfile.Profile()
            timed.actions += len(profiler.runcall(engine.step, now))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            sys.stdout.flush()
            print(f"cProfile of one more pass:\n{out.getvalue()}", file=sys.stderr, flush=True)
            continue
        wall, cpu = time.perf_counter(), time.thread_time()
        timed.actions += len(engine.step(now))
        timed.wall_s.append(time.perf_counter() - wall)
        timed.cpu_s.append(time.thread_time() - cpu)
    return timed


def timed_refresh(engine: AlertEngine, now: datetime) -> float:
    """Seconds the engine takes to look at who it watches (nothing changed since its load)."""
    wall = time.perf_counter()
    changes = engine.refresh_homes(now)
    if changes != (0, 0):
        raise SystemExit(f"nothing changed, yet the engine took in and let go {changes}")
    return time.perf_counter() - wall


def partition_passes(url: str, settings: Settings, now: datetime, args, homes: int) -> dict:
    """One engine per partition, one after the other: homes, load, best pass, one poll."""
    found: dict[str, list] = {
        "partition_homes": [],
        "partition_load_s": [],
        "partition_eval_pass_s": [],
        "partition_eval_pass_cpu_s": [],
        "partition_poll_s": [],
        "partition_poll_cpu_s": [],
    }
    for index in range(args.partitions):
        with psycopg.connect(url) as conn:
            engine = make_engine(settings, conn, Partition(index, args.partitions))
            timed = evaluation_passes(engine, now, args.passes, profile=False)
            wall, cpu = time.perf_counter(), time.thread_time()
            engine.poll()
            poll_s, poll_cpu_s = time.perf_counter() - wall, time.thread_time() - cpu
        found["partition_homes"].append(len(engine.homes))
        found["partition_load_s"].append(seconds(timed.load_s))
        found["partition_eval_pass_s"].append(seconds(min(timed.wall_s)))
        found["partition_eval_pass_cpu_s"].append(seconds(min(timed.cpu_s)))
        found["partition_poll_s"].append(seconds(poll_s))
        found["partition_poll_cpu_s"].append(seconds(poll_cpu_s))
    if sum(found["partition_homes"]) != homes:
        raise SystemExit(f"the partitions watch {found['partition_homes']} homes, not {homes}")
    return {"partitions": args.partitions, **found}


class ServiceLog(logging.Handler):
    """When the service's engine finished its load (its 'watching N homes' line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.loaded_at: float | None = None
        self.changes = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("alert engine watching") and self.loaded_at is None:
            self.loaded_at = record.created
        elif record.getMessage().startswith("alert engine:"):
            self.changes += 1


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--fire", type=int, default=1000, help="homes whose deadline comes")
    parser.add_argument("--spread-s", type=float, default=60.0, help="deadlines spread over")
    parser.add_argument(
        "--meter-interval", type=float, default=60.0, help="other meters report every S s; 0: off"
    )
    parser.add_argument("--history", type=int, default=4, help="readings per meter at load")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--partitions", type=int, default=1, help="also time one engine per partition of N"
    )
    parser.add_argument(
        "--grids", type=int, default=8, help="grids the residents are spread over (by turns)"
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("GRIDWATCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--mqtt-url", default=os.environ.get("GRIDWATCH_MQTT_URL", DEFAULT_MQTT_URL)
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one more pass (stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.residents < 10 or args.history < 1:
        parser.error("need at least 10 residents and 1 reading per meter")
    if 0 < args.meter_interval < 1:
        parser.error("--meter-interval is 0 (off) or at least 1 s")
    if args.partitions < 1 or args.grids < 1:
        parser.error("--partitions and --grids are at least 1")
    fire = min(args.fire, args.residents // 10)

    tag = uuid.uuid4().hex[:8]
    name = f"gw_bench_alerts_{tag}"
    base = args.database_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    settings = Settings(
        database_url=url,
        mqtt_url=args.mqtt_url,
        topic_prefix=f"bench-alerts-{tag}",
        mqtt_client_id=f"gw-bench-alerts-{tag}",
        alert_webhooks=(),
    )
    zone = settings.zone
    load_start = os.getloadavg()
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        report = run(args, fire, url, settings)
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report["loadavg_start"] = [round(x, 2) for x in load_start]
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["cpus"] = os.cpu_count()
    report["zone"] = zone.key
    ok = report.pop("_ok")
    for key, value in report.items():
        if key not in ("missing", "unexpected", "eval_passes_s"):
            print(f"{key}: {value}")
    print(orjson.dumps(report).decode())
    return 0 if ok else 1


def run(args, fire: int, url: str, settings: Settings) -> dict:
    n = args.residents
    zone = settings.zone

    # 1. The district and its data.
    started = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        mode = migrate(conn, tz=settings.tz).mode.name
        load_district(conn, n, now, args.grids)
        lasts = {meter_of(i): now - timedelta(seconds=(i * 7919) % 900) for i in range(n)}
        history_rows = copy_history(conn, lasts, args.history)
        conn.autocommit = True
        conn.execute("ANALYZE grids, residents, devices, meter_readings")
    fire_homes = fire_indices(n, fire)
    fire_set = set(fire_homes)
    setup_s = time.perf_counter() - started
    print(
        f"setup: {n:,} residents, {history_rows:,} readings ({mode} storage) in {setup_s:.1f} s; "
        f"local time {now.astimezone(zone):%H:%M}"
    )

    # 2. One evaluation pass over every home, then one poll of the service's steady state.
    now = datetime.now(UTC)
    feeder = Feeder(url, [m for i, m in enumerate(lasts) if i not in fire_set], args.meter_interval)
    with psycopg.connect(url) as conn:
        engine = make_engine(settings, conn)
        timed = evaluation_passes(engine, now, args.passes, args.profile)
        homes = len(engine.homes)
        overlap_s = engine.overlap.total_seconds()
        prefill = feeder.prefill(overlap_s, datetime.now(UTC))
        wall, cpu = time.perf_counter(), time.thread_time()
        polled = engine.poll()
        poll_s, poll_cpu_s = time.perf_counter() - wall, time.thread_time() - cpu
        refresh_homes_s = timed_refresh(engine, now)
        digest_every_s, alert_store.HOMES_DIGEST_EVERY_S = alert_store.HOMES_DIGEST_EVERY_S, 0
        homes_digest_s = timed_refresh(engine, now)
        alert_store.HOMES_DIGEST_EVERY_S = digest_every_s
    del engine
    split = partition_passes(url, settings, now, args, homes) if args.partitions > 1 else {}
    eval_pass_s, eval_pass_cpu_s = min(timed.wall_s), min(timed.cpu_s)
    print(
        f"eval: load {timed.load_s:.2f} s (CPU {timed.load_cpu_s:.2f} s); "
        f"passes over {homes:,} homes "
        + ", ".join(
            f"{w:.2f} (CPU {c:.2f})" for w, c in zip(timed.wall_s, timed.cpu_s, strict=True)
        )
        + f" s; best {eval_pass_s:.2f} s = {eval_pass_s / homes * 1e6:.1f} µs/home; "
        f"actions {timed.actions}"
    )
    live = (
        f"every {args.meter_interval:g} s ({feeder.per_second:,.0f} readings/s)"
        if feeder.per_second
        else "no more (--meter-interval 0)"
    )
    print(
        f"poll: other meters report {live}; each poll re-reads the last {overlap_s:.0f} s: "
        f"{polled:,} readings ({prefill:,} prefilled) in {poll_s:.2f} s (CPU {poll_cpu_s:.2f} s); "
        f"looking at who is watched {refresh_homes_s:.3f} s (every 5 s), with the digest of "
        f"them {homes_digest_s:.2f} s (once a minute)"
    )
    if split:
        slowest = {k: max(split[f"partition_{k}_s"]) for k in ("eval_pass", "poll", "load")}
        print(
            f"partitions: {args.partitions} engines watch "
            f"{'+'.join(f'{h:,}' for h in split['partition_homes'])} homes; the slowest: "
            f"pass {slowest['eval_pass']:.2f} s (x{slowest['eval_pass'] / eval_pass_s:.2f} "
            f"of one engine's), poll {slowest['poll']:.2f} s (x{slowest['poll'] / poll_s:.2f}), "
            f"load {slowest['load']:.2f} s (x{slowest['load'] / timed.load_s:.2f})"
        )

    # 3. Deadlines during the run: the service must load and make its first pass before.
    lead_s = 2 * (timed.load_s + timed.wall_s[0]) + 15.0
    fire_start = datetime.now(UTC) + timedelta(seconds=lead_s)
    deadlines = {
        resident_of(i): fire_start + timedelta(seconds=args.spread_s * k / fire)
        for k, i in enumerate(fire_homes)
    }
    with psycopg.connect(url) as conn:
        targets = [meter_of(i) for i in fire_homes]
        conn.execute("DELETE FROM meter_readings WHERE meter_id = ANY(%s)", (targets,))
        last_readings = {meter_of(i): deadlines[resident_of(i)] - OFFLINE for i in fire_homes}
        copy_history(conn, last_readings, args.history)
    print(f"fire: {fire} meter_offline deadlines from +{lead_s:.0f} s over {args.spread_s:.0f} s")

    # 4. The real service, a subscriber, and the other meters reporting.
    subscriber = Subscriber(
        settings.mqtt_url, f"{settings.topic_prefix}/alerts/#", f"gw-bench-sub-{uuid.uuid4().hex}"
    )
    service_log = ServiceLog()
    service_logger = logging.getLogger("gridwatch.dispatch.service")
    service_logger.addHandler(service_log)
    service_logger.setLevel(logging.INFO)
    stop = threading.Event()
    service = threading.Thread(
        target=run_alerts, args=(settings, url, settings.mqtt_url, stop), name="alert-service"
    )
    service_started = time.time()
    feeder.start()
    service.start()
    last_deadline = max(deadlines.values()).timestamp()
    received: dict[str, float] = {}
    unexpected: list[dict] = []
    seen = 0
    try:
        while time.time() < last_deadline + GRACE_S and service.is_alive():
            messages = subscriber.messages[seen:]
            arrivals = subscriber.arrived[seen : seen + len(messages)]
            for arrived, (_topic, payload) in zip(arrivals, messages, strict=True):
                resident = payload.get("resident_id")
                expected = (
                    resident in deadlines
                    and payload.get("kind") == METER_OFFLINE
                    and payload.get("state") == "open"
                )
                if not expected:
                    unexpected.append(payload)
                elif resident not in received:
                    received[resident] = arrived
            seen += len(messages)
            if len(received) == len(deadlines):
                break
            time.sleep(0.2)
    finally:
        feeder.close()
        stop.set()
        service.join()
        subscriber.close()
        service_logger.removeHandler(service_log)

    # 5. What came, when.
    latencies = [received[r] - deadlines[r].timestamp() for r in received]
    missing = sorted(set(deadlines) - set(received))
    with psycopg.connect(url) as conn:
        opened = conn.execute(
            "SELECT a.resident_id, a.kind, a.opened_at, o.published_at FROM alerts a "
            "JOIN alert_outbox o ON o.alert_id = a.id"
        ).fetchall()
    stray = [(r, k) for r, k, _, _ in opened if r not in deadlines or k != METER_OFFLINE]
    engine_lags = [
        (at - deadlines[r]).total_seconds() for r, k, at, _ in opened if (r, k) not in stray
    ]
    published_lags = [
        (pub - deadlines[r]).total_seconds()
        for r, k, _, pub in opened
        if (r, k) not in stray and pub is not None
    ]
    ready_s = None if service_log.loaded_at is None else service_log.loaded_at - service_started
    print(
        f"service: engine loaded after {ready_s if ready_s is None else round(ready_s, 1)} s; "
        f"first deadline at +{fire_start.timestamp() - service_started:.1f} s; "
        f"{service_log.changes} steps with changes; feeder wrote {feeder.rows:,} readings "
        f"({feeder.late_ticks} late seconds)"
    )
    for resident in missing[:20]:
        print(f"MISSING: {resident} (deadline {deadlines[resident].isoformat()})")
    for payload in unexpected[:20]:
        print(f"UNEXPECTED: {payload}")
    if stray:
        print(f"UNEXPECTED alerts in the database: {len(stray)}, e.g. {stray[:5]}")

    p95 = quantile(latencies, 0.95)
    worst = max(latencies) if latencies else None
    ok = (
        eval_pass_s < EVAL_PASS_TARGET_S
        and not missing
        and not unexpected
        and not stray
        and timed.actions == 0
        and worst is not None
        and worst <= LATENCY_TARGET_S
    )
    return {
        "residents": n,
        "storage": mode,
        "setup_s": seconds(setup_s),
        "load_s": seconds(timed.load_s),
        "load_cpu_s": seconds(timed.load_cpu_s),
        "eval_pass_s": seconds(eval_pass_s),
        "eval_pass_cpu_s": seconds(eval_pass_cpu_s),
        "eval_passes_s": [seconds(p) for p in timed.wall_s],
        "eval_us_per_home": round(eval_pass_s / homes * 1e6, 1),
        "expected": len(deadlines),
        "fired": len(received),
        "missing": missing,
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected) + len(stray),
        "fire_latency_p50_s": seconds(quantile(latencies, 0.5)),
        "fire_latency_p95_s": seconds(p95),
        "fire_latency_max_s": seconds(worst),
        "engine_lag_p95_s": seconds(quantile(engine_lags, 0.95)),
        "engine_lag_max_s": seconds(max(engine_lags) if engine_lags else None),
        "published_lag_p95_s": seconds(quantile(published_lags, 0.95)),
        "poll_s": seconds(poll_s),
        "poll_cpu_s": seconds(poll_cpu_s),
        "poll_readings": polled,
        "refresh_homes_s": seconds(refresh_homes_s),
        "homes_digest_s": seconds(homes_digest_s),
        **split,
        "service_ready_s": seconds(ready_s),
        "meter_interval_s": args.meter_interval,
        "live_readings": feeder.rows,
        "eval_pass_target_met": eval_pass_s < EVAL_PASS_TARGET_S,
        "latency_target_met": worst is not None and worst <= LATENCY_TARGET_S and not missing,
        "_ok": ok,
    }


if __name__ == "__main__":
    sys.exit(main())
