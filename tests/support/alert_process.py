"""`gridwatch alerts` in a thread of the test process, on a clock the test moves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from gridwatch.dispatch.service import run_alerts
from gridwatch.settings import Settings
from tests.support.api import Clock


@contextmanager
def running_alerts(settings: Settings, url: str, mqtt_url: str, clock: Clock) -> Iterator[None]:
    """The alert process (engine, delivery, case clocks) over `url` until the block ends;
    checked to have stopped."""
    stop = threading.Event()
    alerts = threading.Thread(
        target=run_alerts,
        kwargs={
            "settings": settings,
            "database_url": url,
            "mqtt_url": mqtt_url,
            "stop": stop,
            "clock": clock,
        },
        name="gridwatch-alerts",
    )
    alerts.start()
    try:
        yield
    finally:
        stop.set()
        alerts.join(timeout=30)
    assert not alerts.is_alive(), "the alert process did not stop"
