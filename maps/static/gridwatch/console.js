// The console's pages (desk, alert, case, ledger): small plain scripts over server-rendered
// HTML. Actions post through the API with the session cookie and the header that proves the
// request came from a gridwatch page; results show without a reload. Times are shown in the
// district's zone (data.zone), never the browser's.
(function () {
  "use strict";
  var node = document.getElementById("gw-data");
  var data = node ? JSON.parse(node.textContent) : {};
  var page = document.body.getAttribute("data-page");

  function parts(epochMs) {
    var out = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: data.zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    }).formatToParts(new Date(epochMs)).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  // "11-23 14:05" in the district's zone; "2026-11-23 14:05" with `year`.
  function when(value, year) {
    var ms = typeof value === "number" ? value * 1000 : Date.parse(value);
    var p = parts(ms);
    return (year ? p.year + "-" : "") + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text != null) { e.textContent = text; }
    return e;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-Requested-With": "gridwatch", "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) { throw new Error(json.reason || response.status); }
        return json;
      });
    });
  }

  // -- action forms: a button opens the form its step needs, confirm posts it ---------------

  function setupActions(onDone) {
    var box = document.getElementById("gw-actions");
    if (!box) { return; }
    var result = document.getElementById("gw-result");
    var texts = data.texts;
    box.querySelectorAll("button[data-form]").forEach(function (button) {
      button.addEventListener("click", function () {
        box.querySelectorAll("form.gw-form").forEach(function (f) { f.hidden = true; });
        var form = document.getElementById("gw-form-" + button.getAttribute("data-form"));
        form.hidden = false;
        var first = form.querySelector("input:not([type=checkbox]), textarea");
        if (first) { first.focus(); }
      });
    });
    box.querySelectorAll("form.gw-form").forEach(function (form) {
      form.querySelector("[data-cancel]").addEventListener("click", function () {
        form.hidden = true;
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var body = {};
        form.querySelectorAll("input, textarea, select").forEach(function (field) {
          if (field.type === "checkbox") { body[field.name] = field.checked; return; }
          var value = field.value.trim();
          if (field.hasAttribute("data-lines")) {
            body[field.name] = value ? value.split(/\s+/) : [];
          } else if (value) {
            body[field.name] = value;
          }
        });
        var confirm = form.querySelector("[data-action=confirm]");
        confirm.disabled = true;
        result.className = "gw-result";
        result.textContent = texts.sending;
        post(form.getAttribute("data-post"), body).then(function (json) {
          form.hidden = true;
          form.reset();
          result.textContent = texts.done;
          result.className = "gw-result ok";
          onDone(json);
        }, function (error) {
          result.textContent = texts.failed + ": " + error.message;
          result.className = "gw-result bad";
        }).then(function () { confirm.disabled = false; });
      });
    });
  }

  function timeline(events, label) {
    var list = document.getElementById("gw-timeline");
    list.textContent = "";
    events.forEach(function (e) {
      var li = el("li");
      li.appendChild(el("time", null, when(e.at, true)));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("b", null, data.texts.event[e.action] || e.action));
      li.appendChild(document.createTextNode(" " + (e.actor || "") + " "));
      var note = label(e);
      if (note) { li.appendChild(el("span", "gw-note", note)); }
      (e.photo_urls || []).forEach(function (url, i) {
        var a = el("a", null, data.texts.photos + " " + (i + 1));
        a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer";
        li.appendChild(a);
      });
      list.appendChild(li);
    });
  }

  // -- the desk: live list over SSE, figures refreshed after each event ---------------------

  function desk() {
    var t = data.texts;
    var list = document.getElementById("gw-list");
    var status = document.getElementById("gw-status");
    var refresh = null;

    function item(e) {
      var id = "gw-alert-" + e.alert_id;
      var li = document.getElementById(id) || el("li");
      li.id = id;
      var state = e.state === "resolved" ? "resolved"
        : (e.state === "acknowledged" || e.status === "acknowledged") ? "acknowledged" : "open";
      li.className = state + (data.urgent.indexOf(e.kind) >= 0 ? " urgent" : "") + " fresh";
      li.textContent = "";
      var a = el("a");
      a.href = "/console/alerts/" + e.alert_id;
      a.appendChild(el("b", null, t.kind[e.kind] || e.kind));
      a.appendChild(document.createTextNode(" "));
      a.appendChild(el("span", null, (e.resident && e.resident.name) || e.resident_id || ""));
      a.appendChild(document.createTextNode(" · "));
      a.appendChild(el("span", null, e.grid || ""));
      a.appendChild(el("small", null, when(e.since) + " · " + (t.state[state] || state) +
        " · " + (t.level[e.level] || e.level || "")));
      li.appendChild(a);
      list.insertBefore(li, list.firstChild);
      var empty = document.getElementById("gw-empty");
      if (empty) { empty.remove(); }
    }

    function figures() {
      // The figures alone: the list beside them follows the stream (and no resident is read).
      var url = "/console/summary.json?live=false" +
        (data.kind ? "&kind=" + encodeURIComponent(data.kind) : "");
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); })
        .then(function (s) {
          var values = {
            "alerts.open": s.alerts.open, "alerts.unacked": s.alerts.unacked,
            "hazards.open": s.hazards.open, "hazards.overdue": s.hazards.overdue,
            "awaiting_installation": s.awaiting_installation, "coverage.percent": s.coverage.percent,
            "inspections.overdue": s.inspections.overdue,
            "requests.open": s.requests.open, "requests.overdue": s.requests.overdue,
            "warnings.open": s.warnings.open
          };
          s.alerts.by_kind.forEach(function (k) { values["kind." + k.kind] = k.open; });
          s.alerts.by_level.forEach(function (l) { values["level." + l.level] = l.count; });
          document.querySelectorAll("[data-k]").forEach(function (node) {
            var key = node.getAttribute("data-k");
            if (key in values) { node.textContent = values[key]; }
          });
          var open = s.alerts.unacked;
          document.title = (open ? "(" + open + ") " : "") + document.title.replace(/^\(\d+\) /, "");
        });
    }

    var stream = window.gridwatchStream("/alerts/stream?after=" + data.after, status, t, function (e) {
      if (!data.kind || e.kind === data.kind) { item(e); }
      clearTimeout(refresh);
      refresh = setTimeout(figures, 400);
    });
    var cases = window.gridwatchStream("/cases/stream?after=" + data.cases_after,
      document.getElementById("gw-case-status"), t, function (e) {
        caseItem(e);
        clearTimeout(refresh);
        refresh = setTimeout(figures, 400);
      }, "case");
    // Cases fall overdue with no event to say so: the figures are read again each minute too.
    setInterval(figures, 60000);
    window.gridwatchConsole = { stream: stream, cases: cases };
  }

  // One step of a case as the desk's case feed shows it: the case's newest step on top.
  function caseItem(e) {
    var t = data.texts;
    var list = document.getElementById("gw-case-list");
    var id = "gw-case-" + e.case_id;
    var li = document.getElementById(id) || el("li");
    li.id = id;
    li.className = "case-" + e.status + " fresh";
    li.textContent = "";
    var a = el("a");
    a.href = "/console/cases/" + e.case_id;
    a.appendChild(el("b", null, (t.case_kind[e.kind] || e.kind) + " · " +
      (t.case_category[e.kind][e.category] || e.category)));
    a.appendChild(document.createTextNode(" "));
    a.appendChild(el("span", null, e.grid || ""));
    a.appendChild(el("small", "gw-case-step", when(e.at) + " · " +
      (t.case_event[e.action] || e.action) + " · " + (e.actor || "") + " · " +
      (t.case_status[e.kind][e.status] || e.status)));
    if (e.note && e.actor !== "gridwatch") { a.appendChild(el("small", "gw-note", e.note)); }
    li.appendChild(a);
    list.insertBefore(li, list.firstChild);
    var empty = document.getElementById("gw-case-empty");
    if (empty) { empty.remove(); }
  }

  // -- one alert: its week drawn from the API, its actions ---------------------------------

  function alertPage() {
    var t = data.texts;
    function show(id, on) { var n = document.getElementById(id); if (n) { n.hidden = !on; } }
    function apply(properties) {
      var st = properties.status;
      document.getElementById("gw-state").textContent = t.state[st] || st;
      show("gw-nothing", st === "resolved");
      document.querySelector("[data-action=ack]").hidden = st !== "open";
      document.querySelector("[data-action=resolve-alert]").hidden = st === "resolved";
      if (properties.acknowledged_at) {
        show("gw-acked", true);
        document.querySelector("#gw-acked dd").textContent =
          (properties.acknowledged_by || "") + " " + when(properties.acknowledged_at);
      }
      if (properties.resolved_at) {
        show("gw-resolved", true);
        document.querySelector("#gw-resolved dd").textContent = (properties.resolved_by || "") +
          " " + when(properties.resolved_at) + (properties.resolution ? ": " + properties.resolution : "");
      }
      document.querySelector(".gw-head").className = "gw-head " + st;
    }
    function reload() {
      fetch("/collections/alerts/items/" + data.alert_id, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (feature) {
          apply(feature.properties);
          timeline(feature.properties.events, function (e) {
            return e.note ? (data.kinds[e.note] || e.note) : "";
          });
        });
    }
    setupActions(function (feature) { apply(feature.properties); reload(); });
    var stream = new EventSource("/alerts/stream?after=" + data.after);
    stream.addEventListener("alert", function (message) {
      if (JSON.parse(message.data).alert_id === data.alert_id) { reload(); }
    });
    window.gridwatchConsole = { stream: stream };
    fetch(data.week, { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(drawWeek);
  }

  var COLORS = {
    power: "#1f77b4", spike: "#2ca02c", sustained: "#2ca02c", meter_sign: "#2ca02c",
    sensor: "#8c8c00", seen: "#1565c0", absence: "rgba(120,120,120,0.18)",
    span: "rgba(215,25,28,0.16)"
  };

  function drawWeek(week) {
    var box = document.getElementById("gw-chart");
    var s = data.series;
    var times = week.power.t.length ? week.power.t : [week.start, week.end];
    var watts = week.power.t.length ? week.power.w : [null, null];
    var b = week.baseline;
    var top = Math.max.apply(null, watts.filter(function (w) { return w != null; }).concat(
      [b ? b.spike_w : 0, 100])) * 1.12;
    document.getElementById("gw-chart-empty").hidden = week.power.t.length > 0;

    function x(u, v) { return u.valToPos(v, "x", true); }
    function band(u, a, z, color) {
      var ctx = u.ctx, left = Math.max(x(u, a), u.bbox.left);
      var right = Math.min(x(u, z), u.bbox.left + u.bbox.width);
      if (right <= left) { return; }
      ctx.fillStyle = color;
      ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
    }
    function hline(u, w, dash) {
      var ctx = u.ctx, y = u.valToPos(w, "y", true);
      ctx.save(); ctx.strokeStyle = COLORS.spike; ctx.setLineDash(dash); ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke(); ctx.restore();
    }
    function marks(u, list, row, color, shape) {
      var ctx = u.ctx, y = u.bbox.top + row * devicePixelRatio;
      ctx.fillStyle = color; ctx.strokeStyle = color;
      list.forEach(function (at) {
        var px = x(u, at);
        if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) { return; }
        if (shape === "tick") { ctx.fillRect(px - 1, y - 5, 2, 10); }
        else if (shape === "tri") {
          ctx.beginPath(); ctx.moveTo(px, y - 6); ctx.lineTo(px - 5, y + 4); ctx.lineTo(px + 5, y + 4);
          ctx.fill();
        } else { ctx.beginPath(); ctx.arc(px, y, 2.2 * devicePixelRatio, 0, 7); ctx.fill(); }
      });
    }
    var opts = {
      width: box.clientWidth, height: window.innerWidth < 600 ? 240 : 300,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.zone); },
      scales: { x: { time: true, range: [week.start, week.end] }, y: { range: [0, top] } },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: s.time, value: function (u, v) { return v == null ? "" : when(v); } },
        { label: s.power, stroke: COLORS.power, width: 1, spanGaps: false,
          value: function (u, v) { return v == null ? "" : Math.round(v) + " W"; } }
      ],
      axes: [
        { values: function (u, splits) {
            return splits.map(function (v) {
              var p = parts(v * 1000);
              return p.hour === "00" && p.minute === "00" ? p.month + "-" + p.day : p.hour + ":" + p.minute;
            });
          } },
        { label: "W", size: 50 }
      ],
      hooks: {
        drawClear: [function (u) {
          week.absences.forEach(function (a) { band(u, a[0], a[1], COLORS.absence); });
          band(u, week.span[0], week.span[1], COLORS.span);
          var at = x(u, week.span[0]);
          u.ctx.fillStyle = "#d7191c";
          u.ctx.fillRect(at - devicePixelRatio, u.bbox.top, 2 * devicePixelRatio, u.bbox.height);
        }],
        draw: [function (u) {
          if (b) { hline(u, b.spike_w, [6, 4]); hline(u, b.sustained_w, [2, 3]); }
          marks(u, week.meter_signs, 8, COLORS.meter_sign, "dot");
          marks(u, week.sensor_events.map(function (e) { return e[0]; }), 20, COLORS.sensor, "tick");
          marks(u, week.seen.map(function (e) { return e[0]; }), 33, COLORS.seen, "tri");
        }]
      }
    };
    var chart = new uPlot(opts, [times, watts], box);
    window.addEventListener("resize", function () {
      chart.setSize({ width: box.clientWidth, height: opts.height });
    });
    var legend = document.getElementById("gw-chart-legend");
    [["spike", "dash"], ["sustained", "dot"], ["meter_sign", "dot-mark"], ["sensor", "tick"],
     ["seen", "tri"], ["absence", "band"], ["span", "band"]].forEach(function (entry) {
      var li = el("li", "gw-key-" + entry[1]);
      var swatch = el("i");
      swatch.style.background = entry[1] === "dash" || entry[1] === "dot" ? "none" : COLORS[entry[0]];
      swatch.style.borderColor = COLORS[entry[0]];
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(s[entry[0]]));
      legend.appendChild(li);
    });
    window.gridwatchChart = chart;
  }

  // -- one case: its map and the steps its state allows ------------------------------------

  function casePage() {
    var t = data.texts;
    var m = data.map;
    var map = L.map("gw-case-map", { zoomSnap: 0.25, maxZoom: 19 });
    m.tiles.forEach(function (tile) {
      L.tileLayer(tile.url, { attribution: tile.attribution, subdomains: tile.subdomains,
        maxZoom: tile.max_zoom }).addTo(map);
    });
    var outline = m.grid ? L.geoJSON(m.grid, {
      style: { color: "#37474f", weight: 2, fillOpacity: 0.08 }, interactive: false }) : null;
    // A request with only an address has no point: its grid (or street) shows where.
    var bounds = m.point ? L.latLngBounds([m.point, m.point]) : null;
    if (outline) { bounds = bounds ? bounds.extend(outline.getBounds()) : outline.getBounds(); }
    if (bounds) { map.fitBounds(bounds, { padding: [16, 16], maxZoom: 18 }); }  // a view first
    else { map.setView([0, 0], 1); }
    if (outline) { outline.addTo(map); }
    if (m.point) {
      L.circleMarker(m.point, { radius: 9, color: "#222", weight: 2, fillColor: "#d7301f",
        fillOpacity: 0.9 }).addTo(map);
    }
    function apply(feature) {
      var p = feature.properties;
      document.getElementById("gw-state").textContent = t.case_state[p.status] || p.status;
      document.getElementById("gw-level").textContent = t.level[p.level] || p.level;
      document.getElementById("gw-assignee").textContent = p.assignee || "";
      document.getElementById("gw-late").hidden = !p.overdue;
      var any = false;
      document.querySelectorAll("#gw-actions button[data-form]").forEach(function (button) {
        var allowed = data.transitions[button.getAttribute("data-form")].indexOf(p.status) >= 0;
        button.hidden = !allowed;
        any = any || allowed;
      });
      document.getElementById("gw-nothing").hidden = any;
      timeline(p.events, function (e) { return e.actor === "gridwatch" ? "" : e.note; });
    }
    setupActions(apply);
    // A step taken elsewhere (a worker's phone, another desk) shows here as it happens.
    var stream = new EventSource("/cases/stream?after=" + data.cases_after);
    stream.addEventListener("case", function (message) {
      if (JSON.parse(message.data).case_id !== data.case_id) { return; }
      fetch(data.item, { credentials: "same-origin" }).then(function (r) { return r.json(); })
        .then(apply);
    });
    window.gridwatchCase = map;
    window.gridwatchConsole = { cases: stream };
  }

  if (page === "console") { desk(); }
  else if (page === "alert") { alertPage(); }
  else if (page === "case") { casePage(); }
})();
