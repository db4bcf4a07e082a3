"""Sample activity for the sample district, written straight to the tables: hazards in every
state (a few telling of a dispute, with their warnings), open alerts, two patrol rounds per
worker with home visits, citizens' requests from every source in every step of their loop,
past inspections of places (some missed, some with findings).
For benchmarks, browser tests and demos of the maps; real data comes
in over MQTT and the API."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely

from gridwatch.alerts.lifecycle import OpenAlert
from gridwatch.cases.hazards import deadline_after
from gridwatch.dispatch.clocks import escalate_hazards, escalate_requests
from gridwatch.disputes.scanning import ScannedText
from gridwatch.model.records import Finding, PatrolCheckin, RequestIntake
from gridwatch.model.vocabulary import ALERT_KINDS
from gridwatch.simulators.patrols import HAZARD_DESCRIPTIONS, MISSED_CHANCE, inspection_findings
from gridwatch.store.alerts import write_event
from gridwatch.store.checkins import insert_checkin
from gridwatch.store.grids import PointGrids, load_grid_catalog, load_leaf_grids
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.partitions import ensure_partitions
from gridwatch.store.places import record_inspections
from gridwatch.store.requests import hotline_id, open_requests, place_request, transition_request
from gridwatch.store.warnings import Notify, record_warnings, request_texts

CATEGORIES = ("structural", "fire", "electrical", "gas", "road", "flood", "sanitation", "other")
SEVERITIES = ("low", "medium", "high", "critical")
STATUS_MIX = {
    "reported": 0.4,
    "assigned": 0.15,
    "in_progress": 0.15,
    "resolved": 0.15,
    "closed": 0.15,
}


# What residents ask for, by service: the words of the requests the sample holds.
REQUEST_TEXTS = {
    "noise": ("楼上装修每天早上七点就开始电钻", "小区广场舞音响太大，晚上九点半还没停"),  # noqa: RUF001
    "sanitation": ("3号楼垃圾桶满了两天没人清运", "楼道里有人堆放生活垃圾，气味很大"),  # noqa: RUF001
    "property": ("2单元电梯停运三天，物业一直说在修", "地下车库照明坏了一半"),  # noqa: RUF001
    "facilities": ("小区门口路灯不亮已经一周", "健身器材的扶手断了，怕伤到老人"),  # noqa: RUF001
    "elderly": ("独居的张大爷腿脚不便，想请人帮忙买米买面", "空巢老人需要每周助洁一次"),  # noqa: RUF001
    "dispute": ("邻居家空调外机滴水到我家窗台，协商不成", "楼上漏水把楼下天花板泡坏了"),  # noqa: RUF001
    "flood": ("暴雨后地下室进水", "楼前积水很深，老人出行困难"),  # noqa: RUF001
    "other": ("想咨询老年证怎么办理", "反映小区门禁卡办理问题"),
}
REQUEST_STEPS = (  # where the sample's requests stand: the steps taken after receipt
    (), (), ("accept",), ("accept", "start"), ("accept", "start", "resolve"),
    ("accept", "resolve", "feedback"), ("accept", "resolve", "feedback", "close"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SampleActivity:
    hazards: int
    alerts: int
    checkins: int
    requests: int = 0


def _leaf_shapes(conn: psycopg.Connection) -> tuple[list[int], list]:
    """The management system's leaf grids (where sample points are drawn) and their shapes."""
    rows = conn.execute(
        "SELECT g.id, g.geometry FROM grids g WHERE g.system = 'management' AND NOT EXISTS "
        "(SELECT 1 FROM grids c WHERE c.parent_id = g.id) ORDER BY g.code"
    ).fetchall()
    conn.commit()
    return [r[0] for r in rows], [shapely.from_wkb(bytes(r[1])) for r in rows]


def _police_grids(conn: psycopg.Connection, lon: list, lat: list) -> list[int | None]:
    """The police grid of each point (the sample's points are drawn in management grids)."""
    return [p.police_grid_id for p in load_leaf_grids(conn).place(lon, lat)]


