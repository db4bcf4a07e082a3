"""Alerts end to end: readings through the real broker into the real database, the engine on
an injected clock, the outbox delivered to MQTT subscribers.

Two residents of the sample district live one simulated day: meter readings every five
minutes (a kettle now and then), the curtains opened in the morning, the light on in the
evening, a last light off at 21:10. Then nothing but base load. The engine is loaded at
21:30 and stepped on a simulated clock while the day's readings keep arriving.

The clock is aligned with the wall clock at the one moment that needs it: a person's check
(`resolve_alert(..., checked=True)`) is read by the engine by its time against the newest
arrival time of the data, which is wall time. So 09:15 of the simulated morning is a few
minutes from now, and the zone is the fixed offset that makes it so (the windows are cut in
local time; which offset does not matter to the rules, tested in every zone elsewhere).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.alerts.lifecycle import Escalate, Open, Resolve
from gridwatch.dispatch.service import make_engine, run_delivery
from gridwatch.model.vocabulary import MORNING, NO_ACTIVITY, SOS
from gridwatch.store.alerts import acknowledge_alert, resolve_alert
from tests.support.broker import Subscriber
from tests.support.databases import count_rows, settled_mornings
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

READING_EVERY = timedelta(minutes=5)
BASE_W = 40.0
KETTLE_W = 2000.0
CHECK_AT = time(9, 15)  # the simulated moment that is (a few minutes after) now


def aligned_zone(local: time) -> tuple[ZoneInfo, datetime]:
    """A fixed-offset zone and an instant a few minutes to two hours from now whose local
    time in that zone is `local`."""
    now = datetime.now(UTC)
    hour_ahead = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    target = hour_ahead + timedelta(minutes=local.minute)
    offset = (local.hour - target.hour) % 24
    if offset > 12:
        offset -= 24
    zone = ZoneInfo(f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT")  # Etc signs are inverted
    assert target.astimezone(zone).time() == local
    return zone, target


@dataclass(frozen=True)
class Resident:
    id: str
    grid_code: str
    meter: str
    door: str
    curtain: str
    light: str
    pendant: str | None


def residents_with_curtain_and_light(url: str, count: int) -> list[Resident]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT r.id, g.code,
                   max(d.id) FILTER (WHERE d.kind = 'meter'),
                   max(d.id) FILTER (WHERE d.id LIKE '%%-door'),
                   max(d.id) FILTER (WHERE d.id LIKE '%%-curtain'),
                   max(d.id) FILTER (WHERE d.id LIKE '%%-light'),
                   max(d.id) FILTER (WHERE d.id LIKE '%%-pendant')
            FROM residents r JOIN grids g ON g.id = r.grid_id JOIN devices d ON d.resident_id = r.id
            WHERE r.living_alone
            GROUP BY r.id, g.code
            HAVING count(*) FILTER (WHERE d.id LIKE '%%-curtain' OR d.id LIKE '%%-light') = 2
               AND count(*) FILTER (WHERE d.kind = 'meter') = 1
            ORDER BY r.id LIMIT %s
            """,
            (count,),
        ).fetchall()
    assert len(rows) == count
    return [Resident(*row) for row in rows]


def watch_only(url: str, residents: list[Resident], since: datetime) -> None:
    """Monitor only these residents, from `since` on: the rest of the district has no data
    in this test and would only add alerts about silent meters."""
    ids = [r.id for r in residents]
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE residents SET living_alone = (id = ANY(%s))", (ids,))
        conn.execute("UPDATE residents SET created_at = %s WHERE id = ANY(%s)", (since, ids))


class Day:
    """The simulated residents' data, published through the broker as the clock advances,
    and the engine stepped like the service does (poll, refresh, step)."""

    def __init__(self, settings, publish, worker, residents, start: datetime) -> None:
        self.settings = settings
        self.publish = publish
        self.worker = worker
        self.residents = residents
        self.sent = 0
        self.published_until = start - timedelta(seconds=1)
        self.events: list[tuple[datetime, str, dict]] = []
        self.kettles: dict[str, set[datetime]] = {r.meter: set() for r in residents}
        self.engine = None
        self.clock: datetime | None = None

    def sensor(self, device: str, at: datetime, event: str) -> None:
        self.events.append((at, f"{self.settings.topic_prefix}/sensor/{device}", event))

    def kettle(self, meter: str, at: datetime) -> None:
        self.kettles[meter].add(at)

    def publish_until(self, until: datetime) -> None:
        """Every reading and event stamped after what was sent and up to `until`."""
        prefix = self.settings.topic_prefix
        t = _next_reading(self.published_until)
        while t <= until:
            for r in self.residents:
                power = KETTLE_W if t in self.kettles[r.meter] else BASE_W
                self._send(f"{prefix}/meter/{r.meter}", {"ts": t.isoformat(), "power_w": power})
            t += READING_EVERY
        for at, topic, event in sorted(self.events, key=lambda e: e[0]):
            if self.published_until < at <= until:
                self._send(topic, {"ts": at.isoformat(), "event": event})
        self.published_until = until
        self.publish.flush()
        wait_for(lambda: self.worker.stats.stored >= self.sent, 30, f"{self.sent} messages stored")

    def _send(self, topic: str, payload: dict) -> None:
        self.publish(topic, payload)
        self.sent += 1

    def load(self, conn, at: datetime) -> None:
        self.publish_until(at)
        self.engine = make_engine(self.settings, conn)
        self.engine.load(at)
        self.clock = at
        assert self.engine.step(at) == []

    def advance(self, to: datetime) -> list:
        """Data up to `to` arrives and the engine looks at `to`.

        The service looks every second; here the clock jumps. The engine takes a reading
        stamped more than five minutes past its last look as a device clock running fast,
        so it looks once five minutes before `to` (with what it knew), then takes the data.
        """
        self.publish_until(to)
        actions = []
        if to - self.clock > timedelta(minutes=5):
            actions += self.engine.step(to - timedelta(minutes=5))
        self.engine.poll()
        self.engine.refresh_absences(to)
        actions += self.engine.step(to)
        self.clock = to
        return actions


