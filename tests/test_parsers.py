"""The parsers of every message kind, without broker or database: generated payloads.

Round trips: any payload built from valid fields parses to exactly those values (times in
every accepted notation, GCJ-02 positions converted). Robustness: arbitrary bytes, arbitrary
JSON and valid payloads with one field replaced never raise anything but InvalidPayload.
"""

from __future__ import annotations

import dataclasses
import json
import math
import string
import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gridwatch.geo.crs import to_wgs84, wgs84_to_gcj02
from gridwatch.ingest import hazard, meter, owntracks, patrol, sensor
from gridwatch.ingest.hazard import hazard_from_dict
from gridwatch.ingest.patrol import checkin_from_dict
from gridwatch.ingest.payload import EARLIEST, Ignored, InvalidPayload, ParseContext
from gridwatch.ingest.topics import TopicRouter, subscriptions

RECEIVED = datetime(2026, 11, 23, 0, 15, 30, 250_000, tzinfo=UTC)
# Zones without daylight saving in the window, so a naive local time names one instant.
ZONES = ("Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "UTC", "America/Sao_Paulo")
PREFIX = "gw"
FAST = settings(max_examples=150, deadline=None)
FUZZ = settings(max_examples=300, deadline=None)


def context(zone: str = "Asia/Shanghai", **kwargs) -> ParseContext:
    return ParseContext(RECEIVED, ZoneInfo(zone), **kwargs)


def assert_frozen(model) -> None:
    field = dataclasses.fields(model)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(model, field, None)


# -- strategies of valid fields ----------------------------------------------------------------

instants = st.datetimes(
    min_value=(RECEIVED - timedelta(days=399)).replace(tzinfo=None),
    max_value=(RECEIVED + timedelta(hours=23)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda quarters: timezone(timedelta(minutes=15 * quarters))
)


@st.composite
def timestamps(draw):
    """(zone, the ts field as sent or None when absent, the instant it names)."""
    zone = draw(st.sampled_from(ZONES))
    notation = draw(
        st.sampled_from(["offset", "zulu", "epoch_int", "epoch_float", "naive", "absent"])
    )
    instant = draw(instants)
    if notation == "absent":
        return zone, None, RECEIVED
    if notation == "offset":
        return zone, instant.astimezone(draw(offsets)).isoformat(), instant
    if notation == "zulu":
        return zone, instant.isoformat().replace("+00:00", "Z"), instant
    if notation == "epoch_int":
        whole = instant.replace(microsecond=0)
        return zone, int(whole.timestamp()), whole
    if notation == "epoch_float":
        return zone, instant.timestamp(), instant
    local = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    return zone, local.isoformat(), instant


def assert_same_instant(parsed: datetime, expected: datetime) -> None:
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None
    # A float epoch carries about a microsecond of rounding.
    assert abs(parsed - expected) <= timedelta(microseconds=2), (parsed, expected)


def numbers(low: float, high: float):
    return st.floats(low, high, allow_nan=False) | st.integers(int(low), int(high))


ids = st.text(string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
extra_fields = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=6).map(lambda k: "x_" + k),
    st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5) | st.none(),
    max_size=3,
)


def payload_of(fields: dict, ts) -> bytes:
    if ts is not None:
        fields = {**fields, "ts": ts}
    return orjson.dumps(fields)


# -- round trips ----------------------------------------------------------------------------------


@FAST
@given(
    meter_id=ids,
    when=timestamps(),
    power=st.none() | numbers(-1e6, 1e6),
    energy=st.none() | numbers(0, 1e9),
    water=st.none() | numbers(0, 1e10),
    extra=extra_fields,
)
def test_meter_round_trip(meter_id, when, power, energy, water, extra):
    assume(not (power is None and energy is None and water is None))
    zone, ts, instant = when
    fields = {"power_w": power, "energy_kwh": energy, "water_l": water}
    fields = {k: v for k, v in fields.items() if v is not None} | extra
    reading = meter.parse(meter_id, payload_of(fields, ts), context(zone))
    assert reading.meter_id == meter_id
    assert_same_instant(reading.observed_at, instant)
    assert reading.received_at == RECEIVED
    assert reading.power_w == (None if power is None else float(power))
    assert reading.energy_kwh == (None if energy is None else float(energy))
    assert reading.water_l == (None if water is None else float(water))
    assert_frozen(reading)


