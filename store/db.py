"""Connections to PostgreSQL with errors a person can act on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg

from gridwatch.errors import InputFileError, ServiceUnavailable, first_line


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket; nothing in it can be trusted
        return "a malformed URL"
    host = parts.hostname or "local socket"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # out of range or not a number: shown as written, for the message
        port = ":" + parts.netloc.rpartition(":")[2]
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def connect(url: str, *, autocommit: bool = False, timeout_s: int = 10) -> psycopg.Connection:
    """Open one connection; an unreachable or refusing server raises ServiceUnavailable."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout_s)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {describe_url(url)}: {first_line(exc)}"
        ) from None
    except psycopg.ProgrammingError as exc:
        raise ServiceUnavailable(f"bad database URL {describe_url(url)}: {exc}") from None


# SQLSTATE classes of a failure of the database itself, not of what was sent: connection
# exceptions, insufficient resources (disk full, out of memory, too many connections),
# operator intervention (shutdown, cancel) and system errors (I/O).
_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
# SQLSTATE classes of an error caused by one row's values: data exceptions, integrity
# violations, and program limits such as an index row too large (54000).
_ROW_FAULT_CLASSES = frozenset({"22", "23", "54"})


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is a failure of the database itself (or of the way to it): wait and retry."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is None:  # raised by the driver: a lost or closed connection
        return isinstance(exc, psycopg.OperationalError)
    return exc.sqlstate[:2] in _OUTAGE_CLASSES


def is_row_fault(exc: BaseException) -> bool:
    """Whether `exc` was caused by the values of a row (that row cannot be stored as it is)."""
    if isinstance(exc, UnicodeEncodeError | OverflowError):  # raised adapting a value
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is None:  # the driver refusing a value, e.g. a NUL in text
        return isinstance(exc, psycopg.DataError)
    return exc.sqlstate[:2] in _ROW_FAULT_CLASSES


@contextmanager
def refused_as_input_error(source: str, where: str) -> Iterator[None]:
    """A value the database refuses in an import, as an error naming the file and the row;
    raised inside the import's transaction, it rolls the whole file back."""
    try:
        yield
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise InputFileError(
            f"{source}: {where}: rejected by the database: {first_line(exc)}"
        ) from None


def upsert_each(
    conn: psycopg.Connection,
    statement: str,
    rows: Sequence[tuple[str, Sequence[object]]],
    *,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Run an import's `INSERT … ON CONFLICT … DO UPDATE … RETURNING (xmax = 0)` once per
    (where, params) row in one transaction; (inserted, updated). A row the database refuses
    is an error naming `where` in `source`, and nothing is stored."""
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        for done, (where, params) in enumerate(rows, start=1):
            with refused_as_input_error(source, where):
                cur.execute(statement, params)
                [(is_new,)] = cur.fetchall()
            inserted += is_new
            if progress:
                progress(done, len(rows))
    return inserted, len(rows) - inserted
