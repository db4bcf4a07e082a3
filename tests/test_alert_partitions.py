"""Alert engines by partition (`gridwatch alerts --partition I/N`).

The partition function is pure and checked by properties: every key in exactly one of N
partitions, the same number in every process, and the same number in SQL as in Python.

Then the guarantee itself, on the real database and broker: a simulated day of a few hundred
residents (falls, SOS presses, meter outages, absences; some residents without a grid, two
residents moving to a grid of the other partition at noon, duty officers acknowledging and
resolving) is written minute by minute into two identical databases. One engine watches the
first; two engines with N=2 watch the second, stepped side by side on the same clock. The
alerts, their every step and their outbox messages must be the same, and each message is
published to MQTT and posted to the webhook exactly once while the delivery loops of every
engine run at the same time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from gridwatch.alerts.lifecycle import Escalate, Open
from gridwatch.alerts.partition import Partition, partition_key, partition_of
from gridwatch.cli import main
from gridwatch.dispatch import service as alert_service
from gridwatch.dispatch.service import make_engine, run_delivery
from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.vocabulary import SOS
from gridwatch.simulators.faults import FaultRates
from gridwatch.simulators.sample import load_sample_district
from gridwatch.simulators.scenario import Scenario
from gridwatch.store import alert_store
from gridwatch.store.absences import add_absence
from gridwatch.store.alert_store import AlertStore, home_key_sql
from gridwatch.store.alerts import acknowledge_alert, resolve_alert
from gridwatch.store.migrate import read_meta
from gridwatch.store.outbox import OUTBOX_KEY_SQL, partition_sql
from gridwatch.store.partitions import ensure_partitions
from tests.support.broker import Subscriber
from tests.support.databases import count_rows, create_database, drop_database, settled_mornings
from tests.support.fake_alert_store import (
    FakeStore,
    a_home,
    at,
    lit_yesterday,
    sensor,
    started,
    step_through,
)
from tests.support.ports import free_port
from tests.support.settings import make_settings
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

ZONE = ZoneInfo("Asia/Shanghai")
keys = st.text(max_size=40)

# -- the partition function ------------------------------------------------------------------


@given(st.lists(keys, max_size=50), st.integers(min_value=1, max_value=64))
def test_every_key_is_in_exactly_one_partition(codes, count):
    for code in codes:
        owners = [i for i in range(count) if Partition(i, count).owns(code, "R1")]
        assert owners == [partition_of(partition_key(code, "R1"), count)]


@given(st.text(min_size=1, max_size=20), st.text(max_size=20), st.integers(1, 16))
def test_a_home_goes_by_its_grid_and_without_one_by_its_own_id(code, resident, count):
    assert partition_key(code, resident) == code
    assert partition_key(None, resident) == partition_key("", resident) == f"resident/{resident}"
    assert Partition(partition_of(code, count), count).owns(code, "anyone")


def test_the_partition_of_a_key_is_the_same_in_every_process():
    codes = ["G-001", "QS-Q01-G07", "网格-青山-017", "", "resident/R00042"]
    here = [partition_of(code, 7) for code in codes]
    # Python's own str hash differs per process (PYTHONHASHSEED): a partition must not.
    program = (
        "import sys, json; from gridwatch.alerts.partition import partition_of; "
        "print(json.dumps([partition_of(c, 7) for c in json.loads(sys.argv[1])]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", program, __import__("json").dumps(codes)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert __import__("json").loads(out) == here
    # Pinned: SHA-256("G-01") begins ede0 7eaa = 3990876714; a change of the function would
    # silently move every home to another engine in a mixed-version deployment.
    assert [partition_of("G-01", n) for n in (2, 3, 7)] == [0, 0, 3990876714 % 7]


def test_grids_spread_over_the_partitions():
    counts = Counter(partition_of(f"G-{i:04d}", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(900 <= n <= 1100 for n in counts.values()), counts


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2))]
)
def test_partition_spec_parses(text, expected):
    partition = Partition.parse(text)
    assert (partition.index, partition.count) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2/2", "numbered 0 to 1"),
        ("0/0", "at least 1"),
        ("1", "of the form I/N"),
        ("a/b", "of the form I/N"),
        ("-1/2", "of the form I/N"),
    ],
)
def test_a_bad_partition_is_one_line_and_exit_1(capsys, text, says):
    # Refused before any database is looked for.
    code = main(["alerts", f"--partition={text}", "--database-url", "postgresql://nowhere:1/x"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and says in err and err.startswith("gridwatch: error: --partition")


def sql_partitions(
    conn, key_sql: sql.Composable, joined: str, pairs: list[tuple[str, str]], count: int
):
    """The partition SQL computes for each (c, r) pair, with `joined` after the pairs."""
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM unnest(%(c)s::text[], %(r)s::text[]) "
            "WITH ORDINALITY AS t(c, r, n) {} ORDER BY n"
        ).format(partition_sql(key_sql), sql.SQL(joined)),
        {"c": [c for c, _ in pairs], "r": [r for _, r in pairs], "partition_count": count},
    ).fetchall()
    return [row[0] for row in rows]


def test_sql_computes_the_same_partitions_as_python(database_url):
    rng = __import__("random").Random(6)
    alphabet = "abcXYZ-_/09 网格区街道社é\u00a0\U0001f600"
    codes = ["", "none", "G-01"]
    codes += ["".join(rng.choices(alphabet, k=rng.randrange(1, 30))) for _ in range(400)]
    pairs = list(zip(codes, codes[::-1], strict=True))  # (grid code, resident id)
    with psycopg.connect(database_url) as conn:
        for count in (1, 2, 3, 8):
            assert sql_partitions(conn, sql.Identifier("c"), "", pairs, count) == [
                partition_of(c, count) for c in codes
            ]
            # A home's key (its grid, else its id) and an outbox row's (the grid its message
            # names, `none` without one) as the store writes them in SQL.
            home = "CROSS JOIN LATERAL (SELECT nullif(c, 'none') AS code) g"
            assert sql_partitions(conn, home_key_sql(sql.Identifier("r")), home, pairs, count) == [
                partition_of(partition_key(None if c == "none" else c, r), count) for c, r in pairs
            ]
            outbox = (
                "CROSS JOIN LATERAL (SELECT jsonb_build_object('grid_code', c, "
                "'resident_id', r) AS payload) o"
            )
            assert sql_partitions(conn, OUTBOX_KEY_SQL, outbox, pairs, count) == [
                partition_of(partition_key(None if c in ("", "none") else c, r), count)
                for c, r in pairs
            ]


# -- two engines do what one does ------------------------------------------------------------


@pytest.fixture
def digest_every_look(monkeypatch):
    """The store checks the digest of the homes at every look, not only once PostgreSQL's
    table statistics (flushed a moment after each commit) show a write: exact, not late."""
    monkeypatch.setattr(alert_store, "HOMES_DIGEST_EVERY_S", 0.0)


RESIDENTS = 160
START = datetime(2026, 3, 9, tzinfo=ZONE)  # a Monday, local midnight
STEP = timedelta(minutes=10)
MOVE_AT = START + timedelta(hours=12)
RATES = FaultRates(falls=6, sos=6, meter_outages=6, absences=6).without_delivery_faults()


@pytest.fixture
def twin_databases(postgres_server, migrated_template):
    """Two migrated databases holding the same district: one for one engine, one for two."""
    names = [f"gw_t_part_{i}_{os.urandom(4).hex()}" for i in (1, 2)]
    urls = [create_database(postgres_server, n, template=migrated_template) for n in names]
    yield urls
    for name in names:
        drop_database(postgres_server, name)


class Site:
    """One database with its writer and its engines, stepped on the simulated clock."""

    def __init__(self, url: str, settings, district, partitions: list[Partition | None]) -> None:
        self.url = url
        self.settings = settings
        with psycopg.connect(url) as conn:
            load_sample_district(conn, Path(tempfile.mkdtemp(prefix="gw-part-")), district=district)
            conn.execute("UPDATE residents SET created_at = %s", (START,))
            # Every 20th resident outside every grid: placed by their own id.
            conn.execute(
                "WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM residents) "
                "UPDATE residents r SET grid_id = NULL FROM ranked "
                "WHERE ranked.id = r.id AND ranked.n % 20 = 7"
            )
            mode = read_meta(conn)["mode"]
        settled_mornings(url)
        self.writer = BatchWriter(psycopg.connect(url), mode=mode, zone=ZONE)
        self.people = psycopg.connect(url)
        self.engine_conns = [psycopg.connect(url) for _ in partitions]
        self.engines = [
            make_engine(settings, conn, partition)
            for conn, partition in zip(self.engine_conns, partitions, strict=True)
        ]
        self.actions: list = []

    def write(self, messages: list[Message]) -> None:
        if messages:
            self.writer.write(messages)
            self.writer.conn.commit()

    def look(self, engine, now: datetime) -> None:
        """What the service does each second, on the simulated clock."""
        engine.refresh_homes(now)
        engine.poll()
        engine.refresh_absences(now)
        self.actions += engine.step(now)

    def close(self) -> None:
        for conn in (self.writer.conn, self.people, *self.engine_conns):
            conn.close()


def parsed(batch, received_at: datetime) -> list[Message]:
    """The simulator's messages as the ingest worker makes them, received at `received_at`."""
    router = TopicRouter("gw")
    messages = []
    for _at, topic, payload in batch:
        messages.append(parse_message(router, topic, payload, ParseContext(received_at, ZONE)))
    return messages