@FAST
@given(
    device_id=ids,
    when=timestamps(),
    event=st.sampled_from(sorted(sensor.EVENTS)),
    value=st.none() | st.booleans() | numbers(-1e12, 1e12),
)
def test_sensor_round_trip(device_id, when, event, value):
    zone, ts, instant = when
    fields = {"event": event} | ({} if value is None else {"value": value})
    parsed = sensor.parse(device_id, payload_of(fields, ts), context(zone))
    assert (parsed.device_id, parsed.event) == (device_id, event)
    assert_same_instant(parsed.observed_at, instant)
    expected = None if value is None else float(value)
    assert parsed.value == expected and type(parsed.value) is type(expected)
    assert_frozen(parsed)


latitudes = numbers(-90, 90)
longitudes = numbers(-180, 180)
# GCJ-02 positions well inside China, where the offset applies and the inverse is exact.
china = st.tuples(st.floats(75.0, 134.0), st.floats(4.0, 53.0))


@st.composite
def positions(draw):
    """(fields sent, expected WGS-84 lon, lat or None when it must be checked by inversion)."""
    crs = draw(st.sampled_from([None, "wgs84", "gcj02"]))
    if crs == "gcj02":
        lon, lat = draw(china)
        return {"lon": lon, "lat": lat, "crs": crs}, None
    lon, lat = draw(longitudes), draw(latitudes)
    fields = {"lon": lon, "lat": lat} | ({"crs": crs} if crs else {})
    return fields, (float(lon), float(lat))


def assert_position(parsed, sent: dict, expected) -> None:
    if expected is not None:
        assert (parsed.lon, parsed.lat) == expected
        return
    # Converted from GCJ-02: moved by the offset (hundreds of metres at most), and the
    # forward transform of the result gives back what was sent.
    assert (parsed.lon, parsed.lat) != (sent["lon"], sent["lat"])
    assert abs(parsed.lon - sent["lon"]) < 0.02 and abs(parsed.lat - sent["lat"]) < 0.02
    glon, glat = wgs84_to_gcj02(parsed.lon, parsed.lat)
    assert math.isclose(glon, sent["lon"], abs_tol=1e-8)
    assert math.isclose(glat, sent["lat"], abs_tol=1e-8)


@FAST
@given(
    worker_id=ids,
    when=timestamps(),
    position=positions(),
    kind=st.sampled_from([None, "patrol", "visit"]),
    resident_id=st.none() | ids,
    status=st.sampled_from([None, "ok", "concern", "not_home"]),
    accuracy=st.none() | numbers(0, 1e6),
    note=st.none() | texts.filter(lambda t: len(t) <= 2000),
    needs=st.none() | texts.filter(lambda t: len(t) <= 500 and t.strip() != ""),
)
def test_patrol_round_trip(
    worker_id, when, position, kind, resident_id, status, accuracy, note, needs
):
    assume(kind != "visit" or resident_id)
    needs = needs if kind == "visit" else None
    zone, ts, instant = when
    sent, expected = position
    optional = {
        "kind": kind, "resident_id": resident_id, "status": status,
        "accuracy_m": accuracy, "note": note, "needs": needs,
    }  # fmt: skip
    fields = sent | {k: v for k, v in optional.items() if v is not None}
    parsed = patrol.parse(worker_id, payload_of(fields, ts), context(zone))
    assert parsed.worker_id == worker_id and parsed.source == "gw"
    assert_same_instant(parsed.observed_at, instant)
    assert_position(parsed, sent, expected)
    assert parsed.kind == (kind or "patrol")
    assert parsed.resident_id == resident_id
    assert parsed.status == status
    assert parsed.accuracy_m == (None if accuracy is None else float(accuracy))
    assert parsed.note == note
    assert parsed.needs == needs
    assert_frozen(parsed)


uuids = st.uuids().flatmap(
    lambda u: st.tuples(st.just(u), st.sampled_from([str(u), str(u).upper(), u.hex, f"{{{u}}}"]))
)
photo_urls = st.lists(
    st.builds(
        "{}://{}/{}".format,
        st.sampled_from(["http", "https"]),
        st.sampled_from(["img.example.cn", "10.1.2.3:8080", "[2001:db8::1]"]),
        st.text(string.ascii_letters + string.digits + "/._-?=&%", max_size=30),
    ),
    max_size=hazard.MAX_PHOTOS,
)


