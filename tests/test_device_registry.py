"""`gridwatch devices` and the registration check of ingest: broker passwords in Mosquitto's
format, the registry's refusals, and unregistered or revoked sources dead-lettered through
the real broker while the rest of their batch is stored."""

from __future__ import annotations

import base64
import hashlib
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.cli import main
from gridwatch.errors import InputFileError
from gridwatch.ingest.broker_credentials import (
    check_broker_user,
    new_password,
    password_hash,
    remove_password_line,
    set_password_line,
)
from gridwatch.ingest.registration import RegistrationCheck
from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.records import MeterReading, PatrolCheckin
from gridwatch.settings import Settings
from gridwatch.store.mode import PLAIN
from tests.support.databases import count_rows
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

# Made by `mosquitto_passwd -b FILE alice s3cret` (Mosquitto 2.0.11).
MOSQUITTO_LINE = (
    "alice:$7$101$/Ktax6h+lfBOnHbR$UTfxvyB7uCpt5/vhuzGzQUzwPMOJtEYsnh955yqqYnNFgbaMqwNwZ+bhZ53zD"
    "JeYHlSWIFKAGbTzG/VkgfzN8w=="
)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- passwords and the password file --------------------------------------------------------


def test_hash_is_the_one_mosquitto_passwd_writes():
    user, hashed = MOSQUITTO_LINE.split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert f"{user}:{password_hash('s3cret', salt)}" == MOSQUITTO_LINE
    assert password_hash("s3cret", salt) != password_hash("s3cret!", salt)


def test_new_hashes_verify_and_are_salted():
    password = new_password()
    assert len(password) == 32
    first, second = password_hash(password), password_hash(password)
    assert first != second  # a fresh salt each time
    _, kind, rounds, salt, digest = first.split("$")
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), 101)
    assert (kind, rounds, len(base64.b64decode(salt))) == ("7", "101", 12)
    assert base64.b64decode(digest) == expected


def test_password_file_lines_are_replaced_appended_and_removed(tmp_path):
    path = tmp_path / "passwd"
    path.write_text("# broker users\ngridwatch:$7$x\nM-1:$7$old\n")
    path.chmod(0o640)
    assert set_password_line(path, "M-1", "M-1:$7$new") is True
    assert set_password_line(path, "M-2", "M-2:$7$two") is False
    assert path.read_text() == "# broker users\ngridwatch:$7$x\nM-1:$7$new\nM-2:$7$two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert remove_password_line(path, "M-1") is True
    assert remove_password_line(path, "M-9") is False
    assert path.read_text() == "# broker users\ngridwatch:$7$x\nM-2:$7$two\n"
    fresh = tmp_path / "new-passwd"
    set_password_line(fresh, "S-1", "S-1:$7$s")
    assert fresh.read_text() == "S-1:$7$s\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@given(st.text(min_size=1, max_size=40))
def test_broker_users_never_hold_what_widens_an_acl_pattern(name):
    try:
        check_broker_user(name, "id")
    except InputFileError as exc:
        assert "id" in str(exc)
    else:
        assert not set(name) & set("/+#:$")
        assert all(c.isprintable() and not c.isspace() for c in name)


@pytest.mark.parametrize(
    "name", ["a/b", "M+", "#", "x:y", "$SYS", "two words", "", "m" * 129, "gridwatch-api"]
)
def test_bad_broker_users_are_refused(name):
    with pytest.raises(InputFileError):
        check_broker_user(name, "meter id")


# -- the devices commands --------------------------------------------------------------------