def _next_reading(after: datetime) -> datetime:
    """The first multiple of five minutes (since the epoch) after `after`."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = (after - epoch) // READING_EVERY + 1
    return epoch + steps * READING_EVERY


def summary(actions) -> list[tuple[str, str, str]]:
    """(action, resident, kind) of each action, sorted."""
    out = []
    for a in actions:
        if isinstance(a, Open):
            out.append(("open", a.resident_id, a.condition.kind))
        elif isinstance(a, Resolve):
            out.append(("resolve", a.alert.resident_id, a.alert.kind))
        elif isinstance(a, Escalate):
            out.append((f"escalate:{a.level}", a.alert.resident_id, a.alert.kind))
    return sorted(out)


def alert_rows(url: str, resident: str, kind: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, status, severity, level, since, resolved_by FROM alerts "
            "WHERE resident_id = %s AND kind = %s ORDER BY id",
            (resident, kind),
        ).fetchall()


def events_of(url: str, alert_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT action, level, actor FROM alert_events WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()


def test_a_day_of_two_residents_through_broker_engine_and_delivery(
    tmp_path, district_database_url, mqtt_url, start_worker, publish
):
    zone, check_at = aligned_zone(CHECK_AT)
    url = district_database_url
    settings = make_settings(tmp_path, url, mqtt_url, tz=zone.key)
    prefix = settings.topic_prefix
    a, b = residents_with_curtain_and_light(url, 2)
    day = check_at.astimezone(zone).date() - timedelta(days=1)

    def local(hhmm: str, days: int = 0) -> datetime:
        return datetime.combine(day + timedelta(days=days), time.fromisoformat(hhmm), zone)

    watch_only(url, [a, b], since=local("00:00", -1))
    settled_mornings(url, [a.id, b.id])
    worker = start_worker(settings)
    sim = Day(settings, publish, worker, [a, b], start=local("00:00"))
    for r in (a, b):
        sim.sensor(r.curtain, local("06:30"), "curtain_open")
        sim.sensor(r.door, local("06:40"), "door_open")
        for hhmm in ("07:00", "12:00", "18:30"):
            sim.kettle(r.meter, local(hhmm))
        sim.sensor(r.light, local("19:00"), "light_on")
        sim.sensor(r.light, local("21:10"), "light_off")  # the last sign of the day
    sim.kettle(a.meter, local("10:20", 1))  # A is up again, late
    sim.sensor(a.door, local("10:30", 1), SOS)  # then presses SOS (on the door panel)

    subscriber = Subscriber(mqtt_url, f"{prefix}/alerts/#", f"{settings.mqtt_client_id}-sub")
    stop = threading.Event()
    delivery = threading.Thread(target=run_delivery, args=(settings, url, mqtt_url, stop))
    try:
        with psycopg.connect(url) as conn:
            sim.load(conn, local("21:30"))
            # Activity is recent all night: no alert at any look, up to 12 h minus a minute.
            t = local("21:30")
            while t < local("09:09", 1):
                t = min(t + timedelta(minutes=50), local("09:09", 1))
                assert sim.advance(t) == [], t
            assert count_rows(url, "alerts") == 0

            # 12 h after 21:10, plus a minute: one no_activity alert each, dated 21:10.
            assert summary(sim.advance(local("09:11", 1))) == [
                ("open", a.id, NO_ACTIVITY),
                ("open", b.id, NO_ACTIVITY),
            ]
            ((a_alert, status, severity, level, since, _),) = alert_rows(url, a.id, NO_ACTIVITY)
            assert (status, severity, level, since) == ("open", "high", "grid", local("21:10"))
            assert events_of(url, a_alert) == [("open", "grid", "gridwatch")]
            assert count_rows(url, "alert_outbox", "alert_id = %s", (a_alert,)) == 1

            # Delivered to MQTT subscribers of {prefix}/alerts/#, on the grid's topic.
            delivery.start()
            (message,) = wait_for(lambda: subscriber.of(alert_id=a_alert), 20, "the alert on MQTT")
            assert message["state"] == "open"
            assert message["kind"] == NO_ACTIVITY
            assert message["grid_code"] == a.grid_code
            assert message["resident_id"] == a.id
            topics = {t for t, p in subscriber.messages if p["alert_id"] == a_alert}
            assert topics == {f"{prefix}/alerts/{a.grid_code}"}

            # Later looks open nothing more.
            assert sim.advance(local("09:12", 1)) == []
            assert len(alert_rows(url, a.id, NO_ACTIVITY)) == 1

            # B: the grid worker calls in, finds B well, resolves with a check. A check is a
            # sign of life: the engine does not open the alert again.
            ((b_alert, *_),) = alert_rows(url, b.id, NO_ACTIVITY)
            resolve_alert(
                conn,
                b_alert,
                actor="grid worker",
                reason="visited, well",
                checked=True,
                now=check_at,
                topic_prefix=prefix,
            )
            assert summary(sim.advance(local("09:16", 1))) in (
                [],
                [("resolve", b.id, NO_ACTIVITY)],  # seen before the refresh: a no-op write
            )
            assert sim.advance(local("09:20", 1)) == []
            assert [r[1] for r in alert_rows(url, b.id, NO_ACTIVITY)] == ["resolved"]
            assert alert_rows(url, b.id, NO_ACTIVITY)[0][5] == "grid worker"

            # A: not acknowledged in 30 min, so up to the community.
            assert sim.advance(local("09:40", 1)) == []
            assert summary(sim.advance(local("09:41", 1))) == [
                ("escalate:community", a.id, NO_ACTIVITY)
            ]
            acknowledge_alert(
                conn,
                a_alert,
                actor="duty officer",
                note="calling",
                now=local("09:45", 1),
                topic_prefix=prefix,
            )
            # The morning window passes without a sign from A (B's check was at 09:15).
            assert summary(sim.advance(local("10:00", 1))) == [("open", a.id, MORNING)]
            # Acknowledged: no street escalation at 60 min.
            assert sim.advance(local("10:12", 1)) == []
            assert events_of(url, a_alert) == [
                ("open", "grid", "gridwatch"),
                ("escalated", "community", "gridwatch"),
                ("acknowledged", "community", "duty officer"),
            ]

            # A's kettle at 10:20: both activity alerts resolve by themselves.
            assert summary(sim.advance(local("10:20", 1))) == [
                ("resolve", a.id, MORNING),
                ("resolve", a.id, NO_ACTIVITY),
            ]
            assert events_of(url, a_alert)[-1] == ("resolved", "community", "gridwatch")
            assert sim.advance(local("10:25", 1)) == []

            # SOS: a critical alert at once, up a level every 30 min without acknowledgement.
            assert summary(sim.advance(local("10:30", 1))) == [("open", a.id, SOS)]
            ((sos, status, severity, level, since, _),) = alert_rows(url, a.id, SOS)
            assert (status, severity, level, since) == (
                "open",
                "critical",
                "grid",
                local("10:30", 1),
            )
            assert sim.advance(local("10:59", 1)) == []
            assert summary(sim.advance(local("11:00", 1))) == [("escalate:community", a.id, SOS)]
            assert summary(sim.advance(local("11:30", 1))) == [("escalate:street", a.id, SOS)]
            assert [e[:2] for e in events_of(url, sos)] == [
                ("open", "grid"),
                ("escalated", "community"),
                ("escalated", "street"),
            ]
            assert sim.advance(local("12:30", 1)) == []

        # Every change reached the subscribers, in order, and the outbox is empty.
        wait_for(
            lambda: count_rows(url, "alert_outbox", "published_at IS NULL") == 0,
            20,
            "the outbox published",
        )
        states = [p["state"] for p in subscriber.of(alert_id=a_alert)]
        assert states == ["open", "escalated", "acknowledged", "resolved"]
        sos_levels = [p["level"] for p in subscriber.of(alert_id=sos)]
        assert sos_levels == ["grid", "community", "street"]
        assert [p["state"] for p in subscriber.of(resident_id=b.id)] == ["open", "resolved"]
        assert count_rows(url, "dead_letters") == 0
    finally:
        stop.set()
        if delivery.is_alive():
            delivery.join(timeout=10)
        subscriber.close()


def test_the_engine_polls_a_database_that_has_no_data_yet(tmp_path, district_database_url):
    settings = make_settings(tmp_path, district_database_url, "mqtt://127.0.0.1:1883")
    with psycopg.connect(district_database_url) as conn:
        engine = make_engine(settings, conn)
        now = datetime.now(UTC)
        engine.load(now)
        assert engine.poll() == 0
