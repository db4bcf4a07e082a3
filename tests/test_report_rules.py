"""One rule for visits and hazards over MQTT: what the same worker could not post over HTTP
is a dead letter with the reason, never a sign of life of someone else's resident."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg
import shapely

from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter
from tests.support.databases import count_rows

ZONE = ZoneInfo("Asia/Shanghai")


def _district(url: str):
    """Two workers of different grids, a resident of each, and a point inside each grid."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT w.id, r.id, g.geometry FROM workers w
            JOIN grids g ON g.id = w.grid_id
            JOIN LATERAL (SELECT id FROM residents WHERE grid_id = w.grid_id ORDER BY id LIMIT 1) r
              ON TRUE
            ORDER BY w.id LIMIT 2
            """
        ).fetchall()
    return [
        (worker, resident, shapely.from_wkb(bytes(wkb)).representative_point())
        for worker, resident, wkb in rows
    ]


def test_visits_and_hazards_over_mqtt_follow_the_http_rule(district_database_url):
    url = district_database_url
    (w1, r1, p1), (w2, r2, p2) = _district(url)
    now = datetime.now(UTC)
    ts = (now - timedelta(minutes=5)).isoformat()

    def visit(worker, resident, n, place=p1, **more):
        body = {"ts": (now - timedelta(minutes=n)).isoformat(), "lat": place.y, "lon": place.x,
                "kind": "visit", "status": "ok", "resident_id": resident, **more}  # fmt: skip
        return f"gw/patrol/{worker}", body

    def hazard(reporter, place):
        body = {"id": str(uuid.uuid4()), "ts": ts, "lat": place.y, "lon": place.x,
                "category": "road", "severity": "low"}  # fmt: skip
        return f"gw/hazard/{reporter}", body

    stored = [
        visit(w1, r1, 1, needs="想换个亮一点的灯泡"),  # 微心愿
        visit(w2, r2, 2, p2),
        hazard(w1, p1),
        hazard("W-UNKNOWN", p2),  # an id of no one: a report of a place, kept
        ("gw/patrol/W-UNKNOWN", {"lat": p1.y, "lon": p1.x}),  # a track point, timed on receipt
    ]
    refused = [
        (visit(w1, r2, 3), f"no resident {r2!r} in the grids of worker {w1!r}"),
        (visit(w2, "R-NOBODY", 4, p2), "no resident 'R-NOBODY'"),
        (visit("W-UNKNOWN", r1, 5), "worker 'W-UNKNOWN' has no grid"),
        (hazard(w1, p2), f"the hazard lies outside the grids of worker {w1!r}"),
    ]
    items = stored + [item for item, _ in refused]
    router, ctx = TopicRouter("gw"), ParseContext(now, ZONE)
    messages = [parse_message(router, t, orjson.dumps(b), ctx) for t, b in items]
    assert all(m.reason is None for m in messages)
    with psycopg.connect(url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZONE)
        result = writer.write(messages)

    assert sum(result.stored.values()) == len(stored)
    assert result.dead_letters == len(refused)
    for message, (_, words) in zip(messages[len(stored) :], refused, strict=True):
        assert message.reason is not None and words in message.reason, message.reason
    # No sign of life was recorded for a resident by a worker not of their grid.
    assert count_rows(url, "patrol_checkins", "resident_id = %s", (r2,)) == 1
    assert count_rows(url, "patrol_checkins", "resident_id = %s", (r1,)) == 1
    assert count_rows(url, "dead_letters") == len(refused)
    assert count_rows(url, "patrol_checkins", "needs = %s", ("想换个亮一点的灯泡",)) == 1
