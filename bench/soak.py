"""Soak: the simulator's meter load through gridwatch ingest for minutes, with random faults.

    python bench/soak.py --minutes 30 --rate 35
    python bench/soak.py --minutes 5 --rate 1000 --seed 7

A private Mosquitto (deploy/mosquitto.conf's limits, persistence on) and a private
PostgreSQL, both on free ports of 127.0.0.1; `gridwatch ingest` reaches each through a
fault proxy (`tests.support.netfaults`), `gridwatch simulate --load` publishes to the
broker directly, as devices do. At random times (on average every `--fault-every` seconds)
one fault from the fault tests happens: the broker restarted, PostgreSQL stopped hard for
10-60 s and started again, the ingest worker killed with SIGKILL and started again, or the
link to the broker black-holed for 10-30 s. Progress every 30 s; the last line is one JSON
object:

- `published`: messages the simulator published (and the broker acknowledged);
- `stored`, `dead_lettered`: meter rows and dead letters of the load;
- `lost` = published - stored - dead_lettered; `duplicated`: rows beyond one per dedupe key;
- `max_lag_s`: how far the stored data fell behind, at worst: sampled every 2 s, the time
  since the newest reading stored was taken (the load never pauses, so this is how late a
  reading reaches the database, faults included);
- `rss_mb_start`, `rss_mb_end`: the ingest worker's resident memory a minute in and at the
  end (`rss_mb_max`: the most seen; a killed worker is a new process, so `ingest_starts`);
- `faults`: how many of each happened.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg

from gridwatch.ingest.mqtt import BrokerAddress, publisher
from gridwatch.simulate_commands import add_load_options
from gridwatch.store.migrate import migrate

# Run as `python bench/soak.py`, the path has bench/ but not the checkout's root, which
# holds tests/support: the fault proxy and private services, shared with the tests.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.support.netfaults import FaultProxy
from tests.support.private_services import (
    GridwatchProcess,
    PrivateMosquitto,
    PrivatePostgres,
    rss_mb,
)

FAULTS = ("broker_restart", "database_stop", "ingest_kill", "broker_blackhole")
PROGRESS_EVERY_S = 30.0
PROBE = "PROBE"  # meter id of the messages that show the worker is subscribed; not counted
SETTLE_S = 180.0  # after the simulator is done, how long the rest may take to be stored


class Soak:
    """The services, the processes and the counts of one soak run."""

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.rng = random.Random(args.seed)  # noqa: S311 - when faults come, not a secret
        self.prefix = f"soak{uuid.uuid4().hex[:6]}"
        self.client_id = f"{self.prefix}-ingest"
        self.broker = PrivateMosquitto(workdir / "mosquitto")
        self.postgres = PrivatePostgres(workdir / "pg")
        self.broker_proxy: FaultProxy | None = None
        self.database_proxy: FaultProxy | None = None
        self.ingest: GridwatchProcess | None = None
        self.ingest_starts = 0
        self.faults: Counter = Counter()
        self.rss: list[float] = []
        self.max_lag_s = 0.0
        self.lock = threading.Lock()  # one fault at a time, and none while counting

    # -- services and processes ------------------------------------------------------------

    def start(self) -> None:
        self.broker.start()
        self.postgres.start()
        with psycopg.connect(self.postgres.url) as conn:
            migrate(conn)
        self.broker_proxy = FaultProxy("127.0.0.1", self.broker.port).start()
        self.database_proxy = FaultProxy("127.0.0.1", self.postgres.port).start()
        self.start_ingest()
        self.wait_until_subscribed()

    def env(self, **values: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
        settings = {
            "TOPIC_PREFIX": self.prefix,
            "DATA_DIR": str(self.workdir / "data"),
            "MQTT_KEEPALIVE_S": "10",
            **values,
        }
        return {**inherited, **{f"GRIDWATCH_{k}": v for k, v in settings.items()}}

    def start_ingest(self) -> None:
        database_url = f"postgresql://postgres@127.0.0.1:{self.database_proxy.port}/gridwatch"
        env = self.env(DATABASE_URL=database_url, MQTT_URL=self.broker_proxy.url("mqtt"))
        args = ["ingest", "--client-id", self.client_id]
        self.ingest = GridwatchProcess(env, args, self.workdir / "ingest.log")
        self.ingest_starts += 1

    def wait_until_subscribed(self, timeout_s: float = 60.0) -> None:
        """Publish probes until the worker stores one: what is published before its first
        subscription has no session to wait in, and would be counted as lost."""
        client = publisher(BrokerAddress.from_url(self.broker.url), f"{self.prefix}-probe")
        deadline = time.monotonic() + timeout_s
        try:
            for n in itertools.count():
                probe = {"ts": time.time() - 3600 + n, "power_w": 0}
                client.publish(f"{self.prefix}/meter/{PROBE}", json.dumps(probe), qos=1)
                time.sleep(0.5)
                with psycopg.connect(self.postgres.url) as conn:
                    query = "SELECT count(*) FROM meter_readings WHERE meter_id = %s"
                    if conn.execute(query, (PROBE,)).fetchone()[0]:
                        return
                if time.monotonic() > deadline:
                    raise SystemExit(f"the ingest worker stored nothing in {timeout_s:g} s")
        finally:
            client.disconnect()
            client.loop_stop()

    def start_simulator(self) -> subprocess.Popen:
        env = self.env(MQTT_URL=self.broker.url)
        args = ["--devices", str(self.args.devices), "--rate", str(self.args.rate)]
        duration = ["--duration", str(self.args.minutes * 60)]
        with open(self.workdir / "simulate.log", "ab") as log:
            # This interpreter running gridwatch with arguments made here; no shell.
            return subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "gridwatch", "simulate", "--load", *args, *duration],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def stop(self) -> None:
        if self.ingest is not None:
            self.ingest.stop()
        for proxy in (self.broker_proxy, self.database_proxy):
            if proxy is not None:
                proxy.close()
        self.broker.stop()
        self.postgres.stop()

    # -- faults ----------------------------------------------------------------------------

    def fault(self, stop: threading.Event) -> None:
        """One random fault, waiting out its length unless `stop` comes first."""
        kind = self.rng.choice(FAULTS)
        with self.lock:
            self.faults[kind] += 1
            if kind == "broker_restart":
                say("fault: broker restarted")
                self.broker.restart()
            elif kind == "database_stop":
                seconds = self.rng.uniform(10, 60)
                say(f"fault: PostgreSQL stopped for {seconds:.0f} s")
                self.postgres.stop(mode="immediate")
                stop.wait(seconds)
                self.postgres.start()
            elif kind == "ingest_kill":
                self.sample_rss()
                say("fault: ingest worker killed (SIGKILL)")
                self.ingest.kill()
                stop.wait(self.rng.uniform(1, 3))
                self.start_ingest()
            else:
                seconds = self.rng.uniform(10, 30)
                say(f"fault: link to the broker black-holed for {seconds:.0f} s")
                self.broker_proxy.blackhole(seconds)
                stop.wait(seconds)

    def run_faults(self, until: float, stop: threading.Event) -> None:
        while not stop.is_set():
            wait = self.rng.expovariate(1 / self.args.fault_every)
            if time.monotonic() + wait > until - 30 or stop.wait(wait):
                return  # none in the last half minute: the end counts what got through
            self.fault(stop)

    # -- measures ----------------------------------------------------------------------------

    def sample_rss(self) -> float | None:
        value = rss_mb(self.ingest.pid) if self.ingest is not None else None
        if value is not None:
            self.rss.append(value)
        return value

    def watch_lag(self, stop: threading.Event) -> None:
        """Sample every 2 s how old the newest stored reading is; keep the worst."""
        while not stop.wait(2.0):
            try:
                with psycopg.connect(self.postgres.url, connect_timeout=2) as conn:
                    (lag,) = conn.execute(
                        "SELECT extract(epoch FROM now() - max(observed_at)) "
                        "FROM meter_readings WHERE received_at > now() - interval '1 hour'"
                    ).fetchone()
            except psycopg.OperationalError:
                continue  # the database is stopped: the lag shows when it is back
            if lag is not None:
                self.max_lag_s = max(self.max_lag_s, float(lag))

    def counts(self) -> dict[str, float]:
        """Stored and dead-lettered load messages, and duplicates."""
        with psycopg.connect(self.postgres.url, connect_timeout=5) as conn:
            stored, keys = conn.execute(
                "SELECT count(*), count(DISTINCT (meter_id, observed_at)) "
                "FROM meter_readings WHERE meter_id LIKE 'LOAD%'"
            ).fetchone()
            dead = conn.execute(
                "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", (f"{self.prefix}/%",)
            ).fetchone()[0]
        return {"stored": stored, "duplicated": stored - keys, "dead": dead}


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    add_load_options(parser, rate=35.0)
    parser.add_argument(
        "--fault-every", type=float, default=120.0, help="mean seconds between faults"
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gwsoak-"))
    soak = Soak(workdir, args)
    say(f"soak: {args.minutes:g} min at {args.rate:g} msg/s, a fault every ~{args.fault_every:g} s")
    try:
        soak.start()
        simulator = soak.start_simulator()
        started = time.monotonic()
        until = started + args.minutes * 60
        stop = threading.Event()
        faults = threading.Thread(target=soak.run_faults, args=(until, stop), daemon=True)
        faults.start()
        threading.Thread(target=soak.watch_lag, args=(stop,), daemon=True).start()
        rss_start = None
        next_progress = started + PROGRESS_EVERY_S
        while simulator.poll() is None:
            time.sleep(1.0)
            if rss_start is None and time.monotonic() - started >= 60:
                rss_start = soak.sample_rss()
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                with soak.lock:
                    try:
                        c = soak.counts()
                        rss = soak.sample_rss()
                        say(
                            f"{(time.monotonic() - started) / 60:.1f} min: {c['stored']:,} stored, "
                            f"{c['dead']} dead letters, max lag {soak.max_lag_s:.1f} s, "
                            f"ingest RSS {rss or 0:.1f} MB, faults {dict(soak.faults)}"
                        )
                    except psycopg.OperationalError:
                        say("database away")
        stop.set()
        faults.join()
        output = simulator.stdout.read()
        match = re.search(r"published ([\d,]+) messages .*?([\d,]+) acknowledged", output)
        if match is None:
            raise SystemExit(f"the simulator said no count: {output!r}")
        published = int(match.group(1).replace(",", ""))
        acknowledged = int(match.group(2).replace(",", ""))
        say(f"simulator done: {published:,} published, {acknowledged:,} acknowledged")
        # Wait until everything published is accounted for, or nothing moves for a while.
        deadline = time.monotonic() + SETTLE_S
        while True:
            c = soak.counts()
            if c["stored"] + c["dead"] >= published or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        time.sleep(2.0)
        c = soak.counts()
        rss_end = soak.sample_rss()
        result = {
            "published": published,
            "acknowledged_by_broker": acknowledged,
            "stored": c["stored"],
            "dead_lettered": c["dead"],
            "lost": published - c["stored"] - c["dead"],
            "duplicated": c["duplicated"],
            "max_lag_s": round(soak.max_lag_s, 1),
            # A run shorter than a minute: the first sample taken.
            "rss_mb_start": round(rss_start or (soak.rss or [0])[0], 1),
            "rss_mb_end": round(rss_end or 0, 1),
            "rss_mb_max": round(max(soak.rss, default=0), 1),
            "ingest_starts": soak.ingest_starts,
            "faults": dict(soak.faults),
            "minutes": args.minutes,
            "rate": args.rate,
            "seed": args.seed,
        }
    finally:
        soak.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
