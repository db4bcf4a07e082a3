"""The map pages as folium documents: district overview, one grid, patrol coverage, and the
duty officer's live view. Pure: data in (WGS-84), HTML out.

Offline first: folium's CDN scripts and styles are replaced by copies gridwatch serves
under /static, so a page with no internet still draws every polygon. Points go in as one
compact array each and are drawn by one loop (clustered), which keeps a district with
thousands of points fast on a phone.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import folium
import numpy as np
import shapely
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from gridwatch.maps.texts import texts_for
from gridwatch.maps.tiles import Tiles, points_to_display, to_display
from gridwatch.model.figures import GridCounts
from gridwatch.model.vocabulary import EMERGENCY_EVENTS

LOCAL_JS = [
    ("leaflet", "/static/leaflet/leaflet.js"),
    ("markercluster", "/static/markercluster/leaflet.markercluster.js"),
]
LOCAL_CSS = [
    ("leaflet_css", "/static/leaflet/leaflet.css"),
    ("markercluster_css", "/static/markercluster/MarkerCluster.css"),
    ("markercluster_default_css", "/static/markercluster/MarkerCluster.Default.css"),
    ("gridwatch_css", "/static/gridwatch/gridwatch.css"),
]

LEVEL_LAYERS = {"community": "layer_communities", "street": "layer_streets"}
ISSUE_BINS = (0.0, 1.0, 3.0, 6.0, 10.0)  # open issues per grid
ISSUE_COLORS = ("#e5f5e0", "#fff3b0", "#fdc872", "#f58d4e", "#d7301f")
COVERAGE_BINS = (0.0, 0.2, 0.5, 0.8)
COVERAGE_COLORS = ("#d7191c", "#fdae61", "#a6d96a", "#1a9641")
SEVERITY_ORDER = ("low", "medium", "high", "critical")
SEVERITY_COLORS = ("#74add1", "#fdae61", "#f46d43", "#a50026")
RESIDENT_STATES = ("ok", "absent", "acknowledged", "open")  # rank: worst last
RESIDENT_COLORS = ("#1a9641", "#9e9e9e", "#fdae61", "#d7191c")
EMERGENCY_COLOR = "#b0003a"  # a grid with an SOS or a fall: unlike any count's shade
REQUEST_COLORS = ("#2c7fb8", "#253494")  # open, overdue: blues no count or alert uses
WARNING_COLOR = "#7b3294"  # a level-2 dispute warning: purple, unlike alerts and hazards
LIVE_LAYOUT = (
    "html body .folium-map { right: 340px; width: auto !important; }"
    "html body .gw-offline { right: 350px; }"
    "@media (max-width: 700px) { html body .folium-map { right: 0; bottom: 38vh;"
    " height: auto !important; } html body .gw-legend { bottom: calc(38vh + 24px); }"
    " html body .gw-offline { right: 8px; top: 50px; bottom: auto; } }"
)
TRACK_COLORS = ("#3366cc", "#dc3912", "#109618", "#990099", "#0099c6", "#dd4477")
SIMPLIFY_DEG = 1e-5  # about 1 m: invisible at district zoom, fewer vertices to draw
OVERVIEW_DIGITS = 6


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every page shows besides its data."""

    lang: str
    tiles: Tiles
    user: str
    role: str
    updated: datetime
    zone: tzinfo

    @property
    def t(self) -> dict:
        return texts_for(self.lang)


@dataclass(frozen=True, slots=True)
class MapGrid:
    code: str
    name: str
    level: str
    geometry: BaseGeometry
    counts: GridCounts = field(default_factory=GridCounts)
    leaves: int = 1  # leaf grids below it (itself, for a grid): what its issues are shared by


@dataclass(frozen=True, slots=True)
class MapPoint:
    lon: float
    lat: float
    rank: int  # index into the layer's colours; clusters show their worst
    tooltip: str  # HTML, already escaped


