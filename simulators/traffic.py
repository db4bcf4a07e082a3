"""Realistic MQTT traffic of every kind for a district: what meters, sensors and apps send.

`burst()` is the demo's opening burst; `meter_minute()` is one minute of meter reports. The
full simulator of residents' days builds on the same message makers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import orjson
import shapely

from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.simulators.district import SampleDistrict

Message = tuple[str, bytes]
HAZARD_CATEGORIES = ("structural", "fire", "electrical", "gas", "road", "flood", "sanitation")
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
        payload = {
            "ts": at.isoformat(timespec="seconds"),
            "power_w": power,
            "energy_kwh": round(self.energy[meter_id], 4),
            "water_l": round(self.water[meter_id], 1),
        }
        return f"{prefix}/meter/{meter_id}", orjson.dumps(payload)


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
                payload = {"ts": int(at.timestamp()), "event": event}
                yield f"{prefix}/sensor/{sensor}", orjson.dumps(payload)
    grids = {g.code: g.geometry for g in district.grids}
    residents_by_grid: dict[str, list] = {}
    for resident in district.residents:
        residents_by_grid.setdefault(resident.grid_code, []).append(resident)
    for n, worker in enumerate(district.workers):
        track = points_in(grids[worker.grid_code], 6, rng)
        for step, (lon, lat) in enumerate(track):
            at = now - timedelta(minutes=30 - 5 * step)
            yield patrol_point(
                worker.worker_id, lon, lat, at, prefix, gcj02=n % 3 == 0, owntracks=n % 10 == 0
            )
        visited = residents_by_grid.get(worker.grid_code, [])
        if visited:
            resident = visited[int(rng.integers(len(visited)))]
            payload = {
                "ts": (now - timedelta(minutes=2)).isoformat(timespec="seconds"),
                "lat": resident.lat,
                "lon": resident.lon,
                "kind": "visit",
                "resident_id": resident.resident_id,
                "status": "ok",
                "accuracy_m": 8,
            }
            yield f"{prefix}/patrol/{worker.worker_id}", orjson.dumps(payload)
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


def meter_minute(
    district: SampleDistrict, registers: MeterRegisters, at: datetime, prefix: str
) -> Iterator[Message]:
    """One report from every resident's meter at minute `at`."""
    for resident in district.residents:
        if resident.meter_id:
            yield registers.reading(resident.meter_id, at, prefix)


def patrol_point(
    worker_id: str,
    lon: float,
    lat: float,
    at: datetime,
    prefix: str,
    *,
    gcj02: bool = False,
    owntracks: bool = False,
) -> Message:
    """A patrol track point as a gridwatch app (WGS-84 or GCJ-02) or OwnTracks sends it."""
    lon, lat = float(lon), float(lat)
    if owntracks:
        payload = {
            "_type": "location",
            "lat": lat,
            "lon": lon,
            "tst": int(at.timestamp()),
            "acc": 12,
            "batt": 80,
        }
        return f"owntracks/{worker_id}/phone", orjson.dumps(payload)
    if gcj02:
        lon, lat = wgs84_to_gcj02(float(lon), float(lat))
    payload = {
        "ts": at.isoformat(timespec="seconds"),
        "lat": float(lat),
        "lon": float(lon),
        "crs": "gcj02" if gcj02 else "wgs84",
        "kind": "patrol",
        "accuracy_m": 10,
    }
    return f"{prefix}/patrol/{worker_id}", orjson.dumps(payload)


def hazard(
    reporter_id: str, lon: float, lat: float, at: datetime, rng: np.random.Generator, prefix: str
) -> Message:
    """A hazard report with a fresh client-made UUID and a photo URL."""
    report_id = uuid.UUID(
        int=int(rng.integers(0, 2**62)) << 64 | int(rng.integers(0, 2**62)), version=4
    )
    category = HAZARD_CATEGORIES[int(rng.integers(len(HAZARD_CATEGORIES)))]
    payload = {
        "id": str(report_id),
        "ts": at.isoformat(timespec="seconds"),
        "lat": float(lat),
        "lon": float(lon),
        "category": category,
        "severity": SEVERITIES[int(rng.integers(len(SEVERITIES)))],
        "description": f"巡查发现{category}隐患",
        "photo_urls": [f"https://photos.example.org/{report_id}.jpg"],
    }
    return f"{prefix}/hazard/{reporter_id}", orjson.dumps(payload)
