"""Map pages as HTML: offline (no URL outside gridwatch), each page for its callers only,
GCJ-02 geometry under AMap tiles, Chinese by default and English on request."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources

import httpx
import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon

from gridwatch.errors import ConfigError
from gridwatch.geo.crs import wgs84_to_gcj02
from gridwatch.maps.pages import MapGrid, MapPoint, PageContext, overview_page
from gridwatch.maps.tiles import tiles_for
from tests.support.api import GRID_A, GRID_B, ApiServer, Clock, api_settings, english_client
from tests.support.cases import level2_warnings, open_request

PAGES = (
    "/maps/overview",
    f"/maps/grids/{GRID_A}",
    "/maps/coverage",
    "/maps/live",
    "/console",
    "/console/ledger",
)
OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""")


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_nothing_from_outside(http, path):
    response = http["duty_street"].get(path)
    assert response.status_code == 200, response.text[:300]
    page = response.text
    assert not OUTSIDE.findall(page), OUTSIDE.findall(page)[:3]
    assert re.findall(r"https?://", page) == [], "no URL of another site at all (tiles: none)"
    for asset in re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", page):
        assert http["duty_street"].get(asset).status_code == 200, asset
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy and "connect-src 'self'" in policy
    assert '<html lang="zh-CN">' in page


def test_vendored_assets_keep_their_licences():
    static = resources.files("gridwatch.maps").joinpath("static", "vendor")
    for licence in (
        "leaflet/LICENSE",
        "markercluster/MIT-LICENCE.txt",
        "swagger-ui/LICENSE",
        "uplot/LICENSE",
    ):
        assert static.joinpath(licence).is_file(), licence


def test_docs_are_served_from_gridwatch_too(http):
    docs = http["anonymous"].get("/docs").text
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs
    assert "cdn.jsdelivr" not in docs


def test_each_page_for_its_callers(http):
    own = http["worker_a"].get(f"/maps/grids/{GRID_A}")
    assert own.status_code == 200
    assert http["worker_a"].get(f"/maps/grids/{GRID_B}").status_code == 404
    assert http["device"].get("/maps/overview").status_code == 403
    assert http["anonymous"].get("/maps/overview").status_code == 401
    overview = http["worker_a"].get("/maps/overview").text
    assert GRID_A in overview and GRID_B not in overview
    live = http["duty_street"].get("/maps/live").text
    assert "window.gridwatchLive" in live and "/static/gridwatch/live.js" in live
    coverage = http["duty_street"].get("/maps/coverage", params={"date": "2026-11-23"})
    assert coverage.status_code == 200 and 'value="2026-11-23"' in coverage.text
    assert http["duty_street"].get("/maps/coverage", params={"date": "23/11"}).status_code == 422


def _text(response: httpx.Response) -> str:
    """A page with the JSON escapes of its scripts' strings (\\uXXXX) read back."""
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), response.text)


def _live_data(page: str) -> dict:
    """What the live page hands live.js (`window.gridwatchLive`), as JSON."""
    import orjson

    data = {}
    for key in ("alerts", "warnings"):
        value = re.search(rf"\b{key}: (\[.*?\]),\n", page)
        assert value, key
        data[key] = orjson.loads(value.group(1))
    return data


def test_open_requests_and_level_2_warnings_of_the_callers_grids(http, seeded_url):
    mine = level2_warnings(seeded_url, GRID_A, "工地老板拖欠工资")
    theirs = level2_warnings(seeded_url, GRID_B, "宅基地纠纷")
    open_request(seeded_url, GRID_A, "测试诉求甲 楼下烧烤油烟")
    open_request(seeded_url, GRID_B, "测试诉求乙 门口积水")
    for role, sees, hidden in (("worker_a", "甲", "乙"), ("duty_street", "乙", None)):
        overview = _text(http[role].get("/maps/overview"))
        assert "待办诉求" in overview and "矛盾纠纷" in overview, role
        assert f"测试诉求{sees}" in overview, role
        assert "二级预警 · 劳资纠纷" in overview and "7天内同类第3次" in overview, role
        live = _text(http[role].get("/maps/live"))
        assert f"测试诉求{sees}" in live, role
        shown = {w["warning_id"] for w in _live_data(live)["warnings"]}
        assert set(mine) <= shown, role
        assert "warnings=true" in http[role].get("/static/gridwatch/live.js").text
        if hidden:
            assert f"测试诉求{hidden}" not in overview and f"测试诉求{hidden}" not in live
            assert "土地房屋" not in overview and not set(theirs) & shown, "another grid's"
        else:
            assert set(theirs) <= shown and "二级预警 · 土地房屋" in overview


def test_english_on_request(seeded_url, module_tokens, tmp_path):
    with english_client(seeded_url, module_tokens, tmp_path, "duty_street") as client:
        page = client.get("/maps/overview").text
        ledger = client.get("/ledger.csv").content.decode("utf-8-sig")
    assert '<html lang="en">' in page and "District overview" in page and "辖区总览" not in page
    assert ledger.startswith("id,grid code,grid,community")


def _square(lon: float, lat: float, size: float = 0.002) -> MultiPolygon:
    return MultiPolygon(
        [Polygon([(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)])]
    )


def test_amap_tiles_get_gcj02_geometry():
    corner = (109.905, 40.65)
    grid = MapGrid("G1", "第一网格", "grid", _square(*corner))
    hazard = MapPoint(109.906, 40.651, 2, "x")
    for provider, moved in (("amap", True), ("none", False), ("osm", False)):
        ctx = PageContext("zh", tiles_for(provider), "u", "admin", datetime.now(UTC), UTC)
        page = overview_page(ctx, [grid], [hazard], [])
        gcj = wgs84_to_gcj02(*corner)
        shifted = re.escape(f"[{gcj[0]:.6f},") + r"\s*" + re.escape(f"{gcj[1]:.6f}]")
        assert bool(re.search(shifted, page)) is moved, provider
        point = wgs84_to_gcj02(109.906, 40.651) if moved else (109.906, 40.651)
        assert f"[{np.round(point[1], 6)}, {np.round(point[0], 6)}, 2," in page, provider
    assert gcj != corner and abs(gcj[0] - corner[0]) > 1e-4  # hundreds of metres apart


def test_tile_providers():
    assert tiles_for("none").layers == ()
    assert tiles_for("amap").crs == "gcj02" and tiles_for("osm").crs == "wgs84"
    with pytest.raises(ConfigError, match="TIANDITU_KEY"):
        tiles_for("tianditu")
    tianditu = tiles_for("tianditu", tianditu_key="k123")
    assert all("tk=k123" in layer.url for layer in tianditu.layers)
    assert tianditu.hosts == ("https://t*.tianditu.gov.cn",)


def test_a_tianditu_server_without_its_key_refuses_to_start(seeded_url, tmp_path):
    from gridwatch.api.app import create_app

    settings = api_settings(tmp_path, seeded_url, tiles="tianditu")
    with pytest.raises(ConfigError):
        create_app(settings, database_url=seeded_url)
    settings = api_settings(tmp_path, seeded_url, tiles="osm")
    with ApiServer(settings, seeded_url, Clock()) as server:
        response = httpx.get(f"{server.url}/login")
    assert (
        "img-src 'self' data: blob: https://tile.openstreetmap.org"
        in (response.headers["content-security-policy"])
    )