class PointLayer(Layer):
    """Many points as circle markers from one array, optionally clustered (worst colour)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function() {
            var rows = {{ this.rows|tojson }};
            var colors = {{ this.colors|tojson }};
            {%- if this.cluster %}
            var layer = L.markerClusterGroup({
                chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 45,
                iconCreateFunction: function(c) {
                    var worst = 0;
                    c.getAllChildMarkers().forEach(function(m) {
                        if (m.options.rank > worst) { worst = m.options.rank; }
                    });
                    return L.divIcon({
                        html: '<div style="background:' + colors[worst] + '"><span>'
                              + c.getChildCount() + '</span></div>',
                        className: 'marker-cluster gw-cluster', iconSize: L.point(36, 36)});
                }
            });
            {%- else %}
            var layer = L.featureGroup();
            {%- endif %}
            var markers = new Array(rows.length);
            for (var i = 0; i < rows.length; i++) {
                var r = rows[i];
                var m = L.circleMarker([r[0], r[1]], {
                    radius: {{ this.radius }}, color: '#333', weight: 1, rank: r[2],
                    fillColor: colors[r[2]], fillOpacity: 0.9});
                if (r[3]) { m.bindTooltip(r[3]); }
                markers[i] = m;
            }
            layer.addLayers ? layer.addLayers(markers) : markers.forEach(function(m) {
                layer.addLayer(m); });
            return layer;
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self,
        points: Sequence[MapPoint],
        colors: Sequence[str],
        *,
        name: str,
        crs: str,
        cluster: bool = True,
        radius: int = 6,
        show: bool = True,
    ) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "PointLayer"
        lon = np.array([p.lon for p in points], dtype=float)
        lat = np.array([p.lat for p in points], dtype=float)
        lon, lat = points_to_display(lon, lat, crs)
        self.rows = [
            [round(float(y), 6), round(float(x), 6), p.rank, p.tooltip]
            for x, y, p in zip(lon, lat, points, strict=True)
        ]
        self.colors = list(colors)
        self.cluster = cluster
        self.radius = int(radius)


class MetricScale(MacroElement):
    """A scale bar in metres only."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )


class Legend(MacroElement):
    _template = Template(
        """
        {% macro html(this, kwargs) %}
        <div class="gw-legend"><b>{{ this.title }}</b>
        {%- for color, label in this.items %}
        <div><i style="background:{{ color }}"></i>{{ label }}</div>
        {%- endfor %}</div>
        {% endmacro %}
        """
    )

    def __init__(self, title: str, items: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self._name = "Legend"
        self.title = html.escape(title)
        self.items = [(color, html.escape(label)) for color, label in items]


class LiveFeed(MacroElement):
    """The live view's hook: hands the map, its alerts and where the stream starts to
    /static/gridwatch/live.js."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.gridwatchLive = {
            map: {{ this._parent.get_name() }},
            grids: {{ this.grids.get_name() }},
            alerts: {{ this.alerts|tojson }},
            after: {{ this.after|tojson }},
            warnings: {{ this.warnings|tojson }},
            afterWarning: {{ this.after_warning|tojson }},
            warningColor: {{ this.warning_color|tojson }},
            crs: {{ this.crs|tojson }},
            zone: {{ this.zone|tojson }},
            urgent: {{ this.urgent|tojson }},
            texts: {{ this.texts|tojson }}
        };
        {% endmacro %}
        """
    )

    def __init__(
        self,
        alerts: list[dict],
        after: int,
        crs: str,
        texts: dict,
        grids: folium.GeoJson,
        zone: tzinfo,
    ) -> None:
        super().__init__()
        self._name = "LiveFeed"
        self.alerts = alerts
        self.after = after
        self.crs = crs
        self.texts = texts
        self.grids = grids
        self.zone = str(zone)
        self.urgent = list(EMERGENCY_EVENTS)
        self.warnings: list[dict] = []
        self.after_warning = 0
        self.warning_color = WARNING_COLOR


class GridLabels(MacroElement):
    """Grid names on the map, each where its grid is large enough on screen to hold it: none
    at district zoom, every name once zoomed to a community."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function() {
            var map = {{ this._parent.get_name() }}, grids = {{ this.layer.get_name() }};
            var labels = L.layerGroup().addTo(map);
            function place() {
                labels.clearLayers();
                if (!map.hasLayer(grids)) { return; }
                var view = map.getBounds();
                grids.eachLayer(function(l) {
                    var b = l.getBounds(), name = l.feature.properties.name;
                    if (!name || !view.intersects(b)) { return; }
                    var ne = map.latLngToContainerPoint(b.getNorthEast());
                    var sw = map.latLngToContainerPoint(b.getSouthWest());
                    if (ne.x - sw.x < name.length * 13 + 20 || sw.y - ne.y < 30) { return; }
                    var text = document.createElement('span');
                    text.textContent = name;
                    labels.addLayer(L.tooltip({permanent: true, direction: 'center',
                        className: 'gw-grid-label', interactive: false})
                        .setLatLng(b.getCenter()).setContent(text));
                });
            }
            map.on('zoomend moveend overlayadd overlayremove', place);
            place();
        })();
        {% endmacro %}
        """
    )

    def __init__(self, layer: folium.GeoJson) -> None:
        super().__init__()
        self._name = "GridLabels"
        self.layer = layer


