"""Who to call first about a home or a case: the unit heads (单元长) and building leads (楼栋长)
of the resident's unit and building, or of the building a case stands in (the inspected
place's, for a finding of an inspection; else the one its point lies in). Their names
and phones are personal information: in clear only for those who may see their building's
grid's residents (admins, its duty officers, its grid worker), masked for everyone else, and
every answer that shows one in clear is recorded in the audit (as `contact:<id>`) before it
goes out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from gridwatch.api.absences import visible_resident
from gridwatch.api.auth import Reader, sees_personal_data
from gridwatch.api.collections import get_visible_hazard
from gridwatch.api.disclosure import CONTACT, record_reads, shown_in_clear
from gridwatch.api.privacy import contact_shown
from gridwatch.api.requests import visible_request
from gridwatch.api.responses import JSONResponse
from gridwatch.api.runtime import Conn
from gridwatch.errors import NotFound
from gridwatch.store.buildings import case_home
from gridwatch.store.contacts import Contact, first_to_call, resident_home
from gridwatch.store.users import Principal

router = APIRouter(tags=["contacts"])


def people_to_call(
    conn, principal: Principal, request: Request, building: int | None, unit: int | None = None
) -> list[dict]:
    """The people to call first about a home in `unit` of `building` (or a point in the
    building), each as the caller may see them; the reads in clear are recorded."""
    found = first_to_call(conn, building, unit)
    record_reads(conn, principal, request, shown_in_clear(principal, found, CONTACT))
    return [_shown(c, sees_personal_data(principal, c.grid_id)) for c in found]


def _shown(contact: Contact, clear: bool) -> dict:
    return {
        "id": contact.id,
        "role": contact.role,
        **contact_shown(contact.name, contact.phone, clear=clear),
        "building": contact.building_code,
        "building_name": contact.building_name,
        "unit": contact.unit_code,
        "unit_name": contact.unit_name,
    }


def case_calls(
    conn,
    principal: Principal,
    request: Request,
    lon: float | None,
    lat: float | None,
    place_id: str | None = None,
) -> list[dict]:
    """`people_to_call` about a case: those of the building and unit of the place whose
    inspection found it, else of the building its point lies in."""
    home = case_home(conn, lon, lat, place_id)
    return people_to_call(conn, principal, request, home.building_id, home.unit_id)


def resident_people_to_call(conn, principal: Principal, request: Request, resident_id: str):
    """`people_to_call` about a resident's home (nobody for a resident outside the caller's
    grids: NotFound, as for one that does not exist)."""
    visible_resident(conn, principal, resident_id)
    return people_to_call(conn, principal, request, *resident_home(conn, resident_id))


@router.get(
    "/residents/{resident_id}/first-to-call",
    response_class=JSONResponse,
    summary="Who to call first about a resident's home (单元长, 楼栋长)",
)
def resident_first_to_call(
    request: Request,
    principal: Reader,
    conn: Conn,
    resident_id: Annotated[str, Path(max_length=128)],
):
    """The unit head of the resident's unit, the leads of their building, then the heads of
    its other units; names and phones masked unless the caller may see them."""
    people = resident_people_to_call(conn, principal, request, resident_id)
    return JSONResponse({"resident_id": resident_id, "first_to_call": people})


@router.get(
    "/cases/{case_id}/first-to-call",
    response_class=JSONResponse,
    summary="Who to call first about a case's place (楼栋长, 单元长)",
)
def case_first_to_call(
    request: Request,
    principal: Reader,
    conn: Conn,
    case_id: Annotated[str, Path(max_length=64)],
):
    """The leads and unit heads of the building a hazard's or a request's point lies in, or
    for a finding of an inspection the place's unit head first and its building's leads (none
    for a point in no building, or a request with only an address)."""
    people = case_people_to_call(conn, principal, request, case_id)
    return JSONResponse({"case_id": case_id, "first_to_call": people})


def case_people_to_call(conn, principal: Principal, request: Request, case_id: str) -> list[dict]:
    """`case_calls` about a hazard or a request; NotFound for a case the caller may not see,
    as for one that does not exist."""
    try:
        hazard = get_visible_hazard(conn, principal, case_id)
    except NotFound:
        try:
            found = visible_request(conn, principal, case_id)
        except NotFound:
            raise NotFound(f"no case {case_id[:64]}") from None
        return case_calls(conn, principal, request, found.lon, found.lat)
    return case_calls(conn, principal, request, hazard.lon, hazard.lat, hazard.place_id)
