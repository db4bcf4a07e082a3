"""Abuse limits of the API: token buckets as pure logic, then rate limits, CORS and security
headers through the real app and database."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch.api.ratelimit import TokenBuckets
from gridwatch.settings import Settings
from tests.support.api import ApiServer, Clock, api_settings, assert_security_headers, reason

# -- the buckets ------------------------------------------------------------------------------

gaps = st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=200)
rates = st.floats(min_value=0.01, max_value=100, allow_nan=False)
bursts = st.integers(min_value=1, max_value=50)


@given(gaps=gaps, rate=rates, burst=bursts)
def test_no_more_than_the_burst_and_the_rate_are_granted(gaps, rate, burst):
    buckets, now, granted = TokenBuckets(rate, burst), 0.0, 0
    for gap in gaps:
        now += gap
        granted += buckets.take("k", now) == 0.0
        assert granted <= burst + rate * now + 1e-9


@given(gaps=gaps, rate=rates, burst=bursts)
def test_the_wait_told_is_exact(gaps, rate, burst):
    buckets, now = TokenBuckets(rate, burst), 0.0
    for gap in gaps:
        now += gap
        wait = buckets.take("k", now)
        if wait > 1e-6:
            assert buckets.wait("k", now) == pytest.approx(wait)
            assert buckets.wait("k", now + wait * 0.99) > 0
            assert buckets.wait("k", now + wait * 1.000001) == 0


@given(rate=rates, burst=bursts, requests=st.integers(min_value=1, max_value=300))
def test_a_client_within_the_rate_is_never_refused(rate, burst, requests):
    buckets = TokenBuckets(rate, burst)
    pace = 1.000001 / rate  # a hair slower than the rate, so rounding cannot decide
    assert all(buckets.take("k", i * pace) == 0.0 for i in range(requests))
    fresh = TokenBuckets(rate, burst)
    assert all(fresh.take("k", 0.0) == 0.0 for _ in range(burst))
    assert fresh.take("k", 0.0) == pytest.approx(1 / rate)


def test_keys_are_bounded_and_a_busy_key_is_kept_longest():
    buckets = TokenBuckets(1.0, 5, max_keys=100)
    for _ in range(5):
        buckets.take("busy", 0.0)
    for i in range(1000):
        buckets.take(f"guess-{i}", 0.0)
        buckets.take("busy", 0.0)  # keeps it recently used, and empty
        assert len(buckets) <= 100
    assert buckets.wait("busy", 0.0) > 0, "the drained bucket of a busy key was forgotten"
    with pytest.raises(ValueError):
        TokenBuckets(0, 5)


# -- through the real app ---------------------------------------------------------------------

# A token may do 3 requests at once, then one per 20 s, and follow 6 next links at once; an
# address without a token 2; three rejected credentials per minute.
PAGE_BURST = 6
TIGHT = {
    "api_rate_per_s": 0.05,
    "api_rate_burst": 3,
    "api_page_rate_per_s": 0.05,
    "api_page_burst": PAGE_BURST,
    "api_anonymous_rate_per_s": 0.05,
    "api_anonymous_burst": 2,
    "api_auth_failures_per_min": 3,
}


@pytest.fixture
def limited(seeded_url, module_tokens, tmp_path):
    settings = api_settings(tmp_path, seeded_url, **TIGHT)
    with ApiServer(settings, seeded_url, Clock()) as server:
        yield server


@pytest.fixture
def connect(module_tokens):
    """`connect(server, role=None)`: an HTTP client of the role, closed after the test."""
    made: list[httpx.Client] = []

    def client(server: ApiServer, role: str | None = None) -> httpx.Client:
        made.append(server.client(role, module_tokens))
        return made[-1]

    yield client
    for client_ in made:
        client_.close()


def _too_many(response: httpx.Response, words: str) -> None:
    assert response.status_code == 429, (response.status_code, response.text)
    assert response.json()["error"] == "too_many_requests"
    assert words in reason(response)
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert_security_headers(response)


def test_a_token_over_its_rate_gets_429_and_others_do_not(limited, connect):
    admin = connect(limited, "admin")
    worker = connect(limited, "worker_a")
    for _ in range(3):
        assert admin.get("/me").status_code == 200
    _too_many(admin.get("/me"), "for this token")
    assert worker.get("/me").status_code == 200, "another token has a bucket of its own"
    for _ in range(10):  # not counted: health, static assets
        assert admin.get("/healthz").status_code == 200
        assert admin.get("/static/gridwatch/gridwatch.css").status_code == 200
    _too_many(admin.get("/me"), "for this token")
    _too_many(_stream(admin), "for this token")


def test_stream_connects_count(limited, connect):
    admin = connect(limited, "admin")
    for _ in range(3):
        with admin.stream("GET", "/alerts/stream") as stream:
            assert stream.status_code == 200
            assert next(stream.iter_bytes()).startswith(b"retry:")
    _too_many(_stream(admin), "for this token")


def _stream(client: httpx.Client, headers: dict | None = None) -> httpx.Response:
    """The answer to a stream request, its body read only if it is not the stream."""
    with client.stream("GET", "/alerts/stream", headers=headers) as response:
        if response.status_code != 200:
            response.read()
    return response


def test_following_next_links_has_a_budget_of_its_own(limited, connect):
    """A GIS client reading a layer whole follows its next links: those draw on a second
    bucket of the token, limited too, and leave the token's own bucket alone."""
    admin = connect(limited, "admin")
    page = admin.get("/collections/hazards/items", params={"limit": 1})
    for _ in range(PAGE_BURST):
        page = admin.get(_next_link(page))
        assert page.status_code == 200, page.text
    _too_many(admin.get(_next_link(page)), "pages followed with this token")
    assert admin.get("/me").status_code == 200, "following pages took the token's own bucket"
    assert admin.get("/collections/hazards/items", params={"limit": 1}).status_code == 200
    # A cursor makes a page of a layer only: elsewhere it is just another request.
    _too_many(admin.get("/me", params={"cursor": "x"}), "for this token")


