"""The grids layer kept between changes: conditional GETs, one caller's kept answer never
served to another, and every change (a hazard, an alert, a hazard falling overdue) seen by the
next request."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest
import shapely

from tests.support.api import (
    GRID_A,
    GRID_B,
    NOTICE_S,
    NOW,
    every_page,
    kept_server,
    plain_server,
    residents_in,
)
from tests.support.waiting import wait_for

LAYER = "/collections/grids/items"
KEPT_ROLES = ("admin", "worker_a", "worker_b", "duty_community")
PLAIN_ROLES = ("admin", "worker_a", "duty_community")


@pytest.fixture(scope="module", name="kept")
def kept_fixture(seeded_url, module_tokens, tmp_path_factory):
    """A server that keeps its grid layers (counts shared until a change) on a clock the test
    moves, and a client of every role."""
    tmp = tmp_path_factory.mktemp("kept")
    with kept_server(seeded_url, module_tokens, tmp, KEPT_ROLES) as (server, clients):
        yield server, clients


def _counts(client: httpx.Client, code: str) -> dict:
    page = client.get(LAYER, params={"limit": 1000})
    assert page.status_code == 200, page.text
    return next(f["properties"] for f in page.json()["features"] if f["id"] == code)


def _inside(url: str, code: str) -> tuple[int, float, float]:
    with psycopg.connect(url) as conn:
        gid, wkb = conn.execute(
            "SELECT id, geometry FROM grids WHERE code = %s", (code,)
        ).fetchone()
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    return gid, point.x, point.y


def _insert_hazard(url: str, code: str, *, due_in: timedelta) -> None:
    """A hazard written straight to the table, as the ingest process writes one."""
    gid, lon, lat = _inside(url, code)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO hazard_reports (id, reporter_id, observed_at, received_at, lon, lat, "
            "grid_id, category, severity, status, deadline_at, due_at) "
            "VALUES (%s, 'W001', %s, %s, %s, %s, %s, 'road', 'low', 'reported', %s, %s)",
            (uuid.uuid4(), NOW, NOW, lon, lat, gid, NOW + due_in, NOW + due_in),
        )


def test_an_unchanged_layer_answers_304_to_the_etag_it_gave(kept):
    _, http = kept
    admin = http["admin"]
    first = admin.get(LAYER, params={"limit": 1000})
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    again = admin.get(LAYER, params={"limit": 1000}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = admin.get(LAYER, params={"limit": 1000}, headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    other = admin.get(LAYER, params={"limit": 1000}, headers={"If-None-Match": '"nope", "x"'})
    assert other.status_code == 200 and other.json() == first.json()
    # Another page of the same layer is another answer with its own tag.
    level = admin.get(
        LAYER, params={"limit": 1000, "level": "grid"}, headers={"If-None-Match": etag}
    )
    assert level.status_code == 200 and level.headers["etag"] != etag


def test_a_kept_whole_layer_goes_out_gzipped_to_those_who_take_it(kept):
    admin = kept[1]["admin"]
    packed = admin.get(LAYER, params={"limit": 1000}, headers={"Accept-Encoding": "gzip"})
    plain = admin.get(LAYER, params={"limit": 1000}, headers={"Accept-Encoding": "identity"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert packed.json() == plain.json() and packed.headers["etag"] == plain.headers["etag"]
    assert "Accept-Encoding" in plain.headers["vary"]


def test_a_kept_answer_is_never_served_to_another_callers_grids(kept):
    _, http = kept
    params = {"limit": 1000}
    seen = {}
    for role in ("admin", "worker_a", "worker_b", "duty_community", "worker_a", "admin"):
        answer = http[role].get(LAYER, params=params)
        assert answer.status_code == 200
        codes = {f["id"] for f in answer.json()["features"]}
        seen.setdefault(role, codes)
        assert codes == seen[role], f"{role} got another scope's answer"
    assert seen["worker_a"] == {GRID_A}
    assert seen["worker_b"] == {GRID_B}
    assert GRID_A in seen["duty_community"] and GRID_B not in seen["duty_community"]
    assert len(seen["admin"]) == 120
    # Nor is another scope's tag taken for this caller's answer.
    tag_a = http["worker_a"].get(LAYER, params=params).headers["etag"]
    as_b = http["worker_b"].get(LAYER, params=params, headers={"If-None-Match": tag_a})
    assert as_b.status_code == 200
    assert {f["id"] for f in as_b.json()["features"]} == {GRID_B}


def test_a_new_hazard_or_alert_is_in_the_next_answer(kept, seeded_url):
    _, http = kept
    admin = http["admin"]
    before = _counts(admin, GRID_A)
    etag = admin.get(LAYER, params={"limit": 1000}).headers["etag"]

    # Written by another process: seen as soon as its notice arrives.
    _insert_hazard(seeded_url, GRID_A, due_in=timedelta(days=3))
    wait_for(
        lambda: _counts(admin, GRID_A)["open_hazards"] == before["open_hazards"] + 1,
        timeout=NOTICE_S,
        what="the new hazard in the grids layer",
    )
    changed = admin.get(LAYER, params={"limit": 1000}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag

    [(resident, gid)] = residents_in(seeded_url, GRID_A, quiet=True)
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            "INSERT INTO alerts (resident_id, kind, grid_id, status, severity, since, opened_at) "
            "VALUES (%s, 'no_activity', %s, 'open', 'high', %s, %s)",
            (resident, gid, NOW - timedelta(hours=13), NOW),
        )
    wait_for(
        lambda: _counts(admin, GRID_A)["open_alerts"] == before["open_alerts"] + 1,
        timeout=NOTICE_S,
        what="the new alert in the grids layer",
    )

    # Written through this API: in the very next answer.
    lon, lat = _inside(seeded_url, GRID_A)[1:]
    now = _counts(admin, GRID_A)
    made = http["worker_a"].post(
        "/hazards",
        json={
            "id": str(uuid.uuid4()),
            "lat": lat,
            "lon": lon,
            "category": "road",
            "severity": "low",
            "description": "坑",
        },
    )
    assert made.status_code == 201, made.text
    assert _counts(admin, GRID_A)["open_hazards"] == now["open_hazards"] + 1


def test_a_hazard_falling_overdue_changes_the_counts_with_no_write(kept, seeded_url):
    server, http = kept
    admin = http["admin"]
    _insert_hazard(seeded_url, GRID_B, due_in=timedelta(minutes=30))
    with psycopg.connect(seeded_url) as conn:
        gid = conn.execute("SELECT id FROM grids WHERE code = %s", (GRID_B,)).fetchone()[0]

    def overdue_in_db() -> int:
        with psycopg.connect(seeded_url) as conn:
            return conn.execute(
                "SELECT count(*) FROM hazard_reports WHERE grid_id = %s AND status IN "
                "('reported', 'assigned', 'in_progress', 'reopened') "
                "AND coalesce(due_at, deadline_at) <= %s",
                (gid, server.clock()),
            ).fetchone()[0]

    wait_for(
        lambda: _counts(admin, GRID_B)["open_hazards"] == _open_in(seeded_url, gid),
        timeout=NOTICE_S,
        what="the new hazard",
    )
    before = _counts(admin, GRID_B)["overdue_hazards"]
    assert before == overdue_in_db()
    server.clock.advance(timedelta(minutes=31))
    after = _counts(admin, GRID_B)["overdue_hazards"]
    assert after == overdue_in_db() > before


def _open_in(url: str, gid: int) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM hazard_reports WHERE grid_id = %s AND status IN "
            "('reported', 'assigned', 'in_progress', 'reopened')",
            (gid,),
        ).fetchone()[0]


# -- the hazards layer, and boxes of either layer ----------------------------------------------

HAZARDS = "/collections/hazards/items"
ASKED = [
    {},
    {"bbox": "109.880,40.636,109.930,40.664"},
    {"bbox": "109.890,40.640,109.900,40.650"},
    {"bbox": "109.895,40.645,109.905,40.652", "status": "reported,assigned"},
    {"status": "resolved,closed"},
    {"severity": "high,critical", "level": "grid"},
    {"level": "community"},
    {"grid": GRID_A},
    {"grid": "QS-01-02", "severity": "low"},
    {"datetime": "2026-11-20T00:00:00+08:00/2026-11-23T00:00:00+08:00"},
    {"datetime": "../2026-11-22T12:00:00+08:00", "bbox": "109.880,40.636,109.930,40.664"},
]


@pytest.fixture(scope="module", name="plain")
def plain_fixture(kept, module_tokens, seeded_url, tmp_path_factory):
    """A server that keeps nothing (every answer from the database) on the kept one's clock."""
    tmp = tmp_path_factory.mktemp("plain")
    with plain_server(kept[0], seeded_url, module_tokens, tmp, PLAIN_ROLES) as clients:
        yield clients


