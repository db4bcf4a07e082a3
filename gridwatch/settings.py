"""Settings read once per entry point from GRIDWATCH_* variables (or CLI flags) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("gridwatch"))


class Settings(BaseSettings):
    """Every knob of gridwatch. Unset URLs mean the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="GRIDWATCH_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset starts an embedded PostgreSQL"
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://user:pass@host:1883 or mqtts://; unset starts a broker"
    )
    topic_prefix: str = "gw"
    tz: str = "Asia/Shanghai"
    data_dir: Path = Field(default_factory=_default_data_dir)
    tiles: Literal["none", "osm", "tianditu", "amap"] = "none"
    lang: Literal["zh", "en"] = "zh"
    storage: Literal["auto", "timescale", "plain"] = "auto"

    # Ingest
    mqtt_client_id: str = "gridwatch-ingest"
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    mqtt_keepalive_s: int = 30
    mqtt_receive_maximum: int = 10_000
    batch_size: int = 1000
    batch_ms: int = 200
    batch_idle_ms: int = 15
    max_payload_bytes: int = 64 * 1024
    max_future_s: int = 24 * 3600
    retention_days: int = 400
    partitions_ahead_days: int = 7

    # Alerts
    alert_webhooks: tuple[str, ...] = Field(
        default=(),
        description='JSON list of URLs that receive every alert change, e.g. ["https://…"]',
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "#+$") or value.startswith("/"):
            raise ValueError(f"topic prefix {value!r} must be a plain topic level without + # $")
        return value.rstrip("/")

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL {value!r} must start with mqtt:// or mqtts://")
        return value

    @field_validator("database_url")
    @classmethod
    def _pg_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"database URL must start with postgresql://, got {value!r}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)
