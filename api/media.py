"""Photos posted over HTTP. `POST /hazards`, `POST /checkins`, `POST /hazards/{id}/resolve` and
`POST /requests/{id}/resolve` take, besides their JSON body, `multipart/form-data`: the field
`payload` holds the same JSON as text, the field `photos` zero or more image files. Every
photo is checked and cleaned (gridwatch.media.photos) before anything is stored, kept in the
media store with a `media` row, and its `/media/{id}` link appended to the report's or the
step's `photo_urls`; one bad photo refuses the whole post. They are served back by
gridwatch.api.photos."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import anyio
import psycopg
from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridwatch.api.guard import BodyTooLarge
from gridwatch.api.http_errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gridwatch.api.runtime import ApiState
from gridwatch.media.blobs import photo_keys
from gridwatch.media.photos import (
    MAX_PHOTOS,
    THUMB_TYPE,
    CleanPhoto,
    PhotoRefused,
    PhotoTooLarge,
    clean_photo,
)
from gridwatch.store.media import MediaOwner, NewMedia, record_media
from gridwatch.store.users import Principal

log = logging.getLogger("gridwatch.api")

PAYLOAD_FIELD, PHOTOS_FIELD = "payload", "photos"
# The writes that take photos; a multipart body is let in only there.
_TAKES_PHOTOS = re.compile(r"/(?:hazards|checkins)|/(?:hazards|requests)/[^/]+/resolve")
FRAMING_BYTES = 64 * 1024  # multipart boundaries and part headers, with room to spare


def takes_photos(path: str) -> bool:
    """Whether `path` is a write that takes photos as multipart/form-data."""
    return _TAKES_PHOTOS.fullmatch(path) is not None


def photo_body_limit(max_body_bytes: int, max_photo_bytes: int) -> int:
    """The largest multipart body a write with photos may send: its JSON and MAX_PHOTOS
    photos of the largest size, with their framing."""
    return max_body_bytes + MAX_PHOTOS * max_photo_bytes + FRAMING_BYTES


@dataclass(frozen=True, slots=True)
class Posted:
    """A write's body as sent: its JSON text (None: a multipart post without `payload`) and
    its photos, each checked and cleaned and given the id it will be kept under."""

    payload: bytes | None
    photos: tuple[tuple[uuid.UUID, CleanPhoto], ...] = ()

    @property
    def photo_urls(self) -> tuple[str, ...]:
        return tuple(f"/media/{media_id}" for media_id, _ in self.photos)

    def with_urls(self, given: Sequence[str]) -> tuple[str, ...]:
        """`given` links followed by this post's photos', at most MAX_PHOTOS in all."""
        urls = (*given, *self.photo_urls)
        if len(urls) > MAX_PHOTOS:
            raise PhotoRefused(
                f"{len(given)} photo links and {len(self.photos)} photos: at most {MAX_PHOTOS} "
                "in all"
            )
        return urls


async def posted(request: Request) -> Posted:
    """The body of a write that takes photos: JSON as it is, or a form (multipart/form-data;
    a urlencoded form without photos is read the same way)."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json, or as multipart/form-data with the JSON in "
            f"'{PAYLOAD_FIELD}' and images in '{PHOTOS_FIELD}', not {kind[:60]}"
        )
    return Posted(await request.body())


Sent = Annotated[Posted, Depends(posted)]