# -- pages ------------------------------------------------------------------------------------


def overview_page(
    ctx: PageContext,
    grids: Sequence[MapGrid],
    hazards: Sequence[MapPoint],
    residents: Sequence[MapPoint],
    requests: Sequence[MapPoint] = (),
    warnings: Sequence[MapPoint] = (),
) -> str:
    """Grids shaded by open issues per grid at every level, hazards and residents clustered,
    open requests and level-2 dispute warnings."""
    t = ctx.t
    fmap = _base_map(ctx, [g.geometry for g in grids], t["overview"], "overview")
    by_level = {level: [g for g in grids if g.level == level] for level in ("street", "community")}
    leaves = [g for g in grids if g.level == "grid"]
    for level, show in (("community", False), ("street", False)):
        if by_level[level]:
            _grid_layer(ctx, fmap, by_level[level], t[LEVEL_LAYERS[level]], show=show, outline=True)
    GridLabels(_grid_layer(ctx, fmap, leaves, t["layer_grids"], show=True, outline=False)).add_to(
        fmap
    )
    PointLayer(hazards, SEVERITY_COLORS, name=t["layer_hazards"], crs=ctx.tiles.crs).add_to(fmap)
    # Those with an alert are what a duty officer looks for; everyone else is a click away.
    alerting = [r for r in residents if r.rank >= RESIDENT_STATES.index("acknowledged")]
    PointLayer(
        alerting, RESIDENT_COLORS, name=t["layer_alerting"], crs=ctx.tiles.crs, radius=7
    ).add_to(fmap)
    PointLayer(
        residents,
        RESIDENT_COLORS,
        name=t["layer_residents"],
        crs=ctx.tiles.crs,
        radius=5,
        show=False,
    ).add_to(fmap)
    _case_layers(ctx, fmap, requests, warnings, cluster=True)
    _issue_legend(ctx, cases=True).add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    return _render(fmap, ctx)


def grid_page(
    ctx: PageContext,
    grid: MapGrid,
    residents: Sequence[MapPoint],
    hazards: Sequence[MapPoint],
    tracks: Sequence[tuple[str, BaseGeometry, str]],
    covered: BaseGeometry | None,
) -> str:
    """One grid: its residents by alert state, hazards by severity, today's patrol tracks."""
    t = ctx.t
    fmap = _base_map(ctx, [grid.geometry], f"{grid.name} · {t['grid_detail']}", "grid")
    _grid_layer(ctx, fmap, [grid], grid.name, show=True, outline=True)
    if covered is not None and not covered.is_empty:
        folium.GeoJson(
            _display_json(covered, ctx.tiles.crs),
            name=t["layer_coverage"],
            style_function=lambda f: {"color": "#2b8cbe", "weight": 0, "fillOpacity": 0.15},
            interactive=False,
            overlay=True,
        ).add_to(fmap)
    _track_layer(ctx, fmap, tracks, weight=3, opacity=0.8)
    PointLayer(
        hazards,
        SEVERITY_COLORS,
        name=t["layer_hazards"],
        crs=ctx.tiles.crs,
        cluster=False,
        radius=8,
    ).add_to(fmap)
    PointLayer(
        residents, RESIDENT_COLORS, name=t["layer_residents"], crs=ctx.tiles.crs, cluster=False
    ).add_to(fmap)
    Legend(
        t["layer_residents"],
        [
            (RESIDENT_COLORS[3], t["alert_state"]["open"]),
            (RESIDENT_COLORS[2], t["alert_state"]["acknowledged"]),
            (RESIDENT_COLORS[1], t["absent"]),
            (RESIDENT_COLORS[0], t["alert_state"][None]),
        ]
        + [
            (c, f"{t['layer_hazards']} · {t['severity'][s]}")
            for c, s in zip(SEVERITY_COLORS, SEVERITY_ORDER, strict=True)
        ],
    ).add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    return _render(fmap, ctx)


