"""Benchmark of the HTTP API: the grids layer (with live counts) and bbox queries under many
concurrent clients, against a real uvicorn server on 127.0.0.1 over the sample district
(110 grids, 2,000 residents, 1,000 hazards, a day of patrols), with /healthz in the same
run as the baseline of what the server and client cost with no work behind them; then the
problem ledger, the alerts layer and the duty desk's figures (/console/summary.json), each in
a phase of its own.

    python bench/api.py [--clients 100] [--seconds 10] [--grids N]

`--grids N` runs against a generated district of N square grids (in communities of 16, streets
of 256) with 18 residents and 9 hazards a grid instead of the sample district.

Uses GRIDWATCH_DATABASE_URL's server (a fresh database is made and dropped) or an embedded
PostgreSQL. The last line printed is one JSON object: p50_ms, p95_ms, rps, errors and ratio
(grids layer and bbox queries together; ratio is their requests/s over /healthz's in the same
run), then the baseline, each kind of request, and `ledger`, `alerts` and `console` with their
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg
import shapely

from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.services import Services
from gridwatch.settings import Settings
from gridwatch.simulators.sample import load_sample_district
from gridwatch.simulators.sample_activity import seed_activity
from gridwatch.store.migrate import migrate_for
from gridwatch.store.users import create_user

# Run as `python bench/api.py`, the path has bench/ but not the checkout's root, which
# holds tests/support: free_port, shared with the tests.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.support.ports import free_port

# The sample street lies within this box; bbox queries pick windows inside it.
DISTRICT = (109.880, 40.636, 109.930, 40.664)
GRID_DEG = 0.004  # a generated grid's side, about 340 m by 440 m
ORIGIN = (109.80, 40.55)
PATROLLED_GRIDS = 1000  # generated districts: workers (and their patrols) for this many grids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--grids", type=int, help="a generated district of this many grids")
    parser.add_argument(
        "--serve", nargs=2, metavar=("DATABASE_URL", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.grids is not None and args.grids < 1:
        parser.error("--grids is at least 1")
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]))
    settings = Settings()
    with ExitStack() as stack:
        services = stack.enter_context(Services(settings))
        server_url = services.database_url()
        database_url = make_database(server_url)
        stack.callback(drop_database, server_url, database_url)
        token, box = prepare(database_url, settings, args.grids)
        port = free_port()
        server = start_server(database_url, port)
        stack.callback(stop_server, server)
        base = f"http://127.0.0.1:{port}"
        results = asyncio.run(run_phases(base, token, args.clients, args.seconds, box))
    report(results, args.clients)
    return 0


def make_database(server_url: str) -> str:
    name = f"gw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, rest = server_url.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rpartition("/")[2].split("?")[0]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(
    database_url: str, settings: Settings, grids: int | None
) -> tuple[str, tuple[float, float, float, float]]:
    """The district, its activity and an admin's token; the box bbox queries pick from."""
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        migrate_for(conn, settings)
        if grids is None:
            load_sample_district(conn, Path(tempfile.mkdtemp(prefix="gw-bench-")))
            box, what, hazards = DISTRICT, "sample district: 110 grids, 2000 residents", 1000
        else:
            box = load_generated_district(conn, grids)
            what, hazards = f"generated district: {grids} grids, {18 * grids} residents", 9 * grids
        seeded = seed_activity(
            conn,
            now=datetime.now(UTC),
            zone=settings.zone,
            deadlines=deadlines_from_hours(settings.hazard_deadlines_h),
            hazards=hazards,
        )
        conn.execute("ANALYZE")
        token = create_user(conn, "bench", role="admin")
    print(
        f"{what}, {seeded.hazards} hazards, {seeded.alerts} alerts, {seeded.checkins} "
        f"check-ins ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    return token, box


def load_generated_district(conn: psycopg.Connection, count: int) -> tuple[float, ...]:
    """`count` square grids in rows, under communities of 4x4 grids, streets of 4x4
    communities and one district; 18 residents a grid; a worker for the first grids.
    Returns the box of the grids."""
    side = math.ceil(math.sqrt(count))
    cells = [(i // side, i % side) for i in range(count)]

    def square(rows: range, columns: range):
        x0, y0 = ORIGIN[0] + columns.start * GRID_DEG, ORIGIN[1] + rows.start * GRID_DEG
        shape = shapely.box(x0, y0, x0 + len(columns) * GRID_DEG, y0 + len(rows) * GRID_DEG)
        return shapely.segmentize(shape, GRID_DEG / 3)  # a dozen vertices, like a real grid

    def blocks(size: int) -> dict[tuple[int, int], list[tuple[int, int]]]:
        found: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for row, column in cells:
            found.setdefault((row // size, column // size), []).append((row, column))
        return found

    def outline(members: list[tuple[int, int]]):
        rows = [r for r, _ in members]
        columns = [c for _, c in members]
        return square(range(min(rows), max(rows) + 1), range(min(columns), max(columns) + 1))

    layers = [("district", "GEN", None, outline(cells))]
    for (r, c), members in sorted(blocks(16).items()):
        layers.append(("street", f"GEN-{r:02d}{c:02d}", "GEN", outline(members)))
    for (r, c), members in sorted(blocks(4).items()):
        parent = f"GEN-{r // 4:02d}{c // 4:02d}"
        layers.append(("community", f"{parent}-{r % 4}{c % 4}", parent, outline(members)))
    for r, c in cells:
        parent = f"GEN-{r // 16:02d}{c // 16:02d}-{r // 4 % 4}{c // 4 % 4}"
        layers.append(
            ("grid", f"{parent}-{r % 4}{c % 4}", parent, square(range(r, r + 1), range(c, c + 1)))
        )
    with conn.cursor() as cur:
        for level, code, parent, shape in layers:
            width_m = (shape.bounds[2] - shape.bounds[0]) * 111_320 * math.cos(math.radians(40.6))
            area_m2 = width_m * (shape.bounds[3] - shape.bounds[1]) * 111_320
            cur.execute(
                "INSERT INTO grids (code, name, level, parent_id, geometry, min_lon, min_lat, "
                "max_lon, max_lat, area_m2) VALUES (%s, %s, %s, "
                "(SELECT id FROM grids WHERE code = %s), %s, %s, %s, %s, %s, %s)",
                (code, code, level, parent, shapely.to_wkb(shape), *shape.bounds, area_m2),
            )
        leaves = cur.execute(
            "SELECT id, min_lon, min_lat FROM grids WHERE level = 'grid' ORDER BY code"
        ).fetchall()
        with cur.copy("COPY residents (id, name, grid_id, lon, lat) FROM STDIN") as copy:
            for n, (gid, lon, lat) in enumerate(leaves):
                for k in range(18):
                    spot = (k + 0.5) / 18 * GRID_DEG
                    copy.write_row(
                        (f"R{n:06d}{k:02d}", f"resident {n}-{k}", gid, lon + spot, lat + spot)
                    )
        with cur.copy("COPY workers (id, name, grid_id) FROM STDIN") as copy:
            for n, (gid, _, _) in enumerate(leaves[:PATROLLED_GRIDS]):
                copy.write_row((f"W{n:06d}", f"worker {n}", gid))
        cur.execute("INSERT INTO worker_grids (worker_id, grid_id) SELECT id, grid_id FROM workers")
    conn.commit()
    extent = outline(cells).bounds
    return extent


def start_server(database_url: str, port: int) -> subprocess.Popen:
    """The server in a process of its own, so the clients do not share its interpreter."""
    server = subprocess.Popen(  # noqa: S603 - this very script, with arguments made here
        [sys.executable, __file__, "--serve", database_url, str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit("the API server exited at start")
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the API server did not become ready within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def serve(database_url: str, port: int) -> int:
    import uvicorn

    from gridwatch.api.app import create_app

    # The clients share one token: rate limits stay on (their cost is measured) but so high
    # that they never refuse.
    settings = Settings(database_url=database_url, api_rate_per_s=1e9, api_rate_burst=10**9)
    app = create_app(settings, database_url=database_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


def grids_request() -> tuple[str, dict]:
    return "/collections/grids/items", {"limit": "1000"}


def warm_up_request(rng: random.Random) -> tuple[str, dict]:
    return grids_request() if rng.random() < 0.5 else ("/collections/hazards/items", {"limit": "1"})


def bbox_request(rng: random.Random, district: tuple[float, ...]) -> tuple[str, dict]:
    """A window of 300-800 m somewhere in the district: hazards, or the grids it touches."""
    width, height = rng.uniform(0.0035, 0.0095), rng.uniform(0.0027, 0.0072)
    lon = rng.uniform(district[0], district[2] - width)
    lat = rng.uniform(district[1], district[3] - height)
    box = f"{lon:.6f},{lat:.6f},{lon + width:.6f},{lat + height:.6f}"
    layer = rng.choice(("hazards", "grids"))
    return f"/collections/{layer}/items", {"bbox": box, "limit": "1000"}


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a client can be: the clients must not
    eat the CPU the server needs (httpx spends several times the server's time per request)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.headers = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nAccept-Encoding: gzip\r\n\r\n"
        ).encode()
        self.reader = self.writer = None

    async def get(self, path: str, params: dict) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        query = f"?{urlencode(params)}" if params else ""
        self.writer.write(f"GET {path}{query} HTTP/1.1\r\n".encode() + self.headers)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run_phases(
    base: str, token: str, clients: int, seconds: float, district: tuple[float, ...]
) -> dict:
    port = int(base.rsplit(":", 1)[1])
    # Warm both kept layers the work phase asks of, as a server that has been up a while has.
    await phase(port, token, 10, 2.0, lambda rng: ("warm-up", *warm_up_request(rng)))
    baseline = await phase(port, token, clients, seconds, lambda rng: ("healthz", "/healthz", {}))
    work = await phase(
        port,
        token,
        clients,
        seconds,
        lambda rng: (
            ("grids", *grids_request())
            if rng.random() < 0.5
            else ("bbox", *bbox_request(rng, district))
        ),
    )
    ledger = await phase(
        port, token, clients, seconds, lambda rng: ("ledger", "/ledger", {"limit": "1000"})
    )
    alerts = await phase(
        port,
        token,
        clients,
        seconds,
        lambda rng: ("alerts", "/collections/alerts/items", {"limit": "1000"}),
    )
    console = await phase(
        port, token, clients, seconds, lambda rng: ("console", "/console/summary.json", {})
    )
    return {
        "baseline": baseline,
        "work": work,
        "ledger": ledger,
        "alerts": alerts,
        "console": console,
    }


async def phase(port: int, token: str, clients: int, seconds: float, choose) -> dict:
    """`clients` concurrent connections sending requests for `seconds`: latencies by kind."""
    latencies: dict[str, list[float]] = {}
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop(n: int) -> None:
        nonlocal errors
        rng = random.Random(n)  # noqa: S311 - which query to send, not a secret
        connection = Connection("127.0.0.1", port, token)
        try:
            while time.perf_counter() < stop_at:
                kind, path, params = choose(rng)
                started = time.perf_counter()
                try:
                    ok = await connection.get(path, params) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    connection.close()
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                if ok:
                    latencies.setdefault(kind, []).append(elapsed)
                else:
                    errors += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(clients)))
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def summary(latencies: list[float], errors: int, wall_s: float) -> dict:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "rps": 0.0, "errors": errors}
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(cuts[94], 1),
        "rps": round(len(latencies) / wall_s, 1),
        "errors": errors,
    }


def report(results: dict, clients: int) -> None:
    base, work = results["baseline"], results["work"]
    all_work = [x for values in work["latencies"].values() for x in values]
    baseline = summary(base["latencies"].get("healthz", []), base["errors"], base["wall_s"])

    def against_baseline(figures: dict) -> dict:
        ratio = figures["rps"] / baseline["rps"] if baseline["rps"] else None
        return {**figures, "ratio": round(ratio, 3) if ratio is not None else None}

    overall = against_baseline(summary(all_work, work["errors"], work["wall_s"]))
    kinds = {kind: summary(values, 0, work["wall_s"]) for kind, values in work["latencies"].items()}
    alone = {
        name: against_baseline(
            summary(
                results[name]["latencies"].get(name, []),
                results[name]["errors"],
                results[name]["wall_s"],
            )
        )
        for name in ("ledger", "alerts", "console")
    }
    print(f"{clients} concurrent clients, {work['wall_s']:.1f} s per phase", flush=True)
    print(f"  baseline /healthz        {_line(baseline)}")
    print(f"  grids layer + bbox       {_line(overall)}, ratio {overall['ratio']}")
    for kind, figures in sorted(kinds.items()):
        print(f"    {kind:<22} {_line(figures)}")
    for name, figures in alone.items():
        print(f"  {name:<24} {_line(figures)}, ratio {figures['ratio']}")
    print(
        json.dumps({**overall, "clients": clients, "baseline": baseline, "by_kind": kinds, **alone})
    )


def _line(figures: dict) -> str:
    return (
        f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, {figures['rps']} req/s, "
        f"{figures['errors']} errors"
    )


if __name__ == "__main__":
    sys.exit(main())
