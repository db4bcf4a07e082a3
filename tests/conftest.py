"""Real services for the tests: PostgreSQL and an MQTT broker, and the fixtures over them.

The fixtures live in `tests.support` modules, registered here as plugins, so a test asks for
a fixture by its argument name and never imports one. The services are the ones named by
GRIDWATCH_TEST_DATABASE_URL / GRIDWATCH_TEST_MQTT_URL when set, otherwise an embedded
PostgreSQL and the in-process broker (see `tests.support.databases` and `.broker`).
"""

import pytest

# Helpers of tests.support assert too: rewritten, their failures show the values compared.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = [
    "tests.support.databases",
    "tests.support.broker",
    "tests.support.settings",
    "tests.support.ingest_workers",
    "tests.support.api",
    "tests.support.demo",
    "tests.support.browser",
]