async def _read_form(request: Request) -> Posted:
    state: ApiState = request.app.state.gw
    settings = state.settings
    try:
        form = await request.form(
            max_files=MAX_PHOTOS + 1,  # the payload may come as a file too
            max_fields=4,
            max_part_size=settings.api_max_body_bytes,
        )
    except BodyTooLarge as exc:
        raise PayloadTooLarge(f"the request body is over {exc.limit} bytes") from None
    except StarletteHTTPException as exc:
        raise _form_refusal(str(exc.detail), settings.api_max_body_bytes) from None
    try:
        payload: bytes | None = None
        files: list[UploadFile] = []
        for name, value in form.multi_items():
            if name == PAYLOAD_FIELD and payload is None:
                payload = await _payload_bytes(value, settings.api_max_body_bytes)
            elif name == PAYLOAD_FIELD:
                raise BadRequest(f"send one '{PAYLOAD_FIELD}' field, not several")
            elif name == PHOTOS_FIELD:
                if isinstance(value, str):
                    raise BadRequest(f"'{PHOTOS_FIELD}' must be files (parts with a filename)")
                if value.filename or value.size:  # a form's file input left empty sends
                    files.append(value)  # a part with no name and no bytes: no photo
            else:
                raise BadRequest(
                    f"unknown form field {name[:40]!r}: send '{PAYLOAD_FIELD}' and '{PHOTOS_FIELD}'"
                )
        if len(files) > MAX_PHOTOS:
            raise PhotoRefused(f"{len(files)} photos sent: at most {MAX_PHOTOS} per post")
        limit = settings.media_max_bytes
        for n, file in enumerate(files, 1):
            if file.size is not None and file.size > limit:
                raise PhotoTooLarge(f"photo {n} has {file.size} bytes, over the limit of {limit}")
        photos = []
        for n, file in enumerate(files, 1):
            data = await file.read(limit + 1)
            # Decoding and encoding images is CPU work: a thread, one photo at a time.
            photo = await anyio.to_thread.run_sync(_clean, data, limit, f"photo {n}")
            photos.append((uuid.uuid4(), photo))
        return Posted(payload, tuple(photos))
    finally:
        await form.close()


def _clean(data: bytes, limit: int, label: str) -> CleanPhoto:
    return clean_photo(data, max_bytes=limit, label=label)


async def _payload_bytes(value: str | UploadFile, limit: int) -> bytes:
    """The `payload` field as bytes: a text field, or a file part (a Blob of JSON)."""
    data = value.encode("utf-8") if isinstance(value, str) else await value.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"'{PAYLOAD_FIELD}' is over {limit} bytes")
    return data


def _form_refusal(detail: str, limit: int) -> Exception:
    """Starlette's refusal of a multipart body in gridwatch's words and status codes."""
    if detail.startswith("Too many files"):
        return PhotoRefused(f"more than {MAX_PHOTOS} photos sent: at most {MAX_PHOTOS} per post")
    if detail.startswith("Part exceeded"):
        return PayloadTooLarge(f"a form field is over {limit} bytes")
    return BadRequest(f"the multipart/form-data body cannot be read: {detail[:120]}")


def keep_photos(
    conn: psycopg.Connection,
    state: ApiState,
    principal: Principal,
    sent: Posted,
    owner: MediaOwner,
) -> None:
    """Record the post's photos as belonging to `owner`, put their images in the media store,
    then commit the transaction (the report or step with them): the images are there before
    any row names them, and a failure at either step leaves neither (images already put are
    deleted again)."""
    keep_photos_of(conn, state, principal, [(sent, owner)])


def keep_photos_of(
    conn: psycopg.Connection,
    state: ApiState,
    principal: Principal,
    owned: Sequence[tuple[Posted, MediaOwner]],
) -> None:
    """`keep_photos` for a post whose photos belong to several owners (an inspection's: the
    check-in's and each finding's), each part's photos to its owner, in one commit."""
    owned = [(part, owner) for part, owner in owned if part.photos]
    if not owned:
        return
    for part, owner in owned:
        record_media(
            conn,
            [
                NewMedia(
                    id=media_id,
                    content_type=photo.content_type,
                    bytes=len(photo.data),
                    thumb_bytes=len(photo.thumbnail),
                    sent_bytes=photo.sent_bytes,
                    width=photo.width,
                    height=photo.height,
                    sha256=photo.sha256,
                )
                for media_id, photo in part.photos
            ],
            owner,
            uploaded_by=principal.name,
            at=state.now(),
        )
    put: list[str] = []
    try:
        for part, _ in owned:
            for media_id, photo in part.photos:
                image, thumbnail = photo_keys(media_id)
                state.media.put(image, photo.data, photo.content_type)
                put.append(image)
                state.media.put(thumbnail, photo.thumbnail, THUMB_TYPE)
                put.append(thumbnail)
        conn.commit()
    except BaseException:
        try:
            state.media.delete(put)
        except Exception as exc:
            log.warning("photos put but not recorded could not be deleted: %s", exc)
        raise
