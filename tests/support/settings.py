"""A test's gridwatch Settings (a pytest plugin): its own topic prefix, client id and data
directory over the test services."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gridwatch.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mqtt_url: str) -> Settings:
    """Settings of a test: its own topic prefix and client id, the test services."""
    return make_settings(tmp_path, database_url, mqtt_url)


def make_settings(tmp_path: Path, database_url: str, mqtt_url: str, **extra) -> Settings:
    """Settings of one test: its own topic prefix and client id; `extra` overrides."""
    tag = uuid.uuid4().hex[:10]
    values = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "topic_prefix": f"t{tag}",
        "mqtt_client_id": f"gw-test-{tag}",
        # A test's session on a shared broker should not outlive the run by a week.
        "mqtt_session_expiry_s": 600,
        "data_dir": tmp_path / "data",
    }
    return Settings(**{**values, **extra})
