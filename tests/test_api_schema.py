"""Schemathesis over the OpenAPI document: inputs made from every operation's schema (and
mutations of them) never get a 5xx from the real server and database."""

from __future__ import annotations

import schemathesis
from api_support import (
    module_server_fixture,  # noqa: F401
    module_tokens_fixture,  # noqa: F401
    seeded_url_fixture,  # noqa: F401
)
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gridwatch.api.app import create_app
from gridwatch.settings import Settings


def _openapi() -> dict:
    """The document the server serves (the app is built, not started: no database needed)."""
    app = create_app(Settings(), database_url="postgresql://unused@127.0.0.1/unused")
    return app.openapi()


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
        checks=[not_a_server_error],
        timeout=30,
    )
