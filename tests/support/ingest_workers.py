"""Ingest workers in threads of the test process (a pytest plugin: `start_worker`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from gridwatch.settings import Settings
from tests.support.waiting import wait_for


class RunningWorker:
    """An ingest worker running in a thread of the test process."""

    def __init__(self, settings: Settings, **kwargs) -> None:
        from gridwatch.ingest.worker import IngestWorker

        self.worker = IngestWorker(
            settings, database_url=settings.database_url, mqtt_url=settings.mqtt_url, **kwargs
        )
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop_event,))
        self.thread.start()
        wait_for(self.worker.subscribed.is_set, 20, "the worker to subscribe")

    @property
    def stats(self):
        return self.worker.stats

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker did not stop"


@pytest.fixture
def start_worker() -> Iterator[Callable[..., RunningWorker]]:
    """Start ingest workers in threads; all are stopped at the end of the test."""
    started: list[RunningWorker] = []

    def start(settings: Settings, **kwargs) -> RunningWorker:
        running = RunningWorker(settings, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()