def _next_link(response: httpx.Response) -> str:
    return next(link["href"] for link in response.json()["links"] if link["rel"] == "next")


def test_guessing_tokens_on_the_stream_counts_too(limited, connect):
    guesser = connect(limited)
    for attempt in range(3):
        bad = {"Authorization": f"Bearer gw_guess{attempt}"}
        assert _stream(guesser, bad).status_code == 401
    _too_many(_stream(guesser, {"Authorization": "Bearer gw_guess9"}), "rejected credentials")


def test_one_token_written_differently_is_one_bucket(limited, connect, module_tokens):
    client = connect(limited)
    token = module_tokens.admin
    spellings = (f"Bearer {token}", f"bearer  {token}", f"BEARER {token}", f"Bearer   {token}")
    statuses = [client.get("/me", headers={"Authorization": h}).status_code for h in spellings]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429, "a new spelling of the token got a bucket of its own"


def test_guesses_sent_all_at_once_are_limited_too(limited):
    """A hundred bad tokens at once: no more are checked than the limit of three a minute."""

    async def guess_all() -> list[int]:
        async with httpx.AsyncClient(base_url=limited.url, timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.get("/me", headers={"Authorization": f"Bearer gw_many{i}"})
                    for i in range(100)
                )
            )
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(guess_all())
    assert statuses.count(401) <= 3, f"{statuses.count(401)} guesses were checked"
    assert statuses.count(429) == 100 - statuses.count(401)


