"""Schemathesis over the OpenAPI document: inputs made from every operation's schema (and
mutations of them) never get a 5xx from the real server and database, and every answer
carries the security headers."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gridwatch.api.app import create_app
from gridwatch.settings import Settings


def _openapi() -> dict:
    """The document the server serves (the app is built, not started: no database needed)."""
    app = create_app(Settings(), database_url="postgresql://unused@127.0.0.1/unused")
    return app.openapi()


@schemathesis.check
def security_headers(ctx, response, case) -> None:
    """The headers SecurityHeaders adds, on every answer (refusals included)."""
    headers = {name: values[0] for name, values in response.headers.items()}
    missing = [
        name
        for name, wanted in (
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
        )
        if headers.get(name) != wanted
    ]
    if "frame-ancestors 'none'" not in headers.get("content-security-policy", ""):
        missing.append("content-security-policy")
    if missing:
        raise AssertionError(f"{case.operation.label}: {response.status_code} without {missing}")
    if response.status_code == 429:
        raise AssertionError("rate limited: the test server's limits are too tight for fuzzing")


# The live stream never ends by itself; test_api_sse covers it.
schema = schemathesis.openapi.from_dict(_openapi()).exclude(path="/alerts/stream")


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_input_makes_a_server_error(case, module_server, module_tokens):
    case.call_and_validate(
        base_url=module_server.url,
        headers=module_tokens.header("admin"),
        checks=[not_a_server_error, security_headers],
        timeout=30,
    )
