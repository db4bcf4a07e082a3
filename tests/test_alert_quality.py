"""A short alert-quality run in the test suite: the simulator's incidents through the real
parsers, writer, database and engine, matched against the ground truth.

The full measurement (the sample district for a week) is `python bench/alert_quality.py`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gridwatch.simulators.faults import FaultRates
from gridwatch.simulators.quality import quality_report, run_quality

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.mark.slow
def test_a_day_of_incidents_is_found_and_nothing_else(database_url):
    rates = FaultRates(falls=5, sos=5, meter_outages=5, absences=5)
    run = run_quality(
        database_url, residents=80, days=1, warmup_days=3, meter_interval_s=300, rates=rates
    )
    report = quality_report(run, ZONE)
    assert report["falls"] >= 2 and report["sos"] >= 2, report
    assert report["meter_outages"] >= 2, report
    assert report["recall"] == 1.0, report
    assert report["falls_later_than_window_plus_5_min"] == 0, report
    assert report["outages_reported_as_inactivity"] == 0, report
    assert report["meter_outages_alerted"] == report["meter_outages_longer_than_offline_rule"], (
        report
    )
    assert report["false_alerts_per_100_resident_days"]["total"] == 0, report
