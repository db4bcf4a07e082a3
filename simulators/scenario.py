"""A seeded run of a district: residents' days, patrols, hazards, inspections of places and
planned faults, as the stream of MQTT messages that real meters, sensors and apps would
publish.

    scenario = Scenario(build_sample_district(), start, days=7, seed=1)
    scenario.ground_truth()            # planned incidents, known before the run
    for sim_time, topic, payload in scenario.messages(record=log):
        ...

The stream is generated a day at a time and never held whole, so 7 days of 2,000 homes at
1-minute meters (~20 million messages) run in bounded memory.
"""

from __future__ import annotations

import math
import random
import uuid
import zlib
from collections.abc import Collection, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from gridwatch.geo.grids import GridFeature
from gridwatch.model.rows import PlaceRow, ResidentRow
from gridwatch.simulators.faults import (
    Absence,
    ClockSkew,
    Delivery,
    Fall,
    FaultRates,
    Incident,
    MeterOutage,
    RecordSink,
    SimMessage,
    Sos,
    incident_record,
)
from gridwatch.simulators.life import (
    DAY,
    HOUR,
    MINUTE,
    BaseLoads,
    DayPlan,
    HomeDevices,
    draw_routine,
    plan_day,
    render_activity,
)
from gridwatch.simulators.patrols import (
    MISSED_CHANCE,
    FoundHazard,
    inspection_findings,
    nearby,
    walk_day,
    worker_app,
)
from gridwatch.simulators.traffic import (
    METER_PAYLOAD,
    CheckIn,
    hazard_report,
    inspection,
    meter_payload,
    patrol_point,
    sensor_event,
    visit,
)

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_SEED = 1
METER_NOISE_W = 1.0  # a meter's reading wobbles by about this much
HAZARD_DUPLICATE_CHANCE = 0.15  # a second reporter files the same hazard
HAZARD_RETRY_CHANCE = 0.10  # the app sends the same report again after a lost ack
VISIT_CONCERN_CHANCE = 0.05


class WorkerLike(Protocol):
    worker_id: str
    grid_code: str


class DistrictLike(Protocol):
    """What a scenario needs of a district (`SampleDistrict` is one)."""

    grids: list[GridFeature]
    residents: list[ResidentRow]
    workers: Sequence[WorkerLike]
    places: list[PlaceRow]


