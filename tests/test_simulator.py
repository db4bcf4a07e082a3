"""The simulator: deterministic, parseable by gridwatch's own parsers, and true to its ground
truth (falls, outages, absences, skewed clocks, delivery faults). No broker, no database."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import shapely

from gridwatch.geo.crs import to_wgs84
from gridwatch.ingest.payload import InvalidPayload, ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.simulators.cli import sample_district
from gridwatch.simulators.faults import (
    Fall,
    FaultRates,
    GroundTruthLog,
    read_ground_truth,
)
from gridwatch.simulators.life import BASE_LOAD_CEILING_W
from gridwatch.simulators.patrols import INSPECTED
from gridwatch.simulators.scenario import METER_NOISE_W, Scenario

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, tzinfo=TZ)  # a Monday
QUIET = BASE_LOAD_CEILING_W + 5 * METER_NOISE_W  # base load never reads above this
ROUTER = TopicRouter("gw")


@pytest.fixture(scope="module", autouse=True)
def _forget_parsed_messages():
    yield
    parsed.cache_clear()


@pytest.fixture(scope="module")
def district():
    """60 residents of the sample district and the workers of their grids."""
    return sample_district(60)


@pytest.fixture(scope="module")
def faulty(district):
    """Two days with many incidents and delivery faults, and what was recorded on the way."""
    rates = FaultRates(
        falls=5, sos=5, meter_outages=5, absences=5, clock_skew_share=0.05,
        duplicate_share=0.01, out_of_order_share=0.01, malformed_share=0.01,
    )  # fmt: skip
    scenario = Scenario(
        district, START, 2, seed=11, meter_interval_s=300, rates=rates, hazards_per_day=20
    )
    records: list[dict] = []
    messages = list(scenario.messages(record=records.append))
    return scenario, messages, records


def parse(message):
    """Parse as the ingest worker does, received a little after the message's time."""
    at, topic, payload = message
    return ROUTER.parse(topic, payload, ParseContext(received_at=at + timedelta(hours=4), tz=TZ))


@functools.cache
def parsed(message):
    """The reading of a message, or None for a garbled one (cached: tests share messages)."""
    try:
        return parse(message)
    except InvalidPayload:
        return None


def meter_readings(messages, meter_id):
    """Parsed readings of one meter, by observed time."""
    topic = f"gw/meter/{meter_id}"
    readings = {parsed(m) for m in messages if m[1] == topic} - {None}
    return sorted(readings, key=lambda r: r.observed_at)


def sensor_events(scenario, messages, resident_id):
    sensors = {f"gw/sensor/{s}" for s in scenario.residents[_row(scenario, resident_id)].sensor_ids}
    return [parsed(m) for m in messages if m[1] in sensors and parsed(m)]


def _row(scenario, resident_id):
    return [r.resident_id for r in scenario.residents].index(resident_id)


def test_same_seed_same_messages_other_seed_differs(district):
    def run(seed):
        scenario = Scenario(district, START, 0.5, seed=seed, meter_interval_s=300)
        return scenario.ground_truth(), list(scenario.messages())

    first = run(5)
    assert run(5) == first
    assert run(6)[1] != first[1]


def test_every_message_parses_except_the_garbled_ones(faulty):
    _, messages, records = faulty
    garbled = Counter(r["topic"] for r in records if r["kind"] == "malformed")
    failed = Counter()
    kinds = Counter()
    for message in messages:
        try:
            reading = parse(message)
        except InvalidPayload:
            failed[message[1]] += 1
            continue
        kinds[type(reading).__name__ if reading is not None else "ignored"] += 1
        kinds[message[1].split("/")[0]] += 1
    assert failed == garbled
    assert sum(garbled.values()) > 10
    assert kinds["MeterReading"] and kinds["SensorEvent"] and kinds["HazardReport"]
    assert kinds["PatrolCheckin"] and kinds["owntracks"]
    assert "ignored" not in kinds


def test_messages_come_in_time_order_except_those_delivered_late(faulty):
    scenario, messages, records = faulty
    held = Counter(r["kind"] for r in records if r["kind"] in ("duplicate", "out_of_order"))
    assert held["duplicate"] and held["out_of_order"]
    latest = messages[0][0]
    going_back = 0
    for at, _, _ in messages:
        if at < latest:
            going_back += 1
        latest = max(latest, at)
    assert 0 < going_back <= held["duplicate"] + held["out_of_order"]
    assert all(scenario.start <= at < scenario.end for at, _, _ in messages)
    # Every duplicate is the very same message twice.
    counts = Counter(messages)
    duplicated = Counter(r["topic"] for r in records if r["kind"] == "duplicate")
    assert sum(n - 1 for n in counts.values() if n > 1) >= sum(duplicated.values())


