"""Load the sample district (Qingshan, Baotou) through the same import paths a user's files take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from gridwatch.imports.pipelines import (
    ProgressFn,
    import_contacts_file,
    import_grid_file,
    import_places_file,
    import_residents_file,
    import_units_file,
    import_workers_file,
)
from gridwatch.simulators.district import SampleDistrict, build_sample_district, write_sample_files


@dataclass(frozen=True, slots=True)
class SampleLoad:
    district: SampleDistrict
    areas: dict[str, int]  # by level: district, street, community, grid
    residents: int
    workers: int
    places: int = 0
    police_areas: dict[str, int] = field(default_factory=dict)  # the police grids', by level
    # below the grids: buildings, units, contacts (unit heads and building leads)
    below: dict[str, int] = field(default_factory=dict)


def load_sample_district(
    conn: psycopg.Connection,
    directory: Path,
    *,
    district: SampleDistrict | None = None,
    progress: ProgressFn | None = None,
    police: bool = False,
) -> SampleLoad:
    """Write the sample files (or `district`'s) into `directory` and import them;
    re-running updates in place. With `police`, the police's grids (警格) too, before the
    residents: their homes are placed in both systems."""
    district = district or build_sample_district()
    files = write_sample_files(Path(directory), district)
    areas = {}
    for path, level in (
        (files.district, "district"),
        (files.streets, "street"),
        (files.communities, "community"),
        (files.grids, "grid"),
    ):
        result = import_grid_file(conn, path, level=level, parent_field="parent")
        areas[level] = result.inserted + result.updated
    police_areas = import_police_grids(conn, files.police, district) if police else {}
    buildings = import_grid_file(conn, files.buildings, level="building", parent_field="parent")
    units = import_units_file(conn, files.units)
    residents = import_residents_file(conn, files.residents, progress=progress)
    workers = import_workers_file(conn, files.workers)
    places = import_places_file(conn, files.places)
    contacts = import_contacts_file(conn, files.contacts)
    below = {
        "buildings": buildings.inserted + buildings.updated,
        "units": units.inserted + units.updated,
        "contacts": contacts.inserted + contacts.updated,
    }
    return SampleLoad(
        district,
        areas,
        residents.inserted + residents.updated,
        workers.inserted + workers.updated,
        places.inserted + places.updated,
        police_areas,
        below,
    )


def load_police_grids(
    conn: psycopg.Connection, directory: Path, district: SampleDistrict | None = None
) -> dict[str, int]:
    """Import the sample district's police grids into a database that holds the district;
    what is stored there already is placed in them. Their count per level."""
    district = district or build_sample_district()
    return import_police_grids(conn, write_sample_files(Path(directory), district).police, district)


def import_police_grids(
    conn: psycopg.Connection, path: Path, district: SampleDistrict
) -> dict[str, int]:
    """Import the police layer file `path` of `district` (as `gridwatch grids import FILE
    --system police --parent-field parent` does); its grids per level."""
    import_grid_file(conn, path, level=None, parent_field="parent", system="police")
    return {
        level: sum(1 for f in district.police if f.level == level)
        for level in ("district", "street", "community", "grid")
    }
