"""Where photos' bytes are kept: files in a folder (GRIDWATCH_MEDIA_DIR), or objects in an
S3-compatible store (GRIDWATCH_MEDIA_URL=s3://bucket/prefix?endpoint=…). Keys are made
from a photo's id alone, never from anything a client sent.

The S3 store uses boto3 (the `s3` extra), which reads its credentials the usual way: the
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables, a profile, or an instance role.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from gridwatch.errors import ConfigError, NotFound, ServiceUnavailable, first_line
from gridwatch.settings import Settings

_S3_OPTIONS = ("endpoint", "region", "addressing")
_DELETE_BATCH = 1000  # S3 DeleteObjects takes at most this many keys


def photo_keys(media_id: uuid.UUID) -> tuple[str, str]:
    """The keys of a photo's image and of its thumbnail."""
    return str(media_id), f"{media_id}.thumb"


def delete_photos(store: BlobStore, ids: Iterable[uuid.UUID]) -> None:
    """Remove the images and thumbnails of the photos `ids` from `store`."""
    store.delete([key for media_id in ids for key in photo_keys(media_id)])


class BlobStore(Protocol):
    """Bytes under keys: what keeps the photos."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes:
        """The bytes under `key`; NotFound when there are none."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove what `keys` name; a key with nothing under it is no error."""
        ...

    def describe(self) -> str: ...


class FolderStore:
    """Files under a folder (made on first use, mode 0700), one per key in a subfolder of
    the key's first two characters; each written to a temporary file and renamed, so a
    reader never sees half a photo."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no stored file for {key}") from None

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"folder {self.root}"


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where an S3-compatible store keeps the photos, as GRIDWATCH_MEDIA_URL names it."""

    bucket: str
    prefix: str  # "" or ends with "/"
    endpoint: str | None  # None: AWS itself
    region: str | None
    addressing: str  # path, virtual or auto


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket[/prefix][?endpoint=http://host:9000&region=…&addressing=path|virtual]`."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ConfigError(f"GRIDWATCH_MEDIA_URL {url!r} must be s3://bucket[/prefix][?endpoint=…]")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "GRIDWATCH_MEDIA_URL must not hold credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_S3_OPTIONS))
    if unknown:
        raise ConfigError(
            f"GRIDWATCH_MEDIA_URL: unknown option {unknown[0]!r} (known: {', '.join(_S3_OPTIONS)})"
        )
    one = {name: values[-1] for name, values in query.items()}
    endpoint = one.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"GRIDWATCH_MEDIA_URL: endpoint {endpoint!r} must be an http(s) URL")
    addressing = one.get("addressing") or ("path" if endpoint else "auto")
    if addressing not in ("path", "virtual", "auto"):
        raise ConfigError("GRIDWATCH_MEDIA_URL: addressing must be path, virtual or auto")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=one.get("region") or None,
        addressing=addressing,
    )


class S3Store:
    """Objects in a bucket of an S3-compatible store (AWS S3, MinIO, Ceph, OSS, COS…), under
    the URL's prefix. The client is made on first use and shared: boto3 clients are safe to
    use from several threads."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _s3_client(self.location)
            return self._client

    def _key(self, key: str) -> str:
        return self.location.prefix + key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(
            "put_object",
            Bucket=self.location.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
        )

    def get(self, key: str) -> bytes:
        answer = self._call("get_object", Bucket=self.location.bucket, Key=self._key(key))
        if answer is None:
            raise NotFound(f"no stored object for {key}")
        data: bytes = answer["Body"].read()
        return data

    def delete(self, keys: Iterable[str]) -> None:
        names = [self._key(k) for k in keys]
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            answer = self._call(
                "delete_objects",
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            failed = (answer or {}).get("Errors") or []
            if failed:
                first = failed[0]
                raise ServiceUnavailable(
                    f"the S3 store kept {len(failed)} object(s) it was asked to delete "
                    f"({first.get('Key')}: {first.get('Code')})"
                )

    def _call(self, operation: str, **params: Any) -> Any:
        """One S3 call; None for a missing object, ServiceUnavailable when the store cannot be
        reached or refuses (its words kept, never the credentials)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._s3(), operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise ServiceUnavailable(
                f"the S3 store at {self.describe()} refused {operation}: {first_line(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise ServiceUnavailable(
                f"the S3 store at {self.describe()} cannot be reached: {first_line(exc)}"
            ) from None

    def describe(self) -> str:
        where = self.location.endpoint or "AWS"
        return f"s3://{self.location.bucket}/{self.location.prefix} ({where})"


def _s3_client(location: S3Location) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError(
            "GRIDWATCH_MEDIA_URL names an S3 store: install boto3 (pip install 'gridwatch[s3]')"
        ) from None
    config = Config(
        s3={"addressing_style": location.addressing},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client(
        "s3", endpoint_url=location.endpoint, region_name=location.region, config=config
    )


def media_store(settings: Settings) -> BlobStore:
    """The store the settings name: S3 when GRIDWATCH_MEDIA_URL is set, else the folder
    GRIDWATCH_MEDIA_DIR (default: `media` in the data directory)."""
    if settings.media_url:
        return S3Store(parse_s3_url(settings.media_url))
    return FolderStore(settings.media_folder)