def test_devices_add_list_revoke(capsys, tmp_path, district_database_url):
    db = ("--database-url", district_database_url)
    with psycopg.connect(district_database_url) as conn:
        resident, meter = conn.execute(
            "SELECT resident_id, id FROM devices WHERE kind = 'meter' ORDER BY id LIMIT 1"
        ).fetchone()
        worker, other_worker = (
            w for (w,) in conn.execute("SELECT id FROM workers ORDER BY id LIMIT 2")
        )
    passwords = tmp_path / "passwd"
    passwords.write_text("gridwatch:$7$service\nservice:$7$other\n")

    # An imported meter gets credentials and keeps its resident.
    code, out, _ = run_cli(capsys, "devices", "add", meter, "--kind", "meter", *db)
    lines = out.splitlines()
    assert code == 0
    assert f"meter {meter} registered (resident {resident}); broker user {meter}" in lines[0]
    password = lines[-1]
    line = next(x for x in lines if x.startswith(f"{meter}:$7$101$"))
    salt = base64.b64decode(line.split("$")[3])
    assert line == f"{meter}:{password_hash(password, salt)}"

    code, out, _ = run_cli(
        capsys, "devices", "add", "phone-1", "--kind", "app", "--worker", worker,
        "--password-file", str(passwords), *db,
    )  # fmt: skip
    assert code == 0 and f"line for {worker} added" in out
    assert passwords.read_text().splitlines()[0] == "gridwatch:$7$service"
    assert passwords.read_text().splitlines()[2].startswith(f"{worker}:$7$101$")

    # Refusals: one line each, exit code 1, nothing written.
    before = passwords.read_text()
    for argv, reason in [
        (("phone-2", "--kind", "app", "--worker", worker), "already has app 'phone-1'"),
        ((meter, "--kind", "sensor"), f"broker user {meter!r} already belongs to meter"),
        ((worker, "--kind", "meter"), f"already belongs to worker {worker!r} (app 'phone-1')"),
        ((other_worker, "--kind", "meter"), "is also a worker's id"),
        (("gridwatch", "--kind", "meter"), "belong to gridwatch's own services"),
        (("Gridwatch-ingest-0", "--kind", "meter"), "belong to gridwatch's own services"),
        (("phone-9", "--kind", "app", "--worker", "gridwatch-ingest"), "own services"),
        (("service", "--kind", "meter"), "no gridwatch device was given"),
        (("M-NEW", "--kind", "meter", "--resident", "NOBODY"), "no resident 'NOBODY'"),
        (("M-NEW", "--kind", "meter", "--worker", worker), "belongs to a resident"),
        (("P-9", "--kind", "app"), "an app needs --worker"),
        (("gw/meter/#", "--kind", "meter"), "cannot be a broker user"),
    ]:
        code, out, err = run_cli(
            capsys, "devices", "add", *argv, "--password-file", str(passwords), *db
        )
        assert code == 1, argv
        assert err.count("\n") == 1 and reason in err, (argv, err)
    assert passwords.read_text() == before

    code, out, _ = run_cli(capsys, "devices", "list", "--kind", "app", *db)
    assert out.split()[:2] == ["app", "phone-1"] and "active" in out

    code, out, _ = run_cli(
        capsys, "devices", "revoke", "phone-1", "--password-file", str(passwords), *db
    )
    assert code == 0 and f"line for {worker} removed" in out
    assert passwords.read_text() == "gridwatch:$7$service\nservice:$7$other\n"
    code, out, _ = run_cli(capsys, "devices", "list", "--kind", "app", *db)
    assert "revoked" in out
    # A new phone for the worker once the old one is revoked; the old one stays revoked.
    code, out, _ = run_cli(
        capsys, "devices", "add", "phone-2", "--kind", "app", "--worker", worker, *db
    )
    assert code == 0
    code, _, err = run_cli(capsys, "devices", "revoke", "nothing", *db)
    assert code == 1 and "no device 'nothing' is registered" in err


def test_residents_import_keeps_registering_meters_and_sensors(capsys, tmp_path, database_url):
    csv = tmp_path / "residents.csv"
    csv.write_text(
        "resident_id,name,address,lat,lon,grid_code,meter_id,sensor_ids,phone,living_alone\n"
        "R1,某某,地址,40.6,109.9,,M-R1,S-R1a;S-R1b,,true\n"
    )
    code, _, err = run_cli(capsys, "residents", "import", str(csv), "--database-url", database_url)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "devices", "list", "--database-url", database_url)
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["meter", "M-R1"], ["sensor", "S-R1a"], ["sensor", "S-R1b"],
    ]  # fmt: skip
    assert all("no credentials" in line and "active" in line for line in out.splitlines())


# -- the check in ingest ---------------------------------------------------------------------


def _register(url: str, *devices: tuple[str, str, str | None], revoked: tuple[str, ...] = ()):
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO devices (kind, id, worker_id, revoked_at) VALUES (%s, %s, %s, %s)",
            [
                (kind, did, worker, now() if did in revoked else None)
                for kind, did, worker in devices
            ],
        )


def now() -> datetime:
    return datetime.now(UTC)