def _point_in(shape, rng: np.random.Generator) -> tuple[float, float]:
    minx, miny, maxx, maxy = shape.bounds
    while True:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(shape, x, y):
            return float(x), float(y)


def seed_hazards(
    conn: psycopg.Connection,
    *,
    count: int,
    now: datetime,
    deadlines: Mapping[str, timedelta],
    seed: int = 5,
    days: float = 10.0,
) -> int:
    """`count` hazards spread over the leaf grids, reported over the last `days`."""
    rng = np.random.default_rng(seed)
    ids, shapes = _leaf_shapes(conn)
    statuses = list(STATUS_MIX)
    weights = np.array(list(STATUS_MIX.values()))
    hazards: list[tuple[object, ...]] = []
    events: list[tuple[uuid.UUID, datetime, str, str | None, str, str]] = []
    disputed: set[int] = set()  # grids one of whose hazards already tells of a dispute
    for i in range(count):
        g = int(rng.integers(len(ids)))
        lon, lat = _point_in(shapes[g], rng)
        received = now - timedelta(hours=float(rng.uniform(0.1, days * 24)))
        severity = SEVERITIES[int(rng.choice(4, p=[0.4, 0.35, 0.2, 0.05]))]
        status = statuses[int(rng.choice(len(statuses), p=weights / weights.sum()))]
        hazard_id = uuid.UUID(int=int(rng.integers(2**62)) << 64 | i, version=4)
        reporter = f"W{g + 1:03d}"
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        hazards.append(
            (
                hazard_id,
                reporter,
                received,
                received,
                lon,
                lat,
                ids[g],
                category,
                severity,
                _description(i, ids[g], disputed, category),
                [],
                status,
                deadline_after(severity, received, deadlines),
                deadline_after(severity, received, deadlines),
                None if status == "reported" else reporter,
            )
        )
        events.append((hazard_id, received, "report", None, "reported", reporter))
        if status != "reported":
            events.append(
                (hazard_id, received + timedelta(minutes=5), "seed", "reported", status, "sample")
            )
    police = _police_grids(conn, [h[4] for h in hazards], [h[5] for h in hazards])
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
            "grid_id, category, severity, description, photo_urls, status, deadline_at, due_at, "
            "assignee, police_grid_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [(*h, p) for h, p in zip(hazards, police, strict=True)],
        )
        cur.executemany(
            "INSERT INTO hazard_events (hazard_id, at, action, from_status, to_status, actor) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            events,
        )
    return len(hazards)


# What a few hazards' descriptions say besides the hazard: signs of a dispute, one per grid
# (so each is a level-1 warning), for the warnings layer to show.
SAMPLE_DISPUTES = (
    "楼道堆放杂物 邻居吵架",
    "工地拖欠工资 工人围堵",
    "物业不作为 业主拒交物业费",
    "宅基地纠纷 占地搭建",
    "楼上漏水 邻里矛盾",
    "欠钱不还 上门讨债",
)


def _description(i: int, grid_id: int, disputed: set[int], category: str) -> str:
    """A sample hazard's description: every 40th, in a grid with none yet, tells of a dispute."""
    if i % 40 == 0 and grid_id not in disputed and len(disputed) < len(SAMPLE_DISPUTES):
        disputed.add(grid_id)
        return SAMPLE_DISPUTES[len(disputed) - 1]
    return HAZARD_DESCRIPTIONS[category]


def seed_warnings(conn: psycopg.Connection) -> int:
    """The warnings the sample hazards' descriptions make, through the same hook as ingest."""
    rows = conn.execute(
        "SELECT id, description, grid_id, observed_at, lon, lat, police_grid_id FROM hazard_reports"
    ).fetchall()
    texts = [
        ScannedText("hazard", str(i), d, g, at, lon, lat, police_grid_id=p)
        for i, d, g, at, lon, lat, p in rows
    ]
    with conn.transaction():
        return len(record_warnings(conn, LibraryMatchers(), texts, Notify("gw")))


