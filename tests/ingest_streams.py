"""A mixed stream of distinct messages, and how many of them the database accounts for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

TOTAL = 600
BAD_EVERY = 10
PROBE = "PROBE"  # meter id of messages that only show a worker is subscribed; not counted


def mixed_stream(prefix: str, user: str) -> list[tuple[str, bytes | dict]]:
    """TOTAL distinct messages of every kind, one in BAD_EVERY of them bad."""
    base = datetime.now(UTC) - timedelta(hours=3)
    messages: list[tuple[str, bytes | dict]] = []
    for n in range(TOTAL):
        ts = (base + timedelta(seconds=n)).isoformat()
        if n % BAD_EVERY == BAD_EVERY - 1:
            messages.append((f"{prefix}/meter/BAD", f'{{"power_w": "n{n}"}}'.encode()))
            continue
        place = {"lat": 40.6 + n * 1e-5, "lon": 109.9}
        kind = n % 5
        if kind == 0:
            messages.append((f"{prefix}/meter/M-{n % 7}", {"ts": ts, "power_w": float(n)}))
        elif kind == 1:
            messages.append((f"{prefix}/sensor/S-{n % 7}", {"ts": ts, "event": "motion"}))
        elif kind == 2:
            messages.append((f"{prefix}/patrol/W-{n % 7}", {"ts": ts, **place}))
        elif kind == 3:
            hazard_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{n}"))
            messages.append(
                (
                    f"{prefix}/hazard/W-{n % 7}",
                    {"id": hazard_id, "ts": ts, **place, "category": "road", "severity": "low"},
                )
            )
        else:
            epoch = int((base + timedelta(seconds=n)).timestamp())
            messages.append(
                (f"owntracks/{user}/phone", {"_type": "location", **place, "tst": epoch})
            )
    return messages


def accounted(url: str) -> tuple[int, int]:
    """(rows stored in every table, distinct dead letters); (-1, -1) while the server is away."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            stored = conn.execute(
                "SELECT (SELECT count(*) FROM meter_readings WHERE meter_id <> %s)"
                " + (SELECT count(*) FROM sensor_events)"
                " + (SELECT count(*) FROM patrol_checkins)"
                " + (SELECT count(*) FROM hazard_reports)",
                (PROBE,),
            ).fetchone()[0]
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    except psycopg.OperationalError:
        return -1, -1
    return stored, dead
