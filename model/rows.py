"""The rows of the registers a district keeps, as imported: residents, grid workers and the
places a community inspects.

Read from files by imports/ and written by store/; defined here so that neither depends on
the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ResidentRow:
    """One resident as imported; lat/lon are WGS-84 and may be absent when grid_code is given."""

    resident_id: str
    name: str
    address: str
    lat: float | None
    lon: float | None
    grid_code: str | None
    meter_id: str | None
    sensor_ids: tuple[str, ...]
    phone: str | None
    living_alone: bool
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One grid worker as imported."""

    worker_id: str
    name: str
    phone: str | None
    grid_codes: tuple[str, ...]
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


@dataclass(frozen=True, slots=True)
class PlaceRow:
    """One place of the inspection register (安全巡查) as imported; lat/lon are WGS-84 and may
    be absent when grid_code is given."""

    place_id: str
    name: str
    kind: str  # one of PLACE_KINDS
    address: str
    lat: float | None
    lon: float | None
    grid_code: str | None
    contact: str | None  # the person responsible (负责人): personal information
    phone: str | None
    inspect_every_days: int
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


RegisterRow = ResidentRow | PlaceRow
"""A row placed in a grid by its position or its grid code."""
