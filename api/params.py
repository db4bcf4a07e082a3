"""Query parameters of OGC API - Features (`bbox`, `datetime`) and the paging cursor."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson

from gridwatch.api.http_errors import BadRequest

BBox = tuple[float, float, float, float]


def parse_bbox(text: str | None) -> BBox | None:
    """`minLon,minLat,maxLon,maxLat` (a 6-number 3D box is accepted, its heights ignored)."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise BadRequest(
            f"bbox needs 4 numbers minLon,minLat,maxLon,maxLat (or 6 with heights), "
            f"got {len(parts)}"
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise BadRequest("bbox must be comma-separated numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise BadRequest("bbox numbers must be finite")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    min_lon, min_lat, max_lon, max_lat = numbers
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise BadRequest("bbox longitudes must lie in [-180, 180]")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise BadRequest("bbox latitudes must lie in [-90, 90]")
    if min_lat > max_lat:
        raise BadRequest("bbox minLat is above maxLat")
    if min_lon > max_lon:
        raise BadRequest("bbox crossing the antimeridian (minLon > maxLon) is not supported")
    return min_lon, min_lat, max_lon, max_lat


def parse_instant(text: str, zone: ZoneInfo, *, end: bool = False) -> datetime:
    """An RFC 3339 date-time, or a date meaning that local day (its start, or its end)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), zone)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end else start
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise BadRequest(
            f"{text[:40]!r} is not an RFC 3339 date-time (e.g. 2026-11-23T08:00:00+08:00) "
            "or a date (2026-11-23)"
        ) from None
    if value.tzinfo is None:
        raise BadRequest(f"{text[:40]!r} needs an offset (Z or +08:00)")
    return value


def parse_datetime(text: str | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """`datetime=`: an instant, or an interval `start/end` where either end may be `..` or
    empty (open). A date alone is that whole local day."""
    if text is None or text == "":
        return None, None
    if "/" not in text:
        if len(text.strip()) == 10:
            return parse_instant(text, zone), parse_instant(text, zone, end=True)
        instant = parse_instant(text, zone)
        return instant, instant
    first, _, second = text.partition("/")
    if "/" in second:
        raise BadRequest("datetime interval has more than one '/'")
    start = None if first in ("", "..") else parse_instant(first, zone)
    end = None if second in ("", "..") else parse_instant(second, zone, end=True)
    if start is None and end is None:
        raise BadRequest("datetime interval '../..' is open at both ends; leave datetime out")
    if start is not None and end is not None and start > end:
        raise BadRequest("datetime interval ends before it starts")
    return start, end


FOREIGN_CURSOR = "cursor is not one this server issued (take it from a 'next' link)"


def encode_cursor(values: list) -> str:
    """An opaque cursor for the `next` link."""
    raw = orjson.dumps(values, option=orjson.OPT_PASSTHROUGH_DATETIME, default=_default)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None, shape: tuple[type, ...]) -> list | None:
    """The values a cursor carries, checked against `shape` (datetime, str, int, uuid.UUID)."""
    if text is None or text == "":
        return None
    problem = BadRequest(FOREIGN_CURSOR)
    if len(text) > 512:
        raise problem
    try:
        values = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise problem from None
    if not isinstance(values, list) or len(values) != len(shape):
        raise problem
    checked = []
    for value, kind in zip(values, shape, strict=True):
        if kind is datetime:
            if not isinstance(value, str):
                raise problem
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise problem from None
            if value.tzinfo is None:
                raise problem
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**62:
                raise problem
        elif kind is uuid.UUID:
            try:
                value = uuid.UUID(value) if isinstance(value, str) else None
            except ValueError:
                value = None
            if value is None:
                raise problem
        elif not isinstance(value, kind):
            raise problem
        checked.append(value)
    return checked


def decode_offset(text: str | None) -> int:
    """How many rows an offset cursor skips; 0 without one."""
    offset = (decode_cursor(text, (int,)) or [0])[0]
    if offset < 0:
        raise BadRequest(FOREIGN_CURSOR)
    return offset


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
