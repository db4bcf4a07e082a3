"""API users and their tokens: only a SHA-256 of each token is stored, never the token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from gridwatch.errors import Conflict, InputFileError, NotFound

ROLES = ("admin", "duty_officer", "grid_worker", "device")
DUTY_LEVELS = ("street", "community")
TOKEN_PREFIX = "gw_"  # noqa: S105 - marks a gridwatch token (for secret scanners); not a secret


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and which grids they may see (`grid_ids` None: every grid). A user may
    be given grids of either system (a police officer their 警格); `grid_ids` holds the
    visible grids of both, `police_grid_ids` those of them that are police grids."""

    user_id: int
    name: str
    role: str
    level: str | None
    grid_codes: tuple[str, ...]
    grid_ids: frozenset[int] | None
    police_grid_ids: frozenset[int] = frozenset()

    @property
    def sees_all(self) -> bool:
        return self.grid_ids is None

    def sees_grid(self, grid_id: int | None, police_grid_id: int | None = None) -> bool:
        """Whether an object placed in `grid_id` (None: outside every grid), and in the police
        system in `police_grid_id`, is visible: it is when either grid is."""
        if self.grid_ids is None:
            return True
        if grid_id is not None and grid_id in self.grid_ids:
            return True
        return police_grid_id is not None and police_grid_id in self.police_grid_ids

    def scope_param(self) -> list[int]:
        """The visible grid ids as an SQL array parameter (empty when every grid is visible)."""
        return sorted(self.grid_ids) if self.grid_ids is not None else []

    def police_scope_param(self) -> list[int]:
        """The visible police grids as an SQL array parameter (empty: none, or every grid)."""
        return sorted(self.police_grid_ids)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    level: str | None
    grids: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def create_user(
    conn: psycopg.Connection,
    name: str,
    *,
    role: str,
    grid_codes: tuple[str, ...] = (),
    level: str | None = None,
) -> str:
    """Create a user and return their token (the only time it exists in clear)."""
    name = name.strip()
    if not name or len(name) > 128 or any(ord(c) < 0x20 for c in name):
        raise InputFileError("a user name must be 1 to 128 printable characters")
    if role not in ROLES:
        raise InputFileError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    if level is not None and level not in DUTY_LEVELS:
        raise InputFileError(f"unknown level {level!r}: expected street or community")
    if role in ("admin", "device") and grid_codes:
        raise InputFileError(f"a {role} is not bound to grids; leave out --grid")
    if role != "duty_officer" and level is not None:
        raise InputFileError("--level applies to duty officers only")
    if role == "grid_worker" and not grid_codes:
        raise InputFileError("a grid worker needs at least one --grid CODE")
    if level is not None and not grid_codes:
        raise InputFileError(f"a {level} duty officer needs --grid CODE of their {level}")
    token = new_token()
    with conn.transaction():
        grids = []
        for code in dict.fromkeys(grid_codes):
            row = conn.execute("SELECT id, level FROM grids WHERE code = %s", (code,)).fetchone()
            if row is None:
                raise NotFound(f"no grid with code {code!r}")
            if level is not None and row[1] != level:
                raise InputFileError(f"grid {code!r} is a {row[1]}, not a {level}")
            grids.append(row[0])
        taken = conn.execute(
            "SELECT 1 FROM api_users WHERE name = %s AND revoked_at IS NULL", (name,)
        ).fetchone()
        if taken:
            raise Conflict(f"user {name!r} exists; revoke it first to issue a new token")
        [(user_id,)] = conn.execute(
            "INSERT INTO api_users (name, role, level, token_sha256) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (name, role, level, token_digest(token)),
        ).fetchall()
        for grid_id in grids:
            conn.execute(
                "INSERT INTO api_user_grids (user_id, grid_id) VALUES (%s, %s)", (user_id, grid_id)
            )
    return token


def revoke_user(conn: psycopg.Connection, name: str, *, now: datetime) -> None:
    """Revoke a user's token and end their sessions."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE api_users SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL "
            "RETURNING id",
            (now, name),
        ).fetchone()
        if row is None:
            raise NotFound(f"no active user {name!r}")
        conn.execute("DELETE FROM api_sessions WHERE user_id = %s", (row[0],))


def reissue_token(conn: psycopg.Connection, name: str) -> str:
    """A new token for an active user, returned in clear this once; the old token stops
    working and the user's browser sessions end."""
    token = new_token()
    with conn.transaction():
        row = conn.execute(
            "UPDATE api_users SET token_sha256 = %s WHERE name = %s AND revoked_at IS NULL "
            "RETURNING id",
            (token_digest(token), name),
        ).fetchone()
        if row is None:
            raise NotFound(f"no active user {name!r}")
        conn.execute("DELETE FROM api_sessions WHERE user_id = %s", (row[0],))
    return token


