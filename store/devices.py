"""The device registry: who may publish as which meter, sensor or worker, and who no longer may.

Each device logs in to the broker as its `broker_user`: its own id, or for an app the worker
it speaks for. The broker's ACL patterns let a user publish only under that name, so two
devices of different kinds must not share one; registering refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gridwatch.errors import Conflict, InputFileError, NotFound

KINDS = ("meter", "sensor", "app")
_LOCK_KEY = 0x67770009  # serialises registrations (and the password file edits they carry)
# Changes when a device or worker is added, changed, revoked or deleted.
_VERSION = (
    "SELECT (SELECT count(*) FROM devices), (SELECT max(updated_at) FROM devices), "
    "(SELECT count(*) FROM workers), (SELECT max(updated_at) FROM workers)"
)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device as registered; `broker_user` is the name it logs in to the broker with."""

    kind: str
    id: str
    resident_id: str | None
    worker_id: str | None
    broker_user: str
    credentials_issued_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


# What the queries below return, in a DeviceRow's order.
_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(DeviceRow))


@dataclass(frozen=True, slots=True)
class Registration:
    """A device just registered, and what the caller needs to know about its broker user."""

    device: DeviceRow
    user_had_credentials: bool  # so an existing password file line for it is ours to replace
    known_worker: bool  # an app's worker is in the workers table


@dataclass(frozen=True, slots=True)
class TopicIdentities:
    """Per source kind (meter, sensor, worker: patrol, hazard and OwnTracks), the ids that
    may publish and those that were revoked, with the version of the tables read."""

    allowed: dict[str, frozenset[str]]
    revoked: dict[str, frozenset[str]]
    version: tuple


def register_device(
    conn: psycopg.Connection,
    device_id: str,
    *,
    kind: str,
    resident_id: str | None = None,
    worker_id: str | None = None,
) -> Registration:
    """Register a device (or re-register a revoked one) with fresh credentials.

    Runs in the caller's transaction, which holds a lock until it ends, so the caller can
    write the broker's password file before anyone else registers.
    """
    check_owner(kind, resident_id, worker_id)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    user = device_id if worker_id is None else worker_id  # only an app has a worker (checked)
    if resident_id is not None and not _exists(conn, "residents", resident_id):
        raise NotFound(f"no resident {resident_id!r} (import the residents first)")
    current = _device(conn, kind, device_id)
    if kind == "app" and current and current.revoked_at is None and current.worker_id != user:
        raise Conflict(
            f"app {device_id!r} speaks for worker {current.worker_id!r}; revoke it before "
            f"giving it to {user!r}"
        )
    _refuse_shared_user(conn, kind, device_id, user)
    [(had_credentials,)] = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE broker_user = %s "
        "AND credentials_issued_at IS NOT NULL)",
        (user,),
    ).fetchall()
    with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        [device] = cur.execute(
            sql.SQL(
                """
                INSERT INTO devices (kind, id, resident_id, worker_id, credentials_issued_at)
                VALUES (%s, %s, %s, %s, now())
                ON CONFLICT (kind, id) DO UPDATE SET
                    resident_id = coalesce(EXCLUDED.resident_id, devices.resident_id),
                    worker_id = EXCLUDED.worker_id,
                    credentials_issued_at = now(), revoked_at = NULL, updated_at = now()
                RETURNING {}
                """
            ).format(_COLUMNS),
            (kind, device_id, resident_id, worker_id),
        ).fetchall()
    known_worker = kind == "app" and _exists(conn, "workers", user)
    return Registration(device, had_credentials, known_worker)


