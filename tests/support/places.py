"""Places of a test's own in the sample district (the sample's are taken out): one in grid A
and one in grid B, registered from a CSV through the import pipeline, and an inspection's
payload as the app sends it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg

from gridwatch.imports.pipelines import import_places_file
from gridwatch.imports.places import PLACES
from tests.support.api import GRID_A, GRID_B
from tests.support.databases import execute, point_in_grid

PLACE_A, PLACE_B = "T-A", "T-B"
EVERY_DAYS = 7


def register_places(url: str, tmp: Path, now: datetime) -> dict[str, tuple[float, float]]:
    """Replace the sample district's places with PLACE_A (a restaurant in grid A, inspected
    every EVERY_DAYS) and PLACE_B (a shop in grid B), registered at `now`; their (lon, lat)."""
    execute(url, "DELETE FROM places")
    # Six decimals, as registers give them (the layer rounds to seven).
    points = {}
    for code in (GRID_A, GRID_B):
        lon, lat = point_in_grid(url, code)
        points[code] = (round(lon, 6), round(lat, 6))
    (a_lon, a_lat), (b_lon, b_lat) = points[GRID_A], points[GRID_B]
    path = tmp / "places.csv"
    path.write_text(
        f"{','.join(PLACES.columns)}\n"
        f"{PLACE_A},老王面馆,restaurant,青山区富强路12号,{a_lat!r},{a_lon!r},{GRID_A},"
        f"王丽娜,13800000001,{EVERY_DAYS}\n"
        f"{PLACE_B},幸福便利店,shop,青山区幸福路5号,{b_lat!r},{b_lon!r},{GRID_B},"
        f"李伟,13800000002,30\n",
        encoding="utf-8",
    )
    with psycopg.connect(url) as conn:
        import_places_file(conn, path, now=now)
    return {PLACE_A: points[GRID_A], PLACE_B: points[GRID_B]}


def inspection(
    place_id: str, lon: float, lat: float, at: datetime, findings: list[dict] | None = None
) -> dict:
    """An inspection check-in of `place_id` at `at`: ok, or the findings given."""
    body = {
        "ts": at.isoformat(),
        "lat": lat,
        "lon": lon,
        "kind": "inspection",
        "place_id": place_id,
        "result": "findings" if findings else "ok",
    }
    if findings:
        body["findings"] = findings
    return body
