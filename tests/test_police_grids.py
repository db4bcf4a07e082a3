"""A second grid system: the police's grids (警格) imported beside the management grids, bad
police files refused naming the feature or row, and every point stored over MQTT placed in a
grid of each system (a worker bound to police grids reports inside them, and only there)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from shapely.geometry import box

from gridwatch.model.records import PatrolCheckin
from gridwatch.simulators.district import build_sample_district
from gridwatch.simulators.sample import load_police_grids
from gridwatch.store.checkins import insert_checkin
from gridwatch.store.partitions import ensure_partitions
from gridwatch.store.users import create_user
from tests.support import import_files as files
from tests.support.databases import count_rows, fetch_all
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

TS = "2026-11-23T08:15:00+08:00"

# The police's hierarchy over the same ground, cut otherwise: P-1 and P-2 split the west
# street's grids G-1 and G-2 down the middle of G-2, and P-2 reaches on into G-3's street.
POLICE = [
    ("GA", "青山分局", box(109.86, 40.62, 109.94, 40.68)),
    ("PS-1", "富强路派出所", box(109.86, 40.62, 109.94, 40.68)),
    ("JW-1", "第1警务区", box(109.86, 40.62, 109.94, 40.65)),
    ("P-1", "第1警格", box(109.86, 40.62, 109.875, 40.63)),
    ("P-2", "第2警格", box(109.875, 40.62, 109.91, 40.63)),
]
POLICE_LEVELS = ["分局", "派出所", "警务区", "警格", "警格"]
POLICE_PARENTS = [None, "GA", "PS-1", "JW-1", "JW-1"]


@pytest.fixture
def management_url(tmp_path, database_url, capsys):
    """The small management hierarchy of the import tests, through the CLI."""
    for level, features in (
        ("district", files.DISTRICT),
        ("street", files.STREETS),
        ("community", files.COMMUNITIES),
        ("grid", files.GRIDS),
    ):
        path = files.write_features(tmp_path / f"{level}.geojson", features)
        assert files.cli("grids", "import", str(path), "--database-url", database_url,
                   "--level", level) == 0  # fmt: skip
    capsys.readouterr()
    return database_url


def _police_file(tmp_path, features=POLICE, parents=POLICE_PARENTS, levels=POLICE_LEVELS):
    return files.write_features(tmp_path / "police.geojson", features, 层级=levels, parent=parents)


def _import_police(url: str, path) -> int:
    return files.cli("grids", "import", str(path), "--database-url", url, "--system", "police",
               "--parent-field", "parent")  # fmt: skip


def _systems(url: str) -> dict[str, tuple[str, str | None, str]]:
    """code → (system, parent code, level)."""
    query = (
        "SELECT g.code, g.system, p.code, g.level FROM grids g "
        "LEFT JOIN grids p ON p.id = g.parent_id"
    )
    return {code: (system, parent, level) for code, system, parent, level in fetch_all(url, query)}


def test_a_police_hierarchy_imports_beside_the_management_grids(tmp_path, management_url, capsys):
    path = _police_file(tmp_path)
    assert _import_police(management_url, path) == 0, capsys.readouterr().err
    out, _ = capsys.readouterr()
    assert f"{path}: 5 grids added, 0 updated" in out
    stored = _systems(management_url)
    assert {code: row for code, row in stored.items() if row[0] == "police"} == {
        "GA": ("police", None, "district"),
        "PS-1": ("police", "GA", "street"),
        "JW-1": ("police", "PS-1", "community"),
        "P-1": ("police", "JW-1", "grid"),
        "P-2": ("police", "JW-1", "grid"),
    }
    assert all(stored[code][0] == "management" for code, _, _ in files.GRIDS + files.COMMUNITIES)
    # Again: updated in place, still police grids.
    assert _import_police(management_url, path) == 0
    assert f"{path}: 0 grids added, 5 updated" in capsys.readouterr().out
    assert _systems(management_url) == stored


def test_police_parents_by_containment_stay_in_the_police_system(tmp_path, management_url, capsys):
    """Without a parent field each police level finds its parent among the police grids, never
    in the management grids drawn over the same ground."""
    path = files.write_features(tmp_path / "police.geojson", POLICE, 层级=POLICE_LEVELS)
    assert files.cli("grids", "import", str(path), "--database-url", management_url,
               "--system", "police") == 0  # fmt: skip
    capsys.readouterr()
    stored = _systems(management_url)
    assert stored["P-1"][1] == "JW-1" and stored["JW-1"][1] == "PS-1"
    assert stored["PS-1"][1] == "GA" and stored["GA"][1] is None


@pytest.mark.parametrize(
    ("features", "parents", "needles"),
    [
        # A code the management grids use names one grid: the police file's 4th feature.
        (
            [*POLICE[:3], ("G-1", "第1警格", POLICE[3][2]), POLICE[4]],
            POLICE_PARENTS,
            ("feature 4", "'G-1'", "management grid"),
        ),
        # A police grid filed under a community of the management grids.
        (POLICE, [*POLICE_PARENTS[:4], "C-A1"], ("feature 5", "'P-2'", "'C-A1'", "management")),
    ],
    ids=["code of a management grid", "parent of the other system"],
)
def test_a_bad_police_file_names_its_feature_and_imports_nothing(
    tmp_path, management_url, capsys, features, parents, needles
):
    before = _systems(management_url)
    path = _police_file(tmp_path, features, parents)
    assert _import_police(management_url, path) == 1
    files.assert_one_error_line(capsys.readouterr().err, "police.geojson", *needles)
    assert _systems(management_url) == before


def test_an_unknown_system_is_refused_before_any_work(tmp_path, management_url, capsys):
    path = _police_file(tmp_path)
    with pytest.raises(SystemExit) as exited:
        files.cli(
            "grids", "import", str(path), "--database-url", management_url, "--system", "fire"
        )
    assert exited.value.code == 2
    assert "invalid choice: 'fire'" in capsys.readouterr().err
    assert count_rows(management_url, "grids", "system = 'police'") == 0


def test_management_files_cannot_take_a_police_code(tmp_path, management_url, capsys):
    assert _import_police(management_url, _police_file(tmp_path)) == 0
    capsys.readouterr()
    path = files.write_features(
        tmp_path / "grids2.geojson", [("P-1", "第9网格", files.GRIDS[0][2])]
    )
    assert files.cli("grids", "import", str(path), "--database-url", management_url) == 1
    files.assert_one_error_line(
        capsys.readouterr().err, "grids2.geojson", "feature 1", "police grid"
    )
    assert _systems(management_url)["P-1"][0] == "police"


def _write_rows(path, header: str, rows: list[str]):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


RESIDENTS_HEADER = (
    "resident_id,name,address,lat,lon,grid_code,meter_id,sensor_ids,phone,living_alone"
)


def test_residents_are_placed_in_both_systems(tmp_path, management_url, capsys):
    assert _import_police(management_url, _police_file(tmp_path)) == 0
    g2 = files.GRIDS[1][2]  # split between P-1 (west of 109.875) and P-2
    rows = [
        f"R1,王桂兰,富强路1号,{g2.centroid.y},109.872,,M1,,,true",  # G-2, P-1
        f"R2,李德福,富强路2号,{g2.centroid.y},109.878,,M2,,,true",  # G-2, P-2
        "R3,张秀英,富强路3号,,,G-3,M3,,,true",  # a grid code alone: no police grid known
    ]
    path = _write_rows(tmp_path / "residents.csv", RESIDENTS_HEADER, rows)
    assert files.cli("residents", "import", str(path), "--database-url", management_url) == 0
    capsys.readouterr()
    with psycopg.connect(management_url) as conn:
        placed = dict(
            (rid, (g, p))
            for rid, g, p in conn.execute(
                "SELECT r.id, g.code, p.code FROM residents r LEFT JOIN grids g ON g.id = "
                "r.grid_id LEFT JOIN grids p ON p.id = r.police_grid_id"
            )
        )
    assert placed == {"R1": ("G-2", "P-1"), "R2": ("G-2", "P-2"), "R3": ("G-3", None)}


def test_points_stored_before_the_police_grids_are_placed_in_them_on_import(
    tmp_path, management_url, capsys
):
    """Homes and check-ins stored while there were no police grids get theirs when the police
    layer is imported, and move with it when it is redrawn."""
    g2 = files.GRIDS[1][2]
    rows = [f"R1,王桂兰,富强路1号,{g2.centroid.y},109.872,,M1,,,true"]
    path = _write_rows(tmp_path / "residents.csv", RESIDENTS_HEADER, rows)
    assert files.cli("residents", "import", str(path), "--database-url", management_url) == 0
    with psycopg.connect(management_url) as conn:
        checkin = PatrolCheckin(
            worker_id="W-1",
            observed_at=datetime(2026, 11, 23, 8, tzinfo=UTC),
            received_at=datetime(2026, 11, 23, 8, tzinfo=UTC),
            lon=109.878,
            lat=g2.centroid.y,
            accuracy_m=5.0,
            kind="patrol",
            resident_id=None,
            status=None,
            note=None,
        )
        ensure_partitions(conn, {date(2026, 11, 23)}, ZoneInfo("Asia/Shanghai"))
        insert_checkin(conn, checkin, grid_id=None)
    capsys.readouterr()
    assert _import_police(management_url, _police_file(tmp_path)) == 0
    assert "note: 2 stored points placed in the police grids" in capsys.readouterr().out
    assert _police_of(management_url) == {"R1": "P-1", "W-1": "P-2"}
    # Redrawn: P-1 now reaches past both points.
    wider = [*POLICE[:3], ("P-1", "第1警格", box(109.86, 40.62, 109.88, 40.63)), POLICE[4]]
    wider[4] = ("P-2", "第2警格", box(109.88, 40.62, 109.91, 40.63))
    assert _import_police(management_url, _police_file(tmp_path, wider)) == 0
    assert "note: 1 stored points placed" in capsys.readouterr().out
    assert _police_of(management_url) == {"R1": "P-1", "W-1": "P-1"}


PLACES_HEADER = "place_id,name,kind,address,lat,lon,grid_code,contact,phone,inspect_every_days"


def test_places_are_placed_in_both_systems_whenever_they_came(tmp_path, management_url, capsys):
    """A place registered before the police grids gets its 警格 when they are imported, one
    registered after gets it at once; a grid code alone gives it none."""
    g2 = files.GRIDS[1][2]

    def register(*rows: str) -> None:
        path = _write_rows(tmp_path / "places.csv", PLACES_HEADER, list(rows))
        assert files.cli("places", "import", str(path), "--database-url", management_url) == 0

    register(f"Q1,老王面馆,restaurant,富强路1号,{g2.centroid.y},109.872,,,,14")
    capsys.readouterr()
    assert _import_police(management_url, _police_file(tmp_path)) == 0
    assert "note: 1 stored points placed in the police grids" in capsys.readouterr().out
    register(
        f"Q1,老王面馆,restaurant,富强路1号,{g2.centroid.y},109.872,,,,14",
        f"Q2,幸福便利店,shop,富强路2号,{g2.centroid.y},109.878,,,,30",
        "Q3,废品回收站,other,富强路3号,,,G-3,,,60",
    )
    query = (
        "SELECT q.id, g.code, p.code FROM places q LEFT JOIN grids g ON g.id = q.grid_id "
        "LEFT JOIN grids p ON p.id = q.police_grid_id"
    )
    assert {pid: (g, p) for pid, g, p in fetch_all(management_url, query)} == {
        "Q1": ("G-2", "P-1"),
        "Q2": ("G-2", "P-2"),
        "Q3": ("G-3", None),
    }


def _police_of(url: str) -> dict[str, str | None]:
    """The police grid of each resident's home and of each worker's check-in."""
    query = (
        "SELECT r.id, p.code FROM residents r LEFT JOIN grids p ON p.id = r.police_grid_id "
        "UNION ALL SELECT c.worker_id, p.code FROM patrol_checkins c "
        "LEFT JOIN grids p ON p.id = c.police_grid_id"
    )
    return dict(fetch_all(url, query))


def test_residents_and_workers_naming_a_police_grid_name_the_row(tmp_path, management_url, capsys):
    """People are placed in management grids; a police code in their files is refused with
    the row and what the code is, and nothing is imported."""
    assert _import_police(management_url, _police_file(tmp_path)) == 0
    capsys.readouterr()
    residents = _write_rows(
        tmp_path / "residents.csv",
        RESIDENTS_HEADER,
        ["R1,王桂兰,富强路1号,,,G-1,M1,,,true", "R2,李德福,富强路2号,,,P-1,M2,,,true"],
    )
    assert files.cli("residents", "import", str(residents), "--database-url", management_url) == 1
    files.assert_one_error_line(capsys.readouterr().err, "row 3", "'P-1'", "a police grid")
    workers = _write_rows(
        tmp_path / "workers.csv", "worker_id,name,phone,grid_codes", ["W1,丽娜,,P-2"]
    )
    assert files.cli("workers", "import", str(workers), "--database-url", management_url) == 1
    files.assert_one_error_line(capsys.readouterr().err, "row 2", "'P-2'", "a police grid")
    assert count_rows(management_url, "residents") == 0
    assert count_rows(management_url, "workers") == 0


# -- over MQTT ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def district():
    return build_sample_district()


def _point_in_both(district, police_code: str):
    """A point well inside police grid `police_code` and the management grid that holds it."""
    police = next(f for f in district.police if f.code == police_code)
    for grid in district.grids:
        inner = grid.geometry.intersection(police.geometry).buffer(-0.0002)
        if not inner.is_empty:
            return inner.representative_point(), grid.code
    raise AssertionError(f"no management grid in {police_code}")


def _grids_of(url: str, table: str, where: str, params: tuple) -> tuple[str | None, str | None]:
    """(management grid code, police grid code) of the row of `table` where `where`."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT g.code, p.code FROM {table} t LEFT JOIN grids g ON g.id = t.grid_id "
            f"LEFT JOIN grids p ON p.id = t.police_grid_id WHERE t.{where}",
            params,
        ).fetchone()
    assert row is not None, f"no row in {table} where {where} {params}"
    return row


