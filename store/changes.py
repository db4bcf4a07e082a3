"""Which tables changed, heard as it happens: statement triggers (migrations 016, 019, 023, 025)
send a notice naming the table on channel `gridwatch_changes` when a transaction that wrote to
it commits, and a `ChangeWatcher` counts them. Whoever keeps something derived from these
tables keys it on their counts, read before it reads the tables: what it keeps is then never
older than its key, and the next notice of a change retires it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import psycopg

log = logging.getLogger("gridwatch.store.changes")

CHANNEL = "gridwatch_changes"
WATCHED = (
    "grids",
    "residents",
    "alerts",
    "hazard_reports",
    "hazard_events",
    "patrol_checkins",
    "requests",
    "request_events",
    "devices",
    "meter_readings",
    "places",
    "buildings",
    "units",
    "contacts",
)


class ChangeWatcher:
    """A connection of its own LISTENing on `CHANNEL`, in a thread; reconnects when it drops.

    `version(tables)` is None while it is not listening (a change may go unheard then); each
    time listening starts again every version changes, for the same reason."""

    def __init__(self, database_url: str, *, retry_s: float = 1.0) -> None:
        self.database_url = database_url
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(WATCHED, 0)
        self._epoch = 0
        self._live = False
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-watcher", daemon=True)

    def start(self, wait_s: float = 10.0) -> None:
        """Start listening; waits (at most `wait_s`) for the first attempt to end."""
        self._thread.start()
        self._started.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def live(self) -> bool:
        return self._live

    def version(self, tables: Iterable[str]) -> tuple | None:
        """A value that changes whenever one of `tables` changed; None when unknown."""
        with self._lock:
            if not self._live:
                return None
            return (self._epoch, *(self._counts[t] for t in tables))

    def touch(self) -> None:
        """Count a change of every table now: a writer's own commit, before its notice comes."""
        with self._lock:
            self._epoch += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.database_url,
                    autocommit=True,
                    connect_timeout=10,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._lock:
                        self._epoch += 1
                        self._live = True
                    self._started.set()
                    while not self._stop.is_set():
                        # A short wait, and a look at `_stop` between notices: with data
                        # arriving all the time, a stop must not wait for a quiet second.
                        for notice in conn.notifies(timeout=0.2):
                            self._heard(notice.payload)
                            if self._stop.is_set():
                                break
            except psycopg.Error as error:
                log.warning("change notices unavailable (%s); retrying", str(error).strip())
            finally:
                with self._lock:
                    self._live = False
            self._started.set()
            self._stop.wait(self.retry_s)

    def _heard(self, table: str) -> None:
        with self._lock:
            if table in self._counts:
                self._counts[table] += 1
            else:  # a table this version does not know: count it against every key
                self._epoch += 1
