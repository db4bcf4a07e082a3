"""Photos as phones send them, made safe to keep and show: pure functions of the bytes sent.

A photo is opened as JPEG, PNG or WebP and nothing else (Pillow's other decoders never see
it), its size in bytes and pixels is bounded before it is decoded (a decompression bomb is
refused), it is decoded whole (a truncated file is refused), turned upright by its EXIF
orientation, and encoded anew without any metadata: no EXIF (GPS position, camera, time),
no XMP, no ICC profile, no comment. A thumbnail (JPEG) is made from the upright image. The
name the client gave a file is never used.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gridwatch.errors import GridwatchError, first_line

MAX_PHOTOS = 20  # per post, as `photo_urls` holds at most 20
MAX_PIXELS = 50_000_000  # a 50 MP camera's full image; far more is a decompression bomb
THUMB_SIDE = 320  # the thumbnail's long side, in pixels
QUALITY = 90  # JPEG and WebP quality of the kept image
THUMB_QUALITY = 80
THUMB_TYPE = "image/jpeg"
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class PhotoRefused(GridwatchError):
    """A photo that is not kept (the post is refused whole); the message says which and why."""


class UnsupportedPhoto(PhotoRefused):
    """A file that is not a JPEG, PNG or WebP image."""


class PhotoTooLarge(PhotoRefused):
    """A photo over the size limit in bytes."""


@dataclass(frozen=True, slots=True)
class CleanPhoto:
    """A photo ready to keep: its image encoded anew without metadata, and its thumbnail."""

    content_type: str
    data: bytes
    width: int
    height: int
    thumbnail: bytes  # JPEG, THUMB_SIDE on its long side at most
    sent_bytes: int  # the size of the file as sent

    @property
    def sha256(self) -> str:
        """The kept image's digest (hex)."""
        return hashlib.sha256(self.data).hexdigest()


def clean_photos(sent: Sequence[bytes], *, max_bytes: int) -> list[CleanPhoto]:
    """Every photo of a post cleaned, or PhotoRefused naming the first one that cannot be
    kept: a post keeps all its photos or none."""
    if len(sent) > MAX_PHOTOS:
        raise PhotoRefused(f"{len(sent)} photos sent: at most {MAX_PHOTOS} per post")
    return [
        clean_photo(data, max_bytes=max_bytes, label=f"photo {n}") for n, data in enumerate(sent, 1)
    ]


def clean_photo(data: bytes, *, max_bytes: int, label: str = "the photo") -> CleanPhoto:
    """One photo checked, turned upright, stripped of metadata and thumbnailed."""
    if not data:
        raise PhotoRefused(f"{label} is an empty file")
    if len(data) > max_bytes:
        raise PhotoTooLarge(f"{label} has {len(data)} bytes, over the limit of {max_bytes}")
    image = _open(data, label)
    fmt = image.format or ""
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoRefused(f"{label} is damaged or truncated: {_said(exc)}") from None
    kept = _plain(upright, fmt)
    return CleanPhoto(
        content_type=CONTENT_TYPES[fmt],
        data=_encode(kept, fmt),
        width=kept.width,
        height=kept.height,
        thumbnail=_thumbnail(kept),
        sent_bytes=len(data),
    )


def _open(data: bytes, label: str) -> Image.Image:
    """The image's header read and its structure verified; its pixels are not decoded yet."""
    try:
        probe = Image.open(io.BytesIO(data), formats=tuple(CONTENT_TYPES))
        _check_pixels(probe, label)
        probe.verify()  # a PNG's chunk checksums, for one; the image cannot be used after
        image = Image.open(io.BytesIO(data), formats=tuple(CONTENT_TYPES))
    except UnidentifiedImageError:
        raise UnsupportedPhoto(f"{label} is not a JPEG, PNG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own bound (Image.MAX_IMAGE_PIXELS) caught it before ours did.
        raise PhotoRefused(f"{label} has too many pixels: a decompression bomb") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise PhotoRefused(f"{label} is damaged or truncated: {_said(exc)}") from None
    if image.format not in CONTENT_TYPES:  # never: `formats` allowed no other
        raise UnsupportedPhoto(f"{label} is not a JPEG, PNG or WebP image")
    return image


def _check_pixels(image: Image.Image, label: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise PhotoRefused(f"{label} has no pixels")
    if width * height > MAX_PIXELS:
        raise PhotoRefused(
            f"{label} is {width}x{height} pixels, over the limit of {MAX_PIXELS} "
            "(a decompression bomb, or a panorama too large to keep)"
        )


def _plain(image: Image.Image, fmt: str) -> Image.Image:
    """The image in a mode its format writes (RGB, or RGBA where transparency is kept), with
    no metadata left to write: encoders take an ICC profile, a comment or transparency from
    `info` when not told otherwise."""
    if fmt == "JPEG":
        mode = "L" if image.mode in ("L", "1") else "RGB"
    elif image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        mode = "RGBA"
    else:
        mode = "L" if image.mode in ("L", "1") else "RGB"
    plain = image.convert(mode) if image.mode != mode else image.copy()
    plain.info = {}
    return plain


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=QUALITY, optimize=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=QUALITY)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG of the image at THUMB_SIDE on its long side (never enlarged); transparency on
    white."""
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    if small.mode == "RGBA":
        backdrop = Image.new("RGB", small.size, (255, 255, 255))
        backdrop.paste(small, mask=small.getchannel("A"))
        small = backdrop
    out = io.BytesIO()
    small.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()


def _said(exc: BaseException) -> str:
    """Pillow's words about the file, short."""
    return first_line(exc)[:120]
