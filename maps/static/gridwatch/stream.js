// A live stream (/alerts/stream, /cases/stream: Server-Sent Events) as the live map and the
// console's pages show it: a status line that says whether it is connected, and each event
// (`alert` unless `name` says otherwise) handed over parsed. The browser's EventSource sends
// Last-Event-ID when it reconnects, so nothing is missed across a dropped connection.
window.gridwatchStream = function (url, status, texts, onAlert, name) {
  "use strict";
  var stream = new EventSource(url);
  stream.addEventListener("open", function () {
    status.textContent = texts.connected;
    status.className = "gw-status";
  });
  stream.addEventListener("error", function () {
    status.textContent = texts.reconnecting;
    status.className = "gw-status down";
  });
  stream.addEventListener(name || "alert", function (message) {
    onAlert(JSON.parse(message.data));
  });
  return stream;
};