def moves_across(url: str, halves: list[Partition]) -> dict[str, str]:
    """A resident of each partition whose alert is open, each to a grid of the other."""
    with psycopg.connect(url) as conn:
        alerted = conn.execute(
            "SELECT r.id, g.code FROM alerts a JOIN residents r ON r.id = a.resident_id "
            "JOIN grids g ON g.id = r.grid_id "
            "WHERE a.status = 'open' AND a.kind <> 'meter_offline' "
            "ORDER BY a.kind IN ('sos', 'fall'), r.id"
        ).fetchall()
        codes = [c for (c,) in conn.execute("SELECT code FROM grids WHERE level = 'grid'")]
    moves = {}
    for here, there in (halves, halves[::-1]):
        resident = next(r for r, c in alerted if here.owns(c, r))
        moves[resident] = next(c for c in sorted(codes) if there.owns(c, resident))
    return moves


def move_residents(url: str, moves: dict[str, str]) -> None:
    with psycopg.connect(url) as conn:
        for resident, code in moves.items():
            conn.execute(
                "UPDATE residents SET grid_id = (SELECT id FROM grids WHERE code = %s) "
                "WHERE id = %s",
                (code, resident),
            )


def people_act(site: Site, now: datetime, hour: int) -> None:
    """On the hour a duty officer takes the first open alert; every third hour one resolves
    the first taken. The same choice in both databases while their alerts are the same."""
    conn = site.people
    first = conn.execute(
        "SELECT id FROM alerts WHERE status = %s AND kind <> 'meter_offline' "
        "ORDER BY kind, resident_id LIMIT 1",
        ("open",),
    ).fetchone()
    conn.commit()
    if first:
        acknowledge_alert(
            conn, first[0], actor="duty officer", note=None, now=now,
            topic_prefix=site.settings.topic_prefix, webhooks=site.settings.alert_webhooks,
        )  # fmt: skip
    taken = conn.execute(
        "SELECT id FROM alerts WHERE status = 'acknowledged' ORDER BY kind, resident_id LIMIT 1"
    ).fetchone()
    conn.commit()
    if taken and hour % 3 == 0:
        resolve_alert(
            conn, taken[0], actor="grid worker", reason="visited", checked=False, now=now,
            topic_prefix=site.settings.topic_prefix, webhooks=site.settings.alert_webhooks,
        )  # fmt: skip