def coverage_page(
    ctx: PageContext,
    day: str,
    grids: Sequence[tuple[MapGrid, float, str]],
    tracks: Sequence[tuple[str, BaseGeometry, str]],
) -> str:
    """Grids shaded by the share of their area patrolled that day, with the tracks."""
    t = ctx.t
    fmap = _base_map(ctx, [g.geometry for g, _, _ in grids], f"{t['coverage']} · {day}", "coverage")
    features = []
    for grid, share, tooltip in grids:
        color = COVERAGE_COLORS[int(np.searchsorted(COVERAGE_BINS, share, side="right")) - 1]
        features.append(
            {
                "type": "Feature",
                "id": grid.code,
                "properties": {"tip": tooltip, "fill": color},
                "geometry": _display_json(grid.geometry, ctx.tiles.crs, simplify=True),
            }
        )
    folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=t["coverage"],
        style_function=lambda f: {
            "fillColor": f["properties"]["fill"],
            "color": "#555",
            "weight": 1,
            "fillOpacity": 0.55,
        },
        highlight_function=lambda f: {"weight": 3, "color": "#000"},
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
    ).add_to(fmap)
    _track_layer(ctx, fmap, tracks, weight=2, opacity=0.7)
    labels = ["< 20%", "20-50%", "50-80%", "≥ 80%"]
    Legend(t["legend_coverage"], list(zip(COVERAGE_COLORS, labels, strict=True))).add_to(fmap)
    folium.Element(
        f'<form class="gw-date" method="get"><label>{html.escape(t["date"])} '
        f'<input type="date" name="date" value="{html.escape(day)}"></label>'
        f'<button type="submit">↻</button></form>'
    ).add_to(_figure(fmap).html)
    folium.LayerControl(collapsed=True).add_to(fmap)
    return _render(fmap, ctx)


def live_page(
    ctx: PageContext,
    grids: Sequence[MapGrid],
    alerts: list[dict],
    after: int,
    *,
    warnings: Sequence[dict] = (),
    after_warning: int = 0,
    requests: Sequence[MapPoint] = (),
) -> str:
    """Grid outlines, the open alerts and level-2 dispute warnings, the open requests; new
    alerts and warnings arrive over /alerts/stream (live.js)."""
    t = ctx.t
    fmap = _base_map(ctx, [g.geometry for g in grids], t["live"], "live")
    leaves = _grid_layer(
        ctx,
        fmap,
        [g for g in grids if g.level == "grid"],
        t["layer_grids"],
        show=True,
        outline=True,
    )
    GridLabels(leaves).add_to(fmap)
    _case_layers(ctx, fmap, requests, (), cluster=False)
    for alert in [*alerts, *warnings]:
        if alert.get("lon") is not None:
            x, y = points_to_display(
                np.array([alert["lon"]]), np.array([alert["lat"]]), ctx.tiles.crs
            )
            alert["lon"], alert["lat"] = float(x[0]), float(y[0])
    live_texts = {
        key: t[key]
        for key in ("ack", "acked", "connected", "reconnecting", "new_alert", "no_alerts")
    }
    live_texts["kind"] = t["alert_kind"]
    live_texts["state"] = {k: v for k, v in t["alert_state"].items() if k is not None}
    live_texts["level"] = t["level"]
    live_texts["warning"] = t["warning"]
    live_texts["warning_reason"] = t["warning_reason"]
    feed = LiveFeed(alerts, after, ctx.tiles.crs, live_texts, leaves, ctx.zone)
    feed.warnings, feed.after_warning = list(warnings), after_warning
    feed.add_to(fmap)
    Legend(
        t["layer_alerts"],
        [
            (EMERGENCY_COLOR, t["emergency_grids"]),
            (RESIDENT_COLORS[3], t["alert_state"]["open"]),
            (RESIDENT_COLORS[2], t["alert_state"]["acknowledged"]),
            (WARNING_COLOR, t["layer_warnings"]),
            (REQUEST_COLORS[0], t["layer_requests"]),
            (REQUEST_COLORS[1], t["requests_overdue"]),
        ],
    ).add_to(fmap)
    root = _figure(fmap)
    # The list sits beside the map (below it on a phone), never over it: the map keeps the
    # rest of the screen and fits the district into that.
    root.header.add_child(Element(f"<style>{LIVE_LAYOUT}</style>"))
    root.html.add_child(
        Element(
            '<aside class="gw-panel" id="gw-panel"><div class="gw-status" id="gw-status">'
            '…</div><ol id="gw-alerts"></ol></aside>'
        )
    )
    for script in ("stream.js", "live.js"):  # deferred scripts run in this order
        root.header.add_child(Element(f'<script defer src="/static/gridwatch/{script}"></script>'))
    return _render(fmap, ctx)