@FAST
@given(
    reporter_id=ids,
    when=timestamps(),
    ident=uuids,
    position=positions(),
    category=st.sampled_from(sorted(hazard.CATEGORIES)),
    severity=st.sampled_from(sorted(hazard.SEVERITIES)),
    description=st.none() | texts.filter(lambda t: len(t) <= 4000),
    photos=st.none() | photo_urls,
)
def test_hazard_round_trip(
    reporter_id, when, ident, position, category, severity, description, photos
):
    zone, ts, instant = when
    report_id, id_text = ident
    sent, expected = position
    fields = sent | {"id": id_text, "category": category, "severity": severity}
    if description is not None:
        fields["description"] = description
    if photos is not None:
        fields["photo_urls"] = photos
    parsed = hazard.parse(reporter_id, payload_of(fields, ts), context(zone))
    assert parsed.id == report_id and parsed.reporter_id == reporter_id
    assert_same_instant(parsed.observed_at, instant)
    assert_position(parsed, sent, expected)
    assert (parsed.category, parsed.severity) == (category, severity)
    assert parsed.description == (description or "")
    assert parsed.photo_urls == tuple(photos or ())
    assert_frozen(parsed)


@FAST
@given(
    user=ids,
    device=ids,
    tst=st.integers(int((RECEIVED - timedelta(days=399)).timestamp()), int(RECEIVED.timestamp())),
    lat=st.none() | latitudes,
    lon=st.none() | longitudes,
    acc=st.none() | numbers(0, 1e7),
    batt=st.none() | st.integers(0, 100),
    tid=st.none() | st.text(string.ascii_uppercase, min_size=2, max_size=2),
)
def test_owntracks_location_round_trip(user, device, tst, lat, lon, acc, batt, tid):
    optional = {"lat": lat, "lon": lon, "acc": acc, "batt": batt, "tid": tid}
    fields = {"_type": "location", "tst": tst} | {k: v for k, v in optional.items() if v}
    parsed = owntracks.parse(user, device, orjson.dumps(fields), context())
    assert (parsed.worker_id, parsed.device, parsed.source) == (user, device, "owntracks")
    assert parsed.observed_at == datetime.fromtimestamp(tst, UTC)
    # OwnTracks leaves out fields that are zero.
    assert (parsed.lat, parsed.lon) == (float(lat or 0), float(lon or 0))
    assert parsed.accuracy_m == (float(acc) if acc else None)
    assert parsed.battery == (float(batt) if batt else None)
    assert parsed.kind == "patrol" and parsed.resident_id is None
    assert_frozen(parsed)


@FAST
@given(
    message_type=st.sampled_from(sorted(owntracks.OTHER_TYPES))
    | st.text(max_size=12).filter(lambda t: t not in ("location", "encrypted")),
    extra=extra_fields,
)
def test_owntracks_other_types_are_ignored_under_a_fixed_few_reasons(message_type, extra):
    payload = orjson.dumps({"_type": message_type} | extra)
    with pytest.raises(Ignored) as ignored:
        owntracks.parse("u", "d", payload, context())
    known = message_type if message_type in owntracks.OTHER_TYPES else "unknown _type"
    assert str(ignored.value) == f"owntracks {known}"


@FAST
@given(seconds=st.integers(-100_000_000_000, 100_000_000_000), zone=st.sampled_from(ZONES))
def test_epoch_accepted_exactly_within_the_window(seconds, zone):
    ctx = context(zone, max_age=timedelta(days=30), max_future=timedelta(hours=2))
    payload = orjson.dumps({"ts": seconds, "power_w": 1})
    earliest = max(EARLIEST, RECEIVED - ctx.max_age).timestamp()
    if earliest <= seconds <= (RECEIVED + ctx.max_future).timestamp():
        assert meter.parse("m", payload, ctx).observed_at.timestamp() == seconds
    else:
        with pytest.raises(InvalidPayload):
            meter.parse("m", payload, ctx)


# -- robustness -------------------------------------------------------------------------------

ROUTER = TopicRouter(PREFIX)
TOPICS = [f"{PREFIX}/{kind}/X-1" for kind in ("meter", "sensor", "patrol", "hazard")] + [
    "owntracks/u/phone"
]
FIELDS = [
    "ts", "tst", "_type", "power_w", "energy_kwh", "water_l", "event", "value", "lat", "lon",
    "crs", "kind", "resident_id", "status", "accuracy_m", "note", "needs", "id", "category",
    "severity",
    "description", "photo_urls", "acc", "batt",
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), json_values)


def parse_or_refuse(topic: str, payload: bytes, ctx: ParseContext | None = None):
    """Parse; InvalidPayload is the only acceptable failure, and Ignored of an OwnTracks
    message (asserted by letting others out)."""
    try:
        result = ROUTER.parse(topic, payload, ctx or context())
    except InvalidPayload as exc:
        assert str(exc), "a dead letter needs a reason"
        return None
    except Ignored:
        assert topic.startswith("owntracks/"), "only OwnTracks messages are ignored"
        return None
    assert_frozen(result)
    return result


