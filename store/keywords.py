"""The dispute keyword libraries: importing one (a new version that replaces the active one
in one transaction), reading the active one, and the matcher built from it once per version.

Without an imported library the starter library shipped with gridwatch is in use."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from gridwatch.disputes.matcher import Keyword, Matcher
from gridwatch.disputes.starter import STARTER_FILE, starter_keywords

_LOCK_KEY = 0x6777000B  # one library import at a time


@dataclass(frozen=True, slots=True)
class Library:
    """A keyword library: `version` None is the starter library shipped with gridwatch."""

    version: int | None
    source: str
    imported_at: datetime | None
    imported_by: str | None
    keywords: tuple[Keyword, ...]

    @property
    def is_starter(self) -> bool:
        return self.version is None

    def counts(self) -> dict[str, int]:
        """Keywords per category, in the order categories first appear."""
        return dict(Counter(k.category for k in self.keywords))


def starter_library() -> Library:
    return Library(None, STARTER_FILE, None, None, starter_keywords())


def import_library(
    conn: psycopg.Connection, keywords: Sequence[Keyword], *, source: str, by: str | None
) -> int:
    """Store `keywords` as a new version and make it the active library, in one transaction;
    returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("UPDATE keyword_libraries SET active = false WHERE active")
        [(version,)] = conn.execute(
            "INSERT INTO keyword_libraries (source, imported_by, active) VALUES (%s, %s, true) "
            "RETURNING version",
            (source, by),
        ).fetchall()
        with conn.cursor().copy(
            "COPY keyword_entries (version, position, category, keyword, weight) FROM STDIN"
        ) as copy:
            for position, k in enumerate(keywords):
                copy.write_row((version, position, k.category, k.keyword, k.weight))
    return int(version)


def active_version(conn: psycopg.Connection) -> int | None:
    """The active library's version; None when none was imported (the starter is in use)."""
    row = conn.execute("SELECT version FROM keyword_libraries WHERE active").fetchone()
    return None if row is None else int(row[0])


def active_library(conn: psycopg.Connection) -> Library:
    """The library in use: the active imported one, else the starter."""
    row = conn.execute(
        "SELECT version, source, imported_at, imported_by FROM keyword_libraries WHERE active"
    ).fetchone()
    if row is None:
        return starter_library()
    version, source, imported_at, imported_by = row
    entries = conn.execute(
        "SELECT category, keyword, weight FROM keyword_entries WHERE version = %s "
        "ORDER BY position",
        (version,),
    ).fetchall()
    keywords = tuple(Keyword(c, k, w) for c, k, w in entries)
    return Library(version, source, imported_at, imported_by, keywords)


@dataclass(frozen=True, slots=True)
class ActiveMatcher:
    version: int | None
    matcher: Matcher


class LibraryMatchers:
    """The matcher of the active library, built once per version and rebuilt when another
    version becomes active (asked with one indexed lookup per batch or request)."""

    def __init__(self) -> None:
        self._current: ActiveMatcher | None = None
        self._lock = threading.Lock()

    def current(self, conn: psycopg.Connection) -> ActiveMatcher:
        version = active_version(conn)
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            if self._current is None or self._current.version != version:
                library = active_library(conn)
                self._current = ActiveMatcher(library.version, Matcher(library.keywords))
            return self._current
