"""Import pipelines shared by the CLI, the demo and the tests: file → checked rows → database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Unpack
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.errors import InputFileError, listed
from gridwatch.geo.grids import BUILDING, GridFileOptions, assign_parents, read_grid_file
from gridwatch.imports.contacts import read_contacts_csv
from gridwatch.imports.hotline import read_work_orders
from gridwatch.imports.places import read_places_csv
from gridwatch.imports.residents import read_residents_csv
from gridwatch.imports.units import read_units_csv
from gridwatch.imports.workers import read_workers_csv
from gridwatch.model.vocabulary import GRID_SYSTEMS, MANAGEMENT
from gridwatch.store.buildings import place_homes, record_homes, upsert_buildings, upsert_units
from gridwatch.store.contacts import upsert_contacts
from gridwatch.store.grids import (
    grid_codes,
    load_features,
    load_grid_catalog,
    unknown_grid_note,
    upsert_grids,
)
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.placement import place_stored_points
from gridwatch.store.places import upsert_places
from gridwatch.store.requests import open_requests, place_request
from gridwatch.store.residents import place_in_grids, upsert_residents, upsert_workers
from gridwatch.store.warnings import Notify, record_warnings, request_texts

ProgressFn = Callable[[int, int], None]
WORK_ORDER_BATCH = 2000


@dataclass(frozen=True, slots=True)
class ImportResult:
    inserted: int
    updated: int
    without_parent_or_grid: int
    warnings: tuple[str, ...] = ()  # imported, but worth a look: one line each
    notes: tuple[str, ...] = ()  # what else the import did: one line each

    def summary(self, path: Path, what: str) -> str:
        return f"{path}: {self.inserted} {what} added, {self.updated} updated"


def import_grid_file(
    conn: psycopg.Connection,
    path: Path,
    *,
    system: str = MANAGEMENT,
    progress: ProgressFn | None = None,
    **reading: Unpack[GridFileOptions],
) -> ImportResult:
    """Read a vector file (`reading`: as `read_grid_file` takes it) and upsert its polygons
    by code as grids of `system`, parents by field or containment (in grids of the same
    system)."""
    require_file(path)
    if system not in GRID_SYSTEMS:
        raise InputFileError(f"unknown grid system {system!r}: expected {', '.join(GRID_SYSTEMS)}")
    if reading.get("level_field"):
        reading["level"] = None  # each feature's level is its own, as the field says
    features = read_grid_file(path, **reading)
    codes = {f.code for f in features}
    known = [f for f in load_features(conn, system) if f.code not in codes]
    conn.commit()
    parents = assign_parents(features, [*features, *known])
    buildings = [f for f in features if f.level == BUILDING]
    if buildings:  # below the grid, kept apart from it: the file's grids come first
        if system != MANAGEMENT:
            raise InputFileError(
                f"{path}: buildings lie in the management grids; import them without --system"
            )
        return _import_buildings(conn, path, features, buildings, parents, progress)
    inserted, updated = upsert_grids(
        conn, features, parents, source=str(path), system=system, progress=progress
    )
    orphans = sum(1 for f in features if parents.get(f.code) is None and f.level != "district")
    notes: tuple[str, ...] = ()
    if system != MANAGEMENT:
        # What was stored before these grids came (or before they were redrawn) is placed in
        # them too; the management grids keep the placement each point got when it came.
        moved = place_stored_points(conn, system)
        notes = (f"{moved} stored points placed in the {system} grids as they are now",)
    return ImportResult(inserted, updated, orphans, notes=notes)


def _import_buildings(conn, path, features, buildings, parents, progress) -> ImportResult:
    """A file holding buildings (楼栋), and maybe the grids they lie in: both in one
    transaction, each building in its grid (a building in none is an error)."""
    numbers = {f.code: n for n, f in enumerate(features, start=1)}
    grids = [f for f in features if f.level != BUILDING]
    with conn.transaction():
        done = upsert_grids(conn, grids, parents, source=str(path)) if grids else (0, 0)
        inserted, updated = upsert_buildings(
            conn, buildings, parents, source=str(path), numbers=numbers, progress=progress
        )
    return ImportResult(done[0] + inserted, done[1] + updated, 0)


def import_residents_file(
    conn: psycopg.Connection, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Read a residents CSV and upsert residents and devices, placed in grids."""
    require_file(path)
    warnings: list[str] = []
    rows = read_residents_csv(path, warnings)
    grids, outside = place_in_grids(conn, rows, source=str(path))
    homes = place_homes(conn, rows, [g.grid_id for g in grids], source=str(path))
    with conn.transaction():
        inserted, updated = upsert_residents(conn, rows, grids, source=str(path), progress=progress)
        record_homes(conn, rows, homes)
    return ImportResult(inserted, updated, outside, tuple(warnings))


