"""The one rule for visits, inspections and hazards, whichever door they come in by (MQTT or
HTTP).

A visit counts as a sign of life of the resident it names, so it must not be forged: it
names a resident who exists, and comes from a worker whose grids hold that resident's home.
An inspection is a record that a place was inspected (and opens a case per finding), under
the same rule: it names a registered place, from a worker whose grids hold the place.
A hazard from a worker bound to grids lies in one of them (小事不出网格: each grid reports
its own). Who the worker is: the API user of that name if there is one (exactly what the
same user could post over HTTP), else the registered worker of that id and their grid.
An id that is neither may still report hazards — a report of a place forges nobody's
record (GRIDWATCH_REQUIRE_REGISTERED_DEVICES refuses unknown ids altogether) — but no
visit and no inspection: it has no grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

import psycopg

from gridwatch.errors import Forbidden, NotFound
from gridwatch.model.records import HazardReport, PatrolCheckin
from gridwatch.store.grids import PointGrids, point_grids
from gridwatch.store.places import place_sites
from gridwatch.store.residents import resident_grids, worker_grids
from gridwatch.store.users import Principal, active_principals

CHECKED_KINDS = frozenset({"visit", "inspection"})
"""The check-ins this rule looks at: they record something of a resident or a place."""


@dataclass(frozen=True, slots=True)
class Reporter:
    """The grids a worker may report visits (and inspections) and hazards in; None: every
    grid."""

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
    why = "a visit counts as the resident's sign of life"
    _check_record(reporter, "resident", resident_id, resident_grid, exists=exists, why=why)


def check_inspection(
    reporter: Reporter, place_id: str, place_grid: PointGrids | int | None, *, exists: bool
) -> None:
    """NotFound or Forbidden, with a reason, for an inspection the worker may not record: the
    place lies in none of the worker's grids, of either system."""
    why = "an inspection is the record that the place was inspected"
    _check_record(reporter, "place", place_id, place_grid, exists=exists, why=why)


def _check_record(
    reporter: Reporter,
    what: str,
    ident: str,
    grid: PointGrids | int | None,
    *,
    exists: bool,
    why: str,
) -> None:
    """The rule of a check-in that records something of a resident or a place (`what`): it
    exists, and lies in the worker's grids of either system (`why`: what the check-in counts
    as)."""
    shown = repr(ident[:64])
    if not exists:
        raise NotFound(f"no {what} {shown}")
    if reporter.visits is None:
        return
    if not reporter.visits:
        raise Forbidden(
            f"worker {reporter.worker_id[:64]!r} has no grid: {why}, so only a worker of the "
            f"{what}'s grid may record one"
        )
    if not _within(reporter.visits, point_grids(grid)):
        # The same words as for one that does not exist: another grid's residents and places
        # are not even confirmed to exist.
        raise NotFound(f"no {what} {shown} in the grids of worker {reporter.worker_id[:64]!r}")


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
    """The rule over a batch of (visit, inspection or hazard, the hazard's grids): for each,
    None when it may be stored, else the refusal saying why."""
    residents = resident_grids(
        conn, {r.resident_id for r, _ in reports if _is_visit(r) and r.resident_id}
    )
    places = place_sites(conn, {r.place_id for r, _ in reports if _is_inspection(r) and r.place_id})
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
            elif _is_inspection(report):
                place = report.place_id or ""
                site = places.get(place)
                grids = None if site is None else site.grids
                check_inspection(reporter, place, grids, exists=site is not None)
        except (NotFound, Forbidden) as refusal:
            refusals.append(refusal)
        else:
            refusals.append(None)
    return refusals


def _is_visit(report: Report) -> TypeGuard[PatrolCheckin]:
    return isinstance(report, PatrolCheckin) and report.kind == "visit"


def _is_inspection(report: Report) -> TypeGuard[PatrolCheckin]:
    return isinstance(report, PatrolCheckin) and report.kind == "inspection"


def _source(report: Report) -> str:
    return report.reporter_id if isinstance(report, HazardReport) else report.worker_id
