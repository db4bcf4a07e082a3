// The duty officer's live view: open alerts and level-2 dispute warnings on the map and in a
// list, updated from /alerts/stream (Server-Sent Events, stream.js) without a reload; with
// warnings=true each event id holds both positions (A.W), so a reconnection resumes both.
(function () {
  "use strict";
  var live = window.gridwatchLive;
  if (!live) { return; }
  var t = live.texts;
  var layer = L.layerGroup().addTo(live.map);
  var alerts = {};      // alert_id -> alert
  var markers = {};     // alert_id -> circle marker
  var list = document.getElementById("gw-alerts");
  var status = document.getElementById("gw-status");
  var baseTitle = document.title;
  var colors = { open: "#d7191c", acknowledged: "#fdae61", resolved: "#1a9641" };
  var EMERGENCY = "#b0003a";
  var clock = new Intl.DateTimeFormat("en-GB", { timeZone: live.zone, month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

  // "11-23 14:05" in the district's zone, whatever zone the browser is in.
  function when(iso) {
    var p = {};
    clock.formatToParts(new Date(iso)).forEach(function (x) { p[x.type] = x.value; });
    return p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }

  function urgent(alert) { return live.urgent.indexOf(alert.kind) >= 0; }

  // Grids with an SOS or a fall not yet resolved stand out from any count of hazards.
  function markGrids() {
    var hot = {};
    Object.keys(alerts).forEach(function (id) {
      var a = alerts[id];
      if (urgent(a) && a.status !== "resolved" && a.grid) { hot[a.grid] = true; }
    });
    live.grids.eachLayer(function (l) {
      if (hot[l.feature.id]) {
        l.setStyle({ color: EMERGENCY, weight: 4, fillColor: EMERGENCY, fillOpacity: 0.45 });
        l.bringToFront();
      } else {
        live.grids.resetStyle(l);
      }
    });
  }

  function stateOf(event) {
    if (event.state === "resolved") { return "resolved"; }
    if (event.state === "acknowledged") { return "acknowledged"; }
    return event.status === "acknowledged" ? "acknowledged" : "open";
  }

  function label(alert) {
    var who = alert.resident ? (alert.resident.name || alert.resident_id) : alert.resident_id;
    return (t.kind[alert.kind] || alert.kind) + " · " + (who || "") + " · " + (alert.grid || "");
  }

  function details(alert) {
    var r = alert.resident || {};
    var parts = [t.state[alert.status] || alert.status, t.level[alert.level] || alert.level];
    if (alert.since) { parts.unshift(when(alert.since)); }
    if (r.phone) { parts.push(r.phone); }
    if (r.address) { parts.push(r.address); }
    return parts.join(" · ");
  }

  function tooltipNode(alert) {
    var div = document.createElement("div");
    var b = document.createElement("b");
    b.textContent = label(alert);
    div.appendChild(b);
    div.appendChild(document.createElement("br"));
    div.appendChild(document.createTextNode(details(alert)));
    return div;
  }

  function draw(alert, fresh) {
    var id = alert.alert_id;
    alerts[id] = alert;
    var marker = markers[id];
    if (alert.status === "resolved") {
      if (marker) { layer.removeLayer(marker); delete markers[id]; }
    } else if (alert.lat != null && alert.lon != null) {
      if (!marker) {
        marker = L.circleMarker([alert.lat, alert.lon], { radius: urgent(alert) ? 12 : 8,
          weight: urgent(alert) ? 3 : 2, color: urgent(alert) ? EMERGENCY : "#222",
          fillOpacity: 0.9, className: "gw-alert-marker" }).addTo(layer);
        markers[id] = marker;
      }
      marker.setStyle({ fillColor: colors[alert.status] || "#d7191c" });
      marker.bindTooltip(tooltipNode(alert));
    }
    var item = document.getElementById("gw-alert-" + id);
    if (!item) {
      item = document.createElement("li");
      item.id = "gw-alert-" + id;
      item.addEventListener("click", function () {
        var a = alerts[id];
        if (a && a.lat != null) { live.map.setView([a.lat, a.lon], Math.max(live.map.getZoom(), 17)); }
      });
      list.insertBefore(item, list.firstChild);
    } else if (fresh) {
      list.insertBefore(item, list.firstChild);
    }
    item.className = alert.status + (urgent(alert) ? " urgent" : "") + (fresh ? " fresh" : "");
    item.textContent = "";
    var head = document.createElement("a");
    head.href = "/console/alerts/" + id;
    head.textContent = label(alert);
    head.addEventListener("click", function (e) { e.stopPropagation(); });
    item.appendChild(head);
    if (alert.status === "open") {
      var button = document.createElement("button");
      button.textContent = t.ack;
      button.addEventListener("click", function (e) { e.stopPropagation(); acknowledge(id, button); });
      item.appendChild(button);
    }
    var line = document.createElement("div");
    line.textContent = details(alert);
    item.appendChild(line);
    count();
    markGrids();
  }

  // A level-2 warning: a marker of its own colour and a line at the top of the list.
  function drawWarning(w, fresh) {
    if (document.getElementById("gw-warning-" + w.warning_id)) { return; }
    var head = t.warning + " · " + w.category + " · " + (w.grid || "");
    var parts = [when(w.since), t.warning_reason[w.reason] || w.reason || ""];
    if (w.keywords && w.keywords.length) { parts.push(w.keywords.join("、")); }
    var line = parts.join(" · ");
    if (w.lat != null && w.lon != null) {
      var tip = document.createElement("div");
      var b = document.createElement("b");
      b.textContent = head;
      tip.appendChild(b);
      tip.appendChild(document.createElement("br"));
      tip.appendChild(document.createTextNode(line));
      L.circleMarker([w.lat, w.lon], { radius: 9, weight: 2, color: "#222",
        fillColor: live.warningColor, fillOpacity: 0.9, className: "gw-warning-marker" })
        .bindTooltip(tip).addTo(layer);
    }
    var item = document.createElement("li");
    item.id = "gw-warning-" + w.warning_id;
    item.className = "warning" + (fresh ? " fresh" : "");
    item.style.borderLeft = "4px solid " + live.warningColor;
    var title = document.createElement("b");
    title.textContent = head;
    item.appendChild(title);
    var detail = document.createElement("div");
    detail.textContent = line;
    item.appendChild(detail);
    item.addEventListener("click", function () {
      if (w.lat != null) { live.map.setView([w.lat, w.lon], Math.max(live.map.getZoom(), 17)); }
    });
    list.insertBefore(item, list.firstChild);
    count();
  }

  function count() {
    var open = 0;
    Object.keys(alerts).forEach(function (id) { if (alerts[id].status === "open") { open++; } });
    document.title = (open ? "(" + open + ") " : "") + baseTitle;
    if (!list.firstChild) {
      var empty = document.createElement("li");
      empty.textContent = t.no_alerts;
      empty.id = "gw-empty";
      list.appendChild(empty);
    } else if (open || list.children.length > 1) {
      var e = document.getElementById("gw-empty");
      if (e) { e.remove(); }
    }
  }

  function acknowledge(id, button) {
    button.disabled = true;
    fetch("/alerts/" + id + "/ack", {
      method: "POST", credentials: "same-origin",
      headers: { "X-Requested-With": "gridwatch", "Content-Type": "application/json" },
      body: "{}"
    }).then(function (response) {
      if (!response.ok) { button.disabled = false; }
    }, function () { button.disabled = false; });
  }

  live.alerts.forEach(function (a) { draw(a, false); });
  live.warnings.forEach(function (w) { drawWarning(w, false); });
  count();

  var url = "/alerts/stream?warnings=true&after=" + live.after +
    "&after_warning=" + live.afterWarning + "&crs=" + live.crs;
  var stream = window.gridwatchStream(url, status, t, function (event) {
    var known = alerts[event.alert_id];
    var alert = {
      alert_id: event.alert_id, kind: event.kind, severity: event.severity, level: event.level,
      grid: event.grid, resident_id: event.resident_id, resident: event.resident,
      lon: event.lon, lat: event.lat, since: event.since, status: stateOf(event)
    };
    draw(alert, !known || known.status !== alert.status);
  });
  stream.addEventListener("warning", function (message) {
    drawWarning(JSON.parse(message.data), true);
  });
  window.gridwatchLive.stream = stream;
})();
