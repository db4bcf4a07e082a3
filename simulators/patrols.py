"""Grid workers' days (每日双巡 / 入户走访 / 安全巡查): two walks through their grid with a phone
that reports a point every ~30 s, home visits after the afternoon walk, hazards found on the
way, and what inspections of shops, restaurants and workshops find.

Positions are true WGS-84 points plus GPS noise; what the phone sends (WGS-84, GCJ-02 or
OwnTracks) is decided by the worker's app, and shaped by `simulators.traffic`.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

import numpy as np

from gridwatch.simulators.traffic import HAZARD_CATEGORIES, points_in

HOUR = 3600
MINUTE = 60
METRES_PER_DEG_LAT = 111_132.0
PATROL_STARTS_H = (8.5, 15.0)  # 每日双巡: morning and afternoon rounds
POINT_EVERY_S = 30.0
WAYPOINTS = 5

APPS = ("wgs84", "gcj02", "owntracks")

HAZARD_KINDS = (*HAZARD_CATEGORIES, "other")
_HAZARD_WEIGHTS = {
    "structural": 0.10, "fire": 0.08, "electrical": 0.10, "gas": 0.05, "road": 0.20,
    "flood": 0.05, "sanitation": 0.27, "other": 0.15,
}  # fmt: skip
_SEVERITY_WEIGHTS = {"low": 0.40, "medium": 0.35, "high": 0.20, "critical": 0.05}
HAZARD_DESCRIPTIONS = {
    "structural": "外墙瓷砖空鼓开裂有脱落风险",
    "fire": "楼道堆放杂物堵塞消防通道",
    "electrical": "电动车入户充电私拉飞线",
    "gas": "居民反映楼道内有燃气异味",
    "road": "小区路面坑洼老人易绊倒",
    "flood": "雨水井盖缺失积水严重",
    "sanitation": "垃圾桶满溢未及时清运",
    "other": "小区门口共享单车乱停放",
}


# What an inspection finds at each kind of place (用电、消防、食品储存…): categories it looks
# at, and what a worker writes.
INSPECTED = {
    "shop": ("fire", "electrical"),
    "restaurant": ("fire", "gas", "food", "electrical", "sanitation"),
    "workshop": ("electrical", "fire", "structural"),
    "warehouse": ("fire", "electrical", "structural"),
    "other": ("fire", "electrical"),
}
FINDING_DESCRIPTIONS = {
    "fire": ("灭火器过期未更换", "安全出口堆放杂物"),
    "electrical": ("私拉电线插座超负荷", "电动车在店内充电"),
    "gas": ("燃气软管老化未更换", "未安装燃气泄漏报警器"),
    "food": ("生熟食品混放", "冷藏柜温度过高 食品过期未清理"),
    "structural": ("违规搭建阁楼", "货架固定不牢有倾倒风险"),
    "sanitation": ("后厨油污堆积 垃圾未及时清运",),
}
FINDING_CHANCE = 0.25  # an inspection finds something to correct
MISSED_CHANCE = 0.15  # an inspection due is not made that day


def inspection_findings(kind: str, rng: random.Random) -> list[dict]:
    """What an inspection of a place of `kind` finds: nothing (most often), or one or two
    findings as the app sends them (category, severity, description)."""
    if rng.random() >= FINDING_CHANCE:
        return []
    categories = INSPECTED.get(kind, INSPECTED["other"])
    found = rng.sample(categories, min(len(categories), rng.choice((1, 1, 2))))
    return [
        {
            "category": category,
            "severity": rng.choices(list(_SEVERITY_WEIGHTS), list(_SEVERITY_WEIGHTS.values()))[0],
            "description": rng.choice(FINDING_DESCRIPTIONS[category]),
        }
        for category in found
    ]


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """Where the phone says the worker is (WGS-84, with GPS noise) and how sure it is."""

    at_s: float  # seconds after local midnight
    lon: float
    lat: float
    accuracy_m: float
    battery: int


@dataclass(frozen=True, slots=True)
class FoundHazard:
    """A hazard a worker sees on a walk, at a waypoint of the route (true position)."""

    at_s: float
    lon: float
    lat: float
    report_id: uuid.UUID
    category: str
    severity: str
    description: str
    photo_urls: tuple[str, ...]


@dataclass(slots=True)
class WorkerDay:
    """One worker's day: track points of both rounds, when the afternoon round ends, hazards."""

    track: list[TrackPoint]
    rounds: list[tuple[float, float]]  # [start, end) seconds after midnight
    hazards: list[FoundHazard]


