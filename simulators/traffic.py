"""Realistic MQTT traffic of every kind for a district: what meters, sensors and apps send.

`burst()` is the demo's opening burst; `meter_minute()` is one minute of meter reports. The
message makers here (`meter_payload`, `sensor_event`, `patrol_point`, `visit`,
`inspection`, `hazard_report`) are the one place payloads are shaped; the three check-ins
take a `CheckIn`, where and when the app makes one. The simulator of residents' days
(`simulators.scenario`) builds on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import orjson
import shapely

from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.simulators.district import SampleDistrict

Message = tuple[str, bytes]
HAZARD_CATEGORIES = ("structural", "fire", "electrical", "gas", "road", "flood", "sanitation")
# Meter payloads are formatted by hand: this is the hot path of a 20-million-message run,
# and %-formatting bytes is several times faster than building a dict for orjson.
METER_PAYLOAD = b'{"ts":"%s","power_w":%.1f,"energy_kwh":%.4f,"water_l":%.1f}'
SEVERITIES = ("low", "medium", "high", "critical")
SENSOR_EVENTS = ("door_open", "motion", "curtain_open", "light_on", "light_off")
MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("meter", b"not json at all"),
    ("meter", b'{"power_w": "lots"}'),
    ("sensor", b'{"event": "teleported"}'),
    ("patrol", b'{"lat": 95.0, "lon": 109.9}'),
    ("hazard", b'{"id": "not-a-uuid", "lat": 40.6, "lon": 109.9}'),
)


class MeterRegisters:
    """Cumulative energy and water registers per meter, advancing as time passes."""

    def __init__(self, meter_ids: list[str], rng: np.random.Generator) -> None:
        self.rng = rng
        self.energy = dict(
            zip(meter_ids, rng.uniform(800, 5000, len(meter_ids)).tolist(), strict=True)
        )
        self.water = dict(
            zip(meter_ids, rng.uniform(1e5, 9e5, len(meter_ids)).tolist(), strict=True)
        )

    def reading(self, meter_id: str, at: datetime, prefix: str) -> Message:
        """One meter report at `at`: power now, registers advanced by that power for a minute."""
        power = float(
            self.rng.choice([35.0, 60.0, 120.0, 800.0, 1500.0], p=[0.5, 0.2, 0.15, 0.1, 0.05])
        )
        self.energy[meter_id] += power / 60_000
        self.water[meter_id] += float(self.rng.choice([0.0, 0.0, 0.0, 2.5, 12.0]))
        ts = at.isoformat(timespec="seconds").encode()
        payload = meter_payload(ts, power, self.energy[meter_id], self.water[meter_id])
        return f"{prefix}/meter/{meter_id}", payload


def compact_json(payload: dict) -> bytes:
    """JSON bytes of exactly their length. orjson 3.12+ hands back each result in a buffer of
    4 KB or more that is never shrunk; a simulator holding a day of messages would pay that
    for every one (home-assistant/core#181245), so a right-sized copy is kept instead."""
    return bytes(memoryview(orjson.dumps(payload)))


def meter_payload(ts: bytes, power_w: float, energy_kwh: float, water_l: float) -> bytes:
    """A meter report: `ts` (ISO 8601 text), power now, cumulative energy and water registers."""
    return METER_PAYLOAD % (ts, power_w, energy_kwh, water_l)


def points_in(geometry, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random (lon, lat) points inside a polygon, by rejection from its bounds."""
    minx, miny, maxx, maxy = geometry.bounds
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        candidates = np.column_stack(
            [rng.uniform(minx, maxx, count * 2), rng.uniform(miny, maxy, count * 2)]
        )
        inside = candidates[shapely.contains_xy(geometry, candidates[:, 0], candidates[:, 1])]
        found.append(inside)
        total += len(inside)
    return np.concatenate(found)[:count]


def burst(
    district: SampleDistrict,
    now: datetime,
    *,
    prefix: str = "gw",
    seed: int = 7,
    minutes: int = 5,
) -> Iterator[Message]:
    """A few minutes of everything: meters, sensors, patrols (some GCJ-02, some OwnTracks),
    visits, hazards (one sent twice), and a handful of malformed messages."""
    rng = np.random.default_rng(seed)
    registers = MeterRegisters([r.meter_id for r in district.residents if r.meter_id], rng)
    for minute in range(minutes, 0, -1):
        yield from meter_minute(district, registers, now - timedelta(minutes=minute), prefix)
    for resident in district.residents:
        for sensor in resident.sensor_ids:
            if rng.random() < 0.3:
                at = now - timedelta(seconds=int(rng.integers(0, minutes * 60)))
                event = SENSOR_EVENTS[int(rng.integers(len(SENSOR_EVENTS)))]
                yield sensor_event(sensor, event, at, prefix, epoch=True)
    grids = {g.code: g.geometry for g in district.grids}
    # Who may be visited: residents with a grid and a place (all of the sample district's).
    residents_by_grid: dict[str, list[tuple[str, float, float]]] = {}
    for resident in district.residents:
        if resident.grid_code is not None and resident.lon is not None and resident.lat is not None:
            home = (resident.resident_id, resident.lon, resident.lat)
            residents_by_grid.setdefault(resident.grid_code, []).append(home)
    for n, worker in enumerate(district.workers):
        track = points_in(grids[worker.grid_code], 6, rng)
        for step, (lon, lat) in enumerate(track):
            at = now - timedelta(minutes=30 - 5 * step)
            where = CheckIn(lon, lat, at, gcj02=n % 3 == 0)
            yield patrol_point(worker.worker_id, where, prefix, owntracks=n % 10 == 0)
        visited = residents_by_grid.get(worker.grid_code, [])
        if visited:
            resident_id, lon, lat = visited[int(rng.integers(len(visited)))]
            at = now - timedelta(minutes=2)
            yield visit(worker.worker_id, resident_id, "ok", CheckIn(lon, lat, at), prefix)
    yield from _inspections(district, now, prefix)
    hazard_grids = rng.choice(len(district.grids), size=12, replace=False)
    for i, grid_index in enumerate(hazard_grids):
        grid = district.grids[int(grid_index)]
        lon, lat = points_in(grid.geometry, 1, rng)[0]
        reporter = district.workers[int(grid_index) % len(district.workers)].worker_id
        message = hazard(reporter, lon, lat, now - timedelta(minutes=i), rng, prefix)
        yield message
        if i == 0:
            yield message  # an app retrying after a lost acknowledgement
    for kind, payload in MALFORMED:
        yield f"{prefix}/{kind}/demo-bad", payload


BURST_INSPECTIONS = 8  # places inspected in the burst; every third finds something


def _inspections(district: SampleDistrict, now: datetime, prefix: str) -> Iterator[Message]:
    """A few inspections by the worker of each place's grid, some with findings."""
    worker_of = {w.grid_code: w.worker_id for w in district.workers}
    for n, place in enumerate(district.places[:BURST_INSPECTIONS]):
        worker = worker_of.get(place.grid_code or "")
        if worker is None or place.lon is None or place.lat is None:
            continue
        findings = None
        if n % 3 == 0:
            findings = [
                {"category": "fire", "severity": "medium", "description": "灭火器过期未更换"}
            ]
        # Between the track points (whole minutes): a check-in of the same worker and time
        # with other content would be a dead letter.
        at = now - timedelta(minutes=20 - n, seconds=17)
        where = CheckIn(place.lon, place.lat, at)
        yield inspection(worker, place.place_id, where, prefix, findings=findings)


def meter_minute(
    district: SampleDistrict, registers: MeterRegisters, at: datetime, prefix: str
) -> Iterator[Message]:
    """One report from every resident's meter at minute `at`."""
    for resident in district.residents:
        if resident.meter_id:
            yield registers.reading(resident.meter_id, at, prefix)


@dataclass(frozen=True, slots=True)
class CheckIn:
    """Where and when a worker's app makes a check-in, and how it sends the place: `lon`,
    `lat` are WGS-84, and a GCJ-02 app sends them shifted, as Chinese map SDKs report them.
    Without `accuracy_m` the app reports the usual accuracy of its kind of check-in."""

    lon: float
    lat: float
    at: datetime
    gcj02: bool = False
    accuracy_m: float | None = None

    def payload(self, kind: str, usual_accuracy_m: float, **fields: object) -> dict:
        """The fields every gridwatch app check-in starts with, then `fields`, then the
        accuracy: the order the app sends them in, kept so a check-in is always the same bytes."""
        lon, lat = float(self.lon), float(self.lat)
        if self.gcj02:
            lon, lat = wgs84_to_gcj02(lon, lat)
        accuracy = usual_accuracy_m if self.accuracy_m is None else round(self.accuracy_m, 1)
        return {
            "ts": self.at.isoformat(timespec="seconds"),
            "lat": round(float(lat), 7),
            "lon": round(float(lon), 7),
            "crs": "gcj02" if self.gcj02 else "wgs84",
            "kind": kind,
            **fields,
            "accuracy_m": accuracy,
        }


def patrol_point(
    worker_id: str, where: CheckIn, prefix: str, *, owntracks: bool = False, battery: int = 80
) -> Message:
    """A patrol track point as a gridwatch app (WGS-84 or GCJ-02) or OwnTracks sends it;
    OwnTracks always sends WGS-84."""
    if owntracks:
        payload = {
            "_type": "location",
            "lat": round(float(where.lat), 7),
            "lon": round(float(where.lon), 7),
            "tst": int(where.at.timestamp()),
            "acc": round(where.accuracy_m) if where.accuracy_m is not None else 12,
            "batt": battery,
            "tid": worker_id[-2:],
        }
        return f"owntracks/{worker_id}/phone", compact_json(payload)
    return _app_message(worker_id, prefix, where.payload("patrol", 10))


def visit(
    worker_id: str,
    resident_id: str,
    status: str,
    where: CheckIn,
    prefix: str,
    *,
    note: str | None = None,
) -> Message:
    """A home visit check-in (入户走访): `status` is ok, concern or not_home."""
    payload = where.payload("visit", 8.0, resident_id=resident_id, status=status)
    if note:
        payload["note"] = note
    return _app_message(worker_id, prefix, payload)


def inspection(
    worker_id: str,
    place_id: str,
    where: CheckIn,
    prefix: str,
    *,
    findings: list[dict] | None = None,
) -> Message:
    """An inspection check-in (安全巡查) of a registered place: result ok, or findings (each
    category, severity, description), each of which opens a case of the place."""
    payload = where.payload("inspection", 8.0, place_id=place_id)
    payload["result"] = "findings" if findings else "ok"
    if findings:
        payload["findings"] = findings
    return _app_message(worker_id, prefix, payload)


def _app_message(worker_id: str, prefix: str, payload: dict) -> Message:
    """A check-in as the worker's gridwatch app publishes it: all kinds on one topic."""
    return f"{prefix}/patrol/{worker_id}", compact_json(payload)


def sensor_event(
    device_id: str,
    event: str,
    at: datetime,
    prefix: str,
    *,
    epoch: bool = False,
    value: float | bool | None = None,
) -> Message:
    """A home sensor event; `epoch` sends `ts` as epoch seconds, as many cheap sensors do."""
    payload: dict = {
        "ts": int(at.timestamp()) if epoch else at.isoformat(timespec="seconds"),
        "event": event,
    }
    if value is not None:
        payload["value"] = value
    return f"{prefix}/sensor/{device_id}", compact_json(payload)


def hazard(
    reporter_id: str, lon: float, lat: float, at: datetime, rng: np.random.Generator, prefix: str
) -> Message:
    """A hazard report with a fresh client-made UUID and a photo URL."""
    report_id = uuid.UUID(
        int=int(rng.integers(0, 2**62)) << 64 | int(rng.integers(0, 2**62)), version=4
    )
    category = HAZARD_CATEGORIES[int(rng.integers(len(HAZARD_CATEGORIES)))]
    severity = SEVERITIES[int(rng.integers(len(SEVERITIES)))]
    return hazard_report(
        reporter_id,
        report_id,
        lon,
        lat,
        at,
        prefix,
        category=category,
        severity=severity,
        description=f"巡查发现{category}隐患",
        photo_urls=[f"https://photos.example.org/{report_id}.jpg"],
    )


def hazard_report(
    reporter_id: str,
    report_id: uuid.UUID,
    lon: float,
    lat: float,
    at: datetime,
    prefix: str,
    *,
    category: str,
    severity: str,
    description: str,
    photo_urls: list[str],
    gcj02: bool = False,
) -> Message:
    """A hazard report as the patrol app sends it; `report_id` is its idempotency key."""
    lon, lat = float(lon), float(lat)
    if gcj02:
        lon, lat = wgs84_to_gcj02(lon, lat)
    payload = {
        "id": str(report_id),
        "ts": at.isoformat(timespec="seconds"),
        "lat": round(float(lat), 7),
        "lon": round(float(lon), 7),
        "crs": "gcj02" if gcj02 else "wgs84",
        "category": category,
        "severity": severity,
        "description": description,
        "photo_urls": photo_urls,
    }
    return f"{prefix}/hazard/{reporter_id}", compact_json(payload)