def test_meters_report_every_interval_with_consistent_registers(district):
    scenario = Scenario(district, START, 1, seed=3, rates=FaultRates.none())
    messages = list(scenario.messages())
    meter_id = district.residents[0].meter_id
    readings = meter_readings(messages, meter_id)
    assert len(readings) == 1440  # one a minute, all day
    steps = list(itertools.pairwise(readings))
    assert all(b.observed_at - a.observed_at == timedelta(minutes=1) for a, b in steps)
    for a, b in steps:
        # energy_kwh advances by the interval's mean power (printed to 4 decimals).
        assert b.energy_kwh - a.energy_kwh == pytest.approx(b.power_w / 60_000, abs=2e-4)
        assert b.water_l >= a.water_l
    assert readings[-1].water_l > readings[0].water_l  # water was used


def test_base_load_stays_below_activity(district):
    scenario = Scenario(district, START, 2, seed=4, meter_interval_s=300, rates=FaultRates.none())
    night, evening = defaultdict(list), defaultdict(list)
    for message in scenario.messages():
        reading = parse(message)
        if message[1].startswith("gw/meter/"):
            hour = reading.observed_at.astimezone(TZ).hour
            if 1 <= hour < 4:  # everyone is asleep: only standby and the fridge run
                night[reading.meter_id].append(reading.power_w)
            elif 18 <= hour < 21:
                evening[reading.meter_id].append(reading.power_w)
    assert len(night) == len(district.residents)
    assert max(max(watts) for watts in night.values()) <= QUIET
    # The fridge cycles: nights are not flat.
    assert all(max(w) - min(w) > 50 for w in night.values())
    louder = sum(sum(evening[m]) / len(evening[m]) > sum(night[m]) / len(night[m]) for m in night)
    assert louder == len(night)


def test_weekends_start_later_and_holidays_are_weekends(district):
    scenario = Scenario(district, START, 7, seed=2, holidays={date(2026, 11, 25)})
    ids = [r.resident_id for r in district.residents]

    def mean_wake(day: date) -> float:
        return sum(scenario.plan(r, day).wake_s for r in ids) / len(ids)

    weekdays = [mean_wake(date(2026, 11, d)) for d in (23, 24, 26, 27)]
    weekend = [mean_wake(date(2026, 11, d)) for d in (25, 28, 29)]  # Wed 25th is a holiday
    assert min(weekend) > max(weekdays)


