// The grid worker's phone view (/m): the task list sorted by distance from the phone, a form
// for each step opened under its task, a hazard report and a home visit with photos from the
// camera and the phone's position. Steps post through the API with the session cookie and the
// header that proves the request came from a gridwatch page; photos go as multipart form data
// (field `payload`: the JSON body, field `photos`: the images, shrunk for a slow link). The
// list is redrawn from /m/tasks after each step and each live event, without a reload.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gw-data").textContent);
  var t = data.texts;
  var list = document.getElementById("gw-tasks");
  var result = document.getElementById("gw-result");
  var where = document.getElementById("gw-where");
  var here = null;  // the phone's last fix: {lon, lat, accuracy}
  var sortBy = "near";
  var waiting = false;  // a redraw held back while a form is open in the list
  var homes = [];  // each form and where it lives when closed
  var skew = data.now_ms - Date.now();  // the server's clock less the phone's

  function toLogin() {
    window.location.href = "/login?next=/m";
  }

  function say(text, kind) {
    result.textContent = text;
    result.className = "gw-result" + (kind ? " " + kind : "");
  }

  // -- where the phone is, and how far each task -------------------------------------------

  function metres(a, b) {
    var rad = Math.PI / 180, dLat = (b.lat - a.lat) * rad, dLon = (b.lon - a.lon) * rad;
    var h = Math.sin(dLat / 2) * Math.sin(dLat / 2) + Math.cos(a.lat * rad) *
      Math.cos(b.lat * rad) * Math.sin(dLon / 2) * Math.sin(dLon / 2);
    return 12742000 * Math.asin(Math.sqrt(h));
  }

  function distanceText(m) {
    return m < 1000 ? t.distance_m.replace("{n}", String(Math.round(m / 10) * 10))
      : t.distance_km.replace("{n}", (m / 1000).toFixed(1));
  }

  function positionText() {
    var text = here ? t.position_ok.replace("{m}", String(Math.round(here.accuracy))) : "";
    document.querySelectorAll("[data-position]").forEach(function (node) {
      node.textContent = text || node.getAttribute("data-missing") || t.position_wait;
    });
  }

  function locate() {
    if (!navigator.geolocation) { located(null); return; }
    where.textContent = t.locating;
    navigator.geolocation.getCurrentPosition(function (fix) {
      located({ lon: fix.coords.longitude, lat: fix.coords.latitude,
        accuracy: fix.coords.accuracy || 0 });
    }, function () { located(null); },
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  }

  function located(fix) {
    here = fix;
    where.textContent = fix ? t.located.replace("{m}", String(Math.round(fix.accuracy)))
      : t.no_position;
    document.querySelectorAll("[data-position]").forEach(function (node) {
      node.setAttribute("data-missing", node.closest("#gw-form-report") ? t.position_missing
        : t.position_home);
    });
    positionText();
    order();
  }

  // Emergencies (SOS, falls) stay on top; the rest nearest first, or in the server's order
  // (most urgent first) without a position or when asked.
  function order() {
    var items = Array.prototype.slice.call(list.querySelectorAll("li.gw-task"));
    items.forEach(function (li, i) {
      if (!li.hasAttribute("data-order")) { li.setAttribute("data-order", String(i)); }
      var span = li.querySelector(".gw-dist");
      var lon = li.getAttribute("data-lon");
      if (here && lon !== null) {
        var m = metres(here, { lon: +lon, lat: +li.getAttribute("data-lat") });
        li.setAttribute("data-metres", String(m));
        span.textContent = distanceText(m);
        span.hidden = false;
      }
    });
    var near = sortBy === "near" && here;
    items.sort(function (a, b) {
      var ka = key(a, near), kb = key(b, near);
      return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
    });
    items.forEach(function (li) { list.appendChild(li); });
  }

  function key(li, near) {
    var rank = +li.getAttribute("data-rank"), n = +li.getAttribute("data-order");
    if (!near) { return [rank, 0, n]; }
    var m = li.hasAttribute("data-metres") ? +li.getAttribute("data-metres") : Infinity;
    return [rank === 0 ? 0 : 1, m, n];
  }

  document.querySelectorAll("[data-sort]").forEach(function (button) {
    button.addEventListener("click", function () {
      sortBy = button.getAttribute("data-sort");
      document.querySelectorAll("[data-sort]").forEach(function (b) {
        b.classList.toggle("on", b === button);
      });
      order();
    });
  });

  // -- posting -----------------------------------------------------------------------------

  function send(url, body, photos) {
    var init = { method: "POST", credentials: "same-origin",
      headers: { "X-Requested-With": "gridwatch" } };
    if (photos.length) {
      var form = new FormData();
      form.append("payload", JSON.stringify(body));
      photos.forEach(function (photo) { form.append("photos", photo, photo.name); });
      init.body = form;
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 401) { toLogin(); throw new Error(t.login_again); }
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) { throw new Error(json.reason || String(response.status)); }
        return json;
      });
    });
  }

  // A phone camera's photo is megabytes: sent at most 1600 px wide as JPEG.
  function shrink(file) {
    if (!window.createImageBitmap || !/^image\//.test(file.type)) { return Promise.resolve(file); }
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (image) {
      var scale = Math.min(1, 1600 / Math.max(image.width, image.height));
      if (scale === 1 && file.size < 700000) { return file; }
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(image.width * scale);
      canvas.height = Math.round(image.height * scale);
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          resolve(blob ? new File([blob], file.name.replace(/\.\w+$/, "") + ".jpg",
            { type: "image/jpeg" }) : file);
        }, "image/jpeg", 0.82);
      });
    }).catch(function () { return file; });
  }

  function fields(form) {
    var body = {};
    form.querySelectorAll("input, textarea, select").forEach(function (field) {
      if (!field.name || field.type === "file") { return; }
      if (field.type === "checkbox") { body[field.name] = field.checked; return; }
      if (field.type === "radio" && !field.checked) { return; }
      var value = field.value.trim();
      if (value) { body[field.name] = value; }
    });
    return body;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); });
    return [hex.slice(0, 4), hex.slice(4, 6), hex.slice(6, 8), hex.slice(8, 10), hex.slice(10)]
      .map(function (part) { return part.join(""); }).join("-");
  }

  // -- the forms: a step's opens under its task; report and visit have their own tabs ---------

  function closeForm(form) {
    form.reset();
    list.querySelectorAll("button.gw-step.on").forEach(function (b) { b.classList.remove("on"); });
    form.removeAttribute("data-id");
    form.removeAttribute("data-ts");
    form.querySelectorAll(".gw-photos-chosen").forEach(function (n) { n.hidden = true; });
    var home = homes.filter(function (h) { return h[0] === form; })[0][1];
    if (form.parentNode !== home) { home.appendChild(form); }
    if (home.closest(".gw-step-forms")) { form.hidden = true; }
    if (waiting && !list.querySelector("form")) { waiting = false; refresh(); }
  }

  function openUnder(li, form, button) {
    list.querySelectorAll("form").forEach(closeForm);
    form.setAttribute("data-target", button.getAttribute("data-post"));
    var resident = button.getAttribute("data-resident");
    if (resident) { form.querySelector("[name=resident_id]").value = resident; }
    var title = form.querySelector(".gw-sheet-for");
    if (title) { title.textContent = button.getAttribute("data-title") || ""; }
    var step = form.querySelector(".gw-sheet-step");
    if (step) { step.textContent = button.textContent; }
    button.classList.add("on");
    li.appendChild(form);
    form.hidden = false;
    var first = form.querySelector("textarea, input:not([type=checkbox]):not([type=radio])");
    if (first && first.type !== "file") { first.focus(); }
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button.gw-step");
    if (!button) { return; }
    say("");
    openUnder(button.closest("li"), document.getElementById(
      "gw-form-" + button.getAttribute("data-action")), button);
    if (button.getAttribute("data-action") === "visit") { locate(); }
  });

  function show(tab) {
    document.querySelectorAll(".gw-tabs [data-tab]").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-tab") === tab);
    });
    document.querySelectorAll(".gw-tab").forEach(function (section) {
      section.hidden = section.id !== "gw-tab-" + tab;
    });
  }

  document.querySelectorAll(".gw-tabs [data-tab]").forEach(function (button) {
    button.addEventListener("click", function () {
      var tab = button.getAttribute("data-tab");
      if (tab === "visit") { closeForm(document.getElementById("gw-form-visit")); }
      show(tab);
      if (tab !== "tasks") { locate(); }
    });
  });

  function position(form, body) {
    if (here) {
      body.lon = here.lon; body.lat = here.lat;
      if (here.accuracy) { body.accuracy_m = Math.round(here.accuracy * 10) / 10; }
      return true;
    }
    if (form.id !== "gw-form-visit") { return false; }
    // A visit stands at the home: without a fix, the resident's home is where it was.
    var option = form.querySelector("[name=resident_id]").selectedOptions[0];
    if (!option || !option.hasAttribute("data-lon")) { return false; }
    body.lon = +option.getAttribute("data-lon");
    body.lat = +option.getAttribute("data-lat");
    return true;
  }

  function submit(form) {
    var body = fields(form);
    var step = form.id.replace("gw-form-", "");
    if (step === "report" || step === "visit") {
      if (!position(form, body)) { say(t.position_missing, "bad"); locate(); return; }
      // The same id and time on a retry: a report or visit sent twice is stored once.
      if (!form.hasAttribute("data-id")) { form.setAttribute("data-id", uuid()); }
      if (!form.hasAttribute("data-ts")) {
        form.setAttribute("data-ts", new Date(Date.now() + skew).toISOString());
      }
      body.ts = form.getAttribute("data-ts");
      if (step === "report") { body.id = form.getAttribute("data-id"); }
      else { body.kind = "visit"; }
    }
    var input = form.querySelector("input[type=file]");
    var photos = input ? Array.prototype.slice.call(input.files) : [];
    var confirm = form.querySelector("[data-action=confirm]");
    confirm.disabled = true;
    say(t.sending);
    Promise.all(photos.map(shrink)).then(function (shrunk) {
      return send(form.getAttribute("data-target") || form.getAttribute("data-post"), body,
        shrunk);
    }).then(function () {
      say(step === "report" ? t.report_done : step === "visit" ? t.visit_done : t.done, "ok");
      closeForm(form);
      show("tasks");
      refresh();
    }, function (error) {
      say(t.failed + ": " + error.message, "bad");
    }).then(function () { confirm.disabled = false; });
  }

  document.querySelectorAll("form.gw-sheet").forEach(function (form) {
    homes.push([form, form.parentNode]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit(form);
    });
    form.querySelector("[data-cancel]").addEventListener("click", function () {
      closeForm(form);
      say("");
      if (!form.closest(".gw-step-forms")) { show("tasks"); }
    });
    var input = form.querySelector("input[type=file]");
    if (input) {
      input.addEventListener("change", function () {
        var note = form.querySelector(".gw-photos-chosen");
        note.textContent = t.photos_chosen.replace("{n}", String(input.files.length));
        note.hidden = input.files.length === 0;
      });
    }
  });
  document.querySelectorAll("[data-locate]").forEach(function (button) {
    button.addEventListener("click", locate);
  });

  // -- the list again after a step or a live event ----------------------------------------

  function refresh() {
    if (list.querySelector("form")) { waiting = true; return; }
    fetch("/m/tasks", { credentials: "same-origin" }).then(function (response) {
      if (response.status === 401) { toLogin(); return null; }
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html === null || list.querySelector("form")) { return; }
      list.innerHTML = html;
      document.getElementById("gw-task-count").textContent =
        String(list.querySelectorAll("li.gw-task").length);
      order();
    });
  }

  var status = document.getElementById("gw-status");
  var redraw = null;
  function later() {
    clearTimeout(redraw);
    redraw = setTimeout(refresh, 300);
  }
  var streams = [["/alerts/stream?after=" + data.alerts_after, "alert"],
    ["/cases/stream?after=" + data.cases_after, "case"]].map(function (entry) {
    var stream = window.gridwatchStream(entry[0], status, t, later, entry[1]);
    stream.addEventListener("error", function () {
      // A stream the server refused (a session that ended) is not retried: check and leave.
      if (stream.readyState === EventSource.CLOSED) { refresh(); }
    });
    return stream;
  });
  window.gridwatchPhone = { streams: streams, refresh: refresh };
  locate();
  order();
});