def test_a_new_tokens_first_burst_is_not_taken_for_guessing(limited, module_tokens):
    """After two rejected guesses (one left this minute), three requests at once with a
    valid token seen for the first time: all answered, the token is checked once."""
    with httpx.Client(base_url=limited.url) as guesser:
        for attempt in range(2):
            bad = {"Authorization": f"Bearer gw_guess{attempt}"}
            assert guesser.get("/me", headers=bad).status_code == 401

    async def burst() -> list[int]:
        headers = {"Authorization": f"Bearer {module_tokens.duty_street}"}
        async with httpx.AsyncClient(base_url=limited.url, headers=headers, timeout=30) as c:
            answers = await asyncio.gather(*(c.get("/me") for _ in range(3)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [200, 200, 200]


def test_requests_without_a_token_are_limited_per_address(limited, connect):
    anonymous = connect(limited)
    assert anonymous.get("/").status_code == 200
    assert anonymous.get("/me").status_code == 401
    _too_many(anonymous.get("/conformance"), "without a token from this address")
    assert connect(limited, "admin").get("/me").status_code == 200


def test_guessing_tokens_is_stopped_per_address(limited, connect):
    guesser = connect(limited)
    for attempt in range(2):
        bad = guesser.get("/me", headers={"Authorization": f"Bearer gw_guess{attempt}"})
        assert bad.status_code == 401
    assert guesser.post("/login", data={"token": "gw_guess"}).status_code == 401
    # Each guess was a new token with a full bucket of its own; the address is what counts.
    _too_many(
        guesser.get("/me", headers={"Authorization": "Bearer gw_guess9"}), "rejected credentials"
    )
    _too_many(guesser.post("/login", data={"token": "gw_guess"}), "rejected credentials")
    blocked = connect(limited, "admin").get("/me")
    _too_many(blocked, "rejected credentials")
    assert guesser.get("/healthz").status_code == 200


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(seeded_url, connect, tmp_path):
    def anonymous_from(server: ApiServer, address: str) -> int:
        forwarded = {"X-Forwarded-For": address}
        return connect(server).get("/conformance", headers=forwarded).status_code

    settings = api_settings(tmp_path, seeded_url, **TIGHT)
    with ApiServer(settings, seeded_url, Clock()) as server:
        # Not trusted: the claimed addresses are ignored, every request is the peer's.
        statuses = [anonymous_from(server, f"203.0.113.{i}") for i in range(3)]
        assert statuses == [200, 200, 429]
    behind = api_settings(tmp_path, seeded_url, **TIGHT, api_forwarded_allow_ips=["127.0.0.1"])
    with ApiServer(behind, seeded_url, Clock()) as server:
        statuses = [anonymous_from(server, address) for address in ("203.0.113.1",) * 3]
        assert statuses == [200, 200, 429]
        assert anonymous_from(server, "203.0.113.2") == 200, "another client behind the proxy"


def test_no_limits_when_switched_off(seeded_url, connect, tmp_path):
    settings = api_settings(tmp_path, seeded_url, **{**TIGHT, "api_rate_per_s": 0})
    with ApiServer(settings, seeded_url, Clock()) as server:
        client = connect(server, "admin")
        assert all(client.get("/me").status_code == 200 for _ in range(10))


# -- CORS ---------------------------------------------------------------------------------------

DASHBOARD = "https://dashboard.example"


def _preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options(
        "/collections/alerts/items",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cross_origin_calls_only_from_listed_origins(seeded_url, connect, tmp_path):
    settings = api_settings(tmp_path, seeded_url, api_cors_origins=[DASHBOARD])
    with ApiServer(settings, seeded_url, Clock()) as server:
        anonymous, admin = connect(server), connect(server, "admin")
        allowed = _preflight(anonymous, DASHBOARD)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD
        assert "access-control-allow-credentials" not in allowed.headers
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = _preflight(anonymous, "https://evil.example")
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        read = admin.get("/collections/alerts/items", headers={"Origin": DASHBOARD})
        assert read.headers["access-control-allow-origin"] == DASHBOARD
        assert_security_headers(read)
        other = admin.get("/collections/alerts/items", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cross_origin_access_by_default(seeded_url, connect, tmp_path):
    with ApiServer(api_settings(tmp_path, seeded_url), seeded_url, Clock()) as server:
        anonymous, admin = connect(server), connect(server, "admin")
        assert _preflight(anonymous, DASHBOARD).status_code == 405
        read = admin.get("/collections/alerts/items", headers={"Origin": DASHBOARD})
        assert read.status_code == 200
        assert not any(name.startswith("access-control-") for name in read.headers)


@pytest.mark.parametrize(
    "origins",
    [["*"], ["https://*.example"], ["https://dash.example/"], ["dash.example"], ["https://u@x.cn"]],
)
def test_cors_origins_must_be_exact(origins):
    with pytest.raises(ValidationError, match="scheme://host"):
        Settings(api_cors_origins=origins)
    assert Settings(api_cors_origins=["HTTPS://Dash.Example:8443"]).api_cors_origins == (
        "https://dash.example:8443",
    )


# -- headers on what the app answers outside its routes ---------------------------------------


def test_an_unexpected_error_still_carries_the_security_headers(seeded_url, connect, tmp_path):
    server = ApiServer(api_settings(tmp_path, seeded_url), seeded_url, Clock())

    def broken():
        raise RuntimeError("a bug")

    server.app.add_api_route("/broken", broken)
    with server:
        response = connect(server).get("/broken")
    assert response.status_code == 500 and "a bug" not in response.text
    assert_security_headers(response)


def test_refusals_before_the_app_carry_the_security_headers(seeded_url, connect, tmp_path):
    settings = api_settings(tmp_path, seeded_url, api_max_body_bytes=1024)
    with ApiServer(settings, seeded_url, Clock()) as server:
        worker = connect(server, "worker_a")
        too_big = worker.post("/checkins", content=b" " * 2048)
        assert too_big.status_code == 413
        assert_security_headers(too_big)
        nul = worker.get("/collections/grids/items", params={"grid": "\x00"})
        assert nul.status_code == 422
        assert_security_headers(nul)
        asset = worker.get("/static/gridwatch/gridwatch.css")
        assert asset.status_code == 200 and "no-store" not in asset.headers.get("cache-control", "")
        assert asset.headers["x-content-type-options"] == "nosniff"
