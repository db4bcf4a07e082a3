"""Cases the map and stream tests place in a grid of the sample district: level-2 dispute
warnings, stored as ingest stores them, and open requests at a point; and a hazard as it
is stored, read as the API reads it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import shapely

from gridwatch.disputes.scanning import ScannedText
from gridwatch.errors import NotFound
from gridwatch.model.records import RequestIntake
from gridwatch.store.grids import load_grid_catalog
from gridwatch.store.hazards import Hazard, HazardEvent, get_hazard, hazard_events
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.requests import open_requests, place_request
from gridwatch.store.warnings import Notify, record_warnings
from tests.support.api import NOW


def level2_warnings(url: str, code: str, text: str = "工地老板拖欠工资") -> list[int]:
    """Three texts in grid `code` hitting one category within a week: the warnings they
    make (through `record_warnings`, as ingest stores them); the ids of the level-2 ones."""
    with psycopg.connect(url) as conn:
        grid, wkb = conn.execute(
            "SELECT id, geometry FROM grids WHERE code = %s", (code,)
        ).fetchone()
        point = shapely.from_wkb(bytes(wkb)).representative_point()
        texts = [
            ScannedText(
                "hazard", str(uuid.uuid4()), text, grid, NOW + timedelta(minutes=n),
                point.x, point.y,
            )
            for n in range(3)
        ]  # fmt: skip
        with conn.transaction():
            stored = record_warnings(conn, LibraryMatchers(), texts, Notify("gw"))
    level2 = [w.id for w in stored if w.level == 2]
    assert level2, stored
    return level2


def open_request(
    url: str,
    code: str,
    description: str,
    *,
    at: tuple[float, float] | None = None,
    reporter: str = "app-gateway",
) -> uuid.UUID:
    """An Open311 request by `reporter` at a point of grid `code` (`at`, else in its western
    half, apart from the warnings of `level2_warnings`), dispatched to it; its id."""
    with psycopg.connect(url) as conn:
        grid, wkb = conn.execute(
            "SELECT id, geometry FROM grids WHERE code = %s", (code,)
        ).fetchone()
        shape = shapely.from_wkb(bytes(wkb))
        minx, miny, maxx, maxy = shape.bounds
        west = shapely.box(minx, miny, (minx + maxx) / 2, maxy)
        lon, lat = at or shape.intersection(west).representative_point().coords[0]
        intake = RequestIntake(
            id=uuid.uuid4(), source="open311", service_code="noise", description=description,
            reporter=reporter, requested_at=NOW, received_at=NOW, lon=lon, lat=lat,
        )  # fmt: skip
        placed = place_request(intake, load_grid_catalog(conn), grid)
        [stored] = open_requests(conn, [(intake, placed)], now=NOW)
    return stored.request.id


def stored_hazard(url: str, hazard_id: str | uuid.UUID) -> Hazard | None:
    """The hazard as it is stored now; None before it is."""
    with psycopg.connect(url) as conn:
        try:
            return get_hazard(conn, uuid.UUID(str(hazard_id)))
        except NotFound:
            return None


def hazard_steps(url: str, hazard_id: str | uuid.UUID) -> list[HazardEvent]:
    """The hazard's history as stored now, oldest first."""
    with psycopg.connect(url) as conn:
        return hazard_events(conn, uuid.UUID(str(hazard_id)))
