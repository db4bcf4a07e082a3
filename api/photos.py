"""Photos served back: `GET /media/{id}` and `/media/{id}/thumb` to whoever may see what the
photo belongs to (its hazard, its request, its check-in), by the very check that shows that
hazard, request or check-in, and to nobody else: 404 as for a missing one."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from gridwatch.api.auth import PageViewer
from gridwatch.api.collections import get_visible_hazard, visible_checkin
from gridwatch.api.layer_cache import NOT_MODIFIED
from gridwatch.api.requests import visible_request
from gridwatch.api.runtime import ApiState, Conn, State
from gridwatch.errors import NotFound
from gridwatch.media.blobs import photo_keys
from gridwatch.media.photos import THUMB_TYPE
from gridwatch.store.media import MediaItem, media_item
from gridwatch.store.users import Principal

log = logging.getLogger("gridwatch.api")

router = APIRouter(tags=["photos"])

CACHE_CONTROL = "private, max-age=86400"  # a photo never changes; only its viewer keeps it
MediaId = Annotated[str, Path(max_length=64, description="the photo's id (a UUID)")]
_IMAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
    **NOT_MODIFIED,
    404: {"description": "no such photo, or one of a case or check-in the caller cannot see"},
}


def _serving(suffix: str, summary: str, *, thumbnail: bool):
    """Route GET /media/{id}<suffix>: the image, or its thumbnail."""

    @router.get(
        f"/media/{{media_id}}{suffix}",
        response_class=Response,
        summary=summary,
        responses=_IMAGE_ANSWERS,
        name=f"photo{suffix.replace('/', '_')}",
    )
    def serve(
        request: Request, principal: PageViewer, conn: Conn, state: State, media_id: MediaId
    ) -> Response:
        return _photo(request, principal, conn, state, media_id, thumbnail=thumbnail)

    return serve


image_route = _serving("", "A photo as kept: upright, without EXIF", thumbnail=False)
thumbnail_route = _serving(
    "/thumb", "A photo's thumbnail (JPEG, 320 px on its long side)", thumbnail=True
)


def _photo(
    request: Request,
    principal: Principal,
    conn: psycopg.Connection,
    state: ApiState,
    media_id: str,
    *,
    thumbnail: bool,
) -> Response:
    missing = f"no photo {media_id[:64]}"
    try:
        item = media_item(conn, uuid.UUID(media_id))
        ensure_owner_visible(conn, principal, item)
    except (ValueError, NotFound):
        raise NotFound(missing) from None
    image, small = photo_keys(item.id)
    etag = f'"{item.sha256}{"-thumb" if thumbnail else ""}"'
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "ETag": etag,
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    try:
        data = state.media.get(small if thumbnail else image)
    except NotFound:
        log.warning("photo %s has a row but no image in %s", item.id, state.media.describe())
        raise NotFound(missing) from None
    return Response(
        data, media_type=THUMB_TYPE if thumbnail else item.content_type, headers=headers
    )


def ensure_owner_visible(conn: psycopg.Connection, principal: Principal, item: MediaItem) -> None:
    """NotFound unless the caller may see what `item` belongs to, as its own page or item
    decides: a hazard by its grid or police grid (警格), a request or a check-in by those or
    by being its reporter or worker. A check-in gone past retention shows nothing more."""
    if item.hazard_id is not None:
        get_visible_hazard(conn, principal, str(item.hazard_id))
    elif item.request_id is not None:
        visible_request(conn, principal, str(item.request_id))
    elif (
        item.checkin_worker_id is not None
        and item.checkin_source is not None
        and item.checkin_observed_at is not None
    ):
        visible_checkin(
            conn,
            principal,
            worker_id=item.checkin_worker_id,
            source=item.checkin_source,
            observed_at=item.checkin_observed_at,
        )
    else:
        raise NotFound(f"photo {item.id} belongs to nothing")