def test_unregistered_and_revoked_sources_are_dead_letters_the_rest_stored(
    tmp_path, database_url, mqtt_url, start_worker, publish
):
    settings = make_settings(tmp_path, database_url, mqtt_url, require_registered_devices=True)
    prefix = settings.topic_prefix
    worker = f"W-{uuid.uuid4().hex[:8]}"  # OwnTracks topics are shared with other tests
    stranger = f"X-{uuid.uuid4().hex[:8]}"
    _register(
        database_url,
        ("meter", "M-OK", None), ("sensor", "S-OK", None), ("meter", "M-GONE", None),
        ("app", "phone", worker), ("meter", "MARK", None),
        revoked=("M-GONE",),
    )  # fmt: skip
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO workers (id, name) VALUES ('W-KNOWN', 'Known')")
    start_worker(settings)
    ts = (now() - timedelta(minutes=5)).isoformat()
    place = {"ts": ts, "lat": 40.6, "lon": 109.9}
    hazard = {**place, "category": "road", "severity": "low"}
    refused = {
        f"{prefix}/meter/M-NONE": ("meter 'M-NONE' is not registered", {"power_w": 1.0}),
        f"{prefix}/meter/S-OK": ("meter 'S-OK' is not registered", {"power_w": 1.0}),
        f"{prefix}/sensor/M-OK": ("sensor 'M-OK' is not registered", {"event": "motion"}),
        f"{prefix}/meter/M-GONE": ("meter 'M-GONE' was revoked", {"power_w": 1.0}),
        f"{prefix}/patrol/{stranger}": (f"worker '{stranger}' is not registered", place),
        f"{prefix}/hazard/{stranger}": (
            f"worker '{stranger}' is not registered",
            {**hazard, "id": str(uuid.uuid4())},
        ),
        f"owntracks/{stranger}/phone": (
            f"worker '{stranger}' is not registered",
            {"_type": "location", "lat": 40.6, "lon": 109.9, "tst": int(time.time()) - 60},
        ),
    }
    stored = [
        (f"{prefix}/meter/M-OK", {"ts": ts, "power_w": 2.0}),
        (f"{prefix}/sensor/S-OK", {"ts": ts, "event": "motion"}),
        (f"{prefix}/patrol/{worker}", place),  # an app's worker, not an imported one
        (f"{prefix}/hazard/{worker}", {**hazard, "id": str(uuid.uuid4())}),
        (f"owntracks/{worker}/phone", {"_type": "location", "lat": 40.6, "lon": 109.9}),
        (f"{prefix}/patrol/W-KNOWN", place),  # an imported worker, no app registered
    ]
    for topic, (_, payload) in refused.items():
        publish(topic, {"ts": ts, **payload} if "_type" not in payload else payload)
    for topic, payload in stored:
        publish(topic, payload)
    _caught_up(database_url, prefix, publish)

    with psycopg.connect(database_url) as conn:
        dead = dict(
            conn.execute(
                "SELECT topic, reason FROM dead_letters WHERE topic LIKE %s OR topic LIKE %s",
                (f"{prefix}/%", f"owntracks/{stranger}/%"),
            ).fetchall()
        )
    assert set(dead) == set(refused)
    for topic, (reason, _) in refused.items():
        assert dead[topic].startswith(reason), (topic, dead[topic])
    assert count_rows(database_url, "meter_readings", "meter_id = 'M-OK'") == 1
    assert count_rows(database_url, "sensor_events") == 1
    assert (
        count_rows(database_url, "patrol_checkins", "worker_id IN (%s, 'W-KNOWN')", (worker,)) == 3
    )
    assert count_rows(database_url, "hazard_reports") == 1

    # A meter registered a moment ago is let in: the registry reloads on a miss, at most
    # every few seconds.
    code = main(["devices", "add", "M-LATE", "--kind", "meter", "--database-url", database_url])
    assert code == 0
    time.sleep(3.1)
    publish(f"{prefix}/meter/M-LATE", {"ts": ts, "power_w": 3.0})
    _caught_up(database_url, prefix, publish)
    assert count_rows(database_url, "meter_readings", "meter_id = 'M-LATE'") == 1


def _caught_up(url: str, prefix: str, publish) -> None:
    """Publish from the registered meter MARK and wait until that row is stored."""
    ts = (now() - timedelta(minutes=1, microseconds=uuid.uuid4().int % 10**6)).isoformat()
    publish(f"{prefix}/meter/MARK", {"ts": ts, "power_w": 0.0})
    publish.flush()
    wait_for(
        lambda: count_rows(url, "meter_readings", "meter_id = 'MARK' AND observed_at = %s", (ts,)),
        30,
        "the worker to store the marker",
    )


def test_a_revocation_reaches_a_running_writer(database_url):
    _register(database_url, ("meter", "M-1", None), ("app", "phone", "W-1"))
    received = now()

    def batch() -> list[Message]:
        readings = [
            MeterReading("M-1", received, received, 1.0, None, None),
            PatrolCheckin("W-1", received, received, 109.9, 40.6, None, "patrol", None, None, None),
        ]
        return [Message("t", b"{}", received, reading) for reading in readings]

    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode=PLAIN, zone=UTC, require_registered=True)
        first = batch()
        writer.registrations.refuse_unregistered(first, conn)
        assert [m.reason for m in first] == [None, None]
        main(["devices", "revoke", "phone", "--database-url", database_url])
        assert writer.reload_registrations_if_changed() is True
        assert writer.reload_registrations_if_changed() is False
        second = batch()
        assert writer.registrations.refuse_unregistered(second, conn) == 1
        assert second[1].reason.startswith("worker 'W-1' was revoked")


def test_a_miss_reloads_at_most_every_few_seconds(database_url):
    with psycopg.connect(database_url) as conn:
        check = RegistrationCheck(conn, miss_reload_s=60)
        _register(database_url, ("meter", "M-1", None))
        received = now()
        reading = MeterReading("M-1", received, received, 1.0, None, None)
        messages = [Message("t", b"{}", received, reading)]
        # Loaded a moment ago: the miss does not reload (a flood of strangers costs nothing).
        assert check.refuse_unregistered(messages, conn) == 1
        check.miss_reload_s = 0
        messages = [Message("t", b"{}", received, reading)]
        assert check.refuse_unregistered(messages, conn) == 0


def test_registration_is_off_by_default():
    # The demo and the simulators publish from ids nobody registered.
    assert Settings.model_fields["require_registered_devices"].default is False