def alert_history(url: str) -> list[tuple]:
    """Every alert with every step of its life, without database ids."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            SELECT a.resident_id, a.kind, a.since, a.severity, a.status, a.level, a.opened_at,
                   a.resolved_at, a.resolved_by, a.acknowledged_by,
                   array_agg(e.action || ':' || e.level || ':' || e.actor || '@' || e.at
                             ORDER BY e.id)
            FROM alerts a JOIN alert_events e ON e.alert_id = a.id
            GROUP BY a.id ORDER BY a.resident_id, a.kind, a.since, a.opened_at
            """
        ).fetchall()


def outbox_messages(url: str, prefix: str) -> list[tuple]:
    """The outbox without ids: (topic below the prefix, payload without ids), sorted."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT topic, payload FROM alert_outbox").fetchall()
    return sorted(
        (
            topic.removeprefix(prefix),
            sorted((k, str(v)) for k, v in payload.items() if k not in ("alert_id", "event_id")),
        )
        for topic, payload in rows
    )


def all_delivered(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return not conn.execute(
            "SELECT 1 FROM alert_outbox WHERE published_at IS NULL UNION ALL "
            "SELECT 1 FROM webhook_deliveries WHERE delivered_at IS NULL"
        ).fetchone()


def outbox_event_ids(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM alert_outbox ORDER BY 1")]


def test_two_engines_on_two_partitions_fire_exactly_what_one_engine_fires(
    tmp_path, twin_databases, mqtt_url, digest_every_look
):
    from gridwatch.simulators.cli import sample_district

    district = sample_district(RESIDENTS)
    one_url, two_url = twin_databases
    receivers = [Receiver(free_port()), Receiver(free_port())]
    for receiver in receivers:
        receiver.status = 200
        receiver.start()
    settings = [
        make_settings(tmp_path, url, mqtt_url, tz=ZONE.key, alert_webhooks=(receiver.url,))
        for url, receiver in zip(twin_databases, receivers, strict=True)
    ]
    halves = [Partition(0, 2), Partition(1, 2)]
    one = Site(one_url, settings[0], district, [None])
    two = Site(two_url, settings[1], district, halves)

    scenario = Scenario(district, START, 1, seed=11, meter_interval_s=300, tz=ZONE, rates=RATES)
    for incident in scenario.incidents:
        if incident.kind == "absence":
            for site in (one, two):
                add_absence(
                    site.people, incident.resident_id,
                    starts_at=incident.at, ends_at=incident.until,
                )  # fmt: skip

    stop = threading.Event()
    deliveries = [
        threading.Thread(target=run_delivery, args=(settings[0], one_url, mqtt_url, stop)),
        *(
            threading.Thread(target=run_delivery, args=(settings[1], two_url, mqtt_url, stop, p))
            for p in halves
        ),
    ]
    subscribers = [
        Subscriber(mqtt_url, f"{s.topic_prefix}/alerts/#", f"{s.mqtt_client_id}-sub")
        for s in settings
    ]
    pool = ThreadPoolExecutor(2)
    try:
        for engine in (*one.engines, *two.engines):
            engine.load(START)
        # Each engine watches its own homes; together the same as the one.
        watched = [set(e.homes) for e in two.engines]
        assert watched[0] and watched[1] and not watched[0] & watched[1]
        assert watched[0] | watched[1] == set(one.engines[0].homes)
        for thread in deliveries:
            thread.start()

        for step_end, batch in scenario.messages_by_step(STEP):
            messages = parsed(batch, step_end)
            for site in (one, two):
                site.write(messages)
            if step_end == MOVE_AT:
                moves = moves_across(one_url, halves)
                for url in twin_databases:
                    move_residents(url, moves)
            one.look(one.engines[0], step_end)
            # The two engines at the same time, each on its own connection.
            list(pool.map(lambda e, t=step_end: two.look(e, t), two.engines))
            if step_end.minute == 0:
                for site in (one, two):
                    people_act(site, step_end, step_end.hour)

        history = alert_history(one_url)
        assert alert_history(two_url) == history
        # Each moved resident is watched by the other engine now, and their alerts went on
        # changing after the move (escalated, acknowledged or resolved there).
        for resident, code in moves.items():
            assert [resident in e.homes for e in two.engines] == [
                p.owns(code, resident) for p in halves
            ]
        with psycopg.connect(two_url) as conn:
            moved_steps = conn.execute(
                "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                "WHERE a.resident_id = ANY(%s) AND e.at > %s",
                (list(moves), MOVE_AT),
            ).fetchone()[0]
        assert moved_steps >= 2
        kinds = Counter(row[1] for row in history)
        # The day had every kind of alert and of step, or the comparison proves little.
        assert {"sos", "fall", "meter_offline", "no_activity", "morning"} <= set(kinds), kinds
        assert any(isinstance(a, Escalate) for a in two.actions)
        steps = Counter(step.split(":")[0] for row in history for step in row[-1])
        assert steps["escalated"] and steps["acknowledged"] and steps["resolved"], steps
        # Both engines of the two wrote some of them, alerts of residents without a grid too.
        fired_by = {a.resident_id for a in two.actions if hasattr(a, "resident_id")}
        assert fired_by & watched[0] and fired_by & watched[1]
        assert "/alerts/none" in {t for t, _ in outbox_messages(two_url, settings[1].topic_prefix)}
        assert outbox_messages(two_url, settings[1].topic_prefix) == outbox_messages(
            one_url, settings[0].topic_prefix
        )

        # Every outbox message published once and posted once, by whichever loop owns it.
        for url in twin_databases:
            wait_for(lambda u=url: all_delivered(u), 60, "the outbox published and posted")
        time.sleep(1.0)  # a message sent twice would arrive by now
        for url, subscriber, receiver in zip(twin_databases, subscribers, receivers, strict=True):
            expected = outbox_event_ids(url)
            assert sorted(p["event_id"] for _t, p in subscriber.messages) == expected
            assert sorted(b["event_id"] for _h, b in receiver.accepted()) == expected
    finally:
        stop.set()
        pool.shutdown()
        for thread in deliveries:
            if thread.is_alive():
                thread.join(timeout=20)
        for subscriber in subscribers:
            subscriber.close()
        for receiver in receivers:
            receiver.stop()
        one.close()
        two.close()


# -- a home that moves -------------------------------------------------------------------------


def test_an_engine_that_has_not_yet_seen_a_move_writes_nothing_for_the_home(
    tmp_path, district_database_url, mqtt_url, digest_every_look
):
    url = district_database_url
    settings = make_settings(tmp_path, url, mqtt_url)
    halves = [Partition(0, 2), Partition(1, 2)]
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        placed = conn.execute(
            "SELECT r.id, g.code, d.id FROM residents r JOIN grids g ON g.id = r.grid_id "
            "JOIN devices d ON d.resident_id = r.id AND d.id LIKE '%-door' ORDER BY r.id"
        ).fetchall()
        resident, _code, door = next(p for p in placed if halves[0].owns(p[1], p[0]))
        elsewhere = next(c for _r, c, _d in placed if halves[1].owns(c, resident))
        # Only this resident's emergencies are watched, from a day ago; an SOS a minute ago.
        conn.execute("UPDATE residents SET living_alone = false")
        conn.execute("UPDATE residents SET created_at = %s", (now - timedelta(days=1),))
        zone = ZoneInfo(read_meta(conn)["tz"])
        conn.commit()
        ensure_partitions(conn, {(now - timedelta(minutes=1)).astimezone(zone).date()}, zone)
        conn.execute(
            "INSERT INTO sensor_events (device_id, observed_at, received_at, event) "
            "VALUES (%s, %s, %s, 'sos')",
            (door, now - timedelta(minutes=1), now - timedelta(minutes=1)),
        )
    with psycopg.connect(url) as a_conn, psycopg.connect(url) as b_conn:
        a, b = (make_engine(settings, c, p) for c, p in zip((a_conn, b_conn), halves, strict=True))
        a.load(now)
        b.load(now)
        assert resident in a.homes and resident not in b.homes
        move_residents(url, {resident: elsewhere})

        # A has not looked at who it watches since: it would open the SOS, but the resident
        # is B's now, and the store refuses A's write.
        assert [x.resident_id for x in a.step(now) if isinstance(x, Open)] == [resident]
        assert count_rows(url, "alerts") == 0
        # B takes the home in at its next look and opens the alert, once; A lets it go.
        assert b.refresh_homes(now) == (1, 0)
        assert [x.condition.kind for x in b.step(now) if isinstance(x, Open)] == [SOS]
        assert a.refresh_homes(now) == (0, 1)
        assert a.step(now) == []
        assert count_rows(url, "alerts") == 1


def test_a_resident_imported_while_the_engine_runs_is_watched_from_its_next_look():
    store = FakeStore([a_home()])
    engine = started(store, at("08:00"))
    newcomer = a_home("R00002", since=at("08:00"), meter="M00002", sensors=("S00002-door",))
    store.homes_.append(newcomer)
    store.signals.append(sensor(at("08:05"), SOS, key="S00002-door"))
    store.clock = at("08:10")
    assert engine.refresh_homes(at("08:10")) == (1, 0)
    opened = [a for a in step_through(engine, store, at("08:11")) if isinstance(a, Open)]
    assert [(a.resident_id, a.condition.kind) for a in opened] == [("R00002", SOS)]
    # Removed again: let go, and nothing scheduled for it breaks a later step.
    store.homes_.remove(newcomer)
    assert engine.refresh_homes(at("08:12")) == (0, 1)
    step_through(engine, store, at("09:00"))
    assert "R00002" not in engine.homes


def test_an_sos_resolved_before_a_restart_does_not_open_again():
    store = FakeStore([a_home(meter=None, sensors=("S00001-door", "S00001-pendant"))])
    lit_yesterday(store)
    store.signals.append(sensor(at("09:00"), "door_open"))
    store.signals.append(sensor(at("09:30"), SOS, key="S00001-pendant"))
    engine = started(store, at("09:00"))
    step_through(engine, store, at("09:31"))
    (sos,) = store.alerts_of(SOS)
    store.resolve_by_person(sos.id, at("09:40"), checked=False)
    # The engine restarts: the last day's data holds the press again.
    started(store, at("09:45"))
    assert [a.status for a in store.alerts_of(SOS)] == ["resolved"]


def test_the_homes_are_read_again_only_when_something_changed(
    district_database_url, digest_every_look
):
    with psycopg.connect(district_database_url) as conn:
        store = AlertStore(conn)
        first = store.homes()
        assert store.homes() is first  # nothing changed: the digest says so, no rows read
        (resident, sensor) = conn.execute(
            "SELECT resident_id, id FROM devices WHERE kind = 'sensor' ORDER BY id LIMIT 1"
        ).fetchone()
        other = conn.execute(
            "SELECT id FROM residents WHERE id <> %s ORDER BY id LIMIT 1", (resident,)
        ).fetchone()[0]
        conn.execute("UPDATE devices SET resident_id = %s WHERE id = %s", (other, sensor))
        conn.commit()
        moved = {h.resident_id: h for h in store.homes()}
        assert sensor in moved[other].sensor_ids and sensor not in moved[resident].sensor_ids
        conn.execute(
            "UPDATE residents SET rules = '{\"no_activity_h\": 8}' WHERE id = %s", (other,)
        )
        conn.commit()
        assert {h.resident_id: h for h in store.homes()}[other].rules == {"no_activity_h": 8}


# -- one process per partition -----------------------------------------------------------------


def test_a_second_process_for_a_partition_stands_by_until_the_first_is_gone(
    tmp_path, database_url, mqtt_url, caplog, monkeypatch
):
    monkeypatch.setattr(alert_service, "LEASE_CHECK_S", 0.2)
    settings = make_settings(tmp_path, database_url, mqtt_url)
    partition = Partition(1, 2)
    # Another process runs partition 1/2: it holds the partition's lease.
    holder = psycopg.connect(database_url, autocommit=True)
    holder.execute(
        "SELECT pg_advisory_lock(%s, %s)", (alert_service.LEASE_LOCK_CLASS, 2 * 65536 + 1)
    )
    stop = threading.Event()
    standby = threading.Thread(
        target=alert_service.run_alerts, args=(settings, database_url, mqtt_url, stop, partition)
    )
    caplog.set_level(logging.INFO, logger="gridwatch.dispatch.service")
    try:
        standby.start()
        wait_for(lambda: "held by another process; standing by" in caplog.text, 10, "standby")
        time.sleep(1.0)
        assert "alert engine watching" not in caplog.text
        holder.close()  # the other process is gone, and its connection with it
        wait_for(lambda: "alert engine watching" in caplog.text, 10, "the standby taking over")
    finally:
        stop.set()
        standby.join(timeout=30)
        holder.close()
    assert not standby.is_alive()


def test_a_write_to_the_residents_is_noticed_within_seconds(district_database_url):
    with psycopg.connect(district_database_url) as conn:
        store = AlertStore(conn)
        first = store.homes()
        assert store.homes() is first
        with psycopg.connect(district_database_url) as other:  # an import, elsewhere
            other.execute(
                "UPDATE residents SET living_alone = NOT living_alone WHERE id = ("
                "SELECT min(id) FROM residents)"
            )
        # Long before the minute's digest: the table statistics show the write.
        wait_for(lambda: store.homes() is not first, 15, "the homes read again")
