"""The police's grids (警格) over the API: every layer, the ledger and patrol coverage cut by
either system (`?system=police&grid=…`), a user given police grids seeing the points in them
(kept answers and database answers alike), and the HTTP door placing a report in both systems
and refusing a police officer's report from another grid."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from gridwatch.simulators.sample import load_police_grids
from gridwatch.store.filters import local_day_bounds
from gridwatch.store.users import create_user
from tests.support.api import (
    GRID_A,
    NOW,
    ApiServer,
    Clock,
    api_settings,
    hotline_request,
    open_alert,
    reason,
    warning_cases,
)
from tests.support.databases import count_rows, fetch_all

POLICE_GRID = "GA-QS-1-1-01"  # a 警格 of the sample district's police layer
POLICE_AREA = "GA-QS-1-1"  # its 警务区
STATION = "GA-QS-1"  # its 派出所
OTHER_POLICE_GRID = "GA-QS-2-3-06"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Police:
    """Users given police grids: a police officer of one 警格, a duty officer of a 派出所."""

    officer: str
    station: str

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


@pytest.fixture(scope="module", autouse=True)
def police_layer(seeded_url, tmp_path_factory) -> None:
    """The sample district's police grids, imported into this module's database after its
    sample activity was stored (which the import places in them) and before its server
    starts."""
    with psycopg.connect(seeded_url) as conn:
        load_police_grids(conn, tmp_path_factory.mktemp("police"))


@pytest.fixture(scope="module")
def police(seeded_url) -> Police:
    with psycopg.connect(seeded_url) as conn:
        return Police(
            officer=create_user(conn, "PO-1", role="grid_worker", grid_codes=(POLICE_GRID,)),
            station=create_user(
                conn, "PS-duty", role="duty_officer", grid_codes=(STATION,), level="street"
            ),
        )


def _subtree(url: str, code: str) -> list[int]:
    rows = fetch_all(
        url,
        """
        WITH RECURSIVE sub AS (
            SELECT id FROM grids WHERE code = %s
            UNION SELECT g.id FROM grids g JOIN sub ON g.parent_id = sub.id
        ) SELECT id FROM sub
        """,
        (code,),
    )
    return [gid for (gid,) in rows]


# What each point layer holds in police grids `ids`, as the database tells it: the table and
# its condition. A resident's alert is where the resident lives; every other row has its own.
OWN_POLICE_GRID = "police_grid_id = ANY(%s)"
IN_POLICE = {
    **{
        layer: (table, OWN_POLICE_GRID)
        for layer, table in [
            ("hazards", "hazard_reports"),
            ("checkins", "patrol_checkins"),
            ("residents", "residents"),
            ("requests", "requests"),
            ("warnings", "warnings"),
            ("places", "places"),
        ]
    },
    "alerts": (
        "alerts",
        "EXISTS (SELECT 1 FROM residents r WHERE r.id = resident_id "
        "AND r.police_grid_id = ANY(%s))",
    ),
}


def _matched(client: httpx.Client, layer: str, **params) -> int:
    answer = client.get(f"/collections/{layer}/items", params={"limit": 1, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["numberMatched"]


@pytest.mark.parametrize("code", [POLICE_GRID, POLICE_AREA, STATION])
def test_every_layer_is_cut_by_a_police_grid_and_all_below_it(http, seeded_url, code):
    ids = _subtree(seeded_url, code)
    for layer, (table, where) in IN_POLICE.items():
        expected = count_rows(seeded_url, table, where, (ids,))
        assert expected > 0 or code == POLICE_GRID, (layer, code)  # something in a 派出所
        assert _matched(http["admin"], layer, system="police", grid=code) == expected, layer


def test_the_grids_layer_shows_one_system_at_a_time(http):
    def codes(**params) -> dict[str, str]:
        page = http["admin"].get("/collections/grids/items", params={"limit": 500, **params})
        assert page.status_code == 200, page.text
        return {f["properties"]["code"]: f["properties"]["system"] for f in page.json()["features"]}

    management, police = codes(), codes(system="police")
    assert len(management) == 120 and set(management.values()) == {"management"}
    assert len(police) == 45 and set(police.values()) == {"police"}
    assert set(codes(system="police", level="grid")) == {c for c in police if c.count("-") == 4}
    assert set(codes(system="police", grid=POLICE_AREA)) == {
        c for c in police if c.startswith(POLICE_AREA)
    }
    one = http["admin"].get(f"/collections/grids/items/{POLICE_GRID}").json()
    assert one["properties"]["system"] == "police" and one["properties"]["parent"] == POLICE_AREA
    assert one["properties"]["residents"] > 0


def test_a_grid_of_the_other_system_or_an_unknown_system_is_a_clear_4xx(http):
    admin = http["admin"]
    forgot = admin.get("/collections/hazards/items", params={"grid": POLICE_GRID})
    assert forgot.status_code == 422 and "system=police" in reason(forgot)
    crossed = admin.get("/ledger", params={"system": "police", "grid": GRID_A})
    assert crossed.status_code == 422 and "management grid" in reason(crossed)
    unknown = admin.get("/collections/checkins/items", params={"system": "fire", "grid": "X"})
    assert unknown.status_code == 422
    missing = admin.get("/coverage", params={"system": "police", "grid": "GA-NOPE"})
    assert missing.status_code == 404 and "no grid" in reason(missing)


def test_a_police_officer_sees_the_points_of_their_police_grid(module_server, http, police):
    """Whatever management grids those points lie in; nothing of another grid, of either
    system, is even confirmed to exist; people stay masked (their grid is the management's)."""
    url = module_server.state.settings.database_url
    own = _subtree(url, POLICE_GRID)
    with module_server.client() as officer:
        officer.headers.update(police.header("officer"))
        for layer, (table, where) in IN_POLICE.items():
            if layer in ("checkins", "requests"):  # and what they posted themselves
                where = (
                    f"({where} OR {'worker_id' if layer == 'checkins' else 'reporter'} = 'PO-1')"
                )
            assert _matched(officer, layer) == count_rows(url, table, where, (own,)), layer
        assert _matched(officer, "hazards", system="police", grid=POLICE_GRID) > 0
        for path, params in (
            ("/collections/hazards/items", {"grid": GRID_A}),
            ("/collections/hazards/items", {"system": "police", "grid": OTHER_POLICE_GRID}),
            (f"/collections/grids/items/{OTHER_POLICE_GRID}", {}),
        ):
            answer = officer.get(path, params=params)
            assert answer.status_code == 404, (path, params, answer.text)
        inside, outside = (
            fetch_all(
                url, f"SELECT id FROM hazard_reports WHERE police_grid_id {op} ANY(%s)", (own,)
            )[0][0]
            for op in ("=", "<>")
        )
        assert officer.get(f"/collections/hazards/items/{inside}").status_code == 200
        assert officer.get(f"/collections/hazards/items/{outside}").status_code == 404
        for layer in ("residents", "places"):
            shown = officer.get(f"/collections/{layer}/items", params={"pii": "true"})
            assert shown.status_code == 403, layer
    # A management worker sees none of them unless they lie in their own grid too.
    worker = _matched(http["worker_a"], "hazards")
    assert worker == count_rows(
        url, "hazard_reports", "grid_id = ANY(%s)", (_subtree(url, GRID_A),)
    )


def _hazard(lon: float, lat: float) -> dict:
    return {"id": str(uuid.uuid4()), "ts": "2026-11-23T11:00:00+08:00", "lon": lon, "lat": lat,
            "category": "road", "severity": "low", "description": "井盖缺失"}  # fmt: skip


def _inside(url: str, code: str) -> tuple[float, float]:
    """A point inside grid `code` (the same in both systems' indexes)."""
    import shapely

    [(wkb,)] = fetch_all(url, "SELECT geometry FROM grids WHERE code = %s", (code,))
    point = shapely.from_wkb(bytes(wkb)).buffer(-0.0003).representative_point()
    return point.x, point.y


def test_reports_over_http_are_placed_in_both_systems_and_kept_to_the_reporters_grids(
    module_server, http, police
):
    url = module_server.state.settings.database_url
    lon, lat = _inside(url, POLICE_GRID)
    with module_server.client() as officer:
        officer.headers.update(police.header("officer"))
        posted = officer.post("/hazards", json=_hazard(lon, lat))
        assert posted.status_code == 201, posted.text
        checkin = officer.post("/checkins", json={"ts": "2026-11-23T11:05:00+08:00",
                                                  "lon": lon, "lat": lat})  # fmt: skip
        assert checkin.status_code == 201, checkin.text
        far = officer.post("/hazards", json=_hazard(*_inside(url, OTHER_POLICE_GRID)))
        assert far.status_code == 403 and "outside the grids" in reason(far)
    placed = fetch_all(
        url,
        """
        SELECT g.code, p.code FROM hazard_reports h JOIN grids g ON g.id = h.grid_id
        JOIN grids p ON p.id = h.police_grid_id WHERE h.id = %s
        UNION ALL
        SELECT g.code, p.code FROM patrol_checkins c JOIN grids g ON g.id = c.grid_id
        JOIN grids p ON p.id = c.police_grid_id WHERE c.worker_id = 'PO-1' AND c.kind = 'patrol'
        """,
        (posted.json()["id"],),
    )
    assert len(placed) == 2 and {p for _, p in placed} == {POLICE_GRID}
    assert placed[0][0] == placed[1][0] == posted.json()["properties"]["grid"]
    # A management worker of another grid is refused there, police grid or not.
    other = "worker_b" if posted.json()["properties"]["grid"] == GRID_A else "worker_a"
    refused = http[other].post("/hazards", json=_hazard(lon, lat))
    assert refused.status_code == 403 and "outside the grids" in reason(refused)


def _ledger_ids(client: httpx.Client, **params) -> set[str]:
    answer = client.get("/ledger", params={"limit": 100_000, **params})
    assert answer.status_code == 200, answer.text
    return {row["id"] for row in answer.json()["items"]}


def _cases_in(url: str, ids: list[int]) -> set[str]:
    query = (
        "SELECT id::text FROM hazard_reports WHERE police_grid_id = ANY(%(ids)s) "
        "UNION ALL SELECT id::text FROM requests WHERE police_grid_id = ANY(%(ids)s)"
    )
    return {i for (i,) in fetch_all(url, query, {"ids": ids})}


@pytest.mark.parametrize("kept", [False, True], ids=["from the database", "kept"])
def test_the_ledger_and_kept_layers_are_cut_by_either_system(seeded_url, police, tmp_path, kept):
    """The ledger (JSON and CSV) and the hazards and alerts layers, which the API keeps between
    changes: the same answers from what is kept as from the database."""
    settings = api_settings(tmp_path, seeded_url, api_counts_ttl_s=60 if kept else 0)
    with ApiServer(settings, seeded_url, Clock()) as server, server.client() as client:
        assert server.state.keeps_layers() == kept
        client.headers["Authorization"] = f"Bearer {create_admin(seeded_url)}"
        area_ids = _subtree(seeded_url, POLICE_AREA)
        area = _cases_in(seeded_url, area_ids)
        assert area and _ledger_ids(client, system="police", grid=POLICE_AREA) == area
        assert len(_ledger_ids(client, grid=GRID_A)) == count_rows(
            seeded_url, "hazard_reports", "grid_id = ANY(%s)", (_subtree(seeded_url, GRID_A),)
        ) + count_rows(seeded_url, "requests", "grid_id = ANY(%s)", (_subtree(seeded_url, GRID_A),))
        exported = client.get("/ledger.csv", params={"system": "police", "grid": POLICE_AREA})
        assert exported.status_code == 200
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        assert len(rows) == len(area) + 1
        for layer in ("hazards", "alerts"):
            table, where = IN_POLICE[layer]
            expected = count_rows(seeded_url, table, where, (area_ids,))
            assert _matched(client, layer, system="police", grid=POLICE_AREA) == expected
        client.headers.update(police.header("station"))
        station_ids = _subtree(seeded_url, STATION)
        assert _ledger_ids(client) == _cases_in(seeded_url, station_ids)
        assert _ledger_ids(client, system="police", grid=POLICE_AREA) == area
        assert client.get("/ledger", params={"grid": GRID_A}).status_code == 404
        for layer in ("hazards", "alerts"):
            table, where = IN_POLICE[layer]
            assert _matched(client, layer) == count_rows(seeded_url, table, where, (station_ids,))
        if kept:
            assert server.state.layer_reads["LedgerLayer"] >= 1
            assert server.state.layer_reads["HazardLayer"] >= 1


def _desk_links(page: str) -> dict[str, str]:
    """The ledger each case figure of the desk page opens, by the figure's key."""
    kinds = "hazards|requests|warnings"
    links = dict(re.findall(rf'<a href="([^"]+)"[^>]*data-k="((?:{kinds})\.\w+)"', page))
    links |= dict(re.findall(rf'<a href="([^"]+)">[^<]*<b data-k="((?:{kinds})\.open)"', page))
    return {key: html.unescape(href) for href, key in links.items()}


def _ledger_matched(client: httpx.Client, console_href: str) -> int:
    query = parse_qs(urlsplit(console_href).query)
    answer = client.get("/ledger", params={**query, "limit": 1})
    assert answer.status_code == 200, answer.text
    return answer.json()["numberMatched"]


@pytest.fixture(scope="module")
def cases_in_beat(seeded_url) -> list[str]:
    """An overdue request and the cases a level-2 warning opens, all in grid A and placed in the
    officer's 警格."""
    with psycopg.connect(seeded_url) as conn:
        [(grid,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_A,)).fetchall()
        [(beat,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (POLICE_GRID,)).fetchall()
        late = hotline_request(conn, grid, "dispatched", NOW - timedelta(hours=1), NOW + DAY)
        cases = warning_cases(conn, grid, "gw:police-desk@1")
        conn.execute(
            "UPDATE requests SET police_grid_id = %s WHERE id = ANY(%s::uuid[])",
            (beat, [late, *cases]),
        )
    assert cases, "the warning opened a case"
    return cases


@pytest.fixture(scope="module")
def alert_in_beat(seeded_url) -> int:
    """A fall of a resident whose home lies in the officer's 警格 (an alert is where its
    resident lives)."""
    with psycopg.connect(seeded_url) as conn:
        [(beat,)] = conn.execute("SELECT id FROM grids WHERE code = %s", (POLICE_GRID,)).fetchall()
        resident, grid = conn.execute(
            "SELECT id, grid_id FROM residents WHERE police_grid_id = %s AND NOT EXISTS "
            "(SELECT 1 FROM alerts a WHERE a.resident_id = residents.id) ORDER BY id LIMIT 1",
            (beat,),
        ).fetchone()
        return open_alert(conn, resident, grid, "fall", NOW)


@pytest.mark.parametrize("kept", [False, True], ids=["from the database", "kept"])
def test_a_police_officers_desk_counts_the_cases_of_their_police_grid(
    seeded_url, police, cases_in_beat, alert_in_beat, tmp_path, kept
):
    """An officer given only a 警格 counts on the desk the cases their ledger lists: open and
    overdue hazards and requests, warnings whose case is open, each day's cases found and
    closed; a request and a warning's case placed in their 警格 count whatever their grid.
    So do the alerts of the residents living there, as the alerts layer lists them."""
    cases = cases_in_beat
    settings = api_settings(tmp_path, seeded_url, api_counts_ttl_s=60 if kept else 0)
    with ApiServer(settings, seeded_url, Clock()) as server, server.client() as officer:
        assert server.state.keeps_layers() == kept
        officer.headers.update(police.header("officer"))
        summary = officer.get("/console/summary.json").json()
        links = _desk_links(officer.get("/console").text)
        assert set(links) == {
            f"{kind}.{figure}" for kind in ("hazards", "requests") for figure in ("open", "overdue")
        } | {"warnings.open"}
        for key, href in links.items():
            kind, figure = key.split(".")
            assert _ledger_matched(officer, href) == summary[kind][figure], key
        assert summary["requests"]["overdue"] >= 1
        assert summary["requests"]["open"] >= 1 + len(cases)
        assert summary["warnings"]["open"] >= len(cases)
        today = NOW.date().isoformat()
        [trend] = [d for d in summary["trend"] if d["day"] == today]
        for key, first, last in (
            ("cases_opened", "from", "to"),
            ("cases_closed", "closed_from", "closed_to"),
        ):
            found = officer.get("/ledger", params={first: today, last: today, "limit": 1})
            assert found.json()["numberMatched"] == trend[key], key
        assert trend["cases_opened"] >= 1 + len(cases)
        active = officer.get(
            "/collections/alerts/items", params={"status": "active", "limit": 1000}
        ).json()
        assert summary["alerts"]["open"] == active["numberMatched"] >= 1
        listed = [f["id"] for f in active["features"]][:50]
        assert [a["alert_id"] for a in summary["live"]] == listed
        assert alert_in_beat in listed
        start, end = local_day_bounds(NOW.date(), ZoneInfo(summary["zone"]))
        day = f"{start.isoformat()}/{(end - timedelta(microseconds=1)).isoformat()}"
        opened = officer.get("/collections/alerts/items", params={"datetime": day}).json()
        assert trend["alerts_opened"] == opened["numberMatched"] >= 1


def create_admin(url: str) -> str:
    with psycopg.connect(url) as conn:
        return create_user(conn, f"admin-{uuid.uuid4().hex[:6]}", role="admin")


def test_coverage_is_cut_by_either_system(http, police, module_server):
    admin = http["admin"]
    by_police = admin.get("/coverage", params={"system": "police"}).json()["items"]
    by_management = admin.get("/coverage").json()["items"]
    assert {row["grid"] for row in by_police} == {
        c for c in _codes(module_server, "police") if c.count("-") == 4
    }
    assert len(by_management) == 110
    # Both systems cut the same street: the same tracks, measured in either's grids.
    police_m = sum(row["track_m"] for row in by_police)
    management_m = sum(row["track_m"] for row in by_management)
    assert police_m > 0 and police_m == pytest.approx(management_m, rel=0.01)
    assert sum(r["visits_made"] for r in by_police) == sum(r["visits_made"] for r in by_management)
    areas = admin.get(
        "/coverage", params={"system": "police", "level": "community", "grid": STATION}
    ).json()["items"]
    assert {row["grid"] for row in areas} == {f"{STATION}-{n}" for n in (1, 2, 3)}
    tracks = admin.get("/coverage/tracks", params={"system": "police", "grid": POLICE_GRID})
    assert tracks.status_code == 200 and tracks.json()["features"]
    with module_server.client() as officer:
        officer.headers.update(police.header("officer"))
        mine = officer.get("/coverage", params={"system": "police"}).json()["items"]
        assert [row["grid"] for row in mine] == [POLICE_GRID]
        assert mine[0]["patrols"] > 0
        assert officer.get("/coverage").json()["items"] == []  # no management grid of theirs


def _codes(server: ApiServer, system: str) -> set[str]:
    url = server.state.settings.database_url
    return {c for (c,) in fetch_all(url, "SELECT code FROM grids WHERE system = %s", (system,))}


def test_a_police_officer_inspects_the_places_of_their_police_grid_only(module_server, police):
    """A place is placed in both systems as a home is: the officer of its 警格 inspects it
    (the check-in and its finding's case placed in both systems too); a place of another
    police grid is not even confirmed to exist."""
    url = module_server.state.settings.database_url
    own = _subtree(url, POLICE_GRID)
    place_id, lon, lat, grid_code = fetch_all(
        url,
        "SELECT p.id, p.lon, p.lat, g.code FROM places p JOIN grids g ON g.id = p.grid_id "
        "WHERE p.police_grid_id = ANY(%s) ORDER BY p.id LIMIT 1",
        (own,),
    )[0]
    [(elsewhere,)] = fetch_all(
        url, "SELECT min(id) FROM places WHERE NOT police_grid_id = ANY(%s)", (own,)
    )
    finding = {"category": "fire", "severity": "high", "description": "灭火器过期"}
    body = {"ts": "2026-11-23T11:10:00+08:00", "lon": lon, "lat": lat, "kind": "inspection",
            "place_id": place_id, "result": "findings", "findings": [finding]}  # fmt: skip
    with module_server.client() as officer:
        officer.headers.update(police.header("officer"))
        posted = officer.post("/checkins", json=body)
        assert posted.status_code == 201, posted.text
        far = officer.post("/checkins", json={**body, "place_id": elsewhere})
        assert far.status_code == 404 and f"no place {elsewhere!r}" in reason(far)
        seen = officer.get(f"/collections/places/items/{place_id}")
        assert seen.status_code == 200 and seen.json()["properties"]["open_findings"] >= 1
        assert officer.get(f"/collections/places/items/{elsewhere}").status_code == 404
    placed = fetch_all(
        url,
        """
        SELECT g.code, p.code FROM patrol_checkins c JOIN grids g ON g.id = c.grid_id
        JOIN grids p ON p.id = c.police_grid_id
        WHERE c.place_id = %(place)s AND c.worker_id = 'PO-1'
        UNION ALL
        SELECT g.code, p.code FROM hazard_reports h JOIN grids g ON g.id = h.grid_id
        JOIN grids p ON p.id = h.police_grid_id
        WHERE h.place_id = %(place)s AND h.reporter_id = 'PO-1'
        """,
        {"place": place_id},
    )
    assert placed == [(grid_code, POLICE_GRID)] * 2