def list_users(conn: psycopg.Connection) -> list[UserRow]:
    rows = conn.execute(
        """
        SELECT u.id, u.name, u.role, u.level,
               coalesce(array_agg(g.code ORDER BY g.code) FILTER (WHERE g.code IS NOT NULL), '{}'),
               u.created_at, u.revoked_at
        FROM api_users u
        LEFT JOIN api_user_grids ug ON ug.user_id = u.id
        LEFT JOIN grids g ON g.id = ug.grid_id
        GROUP BY u.id ORDER BY u.name, u.id
        """
    ).fetchall()
    return [UserRow(r[0], r[1], r[2], r[3], tuple(r[4]), r[5], r[6]) for r in rows]


def principal_for_token(conn: psycopg.Connection, token: str) -> Principal | None:
    """The active user holding `token`, with their visible grids; None if there is none."""
    digest = token_digest(token)
    row = conn.execute(
        "SELECT id, token_sha256 FROM api_users WHERE token_sha256 = %s AND revoked_at IS NULL",
        (digest,),
    ).fetchone()
    # The lookup is by digest; comparing again in constant time costs nothing and keeps the
    # check independent of how the index compares.
    if row is None or not hmac.compare_digest(bytes(row[1]), digest):
        return None
    return _principal(conn, row[0])


def principal_for_session(
    conn: psycopg.Connection, session_id: str, *, now: datetime
) -> Principal | None:
    """The user of an unexpired browser session."""
    digest = token_digest(session_id)
    row = conn.execute(
        "SELECT s.user_id, s.id_sha256 FROM api_sessions s JOIN api_users u ON u.id = s.user_id "
        "WHERE s.id_sha256 = %s AND s.expires_at > %s AND u.revoked_at IS NULL",
        (digest, now),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[1]), digest):
        return None
    return _principal(conn, row[0])


def active_principals(conn: psycopg.Connection, names: Sequence[str]) -> dict[str, Principal]:
    """The active users of these names, with their visible grids (a worker id over MQTT is
    the name of the same worker's API user)."""
    rows = conn.execute(
        "SELECT name, id FROM api_users WHERE name = ANY(%s) AND revoked_at IS NULL",
        (list(names),),
    ).fetchall()
    return {name: _principal(conn, user_id) for name, user_id in rows}


def create_session(
    conn: psycopg.Connection, user_id: int, *, now: datetime, expires_at: datetime
) -> str:
    """A new browser session for `user_id`; returns its id (kept only as a hash). Sessions
    expired at `now` go: by the clock that reads them (`principal_for_session`), not the
    database's."""
    session_id = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM api_sessions WHERE expires_at < %s", (now,))
        conn.execute(
            "INSERT INTO api_sessions (id_sha256, user_id, expires_at) VALUES (%s, %s, %s)",
            (token_digest(session_id), user_id, expires_at),
        )
    return session_id


def end_session(conn: psycopg.Connection, session_id: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM api_sessions WHERE id_sha256 = %s", (token_digest(session_id),))


def _principal(conn: psycopg.Connection, user_id: int) -> Principal:
    [(name, role, level)] = conn.execute(
        "SELECT name, role, level FROM api_users WHERE id = %s", (user_id,)
    ).fetchall()
    roots = conn.execute(
        "SELECT g.id, g.code FROM api_user_grids ug JOIN grids g ON g.id = ug.grid_id "
        "WHERE ug.user_id = %s ORDER BY g.code",
        (user_id,),
    ).fetchall()
    codes = tuple(code for _, code in roots)
    grid_ids: frozenset[int] | None = None
    police: frozenset[int] = frozenset()
    if role in ("grid_worker", "duty_officer") and roots:
        # A user sees the grids they were given and every grid below them (a parent is of
        # its child's system, so the grids below a police grid are police grids).
        below = conn.execute(
            """
            WITH RECURSIVE sub AS (
                SELECT id FROM grids WHERE id = ANY(%s)
                UNION
                SELECT g.id FROM grids g JOIN sub ON g.parent_id = sub.id
            )
            SELECT sub.id, g.system = 'police' FROM sub JOIN grids g ON g.id = sub.id
            """,
            ([gid for gid, _ in roots],),
        ).fetchall()
        grid_ids = frozenset(gid for gid, _ in below)
        police = frozenset(gid for gid, is_police in below if is_police)
    elif role == "grid_worker":
        grid_ids = frozenset()  # grids deleted since: sees nothing
    elif role == "device":
        grid_ids = frozenset()  # devices post; they read nothing
    return Principal(user_id, name, role, level, codes, grid_ids, police)