def as_json(value) -> bytes:
    # The standard library writes NaN, Infinity and integers of any size, all of which
    # orjson refuses to write but a device may send.
    return json.dumps(value).encode()


@FUZZ
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_invalid_payload(topic, payload):
    parse_or_refuse(topic, payload)


@FUZZ
@given(topic=st.sampled_from(TOPICS), value=json_values | json_objects)
def test_arbitrary_json_only_raises_invalid_payload(topic, value):
    parse_or_refuse(topic, as_json(value))


VALID = {
    "meter": {"ts": "2026-11-22T20:00:00+08:00", "power_w": 5.0, "energy_kwh": 1.0},
    "sensor": {"ts": 1763856900, "event": "door_open", "value": True},
    "patrol": {
        "ts": "2026-11-22T20:00:00", "lat": 40.65, "lon": 109.9, "crs": "gcj02",
        "kind": "visit", "resident_id": "R-1", "status": "ok", "accuracy_m": 5, "note": "好",
        "needs": "想要一副老花镜",
    },
    "hazard": {
        "id": str(uuid.UUID(int=7)), "ts": 1763856900, "lat": 40.65, "lon": 109.9,
        "crs": "wgs84", "category": "fire", "severity": "high", "description": "烟",
        "photo_urls": ["https://img.example.cn/a.jpg"],
    },
    "owntracks": {"_type": "location", "lat": 40.65, "lon": 109.9, "tst": 1763856900,
                  "acc": 8, "batt": 80, "tid": "ab"},
}  # fmt: skip
TOPIC_OF = dict(zip(["meter", "sensor", "patrol", "hazard", "owntracks"], TOPICS, strict=True))


def test_the_valid_payloads_used_for_mutation_parse():
    for kind, fields in VALID.items():
        assert ROUTER.parse(TOPIC_OF[kind], orjson.dumps(fields), context()) is not None, kind


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(VALID)))
def test_valid_payload_with_one_field_replaced_only_raises_invalid_payload(data, kind):
    fields = dict(VALID[kind])
    name = data.draw(st.sampled_from([*fields, *FIELDS]))
    fields[name] = data.draw(json_values | st.sampled_from(["", "\x00", "http://[::1", 1e300]))
    parse_or_refuse(TOPIC_OF[kind], as_json(fields))


@FUZZ
@given(data=st.data(), which=st.sampled_from(["patrol", "hazard"]))
def test_http_dicts_with_any_python_values_only_raise_invalid_payload(data, which):
    # The HTTP API hands decoded dicts straight in: integers of any size, NaN, infinity.
    fields = dict(VALID[which])
    name = data.draw(st.sampled_from([*fields, *FIELDS]))
    fields[name] = data.draw(
        json_values | st.sampled_from([10**400, -(10**400), math.nan, math.inf])
    )
    try:
        if which == "patrol":
            checkin_from_dict("W-1", fields, context())
        else:
            hazard_from_dict("W-1", fields, context())
    except InvalidPayload:
        pass


@FAST
@given(topic=st.text(max_size=40), payload=st.binary(max_size=40))
def test_any_topic_only_raises_invalid_payload(topic, payload):
    parse_or_refuse(topic, payload)


# -- examples that once slipped through ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (-100_000_000_000, "before 2000: the device clock is not set"),
        (-1, "before 2000"),
        ("1999-12-31T23:59:59+00:00", "before 2000"),
        (1763856900000, r"\(milliseconds\?\)"),
        (1e20, "not a plausible epoch time"),
        ("2027-01-01T00:00:00+08:00", "in the future"),
        ("2025-01-01T00:00:00+08:00", "older than the retention window of 400 days"),
    ],
)
def test_implausible_times_are_refused_with_a_reason(ts, reason):
    with pytest.raises(InvalidPayload, match=reason):
        meter.parse("m", orjson.dumps({"ts": ts, "power_w": 1}), context())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1/a.jpg", r"is not an http\(s\) URL"),
        ("https://img.example.cn/a\x00.jpg", "control character"),
        ("https://img.exa\nmple.cn/a.jpg", "control character"),
        ("ftp://img.example.cn/a.jpg", r"is not an http\(s\) URL"),
        ("https:///a.jpg", r"is not an http\(s\) URL"),
    ],
)
def test_bad_photo_urls_are_refused_with_a_reason(url, reason):
    fields = VALID["hazard"] | {"photo_urls": [url]}
    with pytest.raises(InvalidPayload, match=reason):
        hazard.parse("W-1", orjson.dumps(fields), context())


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"needs": "米" * 501}, r"needs is 501 characters long \(limit 500\)"),
        ({"needs": ["米"]}, "needs must be text, got an array"),
        ({"needs": "米\x00"}, "needs contains a NUL character"),
        ({"kind": "patrol", "needs": "买米"}, "needs .* belongs to a check-in of kind 'visit'"),
    ],
)
def test_bad_needs_are_refused_with_a_reason(changed, reason):
    with pytest.raises(InvalidPayload, match=reason):
        patrol.parse("W-1", orjson.dumps(VALID["patrol"] | changed), context())


