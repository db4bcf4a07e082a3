"""What every message kind shares: decoding JSON objects, times, numbers and enums.

Each reader raises `InvalidPayload` with a reason a person can act on; the worker turns it
into a dead letter. Nothing here touches the network or the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson

from gridwatch.geo.crs import normalize_crs, to_wgs84

# Before this a device clock is surely wrong (an unset RTC says 1970).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_EARLIEST_EPOCH = EARLIEST.timestamp()
MAX_ID_LENGTH = 128
# Control characters, and lone surrogates (which UTF-8 cannot encode).
_UNSAFE_CHARACTER = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_PHOTOS = 20
# A photo gridwatch keeps itself (posted as multipart/form-data), linked from the same server.
MEDIA_PATH = re.compile(r"/media/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class InvalidPayload(ValueError):
    """A message that cannot be stored; its text is the dead letter's reason."""


class Ignored(Exception):
    """A message ignored on purpose: part of a client's normal traffic, nothing to store and
    nothing wrong. Its text is the reason it is counted under, one of a few fixed phrases
    (never taken from the message, so the counts stay few)."""


class UnknownTime(Ignored):
    """A retained copy without its device time: when it happened is unknown (the receive
    time is only when the broker sent it again), so it is ignored."""

    def __init__(self) -> None:
        super().__init__("retained copy without device time")


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What a parser needs besides the message: when it arrived and how to read local times."""

    received_at: datetime
    tz: ZoneInfo
    max_future: timedelta = timedelta(days=1)
    max_age: timedelta = timedelta(days=400)
    max_bytes: int = 64 * 1024
    retained: bool = False  # the broker's retained copy, sent because we subscribed


def decode_object(payload: bytes, ctx: ParseContext) -> dict[str, Any]:
    """Decode a JSON object, refusing oversized, non-UTF-8, non-JSON and non-object payloads."""
    if len(payload) > ctx.max_bytes:
        raise InvalidPayload(f"payload too large: {len(payload)} bytes (limit {ctx.max_bytes})")
    if not payload:
        raise InvalidPayload("empty payload: expected a JSON object")
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as bad:  # orjson calls this "surrogates not allowed"
            raise InvalidPayload(
                f"payload is not UTF-8 text: byte 0x{payload[bad.start]:02x} at offset {bad.start}"
            ) from None
        raise InvalidPayload(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayload(f"payload must be a JSON object, got {json_type(data)}")
    return data


def read_ts(data: dict[str, Any], ctx: ParseContext, field: str = "ts") -> datetime:
    """Device time: ISO 8601 (naive means local in GRIDWATCH_TZ) or epoch seconds; absent = now
    (for a retained copy, absent raises UnknownTime)."""
    raw = data.get(field)
    if raw is None:
        if ctx.retained:
            raise UnknownTime
        return ctx.received_at
    if isinstance(raw, bool):
        raise InvalidPayload(f"{field} must be ISO 8601 text or epoch seconds, got a boolean")
    if isinstance(raw, int | float):
        # abs() first: NaN compares false and a huge integer never reaches float conversion.
        if not abs(raw) <= 1e11:
            hint = " (milliseconds?)" if abs(raw) < 1e14 else ""
            raise InvalidPayload(
                f"{field} {number_text(raw)} is not a plausible epoch time in seconds{hint}"
            )
        if raw < _EARLIEST_EPOCH:
            # Checked before conversion: far enough back, fromtimestamp has no year for it.
            raise InvalidPayload(
                f"{field} {raw!r} is before {EARLIEST:%Y}: the device clock is not set"
            )
        when = datetime.fromtimestamp(raw, tz=UTC)
    elif isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidPayload(
                f"{field} {quoted(raw)} is not ISO 8601 (e.g. 2026-11-23T08:15:00+08:00)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=ctx.tz)
    else:
        raise InvalidPayload(
            f"{field} must be ISO 8601 text or epoch seconds, got {json_type(raw)}"
        )
    if when > ctx.received_at + ctx.max_future:
        raise InvalidPayload(
            f"{field} {when.isoformat()} is more than {_span(ctx.max_future)} in the future"
        )
    if when < EARLIEST:
        raise InvalidPayload(
            f"{field} {when.isoformat()} is before {EARLIEST:%Y}: the device clock is not set"
        )
    if when < ctx.received_at - ctx.max_age:
        raise InvalidPayload(
            f"{field} {when.isoformat()} is older than the retention window of {_span(ctx.max_age)}"
        )
    # Python takes offsets that PostgreSQL refuses (beyond ±15:59, fractions of a second);
    # the instant is what counts, so it is kept in UTC (converted only now: year 1 at +14:00
    # has no UTC year).
    return when.astimezone(UTC)


def read_number(
    data: dict[str, Any], field: str, *, low: float | None = None, high: float | None = None
) -> float | None:
    """A finite number within [low, high]; None when absent."""
    raw = data.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidPayload(f"{field} must be a number, got {json_type(raw)}")
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond float range (JSON decoders other than orjson)
        raise InvalidPayload(f"{field} must be a finite number, got a huge integer") from None
    if not math.isfinite(value):
        raise InvalidPayload(f"{field} must be a finite number, got {raw!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidPayload(
            f"{field} {raw!r} is outside [{_fmt(low, '-inf')}, {_fmt(high, 'inf')}]"
        )
    return value


@overload
def read_text(
    data: dict[str, Any], field: str, *, required: Literal[True], max_length: int = 2000
) -> str: ...
@overload
def read_text(
    data: dict[str, Any], field: str, *, required: bool = False, max_length: int = 2000
) -> str | None: ...
def read_text(
    data: dict[str, Any], field: str, *, required: bool = False, max_length: int = 2000
) -> str | None:
    """A string of at most max_length characters; None when absent and not required."""
    raw = data.get(field)
    if raw is None:
        if required:
            raise InvalidPayload(f"missing required field {field!r}")
        return None
    if not isinstance(raw, str):
        raise InvalidPayload(f"{field} must be text, got {json_type(raw)}")
    if len(raw) > max_length:
        raise InvalidPayload(f"{field} is {len(raw)} characters long (limit {max_length})")
    if "\x00" in raw:
        raise InvalidPayload(f"{field} contains a NUL character")
    # JSON decoders other than orjson (the HTTP API's callers may use any) let \ud800 through.
    if not raw.isascii() and _SURROGATE.search(raw):
        raise InvalidPayload(f"{field} contains a lone surrogate, which is not text")
    return raw


def read_choice(
    data: dict[str, Any],
    field: str,
    choices: frozenset[str],
    *,
    default: str | None = None,
) -> str:
    """One of a fixed set of words; the default when absent (required when there is none)."""
    raw = data.get(field)
    if raw is None:
        if default is None:
            raise InvalidPayload(f"missing required field {field!r} (one of {_listing(choices)})")
        return default
    if not isinstance(raw, str):
        raise InvalidPayload(f"{field} must be text, got {json_type(raw)}")
    if raw not in choices:
        raise InvalidPayload(
            f"unknown {field} {quoted(raw, 40)}: expected one of {_listing(choices)}"
        )
    return raw


def read_position(
    data: dict[str, Any], lat_field: str = "lat", lon_field: str = "lon"
) -> tuple[float, float]:
    """Latitude and longitude, both required and within range; returns (lon, lat)."""
    lat = _given(read_number(data, lat_field, low=-90.0, high=90.0), lat_field)
    lon = _given(read_number(data, lon_field, low=-180.0, high=180.0), lon_field)
    return lon, lat


def _given(value: float | None, field: str) -> float:
    """The value read of a required field; InvalidPayload when it was not there."""
    if value is None:
        raise InvalidPayload(f"missing required field {field!r}")
    return value


def read_wgs84_position(data: dict[str, Any]) -> tuple[float, float]:
    """(lon, lat) in WGS-84 from `lat`, `lon` and `crs` (wgs84 by default, gcj02, bd09 in
    any of the spellings apps use: "WGS84", "GCJ-02", "bd09ll", …)."""
    lon, lat = read_position(data)
    raw = data.get("crs")
    if raw is None:
        return lon, lat
    if not isinstance(raw, str):
        raise InvalidPayload(f"crs must be text, got {json_type(raw)}")
    try:
        crs = normalize_crs(raw)
    except ValueError:
        raise InvalidPayload(
            f"unknown crs {quoted(raw, 40)}: expected wgs84, gcj02 or bd09 (any case, '-' allowed)"
        ) from None
    return to_wgs84(lon, lat, crs) if crs != "wgs84" else (lon, lat)


def check_source_id(source_id: str, what: str) -> str:
    """The id taken from the topic: non-empty, of sane length, without control characters."""
    if not source_id:
        raise InvalidPayload(f"empty {what} in topic")
    if len(source_id) > MAX_ID_LENGTH:
        raise InvalidPayload(f"{what} in topic longer than {MAX_ID_LENGTH} characters")
    # Brokers pass NUL and control characters in topics; PostgreSQL text cannot hold NUL,
    # and a newline or tab in an id breaks every log line and CSV it appears in.
    unsafe = unsafe_character(source_id)
    if unsafe:
        raise InvalidPayload(f"{what} in topic contains {unsafe}")
    return source_id


def read_photo_urls(raw: object, field: str = "photo_urls") -> tuple[str, ...]:
    """`photo_urls` (or the `field` named): at most MAX_PHOTOS links, each an http(s) URL or
    a `/media/{id}` path (a photo posted to gridwatch itself); None is none."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidPayload(f"{field} must be an array of http(s) URLs")
    if len(raw) > MAX_PHOTOS:
        raise InvalidPayload(f"{field} has {len(raw)} entries (limit {MAX_PHOTOS})")
    for url in raw:
        if not isinstance(url, str) or len(url) > 2000:
            raise InvalidPayload(f"{field} must be an array of http(s) URLs")
        # urlsplit silently drops tabs and newlines, and PostgreSQL text cannot hold NUL.
        unsafe = unsafe_character(url)
        if unsafe:
            raise InvalidPayload(f"photo URL {quoted(url, 80)} contains {unsafe}")
        if MEDIA_PATH.fullmatch(url):
            continue
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidPayload(
                f"photo URL {quoted(url, 80)} is not an http(s) URL nor a /media/{{id}} link"
            )
    return tuple(raw)


def unsafe_character(text: str) -> str | None:
    """What makes text unfit for an id or a link: a control character or a lone surrogate."""
    found = _UNSAFE_CHARACTER.search(text)
    if found is None:
        return None
    kind = "a lone surrogate" if "\ud800" <= found.group() <= "\udfff" else "a control character"
    return f"{kind} ({found.group()!r})"


def quoted(text: str, limit: int = 60) -> str:
    """Text for a reason: quoted, with escapes, cut to about `limit` characters (escapes of
    control characters and surrogates make repr() up to six times longer than the text)."""
    shown = repr(text[:limit])
    if len(shown) > limit + 2:
        return shown[: limit + 1] + "…"
    return shown + "…" if len(text) > limit else shown


def number_text(value: int | float) -> str:
    """A number for a reason: repr, except of integers too long to print whole."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return "a huge integer"
    return repr(value)


def json_type(value: Any) -> str:
    """What a JSON value is, in words, for a reason (never its contents: it may be huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _listing(choices: frozenset[str]) -> str:
    return ", ".join(sorted(choices))


def _fmt(bound: float | None, unbounded: str) -> str:
    return unbounded if bound is None else f"{bound:g}"


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"