def check_owner(kind: str, resident_id: str | None, worker_id: str | None) -> None:
    """A meter or sensor may belong to a resident; an app must speak for a worker."""
    if kind not in KINDS:
        raise InputFileError(f"unknown device kind {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "app" and worker_id is None:
        raise InputFileError("an app needs --worker W: the worker id it publishes as")
    if kind == "app" and resident_id is not None:
        raise InputFileError("an app speaks for a worker (--worker), not for a resident")
    if kind != "app" and worker_id is not None:
        raise InputFileError(f"a {kind} belongs to a resident (--resident), not to a worker")


def revoke_device(
    conn: psycopg.Connection, device_id: str, *, kind: str | None = None
) -> tuple[DeviceRow, bool]:
    """Revoke a device in the caller's transaction; returns it and whether its broker user
    is now unused (no other active device logs in with it)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        found = cur.execute(
            sql.SQL(
                "SELECT {} FROM devices WHERE id = %s AND (%s::text IS NULL OR kind = %s)"
            ).format(_COLUMNS),
            (device_id, kind, kind),
        ).fetchall()
        if not found:
            what = f"{kind} " if kind else "device "
            raise NotFound(f"no {what}{device_id!r} is registered")
        if len(found) > 1:
            kinds = " and ".join(d.kind for d in found)
            raise Conflict(f"{device_id!r} is registered as {kinds}: give --kind")
        [device] = cur.execute(
            sql.SQL(
                """
                UPDATE devices SET revoked_at = coalesce(revoked_at, now()), updated_at = now()
                WHERE kind = %s AND id = %s RETURNING {}
                """
            ).format(_COLUMNS),
            (found[0].kind, device_id),
        ).fetchall()
    [(still_used,)] = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE broker_user = %s AND revoked_at IS NULL)",
        (device.broker_user,),
    ).fetchall()
    return device, not still_used


def list_devices(conn: psycopg.Connection, *, kind: str | None = None) -> list[DeviceRow]:
    """Every registered device (of `kind`), revoked ones included, by kind and id."""
    with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        return cur.execute(
            sql.SQL(
                "SELECT {} FROM devices WHERE %s::text IS NULL OR kind = %s ORDER BY kind, id"
            ).format(_COLUMNS),
            (kind, kind),
        ).fetchall()


def registry_version(conn: psycopg.Connection) -> tuple:
    """A value that changes whenever the devices or workers change."""
    [version] = conn.execute(_VERSION).fetchall()
    return version


def load_topic_identities(conn: psycopg.Connection) -> TopicIdentities:
    """Who may publish as which meter, sensor or worker.

    A worker publishes through an active app, or, when no app of theirs was ever revoked,
    simply by being a known worker (so patrol apps work before any is registered); once
    all their apps are revoked they are refused until a new one is added.
    """
    version = registry_version(conn)
    active: dict[str, set[str]] = {kind: set() for kind in KINDS}
    revoked: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for kind, broker_user, is_revoked in conn.execute(
        "SELECT kind, broker_user, revoked_at IS NOT NULL FROM devices"
    ):
        (revoked if is_revoked else active)[kind].add(broker_user)
    workers = {worker for (worker,) in conn.execute("SELECT id FROM workers")}
    revoked_workers = revoked["app"] - active["app"]
    return TopicIdentities(
        allowed={
            "meter": frozenset(active["meter"]),
            "sensor": frozenset(active["sensor"]),
            "worker": frozenset((workers - revoked_workers) | active["app"]),
        },
        revoked={
            "meter": frozenset(revoked["meter"]),
            "sensor": frozenset(revoked["sensor"]),
            "worker": frozenset(revoked_workers),
        },
        version=version,
    )


def _refuse_shared_user(conn: psycopg.Connection, kind: str, device_id: str, user: str) -> None:
    """Refuse a broker user that another active device, or a worker, already answers to."""
    other = conn.execute(
        "SELECT kind, id FROM devices WHERE broker_user = %s AND revoked_at IS NULL "
        "AND NOT (kind = %s AND id = %s) ORDER BY kind = 'app' DESC LIMIT 1",
        (user, kind, device_id),
    ).fetchone()
    if other is not None:
        other_kind, other_id = other
        if other_kind == "app" and kind == "app":
            raise Conflict(
                f"worker {user!r} already has app {other_id!r}, and a broker user holds one "
                f"password: revoke it first (gridwatch devices revoke {other_id} --kind app)"
            )
        owner = (
            f"worker {user!r} (app {other_id!r})"
            if other_kind == "app"
            else f"{other_kind} {other_id!r}"
        )
        raise Conflict(
            f"broker user {user!r} already belongs to {owner}: with one name the broker would "
            "let either publish as the other; ids must differ between meters, sensors and "
            "workers"
        )
    if kind != "app" and _exists(conn, "workers", user):
        raise Conflict(
            f"{device_id!r} is also a worker's id: as broker user it could publish that "
            "worker's patrols; ids must differ between meters, sensors and workers"
        )


def _device(conn: psycopg.Connection, kind: str, device_id: str) -> DeviceRow | None:
    with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        return cur.execute(
            sql.SQL("SELECT {} FROM devices WHERE kind = %s AND id = %s").format(_COLUMNS),
            (kind, device_id),
        ).fetchone()


def _exists(conn: psycopg.Connection, table: str, row_id: str) -> bool:
    query = _EXISTS[table]
    [(exists,)] = conn.execute(query, (row_id,)).fetchall()
    return exists


_EXISTS = {
    "residents": "SELECT EXISTS (SELECT 1 FROM residents WHERE id = %s)",
    "workers": "SELECT EXISTS (SELECT 1 FROM workers WHERE id = %s)",
}