def test_blank_needs_are_no_needs():
    for blank in ("", "  \n"):
        parsed = patrol.parse("W-1", orjson.dumps(VALID["patrol"] | {"needs": blank}), context())
        assert parsed.needs is None
    plain = VALID["patrol"] | {"kind": "patrol", "needs": ""}
    assert patrol.parse("W-1", orjson.dumps(plain), context()).needs is None


def test_encrypted_owntracks_is_refused_not_ignored():
    payload = orjson.dumps({"_type": "encrypted", "data": "c2VjcmV0"})
    with pytest.raises(InvalidPayload, match="encrypted: clear the encryption key"):
        owntracks.parse("u", "phone", payload, context())


def test_huge_integers_from_http_are_refused_not_crashed():
    for field in ("lat", "accuracy_m", "ts"):
        with pytest.raises(InvalidPayload, match=field):
            checkin_from_dict("W-1", VALID["patrol"] | {field: 10**400}, context())


def test_a_prefix_of_several_levels_routes_every_kind():
    router = TopicRouter("city/district7")
    for kind in VALID:
        topic = "owntracks/u/phone" if kind == "owntracks" else f"city/district7/{kind}/X-1"
        filters = subscriptions("city/district7")
        assert any(_matches(f, topic) for f in filters), (topic, filters)
        assert router.parse(topic, orjson.dumps(VALID[kind]), context()) is not None, topic
    with pytest.raises(InvalidPayload, match="unknown topic"):
        router.parse("city/meter/X-1", orjson.dumps(VALID["meter"]), context())


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("gw/meter/", "empty meter id in topic"),
        ("gw/sensor/" + "x" * 129, "device id in topic longer than 128"),
        ("gw/weather/X-1", "unknown topic"),
        ("gw/meter/X-1/extra", "unknown topic"),
        ("other/meter/X-1", "unknown topic"),
        ("owntracks/u", "unknown topic"),
        ("owntracks//phone", "empty OwnTracks user"),
    ],
)
def test_topics_the_router_refuses(topic, reason):
    with pytest.raises(InvalidPayload, match=reason):
        ROUTER.parse(topic, orjson.dumps(VALID["meter"]), context())


def _matches(topic_filter: str, topic: str) -> bool:
    wanted, levels = topic_filter.split("/"), topic.split("/")
    return len(wanted) == len(levels) and all(
        w in ("+", lv) for w, lv in zip(wanted, levels, strict=True)
    )


@pytest.mark.parametrize(
    ("spelling", "convert"),
    [
        ("WGS84", lambda lon, lat: (lon, lat)),
        ("wgs-84", lambda lon, lat: (lon, lat)),
        ("GCJ02", lambda lon, lat: to_wgs84(lon, lat, "gcj02")),
        ("GCJ-02", lambda lon, lat: to_wgs84(lon, lat, "gcj02")),
        ("bd09", lambda lon, lat: to_wgs84(lon, lat, "bd09")),
        ("BD-09", lambda lon, lat: to_wgs84(lon, lat, "bd09")),
    ],
)
@pytest.mark.parametrize("kind", ["patrol", "hazard"])
def test_crs_in_the_spellings_apps_use_is_converted_once(kind, spelling, convert):
    fields = VALID[kind] | {"crs": spelling}
    parsed = parse_or_refuse(TOPIC_OF[kind], orjson.dumps(fields))
    assert (parsed.lon, parsed.lat) == pytest.approx(convert(109.9, 40.65), abs=1e-12)


@pytest.mark.parametrize("crs", ["utm", 4326, "gcj03"])
def test_an_unknown_crs_is_refused_with_the_spellings_understood(crs):
    with pytest.raises(InvalidPayload, match="crs"):
        ROUTER.parse(TOPIC_OF["patrol"], orjson.dumps(VALID["patrol"] | {"crs": crs}), context())
