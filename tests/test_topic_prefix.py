"""A topic prefix of several levels ("city/district7") through the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.databases import count_rows
from tests.support.ingest_streams import caught_up
from tests.support.settings import make_settings


def test_a_prefix_of_several_levels_is_ingested(tmp_path, database_url, mqtt_url, start_worker,
                                                publish):  # fmt: skip
    base = make_settings(tmp_path, database_url, mqtt_url, mqtt_session_expiry_s=300)
    s = base.model_copy(update={"topic_prefix": f"{base.topic_prefix}/district7"})
    start_worker(s)
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    publish(f"{s.topic_prefix}/meter/M-1", {"ts": ts, "power_w": 3.0})
    publish(f"{s.topic_prefix}/sensor/S-1", {"ts": ts, "event": "button"})
    # The first level alone is another site's prefix: not subscribed, never seen.
    publish(f"{base.topic_prefix}/meter/M-2", {"ts": ts, "power_w": 4.0})
    caught_up(database_url, s.topic_prefix, publish)
    assert count_rows(database_url, "meter_readings", "meter_id = 'M-1'") == 1
    assert count_rows(database_url, "meter_readings", "meter_id = 'M-2'") == 0
    assert count_rows(database_url, "sensor_events") == 1
    assert (
        count_rows(database_url, "dead_letters", "topic LIKE %s", (base.topic_prefix + "/%",)) == 0
    )
