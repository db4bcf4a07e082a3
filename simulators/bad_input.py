"""Hostile MQTT traffic, seeded: what the parser fuzz tests, the bad-input volume test and
`bench/fuzz.py` throw at the ingest.

`BadInput(seed, now).messages(kind, count)` yields messages of one kind: a share of valid
ones, the rest broken in one of the ways devices, networks and people break them — random
bytes, truncation, flipped bytes, nesting past any recursion limit, huge and tiny numbers,
NaN and Infinity spellings, Unicode edge cases (lone surrogates, NUL, RTL marks, emoji,
overlong UTF-8, BOM), wrong types, missing and duplicate keys, oversized payloads, other
encodings, odd topics. Payloads are assembled as JSON text, so what no JSON encoder writes
(NaN, 1e400, lone surrogate escapes, duplicate keys) can be sent.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

import orjson

from gridwatch.model.vocabulary import HAZARD_CATEGORIES as CATEGORIES
from gridwatch.model.vocabulary import SEVERITIES

KINDS = ("meter", "sensor", "patrol", "hazard", "owntracks")

# How often each form comes, in parts of the whole.
FORMS = {
    "valid": 16,
    "value": 22,  # one field set to a hostile literal
    "time": 8,  # the device time set to a hostile one
    "missing": 5,
    "duplicate_key": 5,
    "deep": 3,
    "truncated": 6,
    "flipped": 8,
    "bytes": 5,
    "oversized": 2,
    "encoding": 6,
    "not_object": 5,
    "topic": 9,
}

SENSOR_EVENTS = (
    "door_open", "motion", "curtain_open", "curtain_close", "light_on", "light_off",
    "button", "sos", "fall",
)  # fmt: skip
OWNTRACKS_OTHER_TYPES = ("transition", "waypoint", "lwt", "card", "status", "steps", "")

# Every field any kind reads, and some that none does.
FIELDS = (
    "ts", "tst", "_type", "power_w", "energy_kwh", "water_l", "event", "value", "lat", "lon",
    "crs", "kind", "resident_id", "status", "accuracy_m", "note", "needs", "id", "category",
    "severity", "description", "photo_urls", "acc", "batt", "tid", "x", "",
)  # fmt: skip

# Text a person or an app may really send: all of it valid, none of it plain ASCII.
TEXTS = (
    "门口有积水", "张大爷在家\uff0c精神好", "楼道灯不亮了 💡", "👩‍👩‍👧‍👦 家人来访",
    "\u202eRTL override\u202c", "مرحبا بالعالم", "שלום", "e\u0301te\u0301 (combining)",
    "zero\u200bwidth\u200djoiner", "\ufeffBOM inside", "tab\there\nnewline", "\U0010fffd",
    "𠀀𪚥 (outside the BMP)", "", " ", "'; DROP TABLE residents; --", "<script>x</script>",
)  # fmt: skip

# Literals set in place of a field's value: huge and tiny numbers, NaN and Infinity in every
# spelling, wrong types, and strings no database column should have to hold.
HOSTILE_VALUES: tuple[bytes, ...] = (
    # numbers at and past the edges of a double and of a 64-bit integer
    b"1e308", b"-1.7976931348623157e308", b"1e309", b"-1e400", b"5e-324", b"-5e-324",
    b"1e-400", b"2.2250738585072014e-308", b"-0.0", b"-0", b"0", b"1E2", b"123456.789e-3",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809",
    b"18446744073709551615", b"18446744073709551616", b"1" * 400, b"0." + b"0" * 300 + b"1",
    # not JSON numbers
    b"01", b"1.", b".5", b"+1", b"0x10", b"1_000", b"--1", b"1e", b"\xef\xbc\x91",
    # NaN and Infinity, bare and quoted
    b"NaN", b"-NaN", b"nan", b"Infinity", b"-Infinity", b"inf", b"-inf",
    b'"NaN"', b'"Infinity"', b'"-inf"', b'"1e999"', b'"nan"',
    # other types
    b"true", b"false", b"null", b"[]", b"{}", b"[1,2]", b'{"v":1}', b'""', b'"0"', b'"40.6"',
    b'"1763856900"', b"[NaN]", b'{"":null}',
    # strings: escapes that are lone surrogates, NUL, control and format characters
    b'"\\ud800"', b'"\\udfff"', b'"a\\udc80b"', b'"\\ud83d\\ude00"', b'"\\u0000"',
    b'"a\\u0000b"', b'"\\u202e"', b'"\\ufeff"', b'"\\uffff"', b'"\\ufffe"', b'"\\u0007"',
    b'"\\n\\r\\t"', b'"\\\\"',
    # strings: raw bytes that are not UTF-8, or UTF-8 of what JSON forbids unescaped
    b'"\xc0\x80"', b'"\xe0\x80\xaf"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xff\xfe"',
    b'"\x80"', b'"\x00"', b'"\x01"', b'"\x7f"', b'"\xe2\x80\xae"', b'"\xef\xbb\xbf"',
    b'"\xf0\x9f\x98\x80"', b'"\xf0\x9f\x98"',
    # long strings
    b'"' + b"x" * 5000 + b'"', b'"' + "长".encode() * 2500 + b'"', b'"' + b"\\u0041" * 3000 + b'"',
    # URLs for photo_urls and ids that look like ids
    b'["http://[::1/a.jpg"]', b'["javascript:alert(1)"]', b'["https://x.cn/\\u0000"]',
    b'["https://x.cn/\\ud800"]', b'["https://\xe4\xbe\x8b.cn/a b.jpg"]',
    b'["https://' + b"\x7f" * 90 + b'"]', b'"' + b"\\u0001" * 60 + b'"',  # long once escaped
    b"[" + b'"https://x.cn/a",' * 30 + b'"https://x.cn/b"]',
    b'"00000000-0000-0000-0000-00000000000g"',
    b'"' + b"\\u0660" * 8 + b'-0000-0000-0000-000000000000"',
    b'" 00000000-0000-0000-0000-000000000000"', b'"0_00000000000000000000000000000"',
)  # fmt: skip

DEEP_DEPTHS = (2, 100, 1023, 1024, 1025, 5000, 30000)


class Hostile(NamedTuple):
    """One generated message and how it was made (`valid` ones must parse)."""

    form: str
    topic: str
    payload: bytes


class BadInput:
    """Seeded generator of messages, most of them bad, relative to the time `now`.

    Valid device times fall within `max_age` before and `max_future` after `now`; give the
    same limits the parser is given. Same seed, same messages.
    """

    def __init__(
        self,
        seed: int,
        now: datetime,
        *,
        prefix: str = "gw",
        owntracks_base: str = "owntracks",
        max_bytes: int = 64 * 1024,
        max_future: timedelta = timedelta(days=1),
        max_age: timedelta = timedelta(days=400),
        pool_size: int = 2000,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a seeded generator of test input, not a secret
        self.now = now
        self.prefix = prefix
        self.owntracks_base = owntracks_base
        self.max_bytes = max_bytes
        # A minute inside each limit, so that parsing a little later still accepts them.
        self._earliest = (now - max_age).timestamp() + 60
        self._latest = (now + max_future).timestamp() - 60
        self._forms = list(FORMS)
        self._weights = list(FORMS.values())
        self._nested = {
            (depth, shape): (b'{"a":' * depth + b"1" + b"}" * depth)
            if shape == "object"
            else (b"[" * depth + b"]" * depth)
            for depth in DEEP_DEPTHS
            for shape in ("object", "array")
        }
        self._pad = b"x" * (max_bytes + 4096)
        # Broken messages start from one of a pool of valid ones: building a valid payload
        # costs more than breaking it, and the breakage is where the variety matters.
        self._pool_size = pool_size
        self._pools: dict[str, list[list[tuple[bytes, bytes]]]] = {}
        self._payload_pools: dict[str, list[bytes]] = {}
        self._topic_pools: dict[str, list[str]] = {}

    def messages(self, kind: str, count: int) -> Iterator[Hostile]:
        """`count` messages of one kind (its topic, mostly), each in a randomly chosen form."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
        forms = self.rng.choices(self._forms, self._weights, k=count)
        for form in forms:
            yield getattr(self, f"_{form}")(kind)

    def mixed(self, count: int) -> Iterator[Hostile]:
        """`count` messages of every kind, interleaved."""
        for n in range(count):
            yield from self.messages(KINDS[n % len(KINDS)], 1)

    # -- valid messages ---------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        """A well-formed topic of the kind, with a random (valid) device or worker id."""
        ident = self._id()
        if kind == "owntracks":
            return f"{self.owntracks_base}/{ident}/{self._id()}"
        return f"{self.prefix}/{kind}/{ident}"

    def fields(self, kind: str) -> list[tuple[bytes, bytes]]:
        """A valid payload of the kind as (key, value) pairs of JSON text."""
        rng = self.rng
        pairs: list[tuple[bytes, bytes]] = []

        def put(key: str, value) -> None:
            pairs.append((_key(key), orjson.dumps(value)))

        if kind == "owntracks":
            if rng.random() < 0.1:
                put("_type", rng.choice(OWNTRACKS_OTHER_TYPES))
                return pairs
            put("_type", "location")
            # OwnTracks leaves out fields that are zero.
            for key, low, high in (("lat", -90, 90), ("lon", -180, 180), ("acc", 0, 1e7)):
                if rng.random() < 0.9:
                    put(key, self._number(low, high))
            if rng.random() < 0.8:
                put("batt", rng.randint(0, 100))
            if rng.random() < 0.5:
                put("tid", self._id()[:2])
            if rng.random() < 0.9:
                put("tst", int(rng.uniform(self._earliest, self._latest)))
            return pairs

        ts = self._valid_ts()
        if ts is not None:
            pairs.append((b'"ts"', ts))
        if kind == "meter":
            present = [key for key in ("power_w", "energy_kwh", "water_l") if rng.random() < 0.6]
            for key in present or ["power_w"]:
                bounds = {"power_w": (-1e6, 1e6), "energy_kwh": (0, 1e9), "water_l": (0, 1e10)}
                put(key, self._number(*bounds[key]))
        elif kind == "sensor":
            put("event", rng.choice(SENSOR_EVENTS))
            roll = rng.random()
            if roll < 0.3:
                put("value", rng.random() < 0.5)
            elif roll < 0.6:
                put("value", self._number(-1e12, 1e12))
        else:
            self._position(put)
            if kind == "patrol":
                visit = rng.random() < 0.3
                if visit or rng.random() < 0.3:
                    put("kind", "visit" if visit else "patrol")
                if visit or rng.random() < 0.2:
                    put("resident_id", self._id())
                if rng.random() < 0.5:
                    put("status", rng.choice(("ok", "concern", "not_home")))
                if rng.random() < 0.5:
                    put("accuracy_m", self._number(0, 1e6))
                if rng.random() < 0.5:
                    put("note", rng.choice(TEXTS))
                if visit and rng.random() < 0.3:
                    put("needs", rng.choice(TEXTS))
            else:
                put("id", self._uuid_text())
                put("category", rng.choice(CATEGORIES))
                put("severity", rng.choice(SEVERITIES))
                if rng.random() < 0.7:
                    put("description", rng.choice(TEXTS))
                if rng.random() < 0.5:
                    photos = rng.randint(0, 20) if rng.random() < 0.1 else rng.randint(0, 3)
                    put("photo_urls", [self._photo_url() for _ in range(photos)])
        rng.shuffle(pairs)
        return pairs

    def valid_payload(self, kind: str) -> bytes:
        """A valid payload of the kind."""
        return _object(self.fields(kind))

    def _valid(self, kind: str) -> Hostile:
        fresh = self.rng.random() < 0.25
        payload = self.valid_payload(kind) if fresh else self._base_payload(kind)
        return Hostile("valid", self._topic_of(kind), payload)

    def _fill_pools(self, kind: str) -> None:
        pool = self._pools[kind] = [self.fields(kind) for _ in range(self._pool_size)]
        self._payload_pools[kind] = [_object(pairs) for pairs in pool]
        self._topic_pools[kind] = [self.topic(kind) for _ in range(self._pool_size)]

    def _base(self, kind: str) -> list[tuple[bytes, bytes]]:
        """A copy of a valid payload's pairs from the kind's pool, to be broken."""
        if kind not in self._pools:
            self._fill_pools(kind)
        pool = self._pools[kind]
        return list(pool[self.rng.randrange(len(pool))])

    def _base_payload(self, kind: str) -> bytes:
        if kind not in self._pools:
            self._fill_pools(kind)
        pool = self._payload_pools[kind]
        return pool[self.rng.randrange(len(pool))]

    def _topic_of(self, kind: str) -> str:
        """A well-formed topic of the kind from its pool."""
        if kind not in self._pools:
            self._fill_pools(kind)
        pool = self._topic_pools[kind]
        return pool[self.rng.randrange(len(pool))]

    # -- broken fields ----------------------------------------------------------------------

    def _value(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        _set(pairs, self._field_name(pairs), self.rng.choice(HOSTILE_VALUES))
        return Hostile("value", self._topic_of(kind), _object(pairs))

    def _time(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        _set(pairs, "tst" if kind == "owntracks" else "ts", self._hostile_ts())
        return Hostile("time", self._topic_of(kind), _object(pairs))

    def _missing(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        if pairs:
            del pairs[self.rng.randrange(len(pairs))]
        return Hostile("missing", self._topic_of(kind), _object(pairs))

    def _duplicate_key(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        rng = self.rng
        key = rng.choice(pairs)[0] if pairs else b'"ts"'
        value = rng.choice(HOSTILE_VALUES) if rng.random() < 0.7 else b"1"
        pairs.insert(rng.randint(0, len(pairs)), (key, value))
        return Hostile("duplicate_key", self._topic_of(kind), _object(pairs))

    def _deep(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        rng = self.rng
        nested = self._nested[(rng.choice(DEEP_DEPTHS), rng.choice(("object", "array")))]
        if rng.random() < 0.2:
            return Hostile("deep", self._topic_of(kind), nested)
        _set(pairs, self._field_name(pairs), nested)
        return Hostile("deep", self._topic_of(kind), _object(pairs))

    # -- broken bytes -----------------------------------------------------------------------

    def _truncated(self, kind: str) -> Hostile:
        payload = self._base_payload(kind)
        return Hostile(
            "truncated", self._topic_of(kind), payload[: self.rng.randrange(1, len(payload))]
        )

    def _flipped(self, kind: str) -> Hostile:
        payload = bytearray(self._base_payload(kind))
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(payload))
            roll = rng.random()
            if roll < 0.5:
                payload[at] = rng.randrange(256)
            elif roll < 0.75:
                payload.insert(at, rng.randrange(256))
            elif len(payload) > 1:
                del payload[at]
        return Hostile("flipped", self._topic_of(kind), bytes(payload))

    def _bytes(self, kind: str) -> Hostile:
        return Hostile("bytes", self._topic_of(kind), self.rng.randbytes(self.rng.randint(1, 300)))

    def _oversized(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        pad = self._pad[: self.max_bytes + self.rng.randint(1, 4000)]
        pairs.append((b'"x_pad"', b'"' + pad + b'"'))
        return Hostile("oversized", self._topic_of(kind), _object(pairs))

    def _encoding(self, kind: str) -> Hostile:
        pairs = self._base(kind)
        rng = self.rng
        how = rng.choice(("bom", "utf-16", "utf-16-be", "utf-32", "latin-1", "gbk", "spaces"))
        if how in ("latin-1", "gbk"):
            text = "Müller, café" if how == "latin-1" else "网格员巡查"
            key = {"patrol": "note", "hazard": "description"}.get(kind, "x_text")
            _set(pairs, key, b'"' + text.encode(how) + b'"')
            return Hostile("encoding", self._topic_of(kind), _object(pairs))
        body = _object(pairs)
        if how == "bom":
            payload = b"\xef\xbb\xbf" + body
        elif how == "spaces":
            payload = b" \r\n\t" + body + b"\r\n"
        else:
            payload = body.decode().encode(how)
        return Hostile("encoding", self._topic_of(kind), payload)

    def _not_object(self, kind: str) -> Hostile:
        text = self._base_payload(kind)
        payload = self.rng.choice(
            (
                b"[" + text + b"]",
                b'"' + text.replace(b'"', b'\\"') + b'"',
                b"5",
                b"null",
                b"true",
                b" \n ",  # (an empty payload is a clear of a retained message, not bad input)
                text + b" trailing",
                text + b"\x00",
                text + text,
                b"// comment\n" + text,
                text[:-1] + b",}",
                text.replace(b'"', b"'"),
            )
        )
        return Hostile("not_object", self._topic_of(kind), payload)

    def _topic(self, kind: str) -> Hostile:
        rng = self.rng
        ident = self._id()
        p, o = self.prefix, self.owntracks_base
        topics: tuple[str, ...]
        if kind == "owntracks":
            topics = (
                f"{o}/{ident}", f"{o}/{ident}/phone/extra", f"{o}//phone", f"{o}/{ident}/",
                f"{o}/{'u' * 129}/phone", f"{o}/a\x00b/phone", f"{o}/\u202eevil/phone",
                f"{o}/a\nb/phone", f"{o.upper()}/{ident}/phone", f"/{o}/{ident}/phone",
            )  # fmt: skip
        else:
            topics = (
                f"{p}/{kind}/", f"{p}/{kind}", f"{p}/{kind}/{ident}/extra", f"{p}//{ident}",
                f"{p}/{kind}/{'x' * 129}", f"{p}/{kind}/{'长' * 128}", f"{p}/{kind}/a\x00b",
                f"{p}/{kind}/a\tb", f"{p}/{kind}/\u202eevil", f"{p}/{kind}/\ud800",
                f"{p}/{kind}/+", f"{p}/{kind}/#", f"{p.upper()}/{kind}/{ident}",
                f"/{p}/{kind}/{ident}", f"{p}/{kind.upper()}/{ident}", f"{p}/weather/{ident}",
                f"$SYS/{kind}/{ident}", "", "/", f"{p}/{kind}/{ident} ", f"{p}/{kind}/ ",
            )  # fmt: skip
        return Hostile("topic", rng.choice(topics), self._base_payload(kind))

    # -- parts ------------------------------------------------------------------------------

    def _id(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.8:
            return f"{rng.choice(('M', 'S', 'W', 'R', 'dev'))}-{rng.randrange(10**6)}"
        if roll < 0.9:
            return f"网格员{rng.randrange(1000):03d}"
        return rng.choice(("a.b:c_d-e", "x" * 128, "🙂", "Ωmega", "1"))

    def _number(self, low: float, high: float):
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return rng.choice((low, high))
        if roll < 0.3:
            return rng.randint(int(low), int(high))
        return rng.uniform(low, high)

    def _position(self, put) -> None:
        rng = self.rng
        crs = rng.choice((None, "wgs84", "gcj02"))
        if crs == "gcj02" or rng.random() < 0.5:
            lon, lat = rng.uniform(73.0, 135.0), rng.uniform(3.0, 54.0)  # China, roughly
        else:
            lon, lat = self._number(-180, 180), self._number(-90, 90)
        put("lat", lat)
        put("lon", lon)
        if crs is not None:
            put("crs", crs)

    def _valid_ts(self) -> bytes | None:
        rng = self.rng
        when = rng.uniform(self._earliest, self._latest)
        notation = rng.randrange(6)
        if notation == 0:
            return None  # no ts: the time of receipt
        if notation == 1:
            return b"%d" % int(when)
        if notation == 2:
            return repr(when).encode()
        offset = timezone(timedelta(minutes=15 * rng.randint(-48, 56)))
        moment = datetime.fromtimestamp(when, offset)
        if notation == 3:
            return orjson.dumps(moment.isoformat())
        if notation == 4:
            return orjson.dumps(moment.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        # Naive local time: read in the zone the parser is given, which may be any; keep it
        # a day inside the limits so that any zone's reading of it is still accepted.
        inside = min(max(when, self._earliest + 86400), self._latest - 86400)
        naive = datetime.fromtimestamp(inside, UTC).replace(tzinfo=None)
        return orjson.dumps(naive.isoformat(timespec="seconds"))

    def _hostile_ts(self) -> bytes:
        rng = self.rng
        now = self.now.timestamp()
        roll = rng.random()
        if roll < 0.3:
            return rng.choice(HOSTILE_VALUES)
        if roll < 0.6:
            seconds = rng.choice(
                (
                    0, -1, 946684799, 946684800, 1e11, 1e11 + 1, -1e11, 2**31, 2**32, 2**63 - 1,
                    now * 1000, now * 1e6, now + 86400 * 3, now - 86400 * 500, now, 5e-324,
                    253402300800, 253402300799.999999,
                )
            )  # fmt: skip
            return repr(seconds).encode() if isinstance(seconds, float) else b"%d" % seconds
        text = rng.choice(
            (
                "2026-13-01T00:00:00", "2026-02-30T00:00:00", "2026-11-23T24:00:00",
                "2026-12-31T23:59:60Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                "9999-12-31T23:59:59.999999", "2026-11-23T08:15:00+23:59",
                "2026-11-23T08:15:00-23:59", "2026-11-23T08:15:00+08:00:30.5",
                "2026-11-23T08:15:00+24:00", "2026-W47-1", "20261123T081500", "2026-11-23",
                "\uff12\uff10\uff12\uff16-11-23T08:15:00", "2026-11-23T08:15:00 +08:00",
                "yesterday", "", " ",
                "2026-11-23T08:15:00\x00", "\u202e2026-11-23", "1763856900", "NaN",
            )
        )  # fmt: skip
        return orjson.dumps(text)

    def _field_name(self, pairs: list[tuple[bytes, bytes]]) -> str:
        rng = self.rng
        if pairs and rng.random() < 0.7:
            return orjson.loads(rng.choice(pairs)[0])
        return rng.choice(FIELDS)

    def _uuid_text(self) -> str:
        value = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        return self.rng.choice(
            (str(value), str(value).upper(), value.hex, f"{{{value}}}", value.urn)
        )

    def _photo_url(self) -> str:
        rng = self.rng
        host = rng.choice(("img.example.cn", "10.1.2.3:8080", "[2001:db8::1]", "例子.中国"))
        return f"{rng.choice(('http', 'https'))}://{host}/{rng.randrange(10**9)}.jpg"


def _key(name: str) -> bytes:
    return orjson.dumps(name)


def _object(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(key + b":" + value for key, value in pairs) + b"}"


def _set(pairs: list[tuple[bytes, bytes]], name: str, value: bytes) -> None:
    """Replace the field's value, or add the field."""
    key = _key(name)
    for i, (existing, _) in enumerate(pairs):
        if existing == key:
            pairs[i] = (key, value)
            return
    pairs.append((key, value))