def seed_alerts(conn: psycopg.Connection, *, count: int, now: datetime, seed: int = 6) -> int:
    """Open (some acknowledged) alerts for `count` residents, each with its events."""
    rng = np.random.default_rng(seed)
    residents = conn.execute(
        "SELECT id, grid_id FROM residents WHERE grid_id IS NOT NULL ORDER BY id"
    ).fetchall()
    picked = rng.choice(len(residents), size=min(count, len(residents)), replace=False)
    made = 0
    with conn.transaction():
        for n, index in enumerate(picked):
            resident_id, grid_id = residents[int(index)]
            kind = ALERT_KINDS[int(rng.integers(len(ALERT_KINDS)))]
            opened = now - timedelta(minutes=float(rng.uniform(1, 600)))
            since = opened - timedelta(hours=float(rng.uniform(0, 12)))
            acked = n % 3 == 0
            alert_id = conn.execute(
                "INSERT INTO alerts (resident_id, kind, grid_id, status, severity, since, "
                "opened_at, acknowledged_at, acknowledged_by) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (
                    resident_id,
                    kind,
                    grid_id,
                    "acknowledged" if acked else "open",
                    "critical" if kind in ("sos", "fall") else "high",
                    since,
                    opened,
                    opened + timedelta(minutes=5) if acked else None,
                    "sample" if acked else None,
                ),
            ).fetchone()
            if alert_id is None:
                continue
            alert = OpenAlert(alert_id[0], resident_id, kind, since, "open", "grid", opened)
            write_event(conn, alert, opened, "open", "gridwatch", kind)
            if acked:
                write_event(
                    conn, alert, opened + timedelta(minutes=5), "acknowledged", "sample", None
                )
            made += 1
    return made


def seed_patrols(
    conn: psycopg.Connection,
    *,
    day: date,
    zone: ZoneInfo,
    received_at: datetime,
    seed: int = 7,
    rounds: tuple[float, ...] = (8.5, 15.0),
    visits_per_worker: int = 3,
) -> int:
    """每日双巡: each grid's worker walks two ~45 min rounds through it (a point every 30 s),
    then visits a few of its residents. Returns the check-ins written."""
    rng = np.random.default_rng(seed)
    leaves = load_leaf_grids(conn)
    ids, shapes = _leaf_shapes(conn)
    shape_of = dict(zip(ids, shapes, strict=True))
    workers = conn.execute(
        "SELECT id, grid_id FROM workers WHERE grid_id IS NOT NULL ORDER BY id"
    ).fetchall()
    homes = conn.execute(
        "SELECT id, grid_id, lon, lat FROM residents WHERE grid_id IS NOT NULL ORDER BY id"
    ).fetchall()
    conn.commit()
    by_grid: dict[int, list] = {}
    for home in homes:
        by_grid.setdefault(home[1], []).append(home)
    rows = []
    midnight = datetime.combine(day, time(), zone)
    for worker_id, grid_id in workers:
        shape = shape_of.get(grid_id)
        if shape is None:
            continue
        for start_h in rounds:
            waypoints = [_point_in(shape, rng) for _ in range(5)]
            route = np.array([*waypoints, waypoints[0]])
            steps = 90
            along = np.linspace(0, len(route) - 1, steps)
            lon = np.interp(along, np.arange(len(route)), route[:, 0])
            lat = np.interp(along, np.arange(len(route)), route[:, 1])
            lon += rng.normal(0, 4e-5, steps)
            lat += rng.normal(0, 3e-5, steps)
            start = midnight + timedelta(hours=start_h, minutes=float(rng.uniform(-8, 8)))
            for k in range(steps):
                rows.append(
                    [
                        worker_id,
                        start + timedelta(seconds=30 * k),
                        float(lon[k]),
                        float(lat[k]),
                        "patrol",
                        None,
                        None,
                    ]
                )
        visit_start = midnight + timedelta(hours=rounds[-1] + 1)
        for k, home in enumerate(by_grid.get(grid_id, [])[:visits_per_worker]):
            rows.append(
                [
                    worker_id,
                    visit_start + timedelta(minutes=10 * k),
                    home[2],
                    home[3],
                    "visit",
                    home[0],
                    "ok",
                ]
            )
    placed = leaves.place([r[2] for r in rows], [r[3] for r in rows])
    ensure_partitions(conn, {day, (midnight + timedelta(hours=30)).date()}, zone)
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(
            "COPY patrol_checkins (worker_id, observed_at, received_at, source, lon, lat, "
            "accuracy_m, grid_id, kind, resident_id, status, police_grid_id) FROM STDIN"
        ) as copy,
    ):
        for row, grids in zip(rows, placed, strict=True):
            worker, at, lon, lat, kind, resident, status = row
            copy.write_row(
                (
                    worker,
                    at,
                    received_at,
                    "gw",
                    lon,
                    lat,
                    10.0,
                    grids.grid_id,
                    kind,
                    resident,
                    status,
                    grids.police_grid_id,
                )
            )
    return len(rows)