def test_a_fall_stops_all_activity_but_base_load(district):
    resident = district.residents[7]
    scenario = Scenario(district, START, 2, seed=8, meter_interval_s=300, rates=FaultRates.none())
    awake = scenario.plan(resident.resident_id, START.date()).awake_at_home()
    span_start, span_end = max(awake, key=lambda s: s[1] - s[0])
    fell_at = START + timedelta(seconds=(span_start + span_end) // 2)
    fall = Fall(resident.resident_id, fell_at)
    scenario = Scenario(
        district, START, 2, seed=8, meter_interval_s=300, rates=FaultRates.none(), incidents=[fall]
    )
    messages = list(scenario.messages())

    readings = meter_readings(messages, resident.meter_id)
    before = [r for r in readings if r.observed_at <= fell_at]
    # A reading covers the 5 minutes before its ts.
    after = [r for r in readings if r.observed_at >= fell_at + timedelta(minutes=5)]
    assert max(r.power_w for r in before) > QUIET  # there was life before
    assert after and max(r.power_w for r in after) <= QUIET
    assert len({r.water_l for r in after}) == 1  # not a drop of water
    assert [e for e in sensor_events(scenario, messages, resident.resident_id)
            if e.observed_at >= fell_at] == []  # fmt: skip
    visits = [parse(m) for m in messages if m[1].startswith("gw/patrol/")]
    assert not [v for v in visits if v.resident_id == resident.resident_id
                and v.observed_at >= fell_at]  # fmt: skip


def test_a_worn_pendant_reports_falls_and_sos(district):
    wearers = [
        dataclasses.replace(
            r,
            sensor_ids=(
                *(s for s in r.sensor_ids if not s.endswith("-pendant")),
                f"P{n:05d}-pendant",
            ),
        )
        for n, r in enumerate(district.residents)
    ]
    equipped = dataclasses.replace(district, residents=wearers)
    rates = FaultRates.none()
    rates = dataclasses.replace(rates, falls=10, sos=10, fall_detected_share=1.0)
    scenario = Scenario(equipped, START, 2, seed=12, meter_interval_s=600, rates=rates)
    truth = scenario.ground_truth()
    falls = [r for r in truth if r["kind"] == "fall"]
    sos = [r for r in truth if r["kind"] == "sos"]
    assert falls and sos
    assert all(r["detector_id"].endswith("-pendant") for r in falls)
    assert all(r["device_id"].endswith("-pendant") for r in sos)
    sent = {
        (parsed(m).device_id, parsed(m).event, parsed(m).observed_at)
        for m in scenario.messages()
        if "/sensor/P" in m[1]
    }
    assert sent == {(r["detector_id"], "fall", r["at"]) for r in falls} | {
        (r["device_id"], "sos", r["at"]) for r in sos
    }


def test_planned_falls_outages_and_absences_match_the_messages(faulty):
    scenario, messages, _ = faulty
    truth = scenario.ground_truth()
    by_kind = defaultdict(list)
    for record in truth:
        by_kind[record["kind"]].append(record)
    assert len(by_kind["fall"]) == 6 and len(by_kind["meter_outage"]) == 6  # 5 per 100 of 120
    assert len(by_kind["sos"]) == 6 and len(by_kind["absence"]) == 6
    skewed = {r["resident_id"] for r in by_kind["clock_skew"]}
    involved = [r["resident_id"] for r in truth if r["kind"] != "clock_skew"]
    assert len(involved) == len(set(involved)), "one incident per resident"
    assert not skewed & set(involved), "no skewed clocks where an incident is"

    for fall in by_kind["fall"]:
        after = [r for r in meter_readings(messages, fall["meter_id"])
                 if r.observed_at >= fall["at"] + timedelta(minutes=5)]  # fmt: skip
        assert after and max(r.power_w for r in after) <= QUIET
        assert len({r.water_l for r in after}) == 1
        events = sensor_events(scenario, messages, fall["resident_id"])
        assert [e for e in events if e.observed_at >= fall["at"] and e.event != "fall"] == []

    for outage in by_kind["meter_outage"]:
        times = [r.observed_at for r in meter_readings(messages, outage["meter_id"])]
        assert not [t for t in times if outage["at"] <= t < outage["until"]]
        assert [t for t in times if t < outage["at"]]
        assert outage["until"] - outage["at"] >= timedelta(minutes=90)

    for absence in by_kind["absence"]:
        start, until = absence["from"], absence["until"]
        row = _row(scenario, absence["resident_id"])
        readings = [r for r in meter_readings(messages, scenario.residents[row].meter_id)
                    if start + timedelta(minutes=5) <= r.observed_at < until]  # fmt: skip
        assert readings and max(r.power_w for r in readings) <= QUIET
        assert len({r.water_l for r in readings}) == 1
        events = sensor_events(scenario, messages, absence["resident_id"])
        assert not [e for e in events if start <= e.observed_at < until]
        assert {e.event for e in events if e.observed_at == until} == {"door_open"}

    for sos in by_kind["sos"]:
        events = sensor_events(scenario, messages, sos["resident_id"])
        assert {(e.device_id, e.observed_at) for e in events if e.event == "sos"} == {
            (sos["device_id"], sos["at"])
        }


def test_absent_and_fallen_residents_are_never_found_at_home(faulty):
    scenario, messages, _ = faulty
    truth = scenario.ground_truth()
    visits = [parsed(m) for m in messages if m[1].startswith("gw/patrol/") and parsed(m)]
    visits = [v for v in visits if v.kind == "visit"]
    assert {v.status for v in visits} >= {"ok", "not_home"}
    for record in truth:
        if record["kind"] == "absence":
            inside = [v for v in visits if v.resident_id == record["resident_id"]
                      and record["from"] <= v.observed_at < record["until"]]  # fmt: skip
            assert all(v.status == "not_home" for v in inside)
        elif record["kind"] == "fall":
            assert not [v for v in visits if v.resident_id == record["resident_id"]
                        and v.observed_at >= record["at"]]  # fmt: skip


def test_skewed_clocks_shift_ts_by_their_offset(faulty):
    scenario, messages, _ = faulty
    skews = {r["device_id"]: r["offset_s"] for r in scenario.ground_truth()
             if r["kind"] == "clock_skew"}  # fmt: skip
    assert skews
    seen = 0
    for message in messages:
        device = message[1].rsplit("/", 1)[-1]
        reading = parsed(message) if device in skews else None
        if reading is not None:
            assert (reading.observed_at - message[0]).total_seconds() == skews[device]
            seen += 1
    assert seen


def test_patrols_walk_their_grids_twice_a_day(district):
    scenario = Scenario(district, START, 1, seed=9, rates=FaultRates.none())
    grids = {g.code: g.geometry for g in district.grids}
    worker_grid = {w.worker_id: w.grid_code for w in district.workers}
    points = defaultdict(list)
    crs = Counter()
    for message in scenario.messages():
        if message[1].startswith(("gw/patrol/", "owntracks/")):
            checkin = parse(message)
            if checkin.kind == "patrol":
                points[checkin.worker_id].append(checkin)
            data = orjson.loads(message[2])
            crs[data.get("crs", "owntracks")] += 1
    assert set(points) == set(worker_grid)
    assert crs["wgs84"] and crs["gcj02"] and crs["owntracks"]
    for worker_id, track in points.items():
        hours = Counter(p.observed_at.astimezone(TZ).hour for p in track)
        assert set(hours) <= {7, 8, 9, 10, 14, 15, 16}, hours
        assert 120 <= len(track) <= 240  # two rounds of ~45 min, a point every ~30 s
        grid = grids[worker_grid[worker_id]]
        lon = [p.lon for p in track]
        lat = [p.lat for p in track]
        # GPS noise (5-15 m) may put a point just outside; 80 m is far more than that.
        far = shapely.distance(grid, shapely.points(lon, lat)) * 111_000
        assert (far < 80).all()


def test_gcj02_points_convert_back_into_the_grid(district):
    scenario = Scenario(district, START, 1, seed=9, rates=FaultRates.none())
    worker_grid = {w.worker_id: w.grid_code for w in district.workers}
    grids = {g.code: g.geometry for g in district.grids}
    for _, topic, payload in scenario.messages():
        data = orjson.loads(payload)
        if data.get("crs") == "gcj02" and data.get("kind") == "patrol":
            lon, lat = to_wgs84(data["lon"], data["lat"], "gcj02")
            grid = grids[worker_grid[topic.rsplit("/", 1)[-1]]]
            assert shapely.distance(grid, shapely.Point(lon, lat)) * 111_000 < 80
            assert abs(lon - data["lon"]) + abs(lat - data["lat"]) > 0.001  # shifted ~100s of m
            return
    pytest.fail("no GCJ-02 patrol point")


def test_hazards_duplicates_and_retries(faulty):
    scenario, messages, records = faulty
    hazards = {r["id"]: r for r in records if r["kind"] == "hazard"}
    duplicates = [r for r in records if r["kind"] == "hazard_duplicate"]
    retries = [r for r in records if r["kind"] == "hazard_retry"]
    assert len(hazards) >= 10 and duplicates and retries
    grids = {g.code: g.geometry for g in scenario.grids.values()}
    for hazard in hazards.values():
        assert grids[hazard["grid_code"]].contains(shapely.Point(hazard["lon"], hazard["lat"]))
    sent = Counter()
    for message in messages:
        if message[1].startswith("gw/hazard/") and parsed(message):
            sent[str(parsed(message).id)] += 1
    for duplicate in duplicates:
        original = hazards[duplicate["duplicate_of"]]
        assert duplicate["id"] != original["id"]
        assert duplicate["reporter_id"] != original["reporter_id"]
        assert duplicate["category"] == original["category"]
        assert sent[duplicate["id"]] >= 1
    for retry in retries:
        assert sent[retry["id"]] >= 2


def test_ground_truth_file_holds_every_record(faulty, tmp_path):
    scenario, messages, records = faulty
    path = tmp_path / "truth.jsonl"
    with GroundTruthLog(path, scenario.ground_truth()) as log:
        again = list(scenario.messages(record=log))
    assert again == messages
    written = read_ground_truth(path)
    expected = orjson.loads(orjson.dumps([*scenario.ground_truth(), *records]))
    assert written == expected
    kinds = Counter(r["kind"] for r in written)
    assert set(kinds) - {"inspection_missed"} == {
        "fall", "sos", "meter_outage", "absence", "clock_skew", "duplicate", "out_of_order",
        "malformed", "hazard", "hazard_duplicate", "hazard_retry", "inspection",
    }  # fmt: skip
    absence = next(r for r in written if r["kind"] == "absence")
    assert set(absence) >= {"resident_id", "from", "until", "at"}
    assert all("at" in r for r in written)


def test_places_are_inspected_on_their_schedule_some_missed_some_with_findings(district):
    """安全巡查: each place of a worker's grid is due every `inspect_every_days` on days of its
    own; its grid's worker inspects it near it, or misses it; a quarter of the inspections
    find something of the kinds of place's concern."""
    scenario = Scenario(district, START, 30, seed=5, meter_interval_s=3600, rates=FaultRates.none())
    worker_of = {w.grid_code: w.worker_id for w in district.workers}
    places = {p.place_id: p for p in district.places if p.grid_code in worker_of}
    records: list[dict] = []
    made: dict[str, list] = defaultdict(list)
    for message in scenario.messages(record=records.append):
        if message[1].startswith("gw/patrol/") and b'"inspection"' in message[2]:
            checkin = parse(message)
            place = places[checkin.place_id]
            assert checkin.worker_id == worker_of[place.grid_code]
            assert (
                shapely.Point(checkin.lon, checkin.lat).distance(
                    shapely.Point(place.lon, place.lat)
                )
                * 111_000
                < 30
            )
            assert {f.category for f in checkin.findings} <= set(INSPECTED[place.kind])
            made[place.place_id].append(checkin)
    missed = [r for r in records if r["kind"] == "inspection_missed"]
    inspections = [c for checks in made.values() for c in checks]
    assert len(inspections) == sum(1 for r in records if r["kind"] == "inspection")
    assert missed and set(made) <= set(places)
    with_findings = [c for c in inspections if c.result == "findings"]
    assert 0.1 < len(with_findings) / len(inspections) < 0.45
    assert all(c.findings for c in with_findings)
    for place_id, checks in made.items():
        every = places[place_id].inspect_every_days
        due = len(checks) + sum(1 for r in missed if r["place_id"] == place_id)
        assert due in (30 // every, -(-30 // every))  # 30 days: every `every` days
        days = sorted(c.observed_at.astimezone(TZ).date() for c in checks)
        assert all((b - a).days % every == 0 for a, b in itertools.pairwise(days))


def test_messages_by_step_cuts_the_stream_into_minutes(district):
    scenario = Scenario(district, START, 0.1, seed=1, rates=FaultRates.none())
    steps = list(scenario.messages_by_step(timedelta(minutes=1)))
    assert len(steps) == 144
    assert [m for _, batch in steps for m in batch] == list(scenario.messages())
    for end, batch in steps:
        assert all(end - timedelta(minutes=1) <= at < end for at, _, _ in batch)


def test_start_need_not_be_midnight_nor_the_interval_a_day_divisor(district):
    start = datetime(2026, 11, 23, 13, 7, 30, tzinfo=TZ)
    scenario = Scenario(district, start, 0.5, seed=1, meter_interval_s=420)
    times = sorted({at for at, topic, _ in scenario.messages() if "/meter/" in topic})
    assert times[0] >= start and times[-1] < start + timedelta(hours=12)
    assert all(int(t.timestamp()) % 420 == 0 for t in times)
    with pytest.raises(ValueError, match="whole number of minutes"):
        Scenario(district, start, 1, meter_interval_s=90)


def test_a_week_of_the_whole_district_streams(tmp_path):
    full = sample_district()
    started = time.perf_counter()
    scenario = Scenario(full, START, 7, seed=1)
    stream = scenario.messages()
    first = [next(stream) for _ in range(100_000)]
    assert time.perf_counter() - started < 20
    assert first[0][0] == START
    truth = Counter(r["kind"] for r in scenario.ground_truth())
    assert (truth["fall"], truth["sos"], truth["meter_outage"], truth["absence"]) == (
        10, 10, 10, 20,
    )  # fmt: skip
    stream.close()


def test_residents_keep_their_lives_in_a_subset():
    small = Scenario(sample_district(10), START, 1, seed=1, rates=FaultRates.none())
    large = Scenario(sample_district(60), START, 1, seed=1, rates=FaultRates.none())
    for resident in small.residents:
        assert small.plan(resident.resident_id, START.date()) == large.plan(
            resident.resident_id, START.date()
        )
