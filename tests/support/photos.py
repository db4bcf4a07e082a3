"""Photos as phones make them, for the tests: a JPEG that carries EXIF with a GPS position
and an orientation, and the hostile files (a decompression bomb, a truncated image)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

# Where the camera was: the GPS block the kept photo must not carry (Tiananmen, roughly).
GPS = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 30.0)}
CAMERA = "GridwatchPhone X1"
ROTATED_RIGHT = 6  # EXIF orientation: the image must be turned 90° clockwise to stand up


def jpeg_with_gps(width: int = 640, height: int = 480, colour=(200, 60, 40)) -> bytes:
    """A JPEG with EXIF: the camera's make, a GPS position and an orientation (6): stored
    `width` x `height`, it stands `height` x `width` when upright."""
    image = Image.new("RGB", (width, height), colour)
    image.paste((20, 20, 220), (0, 0, width // 4, height // 4))  # a corner to tell the turn by
    exif = Image.Exif()
    exif[0x010F] = CAMERA  # Make
    exif[0x0112] = ROTATED_RIGHT  # Orientation
    exif[0x8825] = GPS  # GPSInfo
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95, comment=b"taken at home of R-1")
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 120, 10, 128)).save(out, "PNG")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (20, 20)).save(out, "GIF")
    return out.getvalue()


def png_bomb(side: int = 60_000) -> bytes:
    """A PNG that claims `side` x `side` pixels (3.6 gigapixels) in a few hundred bytes: a
    decompression bomb, written by hand so the test never holds its pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * (1 + side // 8) * 64)  # a few rows; the rest never read
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def exif_of(data: bytes) -> dict:
    """The EXIF tags of an image file (empty when it has none)."""
    return dict(Image.open(io.BytesIO(data)).getexif())


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size
