"""Patrol track points: every check-in of a period as arrays, for the coverage computation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql


@dataclass(frozen=True, slots=True)
class TrackPoints:
    """Check-ins as parallel arrays, in (worker, time) order."""

    worker: np.ndarray
    t: np.ndarray  # epoch seconds
    lon: np.ndarray
    lat: np.ndarray
    grid_id: np.ndarray  # -1: outside every grid
    accuracy_m: np.ndarray  # NaN: not reported

    def only(self, keep: np.ndarray) -> TrackPoints:
        """The points where `keep` is true, in the same order."""
        return TrackPoints(
            self.worker[keep],
            self.t[keep],
            self.lon[keep],
            self.lat[keep],
            self.grid_id[keep],
            self.accuracy_m[keep],
        )


def track_points(
    conn: psycopg.Connection, *, start: datetime, end: datetime, column: str = "grid_id"
) -> TrackPoints:
    """Every check-in observed in [start, end), with its reported accuracy; `grid_id` is
    its grid in the system whose column is `column` (store.filters.GRID_COLUMNS)."""
    query = sql.SQL(
        "SELECT worker_id, extract(epoch FROM observed_at)::float8, lon, lat, "
        "coalesce({grid}, -1), coalesce(accuracy_m, 'NaN') "
        "FROM patrol_checkins WHERE observed_at >= %s AND observed_at < %s "
        "ORDER BY worker_id, observed_at"
    ).format(grid=sql.Identifier(column))
    rows = conn.execute(query, (start, end)).fetchall()
    worker, t, lon, lat, grid_id, accuracy_m = list(zip(*rows, strict=True)) or [()] * 6
    return TrackPoints(
        np.array(worker, dtype=object),
        np.array(t, dtype=float),
        np.array(lon, dtype=float),
        np.array(lat, dtype=float),
        np.array(grid_id, dtype=np.int64),
        np.array(accuracy_m, dtype=float),
    )
