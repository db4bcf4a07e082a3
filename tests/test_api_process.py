"""`gridwatch api` as people run it, a child process over the test database: an open alert
stream of a user revoked with the CLI ends, slow clients are cut off, no token reaches the
access log, and a session cookie is Secure when the request came over HTTPS."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from gridwatch.store.alerts import write_event
from gridwatch.store.users import create_user
from tests.support.api import GRID_A, NOW, ApiProcess

HEAD_TIMEOUT_S = 3.0
PROXY = "127.0.0.1"  # the test client stands in for a TLS-terminating proxy


@pytest.fixture(scope="module")
def api(seeded_url, tmp_path_factory) -> Iterator[ApiProcess]:
    running = ApiProcess(
        seeded_url,
        tmp_path_factory.mktemp("api-process"),
        api_head_timeout_s=str(HEAD_TIMEOUT_S),
        api_forwarded_allow_ips=json.dumps([PROXY]),
        api_rate_burst="100000",
    )
    yield running
    running.process.stop()


def _alert_in(url: str, code: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "INSERT INTO alerts (resident_id, kind, grid_id, since, opened_at) "
            "SELECT r.id, %s, r.grid_id, %s, %s FROM residents r JOIN grids g ON g.id = r.grid_id "
            "WHERE g.code = %s ORDER BY r.id LIMIT 1 RETURNING id, resident_id",
            (f"test-{uuid.uuid4().hex[:8]}", NOW, NOW, code),
        ).fetchone()


def test_the_stream_of_a_user_revoked_with_the_cli_ends(api, seeded_url):
    """Default token cache (10 s): the stream ends within 10 s of `gridwatch users revoke`
    (the promise: never more than 30 s), and nothing is sent or audited after."""
    name = f"W-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, name, role="grid_worker", grid_codes=(GRID_A,))
    alert_id, resident = _alert_in(seeded_url, GRID_A)
    stop = threading.Event()

    def emit() -> None:  # an event of the alert every half second, as an engine would
        from gridwatch.alerts.lifecycle import OpenAlert

        alert = OpenAlert(alert_id, resident, "test", NOW, "open", "grid", NOW)
        with psycopg.connect(seeded_url, autocommit=True) as conn:
            while not stop.wait(0.5):
                write_event(conn, alert, NOW, "escalated", "test", None)

    emitter = threading.Thread(target=emit, daemon=True)
    emitter.start()
    received: list[tuple[float, dict]] = []
    revoked = closed = None
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream(
            "GET", api.base + "/alerts/stream", headers=headers, timeout=60
        ) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    received.append((time.monotonic(), json.loads(line[6:])))
                if len(received) == 2 and revoked is None:
                    assert received[0][1]["resident"]["masked"] is False
                    revoked_at = datetime.now(UTC)
                    assert "revoked" in api.cli("users", "revoke", name)
                    revoked = time.monotonic()
                if revoked is not None and time.monotonic() - revoked > 35:
                    break
            else:
                closed = time.monotonic()
    finally:
        stop.set()
        emitter.join(10)
    assert revoked is not None
    assert closed is not None, "the stream went on 35 s after the revocation"
    assert closed - revoked <= 11, f"closed {closed - revoked:.1f} s after the revocation"
    assert all(at <= closed for at, _ in received)
    with psycopg.connect(seeded_url) as conn:
        last_read = conn.execute(
            "SELECT max(at) FROM personal_data_audit WHERE actor = %s", (name,)
        ).fetchone()[0]
    assert last_read <= revoked_at + timedelta(seconds=11)


def _drip(port: int, head: bytes, every_s: float, within_s: float) -> float | None:
    """Send `head` a byte every `every_s` on a raw connection (then keep dripping header
    bytes); seconds until the server closed the connection, None if not within `within_s`."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=within_s) as sock:
        data = iter(head + b"X-Slow: " + b"a" * 10_000)
        while time.monotonic() - start < within_s:
            try:
                sock.sendall(bytes([next(data)]))
            except OSError:
                return time.monotonic() - start
            sock.settimeout(every_s)
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - start
            except TimeoutError:
                pass
            except OSError:
                return time.monotonic() - start
    return None


def test_a_client_sending_its_headers_slowly_is_cut_off(api):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    cut = _drip(api.port, head, every_s=0.3, within_s=HEAD_TIMEOUT_S + 12)
    assert cut is not None, "a slow client held the connection"
    assert HEAD_TIMEOUT_S - 0.5 <= cut <= HEAD_TIMEOUT_S + 2
    # A connection that says nothing at all is closed too, and a normal client is served.
    with socket.create_connection(("127.0.0.1", api.port), timeout=HEAD_TIMEOUT_S + 12) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - start <= HEAD_TIMEOUT_S + 2
    assert httpx.get(api.base + "/healthz").status_code == 200


def test_a_head_that_grows_past_16_kib_is_refused(api):
    """Headers that never end are not buffered past 16 KiB, however fast they come."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400") or answer == b""


def test_no_token_reaches_the_access_log(api, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, f"log-{uuid.uuid4().hex[:8]}", role="admin")
    for params in ({"token": token}, {"access_token": token, "f": "json"}, {"api_key": "s3cr3t"}):
        httpx.get(api.base + "/collections/grids/items", params=params)
    httpx.get(api.base + f"/maps/{token}")
    httpx.get(api.base + "/me", headers={"Authorization": f"Bearer {token}"})
    time.sleep(0.5)
    log = api.process.log()
    assert "/collections/grids/items?" in log, "the access log is on"
    assert token not in log and token[3:20] not in log
    assert "s3cr3t" not in log
    assert "access_token=[redacted]&f=json" in log


def _login(api: ApiProcess, token: str, headers: dict[str, str]) -> str:
    answer = httpx.post(api.base + "/login", data={"token": token}, headers=headers)
    assert answer.status_code == 303, answer.text
    return answer.headers["set-cookie"].lower()


def test_the_session_cookie_is_secure_over_https_through_a_trusted_proxy(api, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, f"cookie-{uuid.uuid4().hex[:8]}", role="admin")
    over_https = _login(api, token, {"X-Forwarded-Proto": "https"})
    assert "; secure" in over_https
    plain = _login(api, token, {})
    assert "; secure" not in plain, "plain HTTP (a local test) keeps a cookie it can send"
