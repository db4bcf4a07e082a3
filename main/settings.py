"""Settings read once per entry point from GRIDWATCH_* variables (or CLI flags) and passed down."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, FilePath, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEADLINE_HOURS = {"critical": 2.0, "high": 24.0, "medium": 72.0, "low": 168.0}
"""Hours to handle a hazard of each severity unless GRIDWATCH_HAZARD_DEADLINES_H says otherwise."""


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
    mqtt_user: str | None = Field(
        default=None,
        description="broker user name replacing the one in GRIDWATCH_MQTT_URL (same password): "
        "each gridwatch process logs in as its own user",
    )
    mqtt_ca_file: FilePath | None = Field(
        default=None,
        description="PEM CA certificate(s) an mqtts:// broker's certificate is checked against",
    )
    topic_prefix: str = "gw"
    owntracks_topic: str = Field(
        default="owntracks", description="OwnTracks base topic (the app's default is owntracks)"
    )
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
    batch_size: int = 3000
    batch_ms: int = 200
    batch_idle_ms: int = 15
    max_payload_bytes: int = Field(default=64 * 1024, ge=1)
    # Bounded so that now ± the window stays within the years Python and PostgreSQL hold.
    max_future_s: int = Field(default=24 * 3600, ge=0, le=10 * 366 * 86400)
    retention_days: int = Field(default=400, ge=1, le=100 * 366)
    partitions_ahead_days: int = 7
    require_registered_devices: bool = Field(
        default=False,
        description="dead-letter messages from meters, sensors and workers not registered",
    )

    # Alerts
    alert_webhooks: tuple[str, ...] = Field(
        default=(),
        description='JSON list of URLs that receive every alert change, e.g. ["https://…"]',
    )
    holiday_calendar: str | None = Field(
        default="CN",
        description="country whose public holidays and working weekends (调休) are lived as "
        "such, as an ISO code of the `holidays` package; empty for weekends alone",
    )
    holidays: frozenset[date] = Field(
        default=frozenset(),
        description='JSON list of more days lived like a weekend: ["2026-10-01", …]',
    )
    workdays: frozenset[date] = Field(
        default=frozenset(),
        description="JSON list of more days that are working days, whatever the calendar says",
    )

    # API and maps (gridwatch api)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    api_default_limit: int = Field(default=100, ge=1)
    api_max_limit: int = Field(default=10_000, ge=1)
    api_pool_size: int = Field(default=16, ge=2)
    api_session_hours: float = Field(default=12.0, gt=0, description="map page login lifetime")
    api_token_cache_s: float = Field(
        default=10.0, ge=0, description="how long a checked token is trusted without a lookup"
    )
    api_counts_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="live grid counts are shared between requests until a change (this long "
        "while change notices are not heard); 0: never shared",
    )
    api_rate_per_s: float = Field(
        default=10.0, ge=0, description="sustained requests per second per token; 0: no limits"
    )
    api_rate_burst: int = Field(default=200, ge=1, description="requests a token may make at once")
    api_page_rate_per_s: float = Field(
        default=100.0,
        gt=0,
        description="sustained requests per second per token following a layer's next links",
    )
    api_page_burst: int = Field(
        default=5000, ge=1, description="next-link requests a token may make at once"
    )
    api_anonymous_rate_per_s: float = Field(
        default=2.0,
        gt=0,
        description="sustained requests per second per client address without a token",
    )
    api_anonymous_burst: int = Field(default=60, ge=1)
    api_auth_failures_per_min: float = Field(
        default=10.0, gt=0, description="rejected credentials per minute per client address"
    )
    api_head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client has to send a request's line and headers (slow clients)",
    )
    api_forwarded_allow_ips: tuple[str, ...] = Field(
        default=(),
        description="JSON list of reverse proxy addresses whose X-Forwarded-For/-Proto are "
        "believed; empty: the peer's address is the client's",
    )
    api_cors_origins: tuple[str, ...] = Field(
        default=(),
        description="JSON list of origins allowed to call the API from a browser, e.g. "
        '["https://dashboard.example"]; empty: no cross-origin access',
    )
    tianditu_key: str | None = Field(default=None, description="key for GRIDWATCH_TILES=tianditu")
    hazard_deadlines_h: dict[str, float] = Field(
        default_factory=lambda: dict(DEADLINE_HOURS),
        description='hours to handle a hazard per severity, JSON, e.g. {"critical": 2, ...}',
    )
    hazard_check_s: float = Field(
        default=60.0, gt=0, description="how often `gridwatch alerts` escalates overdue hazards"
    )
    patrol_gap_min: float = Field(
        default=30.0, gt=0, description="a pause longer than this starts a new patrol"
    )
    patrol_buffer_m: float = Field(
        default=50.0, gt=0, description="a track covers the grid area within this distance"
    )
    owntracks_max_accuracy_m: float = Field(
        default=200.0,
        gt=0,
        description="a check-in whose accuracy (OwnTracks acc, gw accuracy_m) is worse than "
        "this many metres is kept, flagged low_accuracy, and not counted as patrol coverage",
    )
    visit_every_days: int = Field(
        default=7, ge=1, description="a resident is due a home visit after this many days"
    )
    inspection_grace_days: float = Field(
        default=3.0,
        gt=0,
        le=366,
        description="a place's inspection overdue by this many days goes up a level "
        "(grid → community → street), one level per grace",
    )

    # Photos posted with reports, steps and check-ins
    media_dir: Path | None = Field(
        default=None, description="folder that keeps the photos; unset: `media` in DATA_DIR"
    )
    media_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix?endpoint=http://host:9000 keeps the photos in an "
        "S3-compatible store instead (credentials from the AWS_* variables)",
    )
    media_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="largest photo accepted, in bytes"
    )

    @field_validator("hazard_deadlines_h")
    @classmethod
    def _every_severity(cls, value: dict[str, float]) -> dict[str, float]:
        wanted = {"low", "medium", "high", "critical"}
        if set(value) != wanted:
            raise ValueError(f"hazard deadlines must name exactly {sorted(wanted)}")
        if any(not 0 < hours < 24 * 366 for hours in value.values()):
            raise ValueError("hazard deadlines must be positive hours below a year")
        return value

    @field_validator("alert_webhooks")
    @classmethod
    def _http_webhooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"alert webhook {url!r} must be an http:// or https:// URL")
        return value

    @field_validator("api_cors_origins")
    @classmethod
    def _exact_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or "*" in origin
                or parts.username is not None
                or origin.lower() != f"{parts.scheme}://{parts.netloc}".lower()
            ):
                raise ValueError(
                    f"CORS origin {origin!r} must be exactly scheme://host[:port], "
                    "with no path and no wildcard"
                )
        # Browsers send the Origin header in lower case; the allowed list is compared exactly.
        return tuple(origin.lower() for origin in value)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @field_validator("topic_prefix", "owntracks_topic")
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

    @model_validator(mode="after")
    def _own_mqtt_user(self) -> Settings:
        """GRIDWATCH_MQTT_USER names this process's broker user in GRIDWATCH_MQTT_URL."""
        if self.mqtt_user is not None and self.mqtt_url is not None:
            parts = urlsplit(self.mqtt_url)
            _, at, host = parts.netloc.rpartition("@")
            password = f":{quote(unquote(parts.password), safe='')}" if parts.password else ""
            netloc = f"{quote(self.mqtt_user, safe='')}{password}@{host if at else parts.netloc}"
            self.mqtt_url = urlunsplit(parts._replace(netloc=netloc))
        return self

    @field_validator("media_url")
    @classmethod
    def _s3_scheme(cls, value: str | None) -> str | None:
        if value and (urlsplit(value).scheme != "s3" or not urlsplit(value).netloc):
            raise ValueError(f"media URL {value!r} must be s3://bucket[/prefix][?endpoint=…]")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _pg_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"database URL must start with postgresql://, got {value!r}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def media_folder(self) -> Path:
        """Where photos are kept as files (when no GRIDWATCH_MEDIA_URL names a store)."""
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"