def seed_requests(
    conn: psycopg.Connection, *, count: int, now: datetime, seed: int = 7, days: float = 5.0
) -> int:
    """`count` requests over the last `days`: Open311 posts and app reports at a point, 12345
    work orders with only a community's name (waiting for 派单 in the street's queue), needs
    recorded on home visits; each taken some steps along its loop. Ids come from `seed`, so
    seeding again stores nothing twice."""
    rng = np.random.default_rng(seed)
    ids, shapes = _leaf_shapes(conn)
    catalog = load_grid_catalog(conn)
    leaves = load_leaf_grids(conn)
    communities = [g.name for g in catalog.grids if g.level == "community"]
    conn.commit()
    services = list(REQUEST_TEXTS)
    placed, steps = [], []
    for i in range(count):
        g = int(rng.integers(len(ids)))
        service = services[int(rng.integers(len(services)))]
        source = ("open311", "hotline", "visit", "app")[int(rng.choice(4, p=[0.3, 0.3, 0.2, 0.2]))]
        received = now - timedelta(hours=float(rng.uniform(0.1, days * 24)))
        texts = REQUEST_TEXTS[service]
        lon = lat = None
        if source != "hotline":
            lon, lat = _point_in(shapes[g], rng)
        number = f"S{seed}-{i:05d}"
        intake = RequestIntake(
            id=hotline_id(number),
            source=source,
            service_code=service,
            description=texts[int(rng.integers(len(texts)))],
            reporter="12345" if source == "hotline" else f"W{g + 1:03d}",
            requested_at=received,
            received_at=received,
            lon=lon,
            lat=lat,
            address=f"富强路{int(rng.integers(1, 200))}号",
            community=communities[int(rng.integers(len(communities)))] if communities else None,
            requester_name="王秀华" if source != "visit" else None,
            requester_phone=f"139{int(rng.integers(10**7, 10**8))}",
            source_key=number,
            attributes=(("need", "meals"),) if service == "elderly" else (),
        )
        grid = ids[g] if lon is not None else None
        police = None
        if lon is not None and lat is not None:
            police = leaves.place([lon], [lat])[0].police_grid_id
        placed.append((intake, place_request(intake, catalog, PointGrids(grid, police))))
        steps.append((REQUEST_STEPS[int(rng.integers(len(REQUEST_STEPS)))], grid, received))
    with conn.transaction():  # through the same hook as Open311 posts and 12345 imports
        stored = open_requests(conn, placed, now=now)
        record_warnings(conn, LibraryMatchers(), request_texts(stored), Notify("gw"))
    for case, (taken, grid, received) in zip(stored, steps, strict=True):
        if case.change != "new":
            continue
        at = received
        if case.request.queued:
            if not taken or (grid is None and not ids):
                continue
            at += timedelta(minutes=30)
            transition_request(
                conn, case.request.id, "dispatch", actor="sample", now=at,
                grid_id=grid or ids[int(rng.integers(len(ids)))],
            )  # fmt: skip
        for action in taken:
            at += timedelta(minutes=float(rng.uniform(10, 240)))
            transition_request(
                conn, case.request.id, action, actor="sample", now=min(at, now),
                note="已处理" if action in ("resolve", "close") else None,
                rating="satisfied" if action == "feedback" else None,
            )  # fmt: skip
    return sum(1 for s in stored if s.change == "new")


