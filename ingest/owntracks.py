"""`owntracks/{user}/{device}`: OwnTracks location points, stored as patrol track points.

OwnTracks omits fields whose value is zero, so a missing `acc` or `batt` is 0, not unknown
in the sense of an error; a missing lat or lon is 0 as well, which no grid contains. Fields
gridwatch has no use for (`alt`, `vac`, `vel`, `cog`, `conn`, `t`, `tid`, `topic`, `SSID`,
`inregions`, ...) are left alone, whatever their values.
Messages of any `_type` other than `location` (lwt, transition, waypoint, card, ...) are
ignored, each counted under its type: they are part of the app's normal traffic, not bad
input. The exception is `encrypted`: it holds locations that cannot be read, and ignoring it
would lose every point of an app configured with an encryption key without a trace, so it
is a dead letter.
"""

from __future__ import annotations

from gridwatch.ingest.payload import (
    Ignored,
    InvalidPayload,
    ParseContext,
    check_source_id,
    decode_object,
    read_number,
    read_ts,
)
from gridwatch.model.records import PatrolCheckin

KIND = "owntracks"
# The `_type`s of the apps' own traffic (iOS and Android) besides location and encrypted;
# any other is counted as one unknown type, so that no sender can make up counters.
OTHER_TYPES = frozenset(
    {
        "beacon",
        "card",
        "cmd",
        "configuration",
        "dump",
        "lwt",
        "request",
        "status",
        "steps",
        "transition",
        "waypoint",
        "waypoints",
    }
)


def parse(user: str, device: str, payload: bytes, ctx: ParseContext) -> PatrolCheckin:
    """A location becomes a patrol point of worker `user`; other message types raise Ignored."""
    check_source_id(user, "OwnTracks user")
    check_source_id(device, "OwnTracks device")
    data = decode_object(payload, ctx)
    message_type = data.get("_type")
    if message_type is None:
        raise InvalidPayload("OwnTracks message without _type")
    if not isinstance(message_type, str):
        raise InvalidPayload("OwnTracks _type must be text")
    if message_type == "encrypted":
        raise InvalidPayload(
            "OwnTracks payload is encrypted: clear the encryption key in the app's settings"
        )
    if message_type != "location":
        known = message_type if message_type in OTHER_TYPES else "unknown _type"
        raise Ignored(f"owntracks {known}")
    lat = read_number(data, "lat", low=-90.0, high=90.0) or 0.0
    lon = read_number(data, "lon", low=-180.0, high=180.0) or 0.0
    return PatrolCheckin(
        worker_id=user,
        observed_at=read_ts(data, ctx, field="tst"),
        received_at=ctx.received_at,
        lon=lon,
        lat=lat,
        accuracy_m=read_number(data, "acc", low=0.0, high=1e7),
        kind="patrol",
        resident_id=None,
        status=None,
        note=None,
        source="owntracks",
        device=device,
        battery=read_number(data, "batt", low=0.0, high=100.0),
    )
