"""Request bodies of the API's own writes (transitions, alert steps, absences), and how a body
read raw (JSON, or the `payload` of a multipart post with photos) is
described in OpenAPI and validated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from gridwatch.media.photos import MAX_PHOTOS


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Note = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_nul)]
RequiredNote = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]

HAZARD_CATEGORIES_HELP = "structural, fire, electrical, gas, road, flood, sanitation, food or other"
CRS_HELP = "wgs84 (default), gcj02 (AMap, Tencent) or bd09 (Baidu); any case, with or without '-'"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class AssignBody(Strict):
    assignee: Name = Field(description="who will handle it (a worker id or a name)")
    note: Note | None = None


class NoteBody(Strict):
    note: Note | None = None


class ResolveBody(Strict):
    note: RequiredNote = Field(description="what was done")
    photo_urls: list[str] = Field(default_factory=list, max_length=20)


class FeedbackBody(Strict):
    note: RequiredNote = Field(description="the feedback: why it is closed, or why reopened")


class AckBody(Strict):
    note: Note | None = None


class AlertResolveBody(Strict):
    reason: RequiredNote = Field(description="what was found")
    checked: bool = Field(
        default=False, description="someone checked with the person and all is well"
    )


class AbsenceBody(Strict):
    resident_id: Name
    starts_at: datetime = Field(description="ISO 8601; without an offset it is local time")
    ends_at: datetime
    note: Note | None = None


class FindingBody(BaseModel):
    """What an inspection found wrong: a hazard's category, severity and description."""

    model_config = ConfigDict(extra="allow")
    category: str = Field(description=HAZARD_CATEGORIES_HELP)
    severity: str = Field(description="low, medium, high or critical")
    description: str | None = None
    photos: list[str] | None = Field(default=None, description="http(s) URLs of photos")


class CheckinBody(BaseModel):
    """The MQTT `gw/patrol/{worker_id}` payload, plus the worker (default: the caller)."""

    model_config = ConfigDict(extra="allow")
    worker_id: str | None = Field(default=None, max_length=128)
    ts: str | float | None = Field(default=None, description="ISO 8601 or epoch seconds")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)
    crs: str | None = Field(default="wgs84", description=CRS_HELP)
    kind: str | None = Field(default="patrol", description="patrol, visit or inspection")
    resident_id: str | None = Field(default=None, description="required for a visit")
    status: str | None = Field(default=None, description="ok, concern or not_home")
    note: str | None = Field(default=None, max_length=2000)
    needs: str | None = Field(
        default=None,
        max_length=500,
        description="a visit only: what the resident asks for (微心愿)",
    )
    place_id: str | None = Field(default=None, description="required for an inspection")
    result: str | None = Field(
        default=None, description="required for an inspection: ok, or findings"
    )
    findings: list[FindingBody] | None = Field(
        default=None,
        max_length=20,
        description="an inspection's findings (with result findings): each opens a case of "
        "the place with the deadline its severity sets",
    )


class HazardBody(BaseModel):
    """The MQTT `gw/hazard/{reporter_id}` payload, plus the reporter (default: the caller)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(description="a UUID made by the client: the idempotency key")
    reporter_id: str | None = Field(default=None, max_length=128)
    ts: str | float | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    crs: str | None = Field(default="wgs84", description=CRS_HELP)
    category: str = Field(description=HAZARD_CATEGORIES_HELP)
    severity: str = Field(description="low, medium, high or critical")
    description: str | None = None
    photo_urls: list[str] | None = None


def body_schema(model: type[BaseModel], *, photos: bool = False) -> dict:
    """OpenAPI for a body read raw (so the MQTT parser sees exactly what was sent); with
    `photos`, also as multipart/form-data: the JSON in `payload`, images in `photos`."""
    content: dict = {"application/json": {"schema": model.model_json_schema()}}
    if photos:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {
                    "payload": {
                        "type": "string",
                        "description": f"the JSON body as text ({model.__name__})",
                    },
                    "photos": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "maxItems": MAX_PHOTOS,
                        "description": "JPEG, PNG or WebP images; each is kept without its "
                        "EXIF, and its /media/{id} link is added to photo_urls",
                    },
                },
            }
        }
    return {"requestBody": {"required": True, "content": content}}


Model = TypeVar("Model", bound=BaseModel)


def body_of(model: type[Model], payload: bytes | None) -> Model:
    """`payload` (JSON text) as `model`, refused as FastAPI refuses a JSON body it reads
    itself: 422 with where and why."""
    if not payload:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {exc}"}]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in problems]
        ) from None
