"""Real services for the tests: PostgreSQL and an MQTT broker.

The ones named by GRIDWATCH_TEST_DATABASE_URL / GRIDWATCH_TEST_MQTT_URL when set, otherwise
an embedded PostgreSQL and the in-process broker. Each test gets its own database (a copy
of a migrated template, with the sample district loaded where asked) and its own topic
prefix and client ids, so tests never see each other's rows or messages.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from gridwatch.errors import ServiceUnavailable
from gridwatch.settings import Settings
from gridwatch.store.migrate import migrate

RUN_ID = uuid.uuid4().hex[:8]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll until `condition()` is truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    base, _, rest = url.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get("GRIDWATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from gridwatch.store.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    try:
        server.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"no PostgreSQL: GRIDWATCH_TEST_DATABASE_URL unset and embedded failed: {exc}")
    yield with_database(server.url, "postgres")
    server.stop()


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return with_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_template(postgres_server) -> Iterator[str]:
    """A migrated, empty database to copy for each test."""
    name = f"gw_tmpl_{RUN_ID}"
    url = _create_database(postgres_server, name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    yield name
    _drop_database(postgres_server, name)


@pytest.fixture(scope="session")
def district_template(postgres_server, migrated_template, tmp_path_factory) -> Iterator[str]:
    """A migrated database holding the sample district (grids, residents, workers)."""
    from gridwatch.simulators.sample import load_sample_district

    name = f"gw_dist_{RUN_ID}"
    url = _create_database(postgres_server, name, template=migrated_template)
    with psycopg.connect(url) as conn:
        load_sample_district(conn, tmp_path_factory.mktemp("sample"))
    yield name
    _drop_database(postgres_server, name)


def _fresh_database(server_url: str, template: str) -> Iterator[str]:
    name = f"gw_t_{uuid.uuid4().hex[:12]}"
    yield _create_database(server_url, name, template=template)
    _drop_database(server_url, name)


@pytest.fixture
def database_url(postgres_server, migrated_template) -> Iterator[str]:
    """A migrated empty database of this test's own."""
    yield from _fresh_database(postgres_server, migrated_template)


@pytest.fixture
def district_database_url(postgres_server, district_template) -> Iterator[str]:
    """A database of this test's own holding the sample district."""
    yield from _fresh_database(postgres_server, district_template)


@pytest.fixture
def blank_database_url(postgres_server) -> Iterator[str]:
    """An empty database, not migrated."""
    name = f"gw_b_{uuid.uuid4().hex[:12]}"
    yield _create_database(postgres_server, name)
    _drop_database(postgres_server, name)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a running MQTT broker."""
    url = os.environ.get("GRIDWATCH_TEST_MQTT_URL")
    if url:
        yield url
        return
    from gridwatch.ingest.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mqtt_url: str) -> Settings:
    """Settings of a test: its own topic prefix and client id, the test services."""
    return make_settings(tmp_path, database_url, mqtt_url)


def make_settings(tmp_path: Path, database_url: str, mqtt_url: str, **extra) -> Settings:
    """Settings of one test: its own topic prefix and client id; `extra` overrides."""
    tag = uuid.uuid4().hex[:10]
    values = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "topic_prefix": f"t{tag}",
        "mqtt_client_id": f"gw-test-{tag}",
        # A test's session on a shared broker should not outlive the run by a week.
        "mqtt_session_expiry_s": 600,
        "data_dir": tmp_path / "data",
    }
    return Settings(**{**values, **extra})


class RunningWorker:
    """An ingest worker running in a thread of the test process."""

    def __init__(self, settings: Settings, **kwargs) -> None:
        from gridwatch.ingest.worker import IngestWorker

        self.worker = IngestWorker(
            settings, database_url=settings.database_url, mqtt_url=settings.mqtt_url, **kwargs
        )
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop_event,))
        self.thread.start()
        wait_for(self.worker.subscribed.is_set, 20, "the worker to subscribe")

    @property
    def stats(self):
        return self.worker.stats

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker did not stop"


@pytest.fixture
def start_worker() -> Iterator[Callable[..., RunningWorker]]:
    """Start ingest workers in threads; all are stopped at the end of the test."""
    started: list[RunningWorker] = []

    def start(settings: Settings, **kwargs) -> RunningWorker:
        running = RunningWorker(settings, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def publish(mqtt_url) -> Iterator[Callable[[str, bytes | str | dict], None]]:
    """Publish at QoS 1 and wait until the broker has each message."""
    yield from publishing(mqtt_url)


def publishing(mqtt_url: str) -> Iterator[Callable[[str, bytes | str | dict], None]]:
    """The `publish` fixture's function for the broker at `mqtt_url`, until resumed."""
    import orjson

    from gridwatch.ingest.mqtt import BrokerAddress, broker_acknowledged, publisher

    client = publisher(BrokerAddress.from_url(mqtt_url), f"gw-test-pub-{uuid.uuid4().hex[:8]}")
    pending = []

    def send(topic: str, payload) -> None:
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        pending.append(client.publish(topic, payload, qos=1))
        if len(pending) >= 200:
            flush()

    def flush() -> None:
        for info in pending:
            wait_for(functools.partial(broker_acknowledged, info), 30, f"the ack of {info.mid}")
        pending.clear()

    send.flush = flush  # type: ignore[attr-defined]
    yield send
    flush()
    client.disconnect()
    client.loop_stop()


def count_rows(url: str, table: str, where: str = "TRUE", params: tuple = ()) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


def settled_mornings(url: str, residents: list[str] | None = None) -> None:
    """Give homes the profile of homes watched for a while: three working-day mornings up at
    07:00, so the district's default morning window holds for them (a home still being
    learned has its window end at noon). All residents when none are named."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO home_profiles (resident_id, first_activity_s) "
            "SELECT id, ARRAY[25200, 25200, 25200] FROM residents "
            "WHERE %(all)s OR id = ANY(%(ids)s) ON CONFLICT (resident_id) DO NOTHING",
            {"all": residents is None, "ids": residents or []},
        )


def add_device(capsys, database_url: str, password_file: Path, *argv: str) -> str:
    """`gridwatch devices add ARGV --password-file F`; returns the password it printed."""
    from gridwatch.cli import main

    capsys.readouterr()
    code = main(
        ["devices", "add", *argv, "--password-file", str(password_file), "--database-url",
         database_url]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.splitlines()[-1]
