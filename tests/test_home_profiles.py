"""What the engine learned of each home survives a restart: profiles through the database."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from gridwatch.alerts.profile import HomeProfile
from gridwatch.store.alert_store import AlertStore


def test_profiles_keep_working_days_and_rest_days_apart_through_the_database(
    district_database_url,
):
    learned = HomeProfile(last_seen=datetime(2026, 3, 14, 13, 0, tzinfo=UTC))
    learned.first_activity_s.extend([25_200, 25_500, 26_100])  # about 07:00 on working days
    learned.rest_first_activity_s.extend([39_600, 40_500])  # about 11:00 on rest days
    learned.quiet_s.extend([30_000])
    with psycopg.connect(district_database_url) as conn:
        resident = conn.execute("SELECT id FROM residents ORDER BY id LIMIT 1").fetchone()[0]
        store = AlertStore(conn)
        store.save_profiles({resident: learned})
        store.save_profiles({resident: learned})  # saved again: updated in place
        found = AlertStore(conn).profiles()[resident]
    assert list(found.first_activity_s) == [25_200, 25_500, 26_100]
    assert list(found.rest_first_activity_s) == [39_600, 40_500]
    assert list(found.quiet_s) == [30_000]
    assert found.last_seen == learned.last_seen