def import_units_file(
    conn: psycopg.Connection, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Read a units CSV and upsert the units (单元) of imported buildings."""
    require_file(path)
    rows = read_units_csv(path)
    inserted, updated = upsert_units(conn, rows, source=str(path), progress=progress)
    return ImportResult(inserted, updated, 0)


def import_contacts_file(
    conn: psycopg.Connection, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Read a contacts CSV and upsert the unit heads and building leads of imported
    buildings and units."""
    require_file(path)
    warnings: list[str] = []
    rows = read_contacts_csv(path, warnings)
    inserted, updated = upsert_contacts(conn, rows, source=str(path), progress=progress)
    return ImportResult(inserted, updated, 0, tuple(warnings))


def import_workers_file(
    conn: psycopg.Connection, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Read a workers CSV and upsert the workers with their grids; an unknown grid code is
    an error naming its row, and nothing is imported."""
    require_file(path)
    warnings: list[str] = []
    rows = read_workers_csv(path, warnings)
    codes = grid_codes(conn)
    unknown = [
        f"row {row.row}: grid_codes names {code!r}, which is not an imported grid"
        for row in rows
        for code in row.grid_codes
        if code not in codes
    ]
    named = [code for row in rows for code in row.grid_codes if code not in codes]
    note = unknown_grid_note(conn, named) if named else ""
    conn.commit()
    if unknown:
        raise InputFileError(f"{path}: {listed(unknown)}{note}")
    grids = [[codes[code][0] for code in row.grid_codes] for row in rows]
    inserted, updated = upsert_workers(conn, rows, grids, source=str(path))
    return ImportResult(inserted, updated, 0, tuple(warnings))


def import_places_file(
    conn: psycopg.Connection,
    path: Path,
    *,
    now: datetime | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Read a places CSV and upsert the places, placed in grids and buildings as residents
    are; a place new to the register is due its first inspection a period after `now` (the
    time of the import without one)."""
    require_file(path)
    warnings: list[str] = []
    rows = read_places_csv(path, warnings)
    grids, outside = place_in_grids(conn, rows, source=str(path))
    homes = place_homes(conn, rows, [g.grid_id for g in grids], source=str(path))
    inserted, updated = upsert_places(
        conn, rows, grids, homes, source=str(path), now=now or datetime.now(UTC), progress=progress
    )
    return ImportResult(inserted, updated, outside, tuple(warnings))


def require_file(path: Path) -> None:
    """Refuse a path that is not a file, before any database work is done for it."""
    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such file")


def import_work_orders_file(
    conn: psycopg.Connection,
    path: Path,
    *,
    zone: ZoneInfo,
    now: datetime,
    notify: Notify,
    matchers: LibraryMatchers | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Read a 12345 work-order export (CSV or XLSX) and store its orders as requests, each
    placed in the 待分拨 queue of the street it names (a work order has no point); an order
    stored before is updated where the export changed it. Each batch's new texts are scanned
    for dispute keywords in the transaction that stores it (level-2 warnings to `notify`).
    `without_parent_or_grid`: the orders no street could be told for, which the district's
    administrators place."""
    require_file(path)
    orders = read_work_orders(path, zone=zone, now=now)
    catalog = load_grid_catalog(conn)
    conn.commit()
    placed = [(i, place_request(i, catalog, None)) for i in orders.intakes]
    matchers = matchers or LibraryMatchers()
    new = updated = 0
    for start in range(0, len(placed), WORK_ORDER_BATCH):
        with conn.transaction():
            batch = open_requests(conn, placed[start : start + WORK_ORDER_BATCH], now=now)
            record_warnings(conn, matchers, request_texts(batch), notify)
        for stored in batch:
            new += stored.change == "new"
            updated += stored.change == "updated"
        if progress is not None:
            progress(min(start + WORK_ORDER_BATCH, len(placed)), len(placed))
    nowhere = sum(1 for _, p in placed if p.grid_id is None)
    return ImportResult(new, updated, nowhere, tuple(orders.warnings))
