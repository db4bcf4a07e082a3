"""PostgreSQL stopped hard and started again while the worker ingests: nothing lost, nothing
doubled, and the worker says it had to wait."""

from __future__ import annotations

import time

import psycopg
import pytest

from gridwatch.errors import ServiceUnavailable
from gridwatch.store.embedded import EmbeddedPostgres
from gridwatch.store.migrate import migrate
from tests.support.ingest_streams import (
    TOTAL,
    accounted,
    assert_each_once,
    mixed_stream,
    published_in_thirds,
)
from tests.support.settings import make_settings
from tests.support.waiting import wait_for


@pytest.fixture
def private_postgres(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg")
    try:
        server.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"cannot start a private PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.mark.slow
def test_database_stopped_hard_and_restarted_mid_stream(
    tmp_path, private_postgres, mqtt_url, start_worker, publish
):
    server = private_postgres
    url = server.url
    port = server.port
    with psycopg.connect(url) as conn:
        migrate(conn)
    settings = make_settings(tmp_path, url, mqtt_url, mqtt_session_expiry_s=300)
    messages = mixed_stream(settings.topic_prefix, settings.mqtt_client_id)
    running = start_worker(settings)

    def counts() -> tuple[int, int]:
        return accounted(url, settings.topic_prefix, settings.mqtt_client_id)

    # A third before the stop, a third while the server is down, a third after it is back.
    third = TOTAL // 3
    with published_in_thirds(messages, publish) as (stopped, restarted):
        wait_for(lambda: counts()[0] >= third // 2, what="the first rows")
        server.stop(mode="immediate")
        stopped.set()
        time.sleep(3)
        server.start()
        assert server.port == port and server.url == url
        restarted.set()

    assert_each_once(counts)
    assert running.stats.db_failures > 0
    with psycopg.connect(url) as conn:
        events = conn.execute("SELECT count(*) FROM hazard_events").fetchone()[0]
        hazards = conn.execute("SELECT count(*) FROM hazard_reports").fetchone()[0]
    assert events == hazards, "one 'report' event per hazard, even across the restart"
