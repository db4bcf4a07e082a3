"""Shared by the API and map tests: a real uvicorn server in a thread over a test database
holding the sample district (with sample hazards, alerts and patrols), a movable clock, and
one user of every role. A pytest plugin: its fixtures (`seeded_url`, `module_tokens`,
`module_server`, `http`) are there for any test that names them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import uvicorn
from psycopg import sql

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.api.app import create_app
from gridwatch.api.serving import server_config
from gridwatch.cases.hazards import deadlines_from_hours
from gridwatch.disputes.scanning import ScannedText
from gridwatch.settings import Settings
from gridwatch.simulators.sample_activity import seed_activity
from gridwatch.store.alerts import write_event
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.requests import warning_case_id
from gridwatch.store.users import create_user
from gridwatch.store.warnings import Notify, record_warnings
from tests.support.databases import create_database, drop_database
from tests.support.ports import free_port
from tests.support.private_services import GridwatchProcess

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)
GRID_A, GRID_B = "QS-01-01-01", "QS-01-02-01"
COMMUNITY_A = "QS-01-01"
STREET = "QS-01"
NOTICE_S = 5.0  # a commit by another process reaches a kept server as a notice within this


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@dataclass
class Tokens:
    admin: str
    duty_street: str
    duty_community: str
    worker_a: str
    worker_b: str
    device: str
    names: dict[str, str] = field(default_factory=dict)

    def header(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


def make_users(url: str) -> Tokens:
    """One user of every role; worker_a is W001 of grid A, worker_b of grid B."""
    with psycopg.connect(url) as conn:
        worker_b = conn.execute(
            "SELECT w.id FROM workers w JOIN grids g ON g.id = w.grid_id WHERE g.code = %s",
            (GRID_B,),
        ).fetchone()[0]
        tokens = Tokens(
            admin=create_user(conn, "admin", role="admin"),
            duty_street=create_user(
                conn, "duty-street", role="duty_officer", grid_codes=(STREET,), level="street"
            ),
            duty_community=create_user(
                conn,
                "duty-community",
                role="duty_officer",
                grid_codes=(COMMUNITY_A,),
                level="community",
            ),
            worker_a=create_user(conn, "W001", role="grid_worker", grid_codes=(GRID_A,)),
            worker_b=create_user(conn, worker_b, role="grid_worker", grid_codes=(GRID_B,)),
            device=create_user(conn, "app-gateway", role="device"),
        )
    tokens.names = {"worker_a": "W001", "worker_b": worker_b}
    return tokens


def seed(url: str, settings: Settings, now: datetime = NOW) -> None:
    with psycopg.connect(url) as conn:
        seed_activity(
            conn,
            now=now,
            zone=settings.zone,
            deadlines=deadlines_from_hours(settings.hazard_deadlines_h),
            hazards=1000,
            alerts=60,
        )


def resident_of(url: str, code: str, *, last: bool = False) -> str:
    """The first resident of grid `code` by id, or the last."""
    query = sql.SQL(
        "SELECT r.id FROM residents r JOIN grids g ON g.id = r.grid_id WHERE g.code = %s "
        "ORDER BY r.id {} LIMIT 1"
    ).format(sql.SQL("DESC" if last else "ASC"))
    with psycopg.connect(url) as conn:
        (resident,) = conn.execute(query, (code,)).fetchone()
    return resident


def residents_in(
    url: str, code: str, count: int = 1, *, last: bool = False, quiet: bool = False
) -> list[tuple[str, int]]:
    """(resident id, grid id) of the first `count` residents of grid `code` by id, or the
    last; `quiet`: only those with no alert that is not resolved."""
    query = sql.SQL(
        "SELECT r.id, r.grid_id FROM residents r JOIN grids g ON g.id = r.grid_id "
        "WHERE g.code = %s {} ORDER BY r.id {} LIMIT %s"
    ).format(
        sql.SQL(
            "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resident_id = r.id "
            "AND a.status <> 'resolved')"
            if quiet
            else ""
        ),
        sql.SQL("DESC" if last else "ASC"),
    )
    with psycopg.connect(url) as conn:
        return conn.execute(query, (code, count)).fetchall()


def open_alert(conn: psycopg.Connection, resident: str, grid: int, kind: str, at: datetime) -> int:
    """A new critical alert of `resident` opened at `at`, its open event written as the engine
    writes it; its id."""
    alert_id = conn.execute(
        "INSERT INTO alerts (resident_id, kind, grid_id, severity, since, opened_at) "
        "VALUES (%s, %s, %s, 'critical', %s, %s) RETURNING id",
        (resident, kind, grid, at, at),
    ).fetchone()[0]
    alert = OpenAlert(alert_id, resident, kind, at, "open", "grid", at)
    write_event(conn, alert, at, "open", "gridwatch", kind)
    return alert_id


def hotline_request(
    conn: psycopg.Connection, grid: int, status: str, accept_by: datetime, due_at: datetime
) -> str:
    """A 12345 request in `grid` standing at `status`, to be accepted by `accept_by` and
    resolved by `due_at` (received at NOW); its id."""
    return str(
        conn.execute(
            "INSERT INTO requests (id, source, service_code, description, address, grid_id, "
            "reporter, requested_at, received_at, status, level, accept_by, due_at, deadline_at, "
            "updated_at) VALUES (gen_random_uuid(), 'hotline', 'noise', '楼上夜间装修', "
            "'富强路1号', %s, '12345', %s, %s, %s, 'grid', %s, %s, %s, %s) RETURNING id",
            (grid, NOW, NOW, status, accept_by, due_at, min(accept_by, due_at), NOW),
        ).fetchone()[0]
    )


def warning_cases(conn: psycopg.Connection, grid: int, key: str, at: datetime = NOW) -> list[str]:
    """The cases that level-2 dispute warnings open for a visit note about someone in `grid`
    who lives alone (`key`: the note's, new each time), through the ingest's own hook."""
    text = ScannedText("checkin", key, "老人说子女不管 不想活了", grid, at, lives_alone=True)
    stored = record_warnings(conn, LibraryMatchers(), [text], Notify("gwtest"))
    ids = [str(warning_case_id(w.id)) for w in stored if w.level == 2]
    found = conn.execute("SELECT id::text FROM requests WHERE id = ANY(%s::uuid[])", (ids,))
    return [case for (case,) in found]


class ApiServer:
    """create_app() under a real uvicorn on 127.0.0.1, in a thread of the test process."""

    def __init__(self, settings: Settings, url: str, clock: Clock, **kwargs) -> None:
        self.clock = clock
        self.app = create_app(settings, database_url=url, clock=clock, **kwargs)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(
            self.app, settings, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def state(self):
        return self.app.state.gw

    def client(self, role: str | None = None, tokens: Tokens | None = None) -> httpx.Client:
        headers = tokens.header(role) if role and tokens else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def process_env(url: str, tmp: Path, **settings: str) -> dict[str, str]:
    """The environment of a `gridwatch` child process over database `url`: this one's,
    without its GRIDWATCH_* settings, and `settings` (lower-case names without the prefix)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    values = {"DATABASE_URL": url, "DATA_DIR": str(tmp), **settings}
    return {**inherited, **{f"GRIDWATCH_{k.upper()}": v for k, v in values.items()}}


class ApiProcess:
    """`gridwatch api` as people run it, a child process on a free port, with `settings`
    (the defaults for everything else); `stop()` ends it."""

    def __init__(self, url: str, tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = process_env(url, tmp, api_port=str(self.port), **settings)
        self.process = GridwatchProcess(self.env, ["api"], tmp / "api.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gridwatch api did not start:\n{self.process.log()[-2000:]}")
            time.sleep(0.2)

    def cli(self, *args: str) -> str:
        """`gridwatch ARGS` with the server's settings; its output."""
        # This interpreter running gridwatch with arguments made here; no shell.
        done = subprocess.run(
            [sys.executable, "-m", "gridwatch", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def stop(self) -> None:
        self.process.stop()


# Tests make requests far faster than people do: limits that only test_api_limits reaches.
GENEROUS_LIMITS = {
    "api_rate_burst": 100_000,
    "api_anonymous_burst": 100_000,
    "api_auth_failures_per_min": 100_000,
}


def api_settings(tmp: Path, url: str, **extra) -> Settings:
    values = {
        "database_url": url,
        "data_dir": tmp / "data",
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}",
        "api_token_cache_s": 0,
        "api_counts_ttl_s": 0,
        **GENEROUS_LIMITS,
    }
    return Settings(**{**values, **extra})


@pytest.fixture(scope="module", name="seeded_url")
def seeded_url_fixture(postgres_server, district_template, tmp_path_factory) -> Iterator[str]:
    """A database of this module's own: the sample district with sample activity."""
    name = f"gw_api_{uuid.uuid4().hex[:10]}"
    url = create_database(postgres_server, name, template=district_template)
    seed(url, api_settings(tmp_path_factory.mktemp("seed"), url))
    yield url
    drop_database(postgres_server, name)


@pytest.fixture(scope="module", name="module_tokens")
def module_tokens_fixture(seeded_url) -> Tokens:
    return make_users(seeded_url)


@pytest.fixture(scope="module", name="module_server")
def module_server_fixture(seeded_url, module_tokens, tmp_path_factory) -> Iterator[ApiServer]:
    """One server for a module's read-mostly tests (its clock stands at NOW)."""
    settings = api_settings(tmp_path_factory.mktemp("api"), seeded_url)
    with ApiServer(settings, seeded_url, Clock()) as server:
        yield server


@pytest.fixture(scope="module", name="http")
def http_fixture(module_server, module_tokens) -> Iterator[dict[str, httpx.Client]]:
    """A client of every role (and one without a token) on the module's server."""
    made = clients(module_server, module_tokens)
    yield made
    for client in made.values():
        client.close()


def clients(server: ApiServer, tokens: Tokens) -> dict[str, httpx.Client]:
    roles = ("admin", "duty_street", "duty_community", "worker_a", "worker_b", "device")
    made = {role: server.client(role, tokens) for role in roles}
    made["anonymous"] = server.client()
    return made


@contextmanager
def role_clients(
    server: ApiServer, tokens: Tokens, roles: Iterable[str]
) -> Iterator[dict[str, httpx.Client]]:
    """A client of each of `roles` on `server`, closed when done."""
    made = {role: server.client(role, tokens) for role in roles}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


@contextmanager
def kept_server(
    url: str, tokens: Tokens, tmp: Path, roles: Iterable[str]
) -> Iterator[tuple[ApiServer, dict[str, httpx.Client]]]:
    """A server that keeps its layers and answers (shared until a change) on a clock the test
    moves, and a client of each of `roles`: (server, clients)."""
    settings = api_settings(tmp, url, api_counts_ttl_s=60)
    with ApiServer(settings, url, Clock()) as server, role_clients(server, tokens, roles) as made:
        assert server.state.changes.live, "the API hears change notices"
        yield server, made


@contextmanager
def plain_server(
    kept: ApiServer, url: str, tokens: Tokens, tmp: Path, roles: Iterable[str]
) -> Iterator[dict[str, httpx.Client]]:
    """Clients of each of `roles` on a server that keeps nothing (every answer from the
    database) on `kept`'s clock: what a kept answer must equal."""
    plain = ApiServer(api_settings(tmp, url), url, kept.clock)
    with plain, role_clients(plain, tokens, roles) as made:
        yield made


@contextmanager
def english_client(url: str, tokens: Tokens, tmp: Path, role: str) -> Iterator[httpx.Client]:
    """A client of `role` on a server of its own that speaks English (GRIDWATCH_LANG=en)."""
    settings = api_settings(tmp, url, lang="en")
    with ApiServer(settings, url, Clock()) as server, server.client(role, tokens) as client:
        yield client


def every_page(client: httpx.Client, path: str, params: dict) -> list[dict]:
    """Every page of an answer, following next links, with this server's address taken out."""
    base = str(client.base_url).rstrip("/")
    pages, url, query = [], path, params
    while url is not None:
        answer = client.get(url, params=query)
        page = answer.json()
        if answer.status_code != 200:  # the same error, then
            return [{"status": answer.status_code, **page}]
        page.pop("timeStamp")
        nexts = [link["href"] for link in page["links"] if link["rel"] == "next"]
        for link in page["links"]:
            link["href"] = link["href"].removeprefix(base)
        pages.append(page)
        url, query = (nexts[0].removeprefix(base), None) if nexts else (None, None)
    return pages


def assert_security_headers(response: httpx.Response) -> None:
    """The headers every answer carries; no-store on all but the static assets."""
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["x-frame-options"] == "DENY", response.url
    assert headers["referrer-policy"] == "same-origin", response.url
    assert "frame-ancestors 'none'" in headers["content-security-policy"], response.url
    if not response.url.path.startswith("/static/"):
        assert headers["cache-control"] == "no-store", response.url


def reason(response: httpx.Response) -> str:
    """The reason of a JSON error, checked to be there."""
    body = response.json()
    assert set(body) >= {"error", "reason"}, body
    assert body["reason"], body
    return body["reason"]
