"""The register of places on screen (/console/places, 场所巡查): each place of the caller's
grids with its inspection clock — last inspection, next due, overdue and by how long, the
level an overdue one has gone up to — and its open findings, each a link to its case. Read
with the scope and masking of the places layer (/collections/places/items): the person
responsible and their phone are masked here, as the layer shows them unless `pii=true`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from gridwatch.api.auth import PageViewer, scope_filters
from gridwatch.api.collections import subtree_ids
from gridwatch.api.console import console_page, grid_choices
from gridwatch.api.features import place_feature
from gridwatch.api.hazards import GridQ
from gridwatch.api.http_errors import BadRequest
from gridwatch.api.runtime import Conn, State
from gridwatch.maps.console import duration_text
from gridwatch.maps.texts import texts_for
from gridwatch.model.vocabulary import PLACE_KINDS
from gridwatch.store.grids import GridCatalog
from gridwatch.store.places import (
    PLACE_ORDERS,
    OpenFinding,
    PlaceRecord,
    open_findings,
    place_table,
)

router = APIRouter(tags=["console"])

PAGE = 200
FormQ = Annotated[str | None, Query(max_length=20)]
# The table's columns in order; all but the contact sort by the key of PLACE_ORDERS they name.
COLUMNS = ("name", "kind", "grid", "contact", "last", "due", "level", "findings")


def _yes_no(value: str | None, name: str) -> bool | None:
    """A form's true/false choice; empty is no filter."""
    if not value:
        return None
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return value == "true"


@router.get(
    "/console/places", response_class=HTMLResponse, summary="The places register (场所巡查)"
)
def places_view(
    principal: PageViewer,
    conn: Conn,
    state: State,
    kind: FormQ = None,
    grid: GridQ = None,
    overdue: FormQ = None,
    findings: FormQ = None,
    sort: FormQ = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
):
    """The places of the caller's grids with the filters of the places layer (a filter left
    empty in the form is no filter), sorted by a heading (default: the next due first, the
    most overdue on top), a page of PAGE places at a time."""
    t = texts_for(state.settings.lang)
    if kind and kind not in PLACE_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(PLACE_KINDS)}")
    if sort and sort.removeprefix("-") not in PLACE_ORDERS:
        raise BadRequest(f"sort must be one of {', '.join(PLACE_ORDERS)}, '-' first for descending")
    late, open_ = _yes_no(overdue, "overdue"), _yes_no(findings, "findings")
    catalog = state.catalog(conn)
    now = state.now()
    scope = scope_filters(principal, grid_ids=subtree_ids(catalog, principal, grid or None))
    rows, matched = place_table(
        conn,
        scope,
        now=now,
        limit=PAGE,
        offset=offset,
        kinds=[kind] if kind else None,
        overdue=late,
        findings=open_,
        order=sort or None,
    )
    _, overdue_count = place_table(  # the overdue among them: a count, no rows
        conn,
        scope,
        now=now,
        limit=0,
        kinds=[kind] if kind else None,
        overdue=True,
        findings=open_,
    )
    briefs = open_findings(conn, [r.id for r in rows if r.open_findings])
    q = {"kind": kind, "grid": grid, "overdue": overdue, "findings": findings, "sort": sort}
    chosen = {k: v for k, v in q.items() if v}
    pl = t["places"]
    c = t["console"]
    words = {"name": pl["place"], "kind": pl["place_kind"], "grid": c["grid"], "level": c["level"]}
    headings = {key: words.get(key) or pl[key] for key in COLUMNS}
    return console_page(
        state,
        principal,
        "console/places.html",
        "places",
        pl["title"],
        pl=pl,
        q={k: v or "" for k, v in q.items()},
        choices={
            "kind": list(pl["kind"].items()),
            "grid": grid_choices(t, catalog, principal),
            "sort": [
                (f"{way}{key}", f"{label} {mark}")
                for key, label in headings.items()
                if key in PLACE_ORDERS
                for way, mark in (("", "▲"), ("-", "▼"))
            ],
        },
        rows=[_row(t, catalog, r, briefs.get(r.id, []), now) for r in rows],
        headings=list(headings.items()),
        sort_links=_sort_links(chosen, sort),
        matched_text=pl["matched"].format(n=matched),
        overdue_text=pl["overdue_count"].format(n=overdue_count) if overdue_count else "",
        shown_text=t["console"]["shown"].format(n=len(rows)) if matched > len(rows) else "",
        prev_url=_url(chosen | {"offset": max(offset - PAGE, 0)}) if offset else None,
        next_url=_url(chosen | {"offset": offset + PAGE}) if offset + PAGE < matched else None,
        script_data={},
    )


def _url(query: dict) -> str:
    return "/console/places" + ("?" + urlencode(query) if query else "")


def _sort_links(chosen: dict, sort: str | None) -> dict[str, tuple[str, str]]:
    """Each sortable column's (link, mark): a click sorts by it, a second click the other way."""
    links = {}
    for key in PLACE_ORDERS:
        then = f"-{key}" if sort == key else key
        mark = " ▲" if sort == key else " ▼" if sort == f"-{key}" else ""
        links[key] = (_url(chosen | {"sort": then}), mark)
    return links


def _row(
    t: dict, catalog: GridCatalog, place: PlaceRecord, briefs: list[OpenFinding], now: datetime
) -> dict:
    """One place as the page shows it: its contact masked as the layer masks it."""
    c, pl = t["console"], t["places"]
    shown = place_feature(place, now, clear=False)["properties"]
    grid = catalog.by_id.get(place.grid_id) if place.grid_id is not None else None
    hours = (now - place.next_due_at).total_seconds() / 3600
    return {
        "id": place.id,
        "name": place.name,
        "address": place.address,
        "kind_label": pl["kind"].get(place.kind, place.kind),
        "every_text": pl["every"].format(n=place.inspect_every_days),
        "grid": place.grid_code or "",
        "grid_name": grid.name if grid else "",
        "contact": " · ".join(x for x in (shown["contact"], shown["phone"]) if x),
        "last_inspected_at": place.last_inspected_at,
        "next_due_at": place.next_due_at,
        "overdue": shown["overdue"],
        "due_text": c["overdue_by"].format(h=duration_text(hours, c))
        if shown["overdue"]
        else pl["due_in"].format(h=duration_text(-hours, c)),
        "level": place.level,
        "level_label": t["level"].get(place.level, place.level),
        "findings": [
            {
                "id": str(f.id),
                "label": f"{t['category'].get(f.category, f.category)} · "
                f"{t['severity'].get(f.severity, f.severity)}",
                "status_label": t["status"].get(f.status, f.status),
            }
            for f in briefs
        ],
    }
