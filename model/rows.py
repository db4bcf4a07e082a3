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
    building_code: str | None = None  # the building (楼栋) they live in, when the file says
    unit_code: str | None = None  # and its unit (单元): the building's own numbering
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One unit (单元) of a building as imported: named by its building's code and its own;
    lat/lon (WGS-84, its door) may be absent, the address then says where it is."""

    building_code: str
    unit_code: str
    name: str
    address: str
    lat: float | None
    lon: float | None
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A unit head (单元长) or building lead (楼栋长) as imported; a unit head names a unit."""

    contact_id: str
    name: str
    role: str  # one of CONTACT_ROLES
    building_code: str
    unit_code: str | None
    phone: str | None
    webhook_url: str | None  # receives the notifications of the cases in their building
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
    building_code: str | None = None  # the building (楼栋) it stands in, when the file says
    unit_code: str | None = None  # and its unit (单元): the building's own numbering
    row: int | None = field(default=None, compare=False)  # in the file; the header is row 1


RegisterRow = ResidentRow | PlaceRow
"""A row placed in a grid by its position or its grid code, and below the grid in the building
and unit it names or the building its position lies in."""
