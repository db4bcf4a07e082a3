"""JSON and GeoJSON responses rendered with orjson (times as RFC 3339, UUIDs as text)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class GeoJSONResponse(JSONResponse):
    """RFC 7946 GeoJSON: WGS-84 longitude/latitude."""

    media_type = "application/geo+json"


class JSONSchemaResponse(JSONResponse):
    """A JSON Schema document (OGC API - Features Part 3 queryables)."""

    media_type = "application/schema+json"
