"""Masking of residents' personal information (个人信息) for callers who do not need it."""

from __future__ import annotations

import math
import re

_DIGIT = re.compile(r"\d")


def mask_name(name: str | None) -> str | None:
    """王秀华 → 王*华, 王华 → 王*, 巴特尔 → 巴*尔: the first and last character stay."""
    if not name:
        return name
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str | None) -> str | None:
    """13912341234 → 139****1234; short numbers keep only their last two digits."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) >= 8:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


def contact_shown(name: str | None, phone: str | None, *, clear: bool) -> dict:
    """A person's name and phone as a reader may see them, in clear or masked, and whether
    they are masked (`masked`)."""
    if clear:
        return {"name": name, "phone": phone, "masked": False}
    return {"name": mask_name(name), "phone": mask_phone(phone), "masked": True}


def mask_email(email: str | None) -> str | None:
    """wang.xiuhua@example.cn → w***@example.cn: the domain stays, the person goes."""
    if not email:
        return email
    user, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return user[:1] + "***@" + domain


def mask_address(address: str | None) -> str | None:
    """青山区富强路12号3栋2单元301室 → 青山区富强路****: the road stays, numbers go."""
    if not address:
        return address
    match = _DIGIT.search(address)
    keep = address[: match.start()] if match else address[: max(len(address) // 3, 1)]
    return keep + "****"


# A masked home shows at the centre of its cell of COARSE_DEG degrees, about 50 m (55 m
# north-south, 45-50 m east-west at China's latitudes): on a map a home's point names a
# household as surely as its address. Fixed cells: asking again and again averages nothing
# out, and a box narrowed around a home finds it only to its cell.
COARSE_DEG = 0.0005


def coarse_position(lon: float | None, lat: float | None) -> tuple[float | None, float | None]:
    """The centre of the cell holding (lon, lat)."""
    if lon is None or lat is None:
        return lon, lat
    return _centre(lon), _centre(lat)


def coarse_bbox(
    bbox: tuple[float, float, float, float] | None,
) -> tuple[float, float, float, float] | None:
    """The box grown to whole cells: whether a home falls in it depends on its cell alone."""
    if bbox is None:
        return None
    west, south, east, north = bbox
    step = COARSE_DEG
    return (
        math.floor(west / step) * step,
        math.floor(south / step) * step,
        math.ceil(east / step) * step,
        math.ceil(north / step) * step,
    )


def _centre(value: float) -> float:
    return (math.floor(value / COARSE_DEG) + 0.5) * COARSE_DEG