@pytest.mark.parametrize("role", ["admin", "worker_a", "duty_community"])
def test_kept_hazards_and_boxes_answer_as_the_database_does(kept, plain, role):
    _, http = kept
    for params in ASKED:
        for path, limit in ((HAZARDS, 7), (HAZARDS, 1000), (LAYER, 1000)):
            if path == LAYER and set(params) - {"bbox", "grid"}:
                continue
            asked = {**params, "limit": limit}
            want = every_page(plain[role], path, asked)
            assert want[0].get("numberMatched") or role != "admin", asked
            assert every_page(http[role], path, asked) == want, (role, path, asked)


def test_the_hazards_layer_answers_304_to_the_etag_it_gave(kept):
    admin = kept[1]["admin"]
    first = admin.get(HAZARDS, params={"limit": 50})
    assert first.status_code == 200
    again = admin.get(
        HAZARDS, params={"limit": 50}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


def test_a_new_hazard_is_in_the_next_hazards_answer(kept, seeded_url):
    _, http = kept
    worker = http["worker_a"]

    def matched() -> int:
        answer = worker.get(HAZARDS, params={"limit": 1})
        assert answer.status_code == 200
        return answer.json()["numberMatched"]

    before = matched()
    _insert_hazard(seeded_url, GRID_A, due_in=timedelta(days=2))
    wait_for(lambda: matched() == before + 1, timeout=NOTICE_S, what="the new hazard")
    newest = worker.get(HAZARDS, params={"limit": 1}).json()["features"][0]
    assert newest["properties"]["grid"] == GRID_A
    assert http["worker_b"].get(HAZARDS, params={"limit": 1000}).json()["features"] != []
    assert newest["id"] not in {
        f["id"] for f in http["worker_b"].get(HAZARDS, params={"limit": 1000}).json()["features"]
    }


def _overdue_by_grid(client: httpx.Client, path: str, key: str) -> dict[str, object]:
    page = client.get(path, params={"limit": 1000})
    assert page.status_code == 200, page.text
    return {f["id"]: f["properties"][key] for f in page.json()["features"]}


def test_overdue_follows_the_clock_with_no_layer_read_per_due_time(kept, plain, seeded_url):
    server, http = kept
    admin, asked = http["admin"], plain["admin"]
    for minutes in (7, 14, 21):
        due_in = server.clock() - NOW + timedelta(minutes=minutes)
        _insert_hazard(seeded_url, GRID_B, due_in=due_in)
    wait_for(
        lambda: (
            _overdue_by_grid(admin, HAZARDS, "overdue")
            == _overdue_by_grid(asked, HAZARDS, "overdue")
        ),
        timeout=NOTICE_S,
        what="the new hazards",
    )
    assert _overdue_by_grid(admin, LAYER, "open_hazards") == _overdue_by_grid(
        asked, LAYER, "open_hazards"
    )
    reads = dict(server.state.layer_reads)
    seen = [_overdue_by_grid(admin, LAYER, "overdue_hazards")]
    tags = {admin.get(LAYER, params={"limit": 1000}).headers["etag"]}
    for _ in range(5):  # across each new hazard's due time, and between them
        server.clock.advance(timedelta(minutes=5))
        for path, key in ((LAYER, "overdue_hazards"), (HAZARDS, "overdue")):
            assert _overdue_by_grid(admin, path, key) == _overdue_by_grid(asked, path, key)
        seen.append(_overdue_by_grid(admin, LAYER, "overdue_hazards"))
        tags.add(admin.get(LAYER, params={"limit": 1000}).headers["etag"])
    assert dict(server.state.layer_reads) == reads, "no layer read again for a due time"
    assert seen[-1][GRID_B] == seen[0][GRID_B] + 3
    community = GRID_B.rsplit("-", 1)[0]  # counts roll up to the grids above
    assert seen[-1][community] >= seen[0][community] + 3
    assert len(tags) == len({tuple(sorted(s.items())) for s in seen}), "an answer per count"
