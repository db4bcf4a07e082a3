"""A webhook receiver: a stdlib HTTP server on a local port that records every request and
answers with the status the test sets, for the tests of alert delivery."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

from gridwatch.settings import Settings
from gridwatch.store.alerts import acknowledge_alert


class Receiver:
    """An HTTP endpoint that records every request and answers with `status`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 503
        self.requests: list[tuple[int, dict, dict]] = []  # (answered, headers, body)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gridwatch/alerts"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.status
                receiver.requests.append((status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)

    def accepted(self) -> list[tuple[dict, dict]]:
        return [(h, b) for status, h, b in self.requests if 200 <= status < 300]


def acknowledge_the_alert(url: str, settings: Settings) -> None:
    """The duty officer acknowledges the database's one alert, now, as the API would: its
    change goes out on MQTT and to the webhooks of `settings`."""
    with psycopg.connect(url) as conn:
        (alert_id,) = conn.execute("SELECT id FROM alerts").fetchone()
        acknowledge_alert(
            conn,
            alert_id,
            actor="duty officer",
            note=None,
            now=datetime.now(UTC),
            topic_prefix=settings.topic_prefix,
            webhooks=settings.alert_webhooks,
        )
