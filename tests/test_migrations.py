"""Schema migrations, storage-mode detection, daily partitions and hourly rollups on plain
PostgreSQL (the TimescaleDB side is tests/test_timescale.py)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gridwatch.errors import ConfigError
from gridwatch.store.migrate import migrate, migrations_for, read_meta
from gridwatch.store.mode import PLAIN, detect_storage, preloads_timescale
from gridwatch.store.partitions import (
    TIMESERIES_TABLES,
    drop_expired_partitions,
    ensure_partitions,
    existing_partition_days,
    partition_name,
)
from gridwatch.store.rollups import refresh_meter_hourly
from tests.support.databases import count_rows
from tests.support.ingest_streams import caught_up
from tests.support.settings import make_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRACT_TABLES = (
    "grids", "residents", "devices", "workers", "meter_readings", "sensor_events",
    "patrol_checkins", "hazard_reports", "hazard_events", "absences", "alerts", "alert_events",
    "dead_letters", "meter_hourly", "gridwatch_meta", "schema_migrations",
)  # fmt: skip


def _expected_names() -> list[str]:
    return [f"{m.version:03d}_{m.name}" for m in migrations_for(PLAIN)]


def _recorded(conn) -> list[tuple]:
    return conn.execute(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall()


def _timescale_preloaded(conn) -> bool:
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    return "timescaledb" in preload


def test_migrations_are_applied_in_order_and_recorded(blank_database_url):
    with psycopg.connect(blank_database_url) as conn:
        if _timescale_preloaded(conn):
            pytest.skip("this server preloads TimescaleDB; see test_timescale.py")
        report = migrate(conn, tz="Asia/Kolkata", partitions_ahead_days=3)
        recorded = _recorded(conn)
        meta = read_meta(conn)
        missing = [
            t
            for t in CONTRACT_TABLES
            if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is None
        ]
        partitioned = conn.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
        ).fetchall()
    names = _expected_names()
    assert names[:3] == ["001_init", "002_timeseries", "003_timeseries"]
    assert report.applied == names
    assert [f"{v:03d}_{n}" for v, n, _ in recorded] == names
    assert report.mode.name == PLAIN and report.tz == "Asia/Kolkata"
    assert meta["mode"] == PLAIN and meta["tz"] == "Asia/Kolkata"
    assert meta["mode_reason"] == report.mode.reason
    assert missing == []
    assert sorted(name for (name,) in partitioned) == sorted(TIMESERIES_TABLES)
    # Partitions from yesterday to three days ahead, cut at local midnight of the zone.
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    wanted = {today + timedelta(days=n) for n in range(-1, 4)}
    with psycopg.connect(blank_database_url) as conn:
        for table in TIMESERIES_TABLES:
            assert existing_partition_days(conn, table) == wanted, table
        # Cut at local midnight: the first instant of today is today's, the one before not.
        midnight = datetime.combine(today, time(), ZoneInfo("Asia/Kolkata"))
        for at in (midnight, midnight - timedelta(microseconds=1)):
            conn.execute(
                "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w) "
                "VALUES ('M-1', %s, now(), 1)",
                (at,),
            )
        holders = conn.execute(
            "SELECT tableoid::regclass::text FROM meter_readings ORDER BY observed_at"
        ).fetchall()
    assert holders == [
        (partition_name("meter_readings", today - timedelta(days=1)),),
        (partition_name("meter_readings", today),),
    ]


def test_a_second_run_changes_nothing(blank_database_url):
    with psycopg.connect(blank_database_url) as conn:
        migrate(conn)
        before = _recorded(conn)
        meta_before = conn.execute("SELECT key, value, updated_at FROM gridwatch_meta").fetchall()
        again = migrate(conn)
        after = _recorded(conn)
        meta_after = conn.execute("SELECT key, value, updated_at FROM gridwatch_meta").fetchall()
    assert again.applied == []
    assert after == before
    unchanged = {k: (v, at) for k, v, at in meta_before if k != "mode_reason"}
    assert {k: (v, at) for k, v, at in meta_after if k != "mode_reason"} == unchanged


def test_the_zone_recorded_first_is_kept(blank_database_url):
    with psycopg.connect(blank_database_url) as conn:
        migrate(conn, tz="Asia/Kolkata")
        report = migrate(conn, tz="Europe/Berlin")
        assert read_meta(conn)["tz"] == "Asia/Kolkata"
    assert report.tz == "Asia/Kolkata"


def test_four_migrations_at_once_on_a_blank_database(blank_database_url):
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def run() -> None:
        try:
            with psycopg.connect(blank_database_url) as conn:
                barrier.wait(10)
                reports.append(migrate(conn))
        except Exception as exc:  # collected and shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(reports) == 4
    applied = [name for report in reports for name in report.applied]
    assert sorted(applied) == sorted(_expected_names()), "each migration applied exactly once"
    with psycopg.connect(blank_database_url) as conn:
        versions = [v for v, _, _ in _recorded(conn)]
        assert versions == sorted(set(versions))
        assert len(versions) == len(_expected_names())
        assert read_meta(conn)["mode"] == PLAIN


def test_plain_server_is_detected_with_the_reason(database_url):
    with psycopg.connect(database_url) as conn:
        if _timescale_preloaded(conn):
            pytest.skip("this server preloads TimescaleDB; see test_timescale.py")
        available = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        found = detect_storage(conn)
        forced = detect_storage(conn, "plain")
        with pytest.raises(ConfigError) as refused:
            detect_storage(conn, "timescale")
    assert found.name == PLAIN and found.timescale_version is None
    if available:
        assert "shared_preload_libraries" in found.reason
        assert available[0] in found.reason
    else:
        assert found.reason == "the timescaledb extension is not available on this server"
    assert forced.name == PLAIN and forced.reason == f"GRIDWATCH_STORAGE=plain ({found.reason})"
    assert str(refused.value) == f"GRIDWATCH_STORAGE=timescale but {found.reason}"


@pytest.mark.parametrize(
    ("setting", "preloaded"),
    [
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ('"timescaledb"', True),
        ("$libdir/timescaledb", True),
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb_toolkit", False),
    ],
)
def test_reading_shared_preload_libraries(setting, preloaded):
    assert preloads_timescale(setting) is preloaded


def test_asking_for_timescale_on_a_plain_server_migrates_nothing(blank_database_url):
    with psycopg.connect(blank_database_url) as conn:
        if _timescale_preloaded(conn):
            pytest.skip("this server preloads TimescaleDB; see test_timescale.py")
        with pytest.raises(
            ConfigError,
            match=r"GRIDWATCH_STORAGE=timescale but .*(not available|shared_preload_libraries)",
        ):
            migrate(conn, storage="timescale")
        assert read_meta(conn) == {}
        assert conn.execute("SELECT to_regclass('grids')").fetchone()[0] is None
        assert migrate(conn).mode.name == PLAIN  # nothing half-done stands in the way


def test_a_plain_database_cannot_be_switched_to_timescale(database_url):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(ConfigError, match=r"set up for plain storage.*cannot switch"):
            migrate(conn, storage="timescale")
        assert read_meta(conn)["mode"] == PLAIN


# -- partitions ---------------------------------------------------------------------------------


def test_a_reading_30_days_old_gets_its_partition_on_demand(
    tmp_path, database_url, mqtt_url, start_worker, publish
):
    s = make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=300)
    day = datetime.now(SHANGHAI).date() - timedelta(days=30)
    noon = datetime.combine(day, time(12), SHANGHAI)
    with psycopg.connect(database_url) as conn:
        assert day not in existing_partition_days(conn, "meter_readings")
    start_worker(s)
    ts = noon.isoformat()
    publish(f"{s.topic_prefix}/meter/M-1", {"ts": ts, "power_w": 42.0})
    publish(f"{s.topic_prefix}/sensor/S-1", {"ts": ts, "event": "motion"})
    publish(f"{s.topic_prefix}/patrol/W-1", {"ts": ts, "lat": 40.6, "lon": 109.9})
    caught_up(database_url, s.topic_prefix, publish)
    assert count_rows(database_url, "dead_letters", "topic LIKE %s", (s.topic_prefix + "/%",)) == 0
    with psycopg.connect(database_url) as conn:
        for table in TIMESERIES_TABLES:
            assert day in existing_partition_days(conn, table), table
            # Only the day that was needed: not the days around it.
            assert day - timedelta(days=1) not in existing_partition_days(conn, table)
            holder = conn.execute(
                f"SELECT tableoid::regclass::text FROM {table} WHERE observed_at = %s", (noon,)
            ).fetchone()
            assert holder == (partition_name(table, day),)


def test_expired_partitions_are_dropped_and_the_rest_kept(database_url):
    today = datetime.now(SHANGHAI).date()
    old_days = [today - timedelta(days=n) for n in (10, 6, 5)]
    with psycopg.connect(database_url) as conn:
        ensure_partitions(conn, old_days, SHANGHAI)
        conn.execute("CREATE TABLE meter_readings_default PARTITION OF meter_readings DEFAULT")
        for day in old_days:
            conn.execute(
                "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w) "
                "VALUES ('M-1', %s, now(), 1)",
                (datetime.combine(day, time(0, 0, 1), SHANGHAI),),
            )
        conn.commit()
        before = {t: existing_partition_days(conn, t) for t in TIMESERIES_TABLES}
        dropped = drop_expired_partitions(conn, retention_days=5, today=today)
        after = {t: existing_partition_days(conn, t) for t in TIMESERIES_TABLES}
    expired = old_days[:2]
    assert sorted(dropped) == sorted(
        partition_name(t, d) for t in TIMESERIES_TABLES for d in expired
    )
    for table in TIMESERIES_TABLES:
        assert after[table] == before[table] - set(expired)
    assert count_rows(database_url, "meter_readings") == 1  # the row of the day kept
    assert count_rows(database_url, "meter_readings_default") == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('meter_readings_default')").fetchone()[0]
        assert drop_expired_partitions(conn, retention_days=5, today=today) == []


# -- hourly rollups -------------------------------------------------------------------------------

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a local hour starts at half past in UTC


@pytest.fixture
def day() -> date:
    """The day the rollup tests write readings on: two days ago, within retention."""
    return datetime.now(SHANGHAI).date() - timedelta(days=2)


def _insert_readings(conn, day: date, readings) -> None:
    ensure_partitions(conn, [day - timedelta(days=1), day, day + timedelta(days=1)], SHANGHAI)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO meter_readings (meter_id, observed_at, received_at, power_w, "
            "energy_kwh, water_l) VALUES (%s, %s, now(), %s, %s, %s)",
            [
                (meter, datetime.combine(day, at, KOLKATA), power, energy, water)
                for meter, at, power, energy, water in readings
            ],
        )
    conn.commit()


def _hourly(conn) -> dict:
    rows = conn.execute(
        "SELECT meter_id, bucket, readings, power_w_avg, power_w_max, energy_kwh_min, "
        "energy_kwh_max, water_l_min, water_l_max FROM meter_hourly"
    ).fetchall()
    return {(m, b.astimezone(KOLKATA).time()): tuple(rest) for m, b, *rest in rows}


def test_hourly_rollup_buckets_local_hours(database_url, day):
    with psycopg.connect(database_url) as conn:
        _insert_readings(
            conn,
            day,
            [
                ("M-1", time(9, 59, 59), 1.0, 4.5, None),
                ("M-1", time(10, 10), 100.0, 5.0, None),
                ("M-1", time(10, 50), 300.0, 5.5, 20.0),
                ("M-1", time(11, 0), 50.0, 6.0, 21.5),
                ("M-2", time(10, 20), 7.0, None, None),
            ],
        )
        since = datetime.combine(day, time(0), KOLKATA)
        written = refresh_meter_hourly(conn, since=since, zone=KOLKATA)
        buckets = _hourly(conn)
        utc_minutes = {
            b.astimezone(UTC).minute for (b,) in conn.execute("SELECT bucket FROM meter_hourly")
        }
    assert written == 4
    assert buckets == {
        ("M-1", time(9)): (1, 1.0, 1.0, 4.5, 4.5, None, None),
        ("M-1", time(10)): (2, 200.0, 300.0, 5.0, 5.5, 20.0, 20.0),
        ("M-1", time(11)): (1, 50.0, 50.0, 6.0, 6.0, 21.5, 21.5),
        ("M-2", time(10)): (1, 7.0, 7.0, None, None, None, None),
    }
    assert utc_minutes == {30}


def test_hourly_rollup_refresh_updates_in_place(database_url, day):
    since = datetime.combine(day, time(0), KOLKATA)
    with psycopg.connect(database_url) as conn:
        _insert_readings(conn, day, [("M-1", time(10, 10), 100.0, 5.0, None)])
        refresh_meter_hourly(conn, since=since, zone=KOLKATA)
        _insert_readings(conn, day, [("M-1", time(10, 40), 200.0, 5.2, None)])
        refresh_meter_hourly(conn, since=since, zone=KOLKATA)
        buckets = _hourly(conn)
    assert buckets == {("M-1", time(10)): (2, 150.0, 200.0, 5.0, 5.2, None, None)}


def test_hourly_rollup_from_the_middle_of_an_hour_keeps_that_hour_whole(database_url, day):
    with psycopg.connect(database_url) as conn:
        _insert_readings(
            conn,
            day,
            [("M-1", time(10, 10), 100.0, 5.0, None), ("M-1", time(10, 50), 300.0, 5.5, None)],
        )
        refresh_meter_hourly(conn, since=datetime.combine(day, time(0), KOLKATA), zone=KOLKATA)
        refresh_meter_hourly(conn, since=datetime.combine(day, time(10, 30), KOLKATA), zone=KOLKATA)
        buckets = _hourly(conn)
    assert buckets == {("M-1", time(10)): (2, 200.0, 300.0, 5.0, 5.5, None, None)}