class Scenario:
    """A deterministic simulation of `district` from `start` for `days` (may be fractional).

    The same arguments give the same messages, byte for byte. `meter_interval_s` is a whole
    number of minutes up to an hour; each reading's `power_w` is the mean over the interval
    before its `ts`, its `energy_kwh` and `water_l` the registers at `ts`. Plans are wall-clock
    times counted from local midnight, so on a daylight-saving change day they are off by the
    shift (Asia/Shanghai has none).
    """

    def __init__(
        self,
        district: DistrictLike,
        start: datetime,
        days: float,
        seed: int = DEFAULT_SEED,
        *,
        meter_interval_s: int = 60,
        tz: str | ZoneInfo = DEFAULT_TZ,
        prefix: str = "gw",
        holidays: Collection[date] = (),
        rates: FaultRates | None = None,
        incidents: Sequence[Incident] = (),
        hazards_per_day: float = 4.0,
        visits_per_worker_day: tuple[int, int] = (2, 4),
        inspections: bool = True,
    ) -> None:
        if meter_interval_s % MINUTE or not MINUTE <= meter_interval_s <= HOUR:
            raise ValueError(
                f"meter_interval_s must be a whole number of minutes from 60 to 3600, "
                f"got {meter_interval_s}"
            )
        if days <= 0:
            raise ValueError(f"days must be positive, got {days}")
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        start = start if start.tzinfo is not None else start.replace(tzinfo=self.tz)
        self.start = start.astimezone(self.tz).replace(microsecond=0)
        self.end = self.start + timedelta(days=days)
        self.days = days
        self.seed = seed
        self.prefix = prefix
        self.meter_interval_s = meter_interval_s
        self.holidays = frozenset(holidays)
        self.rates = rates if rates is not None else FaultRates()
        self.hazards_per_day = hazards_per_day
        self.visits_per_worker_day = visits_per_worker_day

        self.residents = list(district.residents)
        self.workers = list(district.workers)
        self.grids = {g.code: g for g in district.grids}
        self.devices = [HomeDevices.of(r) for r in self.residents]
        self.routines = [draw_routine(r.resident_id, seed) for r in self.residents]
        self._row = {r.resident_id: i for i, r in enumerate(self.residents)}
        self._residents_by_grid: dict[str, list[int]] = {}
        for i, resident in enumerate(self.residents):
            self._residents_by_grid.setdefault(resident.grid_code or "", []).append(i)
        self._apps = [worker_app(w.worker_id, seed) for w in self.workers]
        self._places_by_grid: dict[str, list[PlaceRow]] = {}
        for place in district.places if inspections else ():
            self._places_by_grid.setdefault(place.grid_code or "", []).append(place)

        self.incidents: list[Incident] = list(incidents) + self._plan_incidents(
            exclude={i.resident_id for i in incidents}
        )
        self._falls = {self._row[f.resident_id]: f for f in self.incidents if isinstance(f, Fall)}
        self._absences: dict[int, list[Absence]] = {}
        self._outages: dict[int, list[MeterOutage]] = {}
        self._skew = {s.device_id: s.offset_s for s in self.incidents if isinstance(s, ClockSkew)}
        for incident in self.incidents:
            if isinstance(incident, Absence):
                self._absences.setdefault(self._row[incident.resident_id], []).append(incident)
            elif isinstance(incident, MeterOutage):
                self._outages.setdefault(self._row[incident.resident_id], []).append(incident)
        self.delivery_counts: dict[str, int] = {}

    # -- what is known before the run ----------------------------------------------------

    def ground_truth(self) -> list[dict]:
        """The planned incidents as ground-truth records, in time order."""
        records = []
        for incident in sorted(self.incidents, key=lambda i: (i.at, i.kind, i.resident_id)):
            resident = self.residents[self._row[incident.resident_id]]
            records.append(
                incident_record(incident, grid_code=resident.grid_code, meter_id=resident.meter_id)
            )
        return records

    def plan(self, resident_id: str, day: date) -> DayPlan:
        """The resident's plan for a local day, with their absences and fall applied."""
        row = self._row[resident_id]
        return self._plan(row, day, self._day_start(day))

    # -- the stream ----------------------------------------------------------------------

    def messages(self, record: RecordSink | None = None) -> Iterator[SimMessage]:
        """Every message of the run in delivery order: sim_time never goes back, except for
        messages delivered late on purpose. `record` receives the records of hazards and of
        delivery faults as they happen (planned incidents: `ground_truth()`)."""
        delivery = Delivery(self.rates, self.seed, record)
        meters = _MeterState(self)
        day = self.start.date()
        while self._day_start(day) < self.end:
            yield from self._day(day, meters, delivery, record)
            day += timedelta(days=1)
        yield from delivery.flush()
        self.delivery_counts = dict(delivery.counts)

    def messages_by_step(
        self, step: timedelta = timedelta(minutes=1), record: RecordSink | None = None
    ) -> Iterator[tuple[datetime, list[SimMessage]]]:
        """The stream cut into steps: (step end, messages delivered before it), for feeding
        an ingest writer and an alert engine minute by minute."""
        boundary = self.start + step
        batch: list[SimMessage] = []
        for message in self.messages(record):
            while message[0] >= boundary:
                yield boundary, batch
                batch = []
                boundary += step
            batch.append(message)
        while boundary <= self.end or batch:
            yield boundary, batch
            batch = []
            boundary += step

    # -- one day -------------------------------------------------------------------------

    def _day(
        self, day: date, meters: _MeterState, delivery: Delivery, record: RecordSink | None
    ) -> Iterator[SimMessage]:
        day_start = self._day_start(day)
        day_end = self._day_start(day + timedelta(days=1))
        first_second = int(day_start.timestamp())
        minutes = (int(day_end.timestamp()) - first_second) // MINUTE
        plans = [self._plan(row, day, day_start) for row in range(len(self.residents))]
        events = self._home_events(plans, first_second)
        events += self._patrol_events(plans, day, first_second, record)
        events.sort(key=lambda e: e[0])
        lo, hi = self.start.timestamp(), self.end.timestamp()
        events = [e for e in events if lo <= e[0] < hi]

        readings = meters.day(plans, first_second, minutes)
        tz = self.tz
        e = 0
        for second, batch in readings:
            pending: list[SimMessage] = []
            while e < len(events) and events[e][0] < second:
                at, topic, payload = events[e]
                pending.append((datetime.fromtimestamp(at, tz), topic, payload))
                e += 1
            if pending:
                yield from delivery.deliver(pending[-1][0], pending)
            if batch:
                yield from delivery.deliver(batch[0][0], batch)
        rest = [(datetime.fromtimestamp(at, tz), t, p) for at, t, p in events[e:]]
        if rest:
            yield from delivery.deliver(rest[-1][0], rest)

    def _home_events(self, plans: list[DayPlan], first_second: int) -> list:
        """Sensor events of every home, plus SOS presses and fall detections of the day."""
        events: list[tuple[int, str, bytes]] = []
        prefix, tz = self.prefix, self.tz
        for row, plan in enumerate(plans):
            devices = self.devices[row]
            epoch = self.routines[row].epoch_ts
            for second, role, name in plan.events:
                device = devices.device(role)
                if device is not None:
                    at = first_second + second
                    events.append((at, *self._sensor(device, name, at, prefix, tz, epoch)))
        last_second = first_second + DAY
        for incident in self.incidents:
            at = int(incident.at.timestamp())
            if not first_second <= at < last_second:
                continue
            epoch = self.routines[self._row[incident.resident_id]].epoch_ts
            if isinstance(incident, Sos):
                events.append((at, *self._sensor(incident.device_id, "sos", at, prefix, tz, epoch)))
            elif isinstance(incident, Fall) and incident.detector_id:
                message = self._sensor(incident.detector_id, "fall", at, prefix, tz, epoch)
                events.append((at, *message))
        return events

    def _sensor(self, device: str, name: str, at: int, prefix: str, tz: ZoneInfo, epoch: bool):
        stamped = datetime.fromtimestamp(at + self._skew.get(device, 0), tz)
        return sensor_event(device, name, stamped, prefix, epoch=epoch)

    def _patrol_events(
        self, plans: list[DayPlan], day: date, first_second: int, record: RecordSink | None
    ) -> list:
        """Track points, home visits and hazard reports of every worker for the day."""
        events: list[tuple[int, str, bytes]] = []
        prefix, tz = self.prefix, self.tz
        hazard_chance = self.hazards_per_day / max(2 * len(self.workers), 1)
        for w, worker in enumerate(self.workers):
            grid = self.grids.get(worker.grid_code)
            if grid is None:
                continue
            rng = random.Random(f"{self.seed}/{worker.worker_id}/{day.isoformat()}")  # noqa: S311 - a seeded simulation, not a secret
            walk = walk_day(grid.geometry, rng, hazard_chance=hazard_chance)
            app = self._apps[w]
            gcj02, owntracks = app == "gcj02", app == "owntracks"
            for point in walk.track:
                at = first_second + round(point.at_s)
                where = CheckIn(
                    point.lon, point.lat, datetime.fromtimestamp(at, tz), gcj02=gcj02,
                    accuracy_m=point.accuracy_m,
                )  # fmt: skip
                topic, payload = patrol_point(
                    worker.worker_id, where, prefix, owntracks=owntracks, battery=point.battery
                )
                events.append((at, topic, payload))
            events += self._visits(worker, plans, walk.rounds[-1][1], first_second, gcj02, rng)
            events += self._inspections(
                worker, day, walk.rounds[-1][1], first_second, gcj02, record
            )
            for found in walk.hazards:
                events += self._hazard_reports(w, found, first_second, gcj02, rng, record)
        return events

    def _hazard_reports(
        self,
        w: int,
        found: FoundHazard,
        first_second: int,
        gcj02: bool,
        rng: random.Random,
        record: RecordSink | None,
    ) -> list[tuple[int, str, bytes]]:
        """The report of a hazard worker `w` found; sometimes the neighbouring grid's worker
        files the same hazard under another id, sometimes the app sends a report twice."""
        worker, tz = self.workers[w], self.tz
        at = first_second + round(found.at_s)
        if not self.start.timestamp() <= at < self.end.timestamp():
            return []
        reports = [(at, worker.worker_id, found.report_id, found.lon, found.lat, gcj02)]
        if rng.random() < HAZARD_DUPLICATE_CHANCE and len(self.workers) > 1:
            other = self.workers[(w + 1) % len(self.workers)]
            lon, lat = nearby(found.lon, found.lat, rng.uniform(10, 30), rng)
            later = at + round(rng.uniform(2, 30) * MINUTE)
            other_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            reports.append((later, other.worker_id, other_id, lon, lat, False))
        retry_at = at + round(rng.uniform(5, 60)) if rng.random() < HAZARD_RETRY_CHANCE else None
        events = []
        for n, (when, reporter, report_id, lon, lat, shifted) in enumerate(reports):
            message = hazard_report(
                reporter, report_id, lon, lat, datetime.fromtimestamp(when, tz), self.prefix,
                category=found.category, severity=found.severity,
                description=found.description, photo_urls=list(found.photo_urls),
                gcj02=shifted,
            )  # fmt: skip
            events.append((when, *message))
            truth: dict[str, Any] = {
                "kind": "hazard_duplicate" if n else "hazard",
                "at": datetime.fromtimestamp(when, tz),
                "id": str(report_id),
                "reporter_id": reporter,
                "grid_code": worker.grid_code,
                "category": found.category,
                "severity": found.severity,
                "lon": lon,
                "lat": lat,
            }
            if n:
                truth["duplicate_of"] = str(found.report_id)
            records = [truth]
            if n == 0 and retry_at is not None:  # the same bytes again: same id, same ts
                events.append((retry_at, *message))
                records.append(
                    {
                        "kind": "hazard_retry",
                        "at": datetime.fromtimestamp(retry_at, tz),
                        "id": str(report_id),
                        "reporter_id": reporter,
                    }
                )
            if record is not None:
                for item in records:
                    if item["at"] < self.end:
                        record(item)
        return events

    def _visits(
        self,
        worker: WorkerLike,
        plans: list[DayPlan],
        after_s: float,
        first_second: int,
        gcj02: bool,
        rng: random.Random,
    ) -> list[tuple[int, str, bytes]]:
        """Home visits after the afternoon round; nobody is visited while lying fallen, so a
        fall is found by the alerts, not by chance."""
        rows = self._residents_by_grid.get(worker.grid_code, [])
        low, high = self.visits_per_worker_day
        chosen = rng.sample(rows, min(len(rows), rng.randint(low, high)))
        visits = []
        at_s = after_s
        grid = self.grids[worker.grid_code].geometry.representative_point()
        for row in chosen:
            at_s += rng.uniform(8, 20) * MINUTE
            at = first_second + round(at_s)
            fall = self._falls.get(row)
            if (
                fall is not None
                and fall.at.timestamp() <= at
                and (fall.rescued_at is None or at < fall.rescued_at.timestamp())
            ):
                continue
            resident = self.residents[row]
            if not plans[row].at_home(round(at_s)):
                status, note = "not_home", "敲门无人应答"
            elif rng.random() < VISIT_CONCERN_CHANCE:
                status, note = "concern", "老人反映头晕 已提醒就医"
            else:
                status, note = "ok", None
            if resident.lon is not None and resident.lat is not None:
                home_lon, home_lat = resident.lon, resident.lat
            else:
                home_lon, home_lat = grid.x, grid.y
            lon, lat = nearby(home_lon, home_lat, rng.uniform(2, 8), rng)
            where = CheckIn(lon, lat, datetime.fromtimestamp(at, self.tz), gcj02=gcj02)
            message = visit(
                worker.worker_id, resident.resident_id, status, where, self.prefix, note=note
            )
            visits.append((at, *message))
        return visits

    def _inspections(
        self,
        worker: WorkerLike,
        day: date,
        after_s: float,
        first_second: int,
        gcj02: bool,
        record: RecordSink | None,
    ) -> list[tuple[int, str, bytes]]:
        """安全巡查: the places of the worker's grid due an inspection today (each every
        `inspect_every_days`, on days of its own), inspected between the morning round (which
        ends at `after_s`) and the afternoon's, when no other check-in of the worker is sent;
        some are missed, some inspections find something to correct. Each place draws from
        its own stream, so the rest of the day is the same with or without places."""
        events = []
        taken: set[int] = set()  # seconds of the worker's inspections: one check-in a second
        for place in self._places_by_grid.get(worker.grid_code, []):
            every = place.inspect_every_days
            phase = zlib.crc32(f"{self.seed}/{place.place_id}".encode()) % every
            if (day.toordinal() + phase) % every or place.lon is None or place.lat is None:
                continue
            rng = random.Random(f"{self.seed}/{place.place_id}/{day.isoformat()}")  # noqa: S311 - a seeded simulation, not a secret
            at = first_second + round(after_s + rng.uniform(20, 240) * MINUTE)
            while at in taken:
                at += 1
            taken.add(at)
            when = datetime.fromtimestamp(at, self.tz)
            truth: dict[str, Any] = {
                "at": when, "place_id": place.place_id, "worker_id": worker.worker_id,
            }  # fmt: skip
            if rng.random() < MISSED_CHANCE:
                truth["kind"] = "inspection_missed"
            else:
                findings = inspection_findings(place.kind, rng)
                lon, lat = nearby(place.lon, place.lat, rng.uniform(2, 10), rng)
                where = CheckIn(lon, lat, when, gcj02=gcj02)
                message = inspection(
                    worker.worker_id, place.place_id, where, self.prefix, findings=findings
                )
                events.append((at, *message))
                truth.update(kind="inspection", findings=len(findings))
            if record is not None and self.start <= when < self.end:
                record(truth)
        return events

    # -- plans and incidents -------------------------------------------------------------

    def _day_start(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.tz)

    def _base_plan(self, row: int, day: date) -> DayPlan:
        rng = random.Random(f"{self.seed}/{self.residents[row].resident_id}/{day.isoformat()}")  # noqa: S311 - a seeded simulation, not a secret
        weekend = day.weekday() >= 5 or day in self.holidays
        return plan_day(self.routines[row], rng, weekend=weekend)

    def _plan(self, row: int, day: date, day_start: datetime) -> DayPlan:
        plan = self._base_plan(row, day)
        origin = day_start.timestamp()
        for absence in self._absences.get(row, ()):
            leave, back = absence.at.timestamp() - origin, absence.until.timestamp() - origin
            if leave < DAY + HOUR and back > 0:
                plan.leave_for(int(leave), int(back))
        fall = self._falls.get(row)
        if fall is not None:
            down = fall.at.timestamp() - origin
            up = fall.rescued_at.timestamp() - origin if fall.rescued_at else math.inf
            if down < DAY + HOUR and up > 0:
                plan.suppress(max(int(down), 0), int(min(up, DAY + HOUR)))
        return plan

    def _plan_incidents(self, exclude: set[str]) -> list[Incident]:
        """Falls, SOS presses, outages and absences on distinct residents, placed where the
        ground truth is unambiguous; then clock skews on devices of everyone else."""
        rates = self.rates
        rng = random.Random(f"{self.seed}/incidents")  # noqa: S311 - a seeded simulation, not a secret
        resident_days = len(self.residents) * self.days
        candidates = [
            row
            for row, r in enumerate(self.residents)
            if r.meter_id and r.resident_id not in exclude
        ]
        rng.shuffle(candidates)
        span = self.end - self.start
        # Leave room to see each incident's effect: alerts need up to 12 h of silence.
        earliest = self.start + min(timedelta(hours=6), span * 0.1)
        latest = self.end - min(timedelta(hours=14), span * 0.4)
        planned: list[Incident] = []
        for kind, rate in (
            ("fall", rates.falls),
            ("sos", rates.sos),
            ("meter_outage", rates.meter_outages),
            ("absence", rates.absences),
        ):
            wanted = round(rate * resident_days / 100)
            while wanted and candidates:
                incident = self._place(kind, candidates.pop(), earliest, latest, rng)
                if incident is not None:  # else that resident had no room for it: next one
                    planned.append(incident)
                    wanted -= 1
        involved = exclude | {i.resident_id for i in planned}
        if rates.clock_skew_share > 0:
            for resident, devices in zip(self.residents, self.devices, strict=True):
                if resident.resident_id in involved:
                    continue
                for device in filter(None, (devices.meter_id, *devices.sensors)):
                    if rng.random() < rates.clock_skew_share:
                        size = math.exp(rng.uniform(math.log(120), math.log(3 * HOUR)))
                        offset = int(size) * rng.choice((-1, 1))
                        planned.append(ClockSkew(resident.resident_id, device, offset, self.start))
        return planned

    def _place(
        self, kind: str, row: int, earliest: datetime, latest: datetime, rng: random.Random
    ) -> Incident | None:
        """One incident of `kind` for resident `row` inside [earliest, latest], or None."""
        resident = self.residents[row]
        devices = self.devices[row]
        if latest <= earliest:
            return None
        if kind == "meter_outage":
            at = _between(earliest, latest, rng)
            until = min(at + timedelta(hours=rng.uniform(1.5, 8)), self.end)
            return MeterOutage(resident.resident_id, resident.meter_id or "", at, until)
        for _ in range(20):
            day = _between(earliest, latest, rng).date()
            day_start = self._day_start(day)
            plan = self._base_plan(row, day)
            if kind == "absence":
                leave_s = plan.wake_s + int(rng.uniform(60, 150) * MINUTE)
                at = day_start + timedelta(seconds=leave_s)
                if not earliest <= at <= latest or not plan.at_home(leave_s):
                    continue
                nights = rng.choice((0, 1, 1, 2, 2, 3))
                for stay in range(nights, -1, -1):
                    back = self._day_start(day + timedelta(days=stay))
                    until = back + timedelta(hours=rng.uniform(15.5, 17.5))
                    if until <= self.end and until - at >= timedelta(hours=3):
                        return Absence(resident.resident_id, at.replace(microsecond=0),
                                       until.replace(microsecond=0))  # fmt: skip
                continue
            # A fall or an SOS happens at home while awake, well inside the waking day.
            spans = [
                (day_start + timedelta(seconds=a + 15 * MINUTE),
                 day_start + timedelta(seconds=b - 15 * MINUTE))
                for a, b in plan.awake_at_home()
            ]  # fmt: skip
            spans = [(max(a, earliest), min(b, latest)) for a, b in spans]
            spans = [(a, b) for a, b in spans if b > a]
            if not spans:
                continue
            a, b = rng.choices(spans, weights=[(b - a).total_seconds() for a, b in spans])[0]
            at = _between(a, b, rng)
            if kind == "sos":
                device = devices.sos_device
                if device is None:
                    return None
                return Sos(resident.resident_id, at, device)
            rescue = self.rates.rescue_after_h
            detected = devices.fall_detector and rng.random() < self.rates.fall_detected_share
            return Fall(
                resident.resident_id,
                at,
                at + timedelta(hours=rescue) if rescue is not None else None,
                devices.fall_detector if detected else None,
            )
        return None