def test_points_over_mqtt_are_placed_in_both_systems_and_police_scopes_hold(
    tmp_path, district, district_database_url, mqtt_url, start_worker, publish
):
    s = make_settings(tmp_path, district_database_url, mqtt_url)
    url = s.database_url
    inside, grid_code = _point_in_both(district, "GA-QS-1-1-01")
    elsewhere, _ = _point_in_both(district, "GA-QS-2-3-06")
    with psycopg.connect(url) as conn:
        load_police_grids(conn, tmp_path / "police", district)
        create_user(conn, "PO-1", role="grid_worker", grid_codes=("GA-QS-1-1-01",))
    running = start_worker(s)

    def hazard(reporter: str, point, note: str) -> str:
        hazard_id = str(uuid.uuid4())
        publish(
            f"{s.topic_prefix}/hazard/{reporter}",
            {"id": hazard_id, "ts": TS, "lat": point.y, "lon": point.x,
             "category": "road", "severity": "low", "description": note},
        )  # fmt: skip
        return hazard_id

    publish(f"{s.topic_prefix}/patrol/W-9", {"ts": TS, "lat": inside.y, "lon": inside.x})
    publish(f"{s.topic_prefix}/patrol/W-10", {"ts": TS, "lat": 0.5, "lon": 0.5})
    own = hazard("PO-1", inside, "井盖缺失")  # in the police officer's 警格
    foreign = hazard("PO-1", elsewhere, "路灯不亮")  # in another 警格
    publish.flush()
    wait_for(lambda: running.stats.received >= 4, what="4 messages ingested")

    assert _grids_of(url, "patrol_checkins", "worker_id = %s", ("W-9",)) == (
        grid_code,
        "GA-QS-1-1-01",
    )
    assert _grids_of(url, "patrol_checkins", "worker_id = %s", ("W-10",)) == (None, None)
    assert _grids_of(url, "hazard_reports", "id = %s", (own,)) == (grid_code, "GA-QS-1-1-01")
    assert count_rows(url, "hazard_reports", "id = %s", (foreign,)) == 0
    with psycopg.connect(url) as conn:
        [(reason,)] = conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert "outside the grids of worker 'PO-1'" in reason