def worker_app(worker_id: str, seed: int) -> str:
    """Which app a worker's phone runs: most the gridwatch app (some on GCJ-02 map SDKs),
    a few OwnTracks."""
    roll = random.Random(f"{seed}/{worker_id}/app").random()  # noqa: S311 - a seeded simulation, not a secret
    return "owntracks" if roll < 0.1 else "gcj02" if roll < 0.4 else "wgs84"


def walk_day(grid_geometry, rng: random.Random, *, hazard_chance: float) -> WorkerDay:
    """Two rounds of ~45 min through the grid along waypoints inside it, at walking pace."""
    np_rng = np.random.default_rng(rng.getrandbits(64))
    centre = grid_geometry.representative_point()
    metres_per_deg_lon = METRES_PER_DEG_LAT * math.cos(math.radians(centre.y))
    gps_sigma_m = rng.uniform(5.0, 15.0)
    battery = rng.uniform(85, 100)
    track: list[TrackPoint] = []
    rounds: list[tuple[float, float]] = []
    hazards: list[FoundHazard] = []
    for start_h in PATROL_STARTS_H:
        start = rng.gauss(start_h * HOUR, 8 * MINUTE)
        duration = rng.uniform(40, 50) * MINUTE
        rounds.append((start, start + duration))
        waypoints = points_in(grid_geometry, WAYPOINTS, np_rng)
        route = np.vstack([waypoints, waypoints[:1]])  # a loop back to where it began
        xy = np.column_stack(
            [
                (route[:, 0] - centre.x) * metres_per_deg_lon,
                (route[:, 1] - centre.y) * METRES_PER_DEG_LAT,
            ]
        )
        legs = np.hypot(*np.diff(xy, axis=0).T)
        along = np.concatenate([[0.0], np.cumsum(legs)])
        speed = rng.uniform(0.8, 1.2)  # m/s, with stops to look around
        offsets = []
        t = 0.0
        while t < duration:
            offsets.append(t)
            t += rng.uniform(POINT_EVERY_S - 4, POINT_EVERY_S + 4)
        times = np.array(offsets)
        # Round and round the loop if the grid is small; np.interp needs a position on it.
        distance = (times * speed) % max(along[-1], 1.0)
        x = np.interp(distance, along, xy[:, 0]) + np_rng.normal(0, gps_sigma_m, len(times))
        y = np.interp(distance, along, xy[:, 1]) + np_rng.normal(0, gps_sigma_m, len(times))
        lon = centre.x + x / metres_per_deg_lon
        lat = centre.y + y / METRES_PER_DEG_LAT
        accuracy = gps_sigma_m * np_rng.uniform(0.8, 1.6, len(times))
        for offset, point_lon, point_lat, acc in zip(
            times.tolist(), lon.tolist(), lat.tolist(), accuracy.tolist(), strict=True
        ):
            battery -= 0.05
            track.append(TrackPoint(start + offset, point_lon, point_lat, acc, int(battery)))
        if rng.random() < hazard_chance:
            # Seen at a waypoint the walk reaches in time; waypoints lie inside the grid.
            reached = [i for i in range(1, WAYPOINTS) if along[i] / speed < duration]
            i = rng.choice(reached) if reached else 0
            seen_at = start + along[i] / speed + rng.uniform(0.5, 3) * MINUTE
            hazards.append(_found_hazard(seen_at, *waypoints[i].tolist(), rng=rng))
    return WorkerDay(track, rounds, hazards)


def _found_hazard(at_s: float, lon: float, lat: float, *, rng: random.Random) -> FoundHazard:
    report_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    category = rng.choices(list(_HAZARD_WEIGHTS), weights=list(_HAZARD_WEIGHTS.values()))[0]
    severity = rng.choices(list(_SEVERITY_WEIGHTS), weights=list(_SEVERITY_WEIGHTS.values()))[0]
    photos = tuple(
        f"https://photos.example.org/hazards/{report_id}/{n}.jpg"
        for n in range(1, rng.randint(1, 3) + 1)
    )
    return FoundHazard(
        at_s, lon, lat, report_id, category, severity, HAZARD_DESCRIPTIONS[category], photos
    )


def nearby(lon: float, lat: float, metres: float, rng: random.Random) -> tuple[float, float]:
    """A point about `metres` away in a random direction (a second reporter, GPS noise)."""
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = metres * math.cos(bearing) / METRES_PER_DEG_LAT
    dlon = metres * math.sin(bearing) / (METRES_PER_DEG_LAT * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat
