"""Connections to PostgreSQL with errors a person can act on."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg

from gridwatch.errors import ServiceUnavailable


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def connect(url: str, *, autocommit: bool = False, timeout_s: int = 10) -> psycopg.Connection:
    """Open one connection; an unreachable or refusing server raises ServiceUnavailable."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout_s)
    except psycopg.OperationalError as exc:
        first_line = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {describe_url(url)}: {first_line}"
        ) from None
    except psycopg.ProgrammingError as exc:
        raise ServiceUnavailable(f"bad database URL {describe_url(url)}: {exc}") from None
