"""Rate limits: a token bucket per credential (bearer token or browser session), one per
client address for requests without credentials, and one per client address for rejected
credentials, so that guessing tokens is slow however many are tried, one after the other or
all at once. Following a layer's `next` links (a GET of `/collections/{id}/items` with a
`cursor`) draws on a second, much larger bucket of the same credential: GIS clients read a
layer whole a page at a time, which the clicking of a person never comes near. A request over
its limit gets 429 with Retry-After and the reason. Not counted:
/healthz (a probe must always be answered) and the static map assets; the live streams count
their connects.

The buckets live in the process: with several server processes each keeps its own."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import Callable, Hashable
from typing import TypedDict
from urllib.parse import parse_qs

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridwatch.api.auth import SESSION_COOKIE, bearer_token
from gridwatch.api.guard import reject

UNCOUNTED_PATHS = frozenset({"/healthz"})
KNOWN_GOOD_MAX = 10_000
UNCOUNTED_PREFIXES = ("/static/",)
ITEMS_PATH = re.compile(r"/collections/[^/]+/items")


class TokenBuckets:
    """One bucket of `burst` tokens per key, refilled at `rate` tokens per second.

    At most `max_keys` buckets are kept: full ones are dropped first (a full bucket is the
    same as none), then the least recently used."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key: (tokens, as of)

    def take(self, key: Hashable, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is there."""
        tokens = self._level(key, now)
        granted = tokens >= 1.0
        self._store(key, tokens - 1.0 if granted else tokens, now)
        return 0.0 if granted else (1.0 - tokens) / self.rate

    def give_back(self, key: Hashable, now: float) -> None:
        """Return a token taken for something that turned out not to count."""
        self._store(key, min(self.burst, self._level(key, now) + 1.0), now)

    def wait(self, key: Hashable, now: float) -> float:
        """The seconds until `key` has a token, taking none."""
        return max(0.0, (1.0 - self._level(key, now)) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: Hashable, now: float) -> float:
        tokens, since = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - since) * self.rate)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets.pop(key, None)  # re-inserted last: the dict is in order of use
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._prune(now)

    def _prune(self, now: float) -> None:
        full = [k for k, (t, s) in self._buckets.items() if t + (now - s) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - self.max_keys // 2
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]


class RateBuckets(TypedDict):
    """The buckets one `RateLimit` applies, by the names it takes them under."""

    per_token: TokenBuckets
    per_page: TokenBuckets
    anonymous: TokenBuckets
    failures: TokenBuckets


class RateLimit:
    """ASGI middleware applying the three kinds of buckets (see the module's docstring).

    A credential not yet seen to work takes a token of its address's rejection bucket before
    it is checked, given back when it works: a hundred guesses sent at once cannot all slip
    through before the first of them is answered. Requests carrying the same unknown
    credential wait for the first one's answer, so a new token's first burst costs one."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_token: TokenBuckets,
        per_page: TokenBuckets,
        anonymous: TokenBuckets,
        failures: TokenBuckets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.per_token = per_token
        self.per_page = per_page
        self.anonymous = anonymous
        self.failures = failures
        self.clock = clock
        self._known_good: dict[bytes, None] = {}  # credentials that worked, oldest first
        self._checking: dict[bytes, asyncio.Event] = {}  # unknown ones being checked now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in UNCOUNTED_PATHS
            or path.startswith(UNCOUNTED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        credential = _credential(scope)
        presents = credential is not None or (scope["method"] == "POST" and path == "/login")
        while credential is not None and credential in self._checking:
            await self._checking[credential].wait()
        now = self.clock()
        if presents and (wait := self.failures.wait(address, now)):
            await _too_many(
                send, wait, "too many rejected credentials from this address; wait before trying"
            )
            return
        key: bytes | str  # the credential's digest, or the address without one
        if credential is not None and _follows_a_page(scope):
            buckets, key, whom = self.per_page, credential, "pages followed with this token"
        elif credential is not None:
            buckets, key, whom = self.per_token, credential, "this token"
        else:
            buckets, key, whom = (
                self.anonymous,
                address,
                "requests without a token from this address",
            )
        if wait := buckets.take(key, now):
            await _too_many(send, wait, f"over the rate limit of {_describe(buckets, whom)}")
            return
        if not presents:
            await self.app(scope, receive, send)
            return
        charged = credential is None or credential not in self._known_good
        checking = asyncio.Event()
        if charged:
            self.failures.take(address, now)  # there was one: wait() said so just above
            if credential is not None:
                self._checking[credential] = checking
        answered = False

        def checked() -> None:
            """The credential's verdict is in: its other requests may go on (a stream's
            answer starts long before it ends)."""
            if credential is not None and self._checking.get(credential) is checking:
                del self._checking[credential]
            checking.set()

        async def send_counting_rejections(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                self._settle(credential, address, not _rejected(message), charged)
                checked()
            await send(message)

        try:
            await self.app(scope, receive, send_counting_rejections)
        finally:
            checked()

    def _settle(self, credential: bytes | None, address: str, worked: bool, charged: bool) -> None:
        """Count a rejection, or give back what an unknown credential took and remember it."""
        now = self.clock()
        if not worked:
            if credential is not None:
                self._known_good.pop(credential, None)
            if not charged:
                self.failures.take(address, now)
            return
        if charged:
            self.failures.give_back(address, now)
        if credential is not None:
            self._known_good.pop(credential, None)
            self._known_good[credential] = None
            if len(self._known_good) > KNOWN_GOOD_MAX:
                del self._known_good[next(iter(self._known_good))]


def _credential(scope: Scope) -> bytes | None:
    """A digest of the request's bearer token or session cookie (the bucket's key): the
    token as the API reads it, so `bearer  TOKEN ` and `Bearer TOKEN` share a bucket."""
    cookie = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header = value.decode("latin-1")
            token = bearer_token(header)
            if token is None:
                return hashlib.sha256(b"other:" + value).digest()
            return hashlib.sha256(b"bearer:" + token.encode("latin-1")).digest()
        if name == b"cookie":
            cookie = value
    if cookie is not None:
        session = cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE)
        if session:
            return hashlib.sha256(b"session:" + session.encode("latin-1", "replace")).digest()
    return None


def _follows_a_page(scope: Scope) -> bool:
    """Whether the request asks for a later page of a layer (a `next` link: it has a cursor)."""
    if scope["method"] != "GET" or not ITEMS_PATH.fullmatch(scope.get("path", "")):
        return False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return bool(query.get("cursor", [""])[0])


def _rejected(start: Message) -> bool:
    """Whether a response says the credentials were not accepted: 401, or a browser sent to
    the login form."""
    if start["status"] == 401:
        return True
    location = dict(start.get("headers", [])).get(b"location", b"")
    return start["status"] == 303 and location.startswith(b"/login?next=")


def _describe(buckets: TokenBuckets, whom: str) -> str:
    return f"{buckets.burst:g} requests at once and {buckets.rate:g} per second for {whom}"


async def _too_many(send: Send, wait: float, reason: str) -> None:
    seconds = max(1, math.ceil(wait))
    await reject(
        send,
        429,
        "too_many_requests",
        f"{reason}; try again in {seconds} s",
        headers=[(b"retry-after", str(seconds).encode())],
    )