# -- parts ------------------------------------------------------------------------------------


def _base_map(
    ctx: PageContext, shapes: Sequence[BaseGeometry], title: str, page: str
) -> folium.Map:
    t = ctx.t
    fmap = folium.Map(tiles=None, zoom_start=14, location=[0.0, 0.0])
    MetricScale().add_to(fmap)
    # Without tiles nothing tells Leaflet how far it may zoom; clustering needs to know.
    fmap.options["max_zoom"] = 19
    fmap.options["min_zoom"] = 8
    fmap.options["zoom_snap"] = 0.25  # fit the district to the screen, not to a power of two
    fmap.default_js = list(LOCAL_JS)
    fmap.default_css = list(LOCAL_CSS)
    for layer in ctx.tiles.layers:
        folium.TileLayer(
            tiles=layer.url,
            attr=layer.attribution,
            name=layer.name,
            subdomains=layer.subdomains or "abc",
            max_zoom=layer.max_zoom,
            overlay=layer.overlay,
            control=False,
        ).add_to(fmap)
    if shapes:
        minx, miny, maxx, maxy = shapely.total_bounds(
            [to_display(s, ctx.tiles.crs) for s in shapes]
        )
        fmap.fit_bounds([[miny, minx], [maxy, maxx]], padding=(10, 10))
    root = _figure(fmap)
    root.title = html.escape(f"{title} · {t['app']}")
    root.html.add_child(Element(_header(ctx, title, page)))
    if not ctx.tiles.layers:
        root.html.add_child(
            Element(f'<div class="gw-offline">{html.escape(t["tiles_none"])}</div>')
        )
    return fmap


def _figure(fmap: folium.Map) -> Figure:
    """The page a map is drawn in: folium puts every map in a Figure."""
    root = fmap.get_root()
    if not isinstance(root, Figure):
        raise TypeError(f"a folium map outside a page: {root!r}")
    return root


def nav_links(t: dict) -> list[tuple[str, str, str]]:
    """(key, href, label) of every page in the bar, the same on maps and console pages."""
    return [
        ("console", "/console", t["desk"]),
        ("ledger", "/console/ledger", t["ledger"]),
        ("places", "/console/places", t["places"]["title"]),
        ("phone", "/m", t["phone_nav"]),
        ("live", "/maps/live", t["live"]),
        ("overview", "/maps/overview", t["overview"]),
        ("coverage", "/maps/coverage", t["coverage"]),
    ]


def _header(ctx: PageContext, title: str, page: str) -> str:
    t = ctx.t
    on = ' class="on"'
    nav = "".join(
        f'<a href="{href}"{on if key == page else ""}>{html.escape(label)}</a>'
        for key, href, label in nav_links(t)
    )
    stamp = ctx.updated.astimezone(ctx.zone).strftime("%H:%M")
    return (
        f'<header class="gw-bar"><b class="gw-title">{html.escape(title)}</b>'
        f'<nav>{nav}</nav><script src="/static/gridwatch/nav.js"></script>'
        f'<span class="gw-user"><span class="gw-stamp">{html.escape(t["updated"])} {stamp} · '
        f"{html.escape(ctx.user)}</span>"
        f'<form method="post" action="/logout"><button>{html.escape(t["logout"])}</button>'
        f"</form></span></header>"
    )


def track_color(worker: str) -> str:
    """The same colour for a worker on every page and every run."""
    return TRACK_COLORS[zlib.crc32(worker.encode()) % len(TRACK_COLORS)]


def issue_color(grid: MapGrid) -> str:
    """Open alerts and hazards per grid below it, binned: a community is compared like a grid."""
    density = (grid.counts.open_alerts + grid.counts.open_hazards) / max(grid.leaves, 1)
    return ISSUE_COLORS[int(np.searchsorted(ISSUE_BINS, density, side="right")) - 1]


