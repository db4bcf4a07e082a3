"""The TimescaleDB storage mode: hypertables, the continuous aggregate, policies, and ingest.

Runs only against a server named by GRIDWATCH_TEST_TIMESCALE_URL (its maintenance database,
with timescaledb in shared_preload_libraries); each test makes and drops its own database.
The catalog is read through the documented timescaledb_information views.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql

from gridwatch.store.info import database_info
from gridwatch.store.maintenance import maintain
from gridwatch.store.migrate import migrate, read_meta
from gridwatch.store.mode import TIMESCALE, detect_storage
from gridwatch.store.partitions import TIMESERIES_TABLES
from tests.support.databases import count_rows, with_database
from tests.support.ingest_streams import MARKER, caught_up
from tests.support.settings import make_settings

TIMESCALE_URL = os.environ.get("GRIDWATCH_TEST_TIMESCALE_URL")
CHINA = timezone(timedelta(hours=8))
# add_compression_policy registers 'policy_compression' before TimescaleDB 2.20 and
# 'policy_columnstore' in the releases that renamed compression to the columnstore.
COMPRESSION_PROCS = ("policy_compression", "policy_columnstore")

pytestmark = [
    pytest.mark.timescale,
    pytest.mark.skipif(
        not TIMESCALE_URL,
        reason="GRIDWATCH_TEST_TIMESCALE_URL is not set (a TimescaleDB server's maintenance "
        "database, timescaledb in shared_preload_libraries); TimescaleDB is not installed here",
    ),
]


@pytest.fixture
def timescale_url():
    """A new, empty database on the TimescaleDB server, dropped afterwards."""
    name = f"gw_ts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(TIMESCALE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(TIMESCALE_URL, name)
    with psycopg.connect(TIMESCALE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_timescale_url(timescale_url):
    with psycopg.connect(timescale_url) as conn:
        migrate(conn)
    return timescale_url


def test_the_server_is_detected_as_timescale(timescale_url):
    with psycopg.connect(timescale_url) as conn:
        found = detect_storage(conn)
    assert found.name == TIMESCALE, found.reason
    assert found.timescale_version
    assert "preloaded" in found.reason or "installed" in found.reason


def test_migrate_chooses_timescale_and_records_it(timescale_url):
    with psycopg.connect(timescale_url) as conn:
        report = migrate(conn)
        again = migrate(conn)
        meta = read_meta(conn)
        extension = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert report.mode.name == TIMESCALE
    assert "003_timeseries" in report.applied
    assert again.applied == []
    assert meta["mode"] == TIMESCALE
    assert extension is not None
    assert sorted(versions) == sorted(set(versions))
    # No plain-mode daily partitions and no rollup table: the hypertable does that.
    with psycopg.connect(timescale_url) as conn:
        partitioned = conn.execute("SELECT count(*) FROM pg_partitioned_table").fetchone()[0]
    assert partitioned == 0


def test_the_time_series_are_hypertables_in_daily_chunks(migrated_timescale_url):
    with psycopg.connect(migrated_timescale_url) as conn:
        hypertables = dict(
            conn.execute(
                "SELECT hypertable_name, compression_enabled "
                "FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public'"
            ).fetchall()
        )
        dimensions = conn.execute(
            "SELECT hypertable_name, column_name, time_interval "
            "FROM timescaledb_information.dimensions WHERE hypertable_schema = 'public' "
            "ORDER BY hypertable_name"
        ).fetchall()
    assert set(TIMESERIES_TABLES) <= set(hypertables)
    assert all(hypertables[t] for t in TIMESERIES_TABLES), "compression enabled on each"
    assert [(t, c, i) for t, c, i in dimensions if t in TIMESERIES_TABLES] == [
        (t, "observed_at", timedelta(days=1)) for t in sorted(TIMESERIES_TABLES)
    ]


def test_meter_hourly_is_a_continuous_aggregate_with_its_refresh_policy(migrated_timescale_url):
    with psycopg.connect(migrated_timescale_url) as conn:
        aggregate = conn.execute(
            "SELECT hypertable_name, materialization_hypertable_name "
            "FROM timescaledb_information.continuous_aggregates WHERE view_name = 'meter_hourly'"
        ).fetchone()
        assert aggregate is not None, "meter_hourly is not a continuous aggregate"
        assert aggregate[0] == "meter_readings"
        policies = conn.execute(
            """
            SELECT schedule_interval,
                   (config ->> 'start_offset')::interval,
                   (config ->> 'end_offset')::interval
            FROM timescaledb_information.jobs
            WHERE proc_name = 'policy_refresh_continuous_aggregate'
              AND hypertable_name IN ('meter_hourly', %s)
            """,
            # The jobs view names the materialisation hypertable up to 2.2x and the
            # continuous aggregate itself on 2.25: either is this aggregate's policy.
            (aggregate[1],),
        ).fetchall()
    assert policies == [(timedelta(minutes=15), timedelta(days=3), timedelta(hours=1))]


def test_compression_and_retention_policies_exist(migrated_timescale_url):
    with psycopg.connect(migrated_timescale_url) as conn:
        compression = conn.execute(
            "SELECT hypertable_name, (config ->> 'compress_after')::interval "
            "FROM timescaledb_information.jobs WHERE proc_name = ANY(%s) "
            "AND hypertable_name = ANY(%s)",
            (list(COMPRESSION_PROCS), list(TIMESERIES_TABLES)),
        ).fetchall()
        retention = conn.execute(
            "SELECT hypertable_name, (config ->> 'drop_after')::interval "
            "FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
            "AND hypertable_name = ANY(%s)",
            (list(TIMESERIES_TABLES),),
        ).fetchall()
    assert sorted(compression) == [(t, timedelta(days=7)) for t in sorted(TIMESERIES_TABLES)]
    assert sorted(retention) == [(t, timedelta(days=400)) for t in sorted(TIMESERIES_TABLES)]


def test_info_and_maintenance_speak_of_hypertables_and_policies(migrated_timescale_url):
    with psycopg.connect(migrated_timescale_url) as conn:
        info = database_info(conn)
        report = maintain(conn, retention_days=400, ahead_days=7)
    assert info.mode_in_force == TIMESCALE
    layouts = {table: detail for table, _, detail in info.tables}
    assert all(layouts[t].startswith("hypertable") for t in TIMESERIES_TABLES)
    assert report.mode == TIMESCALE and report.partitions_created == 0
    assert "TimescaleDB policies" in str(report)


def test_ingest_end_to_end_stores_each_kind_once(
    tmp_path, migrated_timescale_url, mqtt_url, start_worker, publish
):
    url = migrated_timescale_url
    s = make_settings(tmp_path, url, mqtt_url, mqtt_session_expiry_s=300)
    running = start_worker(s)
    now = datetime.now(UTC)
    ts = (now - timedelta(hours=2)).replace(minute=10).astimezone(CHINA).isoformat()
    old = (now - timedelta(days=30)).astimezone(CHINA).isoformat()
    hazard_id = str(uuid.uuid4())
    messages = [
        (f"{s.topic_prefix}/meter/M-1", {"ts": ts, "power_w": 100.0, "energy_kwh": 7.5}),
        (f"{s.topic_prefix}/meter/M-1", {"ts": old, "power_w": 5.0}),
        (f"{s.topic_prefix}/sensor/S-1", {"ts": ts, "event": "light_on"}),
        (f"{s.topic_prefix}/patrol/W-1", {"ts": ts, "lat": 40.65, "lon": 109.9}),
        (
            f"{s.topic_prefix}/hazard/W-1",
            {"id": hazard_id, "ts": ts, "lat": 40.65, "lon": 109.9, "category": "fire",
             "severity": "critical"},
        ),
    ]  # fmt: skip
    for topic, payload in messages + messages:
        publish(topic, payload)
    caught_up(url, s.topic_prefix, publish)

    not_marker = ("meter_id NOT LIKE %s", (MARKER + "%",))
    assert count_rows(url, "meter_readings", *not_marker) == 2
    assert count_rows(url, "sensor_events") == 1
    assert count_rows(url, "patrol_checkins", "source = 'gw'") == 1
    assert count_rows(url, "hazard_reports") == 1
    assert count_rows(url, "hazard_events") == 1
    assert count_rows(url, "dead_letters", "topic LIKE %s", (s.topic_prefix + "/%",)) == 0
    assert running.stats.duplicates >= len(messages)

    # The continuous aggregate, refreshed by hand instead of waiting for its policy.
    hour = datetime.fromisoformat(ts).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        # CALL takes its arguments inline: a procedure call is not a parameterised statement.
        conn.execute(
            sql.SQL("CALL refresh_continuous_aggregate('meter_hourly', {}, {})").format(
                sql.Literal(hour - timedelta(hours=1)), sql.Literal(hour + timedelta(hours=2))
            )
        )
        bucket = conn.execute(
            "SELECT readings, power_w_avg, energy_kwh_max FROM meter_hourly "
            "WHERE meter_id = 'M-1' AND bucket = %s",
            (hour,),
        ).fetchone()
    assert bucket == (1, 100.0, 7.5)