class _MeterState:
    """Registers and the last interval of power of every meter, carried from day to day."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rows = [i for i, r in enumerate(scenario.residents) if r.meter_id]
        meter_ids = [scenario.residents[i].meter_id for i in self.rows]
        self.topics = [f"{scenario.prefix}/meter/{meter_id}" for meter_id in meter_ids]
        self.step = scenario.meter_interval_s // MINUTE
        starts = [
            random.Random(f"{scenario.seed}/{scenario.residents[i].resident_id}/registers")  # noqa: S311 - a seeded simulation, not a secret
            for i in self.rows
        ]
        self.energy = np.array([rng.uniform(800, 5000) for rng in starts])
        self.water = np.array([rng.uniform(1e5, 9e5) for rng in starts])
        self.base = BaseLoads([scenario.routines[i] for i in self.rows])
        self.tail: np.ndarray | None = None  # the last `step` minutes of power before today
        self.skew = {
            n: scenario._skew[meter]
            for n, i in enumerate(self.rows)
            if (meter := scenario.residents[i].meter_id) in scenario._skew
        }
        self.outages = {
            n: [(o.at.timestamp(), o.until.timestamp()) for o in scenario._outages[i]]
            for n, i in enumerate(self.rows)
            if i in scenario._outages
        }

    def day(
        self, plans: list[DayPlan], first_second: int, minutes: int
    ) -> Iterator[tuple[int, list[SimMessage]]]:
        """(epoch second, readings) at each interval boundary of the day inside the run."""
        scenario, tz = self.scenario, self.scenario.tz
        boundaries, mean_w, kwh, litres_now = self._readings(plans, first_second, minutes)
        lo, hi = scenario.start.timestamp(), scenario.end.timestamp()
        topics = self.topics
        for b, minute in enumerate(boundaries.tolist()):
            second = first_second + minute * MINUTE
            if not lo <= second < hi:
                continue
            at = datetime.fromtimestamp(second, tz)
            ts = at.isoformat().encode()
            # METER_PAYLOAD inline rather than meter_payload(): a third of the run's time.
            batch = [
                (at, topic, METER_PAYLOAD % (ts, watts, kwh_now, litres))
                for topic, watts, kwh_now, litres in zip(
                    topics, mean_w[b].tolist(), kwh[b].tolist(), litres_now[b].tolist(),
                    strict=True,
                )
            ]  # fmt: skip
            for n, offset in self.skew.items():
                stamped = datetime.fromtimestamp(second + offset, tz).isoformat().encode()
                batch[n] = (at, topics[n], meter_payload(stamped, mean_w[b, n], kwh[b, n],
                                                          litres_now[b, n]))  # fmt: skip
            silent = [
                n
                for n, spans in self.outages.items()
                if any(start <= second < until for start, until in spans)
            ]
            if silent:
                silenced = set(silent)
                batch = [m for n, m in enumerate(batch) if n not in silenced]
            yield second, batch
        # The day's events after its last boundary still need a turn.
        yield first_second + minutes * MINUTE, []

    def _readings(self, plans: list[DayPlan], first_second: int, minutes: int):
        """Boundary minutes of the day and, at each (boundary by meter), mean power since the
        last boundary and both registers; the registers and power tail carry on to tomorrow.

        Not a generator, so the day's minute-by-minute arrays are freed before any yield.
        """
        step = self.step
        first_minute = first_second // MINUTE
        activity, water = render_activity([plans[i] for i in self.rows], minutes)
        noise_rng = np.random.default_rng([self.scenario.seed, first_minute])
        # Watt-minutes, cumulative from the start of the tail (the last interval of yesterday).
        energy_wmin = np.zeros((len(self.rows), step + minutes + 1))
        power = energy_wmin[:, step + 1 :]
        power[:] = self.base.minutes(first_minute, minutes)
        power += activity
        del activity
        power += METER_NOISE_W * noise_rng.standard_normal(power.shape, dtype=np.float32)
        np.maximum(power, 0.0, out=power)
        energy_wmin[:, 1 : step + 1] = self.tail if self.tail is not None else power[:, :step]
        self.tail = power[:, minutes - step :].copy()
        np.cumsum(energy_wmin, axis=1, out=energy_wmin)
        litres = np.zeros((len(self.rows), minutes + 1))
        np.cumsum(water, axis=1, out=litres[:, 1:])
        del water

        # Readings fall on whole multiples of the interval since the epoch, like real meters.
        boundaries = np.arange((-first_minute) % step, minutes, step)
        before, at = energy_wmin[:, boundaries], energy_wmin[:, boundaries + step]
        mean_w = ((at - before) / step).T.copy()
        kwh = (self.energy[:, None] + (at - energy_wmin[:, step][:, None]) / 60_000).T.copy()
        litres_now = (self.water[:, None] + litres[:, boundaries]).T.copy()
        self.energy += (energy_wmin[:, step + minutes] - energy_wmin[:, step]) / 60_000
        self.water += litres[:, minutes]
        return boundaries, mean_w, kwh, litres_now


def _between(a: datetime, b: datetime, rng: random.Random) -> datetime:
    """A whole second uniformly in [a, b]."""
    return (a + timedelta(seconds=rng.uniform(0, (b - a).total_seconds()))).replace(microsecond=0)