def grid_tooltip(t: dict, grid: MapGrid) -> str:
    rows = [
        (t["levels"].get(grid.level, grid.level), f"{grid.name} ({grid.code})"),
        (t["residents"], grid.counts.residents),
        (t["open_alerts"], grid.counts.open_alerts),
        (t["open_hazards"], grid.counts.open_hazards),
        (t["overdue_hazards"], grid.counts.overdue_hazards),
        (t["checkins"], grid.counts.checkins),
    ]
    return "<br>".join(f"<b>{html.escape(str(k))}</b> {html.escape(str(v))}" for k, v in rows)


def _grid_layer(
    ctx, fmap, grids: Sequence[MapGrid], name: str, *, show: bool, outline: bool
) -> folium.GeoJson:
    t = ctx.t
    features = [
        {
            "type": "Feature",
            "id": g.code,
            "properties": {"tip": grid_tooltip(t, g), "fill": issue_color(g), "name": g.name},
            "geometry": _display_json(g.geometry, ctx.tiles.crs, simplify=True),
        }
        for g in grids
    ]
    weight = 2.5 if outline else 1

    def style(feature) -> dict:
        return {
            "fillColor": feature["properties"]["fill"],
            "color": "#37474f" if outline else "#607d8b",
            "weight": weight,
            "fillOpacity": 0.15 if outline else 0.6,
        }

    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=name,
        style_function=style,
        highlight_function=lambda f: {"weight": 3, "color": "#000"},
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False, sticky=True),
        show=show,
        smooth_factor=1.5,
    )
    layer.add_to(fmap)
    return layer


def _track_layer(
    ctx: PageContext,
    fmap: folium.Map,
    tracks: Sequence[tuple[str, BaseGeometry, str]],
    *,
    weight: int,
    opacity: float,
) -> None:
    """Patrol tracks (worker, line, tooltip) as lines in each worker's colour, in one layer."""
    group = folium.FeatureGroup(name=ctx.t["layer_tracks"], overlay=True).add_to(fmap)
    for worker, line, tooltip in tracks:
        coords = _display_coords(line, ctx.tiles.crs)
        if len(coords) >= 2:  # a single point is not a line
            folium.PolyLine(
                coords, color=track_color(worker), weight=weight, opacity=opacity, tooltip=tooltip
            ).add_to(group)


def _issue_legend(ctx: PageContext, *, cases: bool = False) -> Legend:
    """Open issues per grid; with `cases`, the markers of requests and warnings below."""
    t = ctx.t
    labels = ["0", "1-2", "3-5", "6-9", "≥ 10"]
    items = list(zip(ISSUE_COLORS, labels, strict=True))
    if cases:
        items += [
            (REQUEST_COLORS[0], t["layer_requests"]),
            (REQUEST_COLORS[1], t["requests_overdue"]),
            (WARNING_COLOR, t["layer_warnings"]),
        ]
    return Legend(t["legend_title"], items)


def _case_layers(
    ctx: PageContext,
    fmap: folium.Map,
    requests: Sequence[MapPoint],
    warnings: Sequence[MapPoint],
    *,
    cluster: bool,
) -> None:
    """Open requests (rank 1: overdue) and level-2 warnings, each a layer of its own."""
    t = ctx.t
    PointLayer(
        requests, REQUEST_COLORS, name=t["layer_requests"], crs=ctx.tiles.crs, cluster=cluster
    ).add_to(fmap)
    if warnings:
        PointLayer(
            warnings, (WARNING_COLOR,), name=t["layer_warnings"], crs=ctx.tiles.crs, radius=8,
            cluster=cluster,
        ).add_to(fmap)  # fmt: skip


def _display_json(geometry: BaseGeometry, crs: str, *, simplify: bool = False) -> dict:
    shape = to_display(geometry, crs)
    if simplify:
        shape = shapely.simplify(shape, SIMPLIFY_DEG, preserve_topology=True)
    shape = shapely.transform(shape, lambda xy: np.round(xy, OVERVIEW_DIGITS))
    return mapping(shape)


def _display_coords(line: BaseGeometry, crs: str) -> list[list[float]]:
    xy = shapely.get_coordinates(to_display(line, crs))
    return [[round(float(y), 6), round(float(x), 6)] for x, y in xy]


def _render(fmap: folium.Map, ctx: PageContext) -> str:
    page = fmap.get_root().render()
    return page.replace("<html>", f'<html lang="{ctx.t["html_lang"]}">', 1)
