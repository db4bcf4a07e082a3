"""The gridwatch command: what it prints on success, and one line naming the cause on failure."""

from __future__ import annotations

import gc
import subprocess
import sys

import psycopg
import pytest

from gridwatch.cli import main
from tests.support.ports import free_port


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *needles: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("gridwatch: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "info"], ["db", "maintain"],
                                     ["ingest", "--mqtt-url", "mqtt://127.0.0.1:1"]])  # fmt: skip
def test_unreachable_database(capsys, closed_port, command):
    url = f"postgresql://gw:s3cret@127.0.0.1:{closed_port}/gw"
    code, _, err = run(capsys, *command, "--database-url", url)
    assert code == 1
    assert_one_line(
        err,
        f"cannot connect to PostgreSQL at postgresql://gw@127.0.0.1:{closed_port}/gw",
        "Connection refused",
    )
    assert "s3cret" not in err


# The leak itself is test_unreachable_broker_leaves_no_connection_open, below.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreachable_broker(capsys, database_url, closed_port):
    code, _, err = run(
        capsys, "ingest", "--database-url", database_url,
        "--mqtt-url", f"mqtt://127.0.0.1:{closed_port}",
    )  # fmt: skip
    gc.collect()
    assert code == 1
    assert_one_line(err, f"cannot reach the MQTT broker at mqtt://127.0.0.1:{closed_port}")


def test_unreachable_broker_leaves_no_connection_open(capsys, database_url, closed_port):
    code, _, _ = run(
        capsys, "ingest", "--database-url", database_url,
        "--mqtt-url", f"mqtt://127.0.0.1:{closed_port}",
    )  # fmt: skip
    gc.collect()  # an unclosed psycopg connection warns when collected; filterwarnings=error
    assert code == 1


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--database-url", "mysql://db/gw"], ["GRIDWATCH_DATABASE_URL", "postgresql://"]),
        (["--database-url", "postgresql://[::1/gw"], ["GRIDWATCH_DATABASE_URL", "IPv6"]),
        (
            ["--database-url", "postgresql://gw:s3cret@127.0.0.1:99999/gw"],
            ["cannot connect to PostgreSQL at postgresql://gw@127.0.0.1:99999/gw", "port"],
        ),
        (["--mqtt-url", "http://broker:1883"], ["GRIDWATCH_MQTT_URL", "mqtt://"]),
        (["--tz", "Mars/Phobos"], ["GRIDWATCH_TZ", "Mars/Phobos"]),
        (["--topic-prefix", "gw/#"], ["GRIDWATCH_TOPIC_PREFIX"]),
    ],
)
def test_bad_settings(capsys, flags, needles):
    code, _, err = run(capsys, "db", "info", *flags)
    assert code == 1
    assert "s3cret" not in assert_one_line(err, *needles)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("GRIDWATCH_MAX_FUTURE_S", "1000000000000"), ("GRIDWATCH_RETENTION_DAYS", "-1"),
     ("GRIDWATCH_MAX_PAYLOAD_BYTES", "0")],
)  # fmt: skip
def test_ingest_windows_out_of_range_are_bad_settings(capsys, monkeypatch, variable, value):
    # Unbounded, now + the window overflowed in every parse: each message an internal error.
    monkeypatch.setenv(variable, value)
    code, _, err = run(capsys, "db", "info")
    assert code == 1
    assert_one_line(err, "bad setting", variable)


@pytest.mark.parametrize(
    ("mqtt_url", "needle"),
    [
        ("mqtt://", "MQTT URL 'mqtt://' has no host"),
        ("mqtt://broker:99999", "MQTT URL 'mqtt://broker:99999' has a bad port"),
        ("ftp://broker", "must start with mqtt:// or mqtts://"),
    ],
)
def test_bad_broker_urls(capsys, database_url, mqtt_url, needle):
    code, _, err = run(capsys, "ingest", "--database-url", database_url, "--mqtt-url", mqtt_url)
    assert code == 1
    assert_one_line(err, needle)


@pytest.mark.parametrize("command", [["grids", "import"], ["residents", "import"]])
def test_a_missing_file_is_named_before_any_database_work(capsys, tmp_path, closed_port, command):
    # The database is unreachable: the message must still be about the file.
    missing = tmp_path / "nowhere" / "grids.geojson"
    url = f"postgresql://gw@127.0.0.1:{closed_port}/gw"
    code, _, err = run(capsys, *command, str(missing), "--database-url", url)
    assert code == 1
    assert_one_line(err, f"{missing}: no such file")


def test_a_missing_file_does_not_migrate_the_database(capsys, tmp_path, blank_database_url):
    missing = tmp_path / "residents.csv"
    code, _, _ = run(capsys, "residents", "import", str(missing), "--database-url",
                     blank_database_url)  # fmt: skip
    assert code == 1
    with psycopg.connect(blank_database_url) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None


def test_db_commands_on_a_blank_database(capsys, blank_database_url):
    url = blank_database_url
    code, out, err = run(capsys, "db", "migrate", "--database-url", url)
    assert code == 0, err
    assert out.startswith("storage: plain (")
    assert "migrations applied: 001_init, 002_timeseries, 003_timeseries" in out

    code, out, err = run(capsys, "db", "migrate", "--database-url", url)
    assert code == 0, err
    assert "migrations applied: none (already up to date)" in out

    code, out, err = run(capsys, "db", "info", "--database-url", url)
    assert code == 0, err
    assert "storage mode in force: plain" in out
    assert "time zone: Asia/Shanghai" in out
    assert any(line.split()[:1] == ["meter_readings"] and "daily partitions" in line
               for line in out.splitlines()), out  # fmt: skip

    code, out, err = run(capsys, "db", "maintain", "--database-url", url)
    assert code == 0, err
    assert out.startswith("plain: 0 partitions created, 0 expired dropped, ")


def test_asking_for_timescale_on_a_plain_server(capsys, monkeypatch, blank_database_url):
    with psycopg.connect(blank_database_url) as conn:
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if "timescaledb" in preload:
        pytest.skip("this server preloads TimescaleDB")
    monkeypatch.setenv("GRIDWATCH_STORAGE", "timescale")
    code, _, err = run(capsys, "db", "migrate", "--database-url", blank_database_url)
    assert code == 1
    assert_one_line(err, "GRIDWATCH_STORAGE=timescale but")


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2
    assert "usage: gridwatch" in out and "ingest" in out


def test_the_console_command_exits_with_one_line(closed_port):
    # The real entry point, with logging configured as a person running it would have it.
    url = f"postgresql://gw@127.0.0.1:{closed_port}/gw"
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", "db", "migrate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert_one_line(done.stderr, "cannot connect to PostgreSQL")