@dataclass(frozen=True, slots=True)
class SampleInspections:
    inspections: int
    findings: int  # hazards their findings opened
    overdue: int  # places whose next inspection is past at `now`


def seed_inspections(
    conn: psycopg.Connection,
    *,
    now: datetime,
    zone: ZoneInfo,
    deadlines: Mapping[str, timedelta],
    seed: int = 8,
) -> SampleInspections:
    """The last two inspections of every place not inspected yet, by its grid's worker, as if
    the register had been kept for a while: most on time, some missed (the place overdue,
    some by more than the grace), a quarter with findings that open cases. Through the store's
    path for stored inspections; a second run finds every place inspected and adds none."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    places = conn.execute(
        "SELECT p.id, p.kind, p.lon, p.lat, p.inspect_every_days, w.worker_id "
        "FROM places p JOIN LATERAL (SELECT worker_id FROM worker_grids wg "
        "WHERE wg.grid_id = p.grid_id ORDER BY worker_id LIMIT 1) w ON TRUE "
        "WHERE p.last_inspected_at IS NULL AND p.lon IS NOT NULL ORDER BY p.id"
    ).fetchall()
    conn.commit()
    checkins = []
    for place_id, kind, lon, lat, every, worker in places:
        late = rng.random() < MISSED_CHANCE  # this period's inspection not made yet
        last = now - timedelta(days=every * rng.uniform(1.1, 1.6) if late else every * rng.random())
        for at in (last - timedelta(days=every * rng.uniform(0.9, 1.0)), last):
            found = inspection_findings(kind, rng)
            findings = tuple(Finding(f["category"], f["severity"], f["description"]) for f in found)
            checkins.append(
                PatrolCheckin(
                    worker_id=worker, observed_at=at.replace(microsecond=0), received_at=at,
                    lon=lon, lat=lat, accuracy_m=8.0, kind="inspection", resident_id=None,
                    status=None, note=None, place_id=place_id,
                    result="findings" if findings else "ok", findings=findings,
                )
            )  # fmt: skip
    ensure_partitions(conn, {c.observed_at.astimezone(zone).date() for c in checkins}, zone)
    grids = load_leaf_grids(conn)
    conn.commit()
    with conn.transaction():
        for checkin in checkins:
            [placed] = grids.place([checkin.lon], [checkin.lat])
            insert_checkin(
                conn, checkin, grid_id=placed.grid_id, police_grid_id=placed.police_grid_id
            )
        inspected = record_inspections(conn, checkins, deadlines=deadlines)
    [(overdue,)] = conn.execute(
        "SELECT count(*) FROM places WHERE next_due_at < %s", (now,)
    ).fetchall()
    conn.commit()
    return SampleInspections(len(checkins), inspected.opened, overdue)


def seed_activity(
    conn: psycopg.Connection,
    *,
    now: datetime,
    zone: ZoneInfo,
    deadlines: Mapping[str, timedelta],
    hazards: int = 1000,
    alerts: int = 60,
    requests: int = 120,
    patrol_day: date | None = None,
) -> SampleActivity:
    """Everything above at once: what the maps look like on a busy day, the overdue hazards
    a level or two up as the hazard clocks of `gridwatch alerts` would have put them by `now`."""
    made_hazards = seed_hazards(conn, count=hazards, now=now, deadlines=deadlines)
    escalate_hazards(conn, now, deadlines)
    seed_warnings(conn)
    made_alerts = seed_alerts(conn, count=alerts, now=now)
    day = patrol_day or now.astimezone(zone).date()
    checkins = seed_patrols(conn, day=day, zone=zone, received_at=now)
    made_requests = seed_requests(conn, count=requests, now=now)
    escalate_requests(conn, now)
    return SampleActivity(made_hazards, made_alerts, checkins, made_requests)
