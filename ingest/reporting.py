"""The one rule for visits and hazards, whichever door they come in by (MQTT or HTTP).

A visit counts as a sign of life of the resident it names, so it must not be forged: it
names a resident who exists, and comes from a worker whose grids hold that resident's home.
A hazard from a worker bound to grids lies in one of them (小事不出网格: each grid reports
its own). Who the worker is: the API user of that name if there is one (exactly what the
same user could post over HTTP), else the registered worker of that id and their grid.
An id that is neither may still report hazards — a report of a place forges nobody's
record (GRIDWATCH_REQUIRE_REGISTERED_DEVICES refuses unknown ids altogether) — but no
visit: it has no grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

import psycopg

from gridwatch.errors import Forbidden, NotFound
from gridwatch.model.records import HazardReport, PatrolCheckin
from gridwatch.store.grids import PointGrids, point_grids
from gridwatch.store.residents import resident_grids, worker_grids
from gridwatch.store.users import Principal, active_principals


@dataclass(frozen=True, slots=True)
class Reporter:
    """The grids a worker may report visits and hazards in; None: every grid."""

    worker_id: str
    visits: frozenset[int] | None
    hazards: frozenset[int] | None


def reporter_from(
    worker_id: str, user: Principal | None, worker_grids: frozenset[int], registered: bool
) -> Reporter:
    """What `worker_id` may report, from its API user or, without one, its worker row."""
    if user is not None:
        # The HTTP roles: a grid worker and a duty officer keep to their grids (a duty
        # officer's hazards may lie anywhere); an administrator goes anywhere; a device
        # token is no worker and has no grid to visit in.
        visits = frozenset() if user.role == "device" else user.grid_ids
        hazards = user.grid_ids if user.role == "grid_worker" else None
        return Reporter(worker_id, visits, hazards)
    if registered:
        return Reporter(worker_id, worker_grids, worker_grids)
    return Reporter(worker_id, frozenset(), None)


def load_reporters(conn: psycopg.Connection, worker_ids: Iterable[str]) -> dict[str, Reporter]:
    """The reporters of these worker ids, each looked up once."""
    ids = sorted(set(worker_ids))
    users = active_principals(conn, ids)
    workers = worker_grids(conn, ids)
    return {
        w: reporter_from(w, users.get(w), workers.get(w, frozenset()), w in workers) for w in ids
    }


def check_visit(
    reporter: Reporter,
    resident_id: str,
    resident_grid: PointGrids | int | None,
    *,
    exists: bool,
) -> None:
    """NotFound or Forbidden, with a reason, for a visit the worker may not record: the
    resident's home lies in none of the worker's grids, of either system."""
    shown = repr(resident_id[:64])
    if not exists:
        raise NotFound(f"no resident {shown}")
    if reporter.visits is None:
        return
    if not reporter.visits:
        raise Forbidden(
            f"worker {reporter.worker_id[:64]!r} has no grid: a visit counts as the resident's "
            "sign of life, so only a worker of the resident's grid may record one"
        )
    if not _within(reporter.visits, point_grids(resident_grid)):
        # The same words as for a resident who does not exist: another grid's residents
        # are not even confirmed to exist.
        raise NotFound(f"no resident {shown} in the grids of worker {reporter.worker_id[:64]!r}")


def check_hazard(reporter: Reporter, grid_id: PointGrids | int | None) -> None:
    """Forbidden, with a reason, for a hazard outside the grids of a grid-bound worker (of
    either system: a police officer's hazard lies in one of their police grids)."""
    if reporter.hazards is not None and not _within(reporter.hazards, point_grids(grid_id)):
        raise Forbidden(
            f"the hazard lies outside the grids of worker {reporter.worker_id[:64]!r}; report "
            "it to the grid it is in or to the duty officer"
        )


def _within(grids: frozenset[int], point: PointGrids) -> bool:
    """Whether the point lies in one of `grids` (grid ids of either system)."""
    return any(g is not None and g in grids for g in point)


Report = PatrolCheckin | HazardReport


def check_reports(
    conn: psycopg.Connection, reports: Sequence[tuple[Report, PointGrids | int | None]]
) -> list[NotFound | Forbidden | None]:
    """The rule over a batch of (visit or hazard, the hazard's grids): for each, None when it
    may be stored, else the refusal saying why."""
    residents = resident_grids(
        conn, {r.resident_id for r, _ in reports if _is_visit(r) and r.resident_id}
    )
    reporters = load_reporters(conn, (_source(r) for r, _ in reports))
    refusals: list[NotFound | Forbidden | None] = []
    for report, grid_id in reports:
        reporter = reporters[_source(report)]
        try:
            if isinstance(report, HazardReport):
                check_hazard(reporter, grid_id)
            elif _is_visit(report):
                resident = report.resident_id or ""
                check_visit(
                    reporter, resident, residents.get(resident), exists=resident in residents
                )
        except (NotFound, Forbidden) as refusal:
            refusals.append(refusal)
        else:
            refusals.append(None)
    return refusals


def _is_visit(report: Report) -> TypeGuard[PatrolCheckin]:
    return isinstance(report, PatrolCheckin) and report.kind == "visit"


def _source(report: Report) -> str:
    return report.reporter_id if isinstance(report, HazardReport) else report.worker_id
