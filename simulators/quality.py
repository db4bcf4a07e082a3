"""How well the alerts work, measured: the simulator's week against its ground truth.

The simulated district's messages go through the real parsers and the real batch writer
into a fresh database, minute by simulated minute, and the alert engine evaluates on the
same simulated clock after each minute, so detection delays are in simulated minutes. A
few warm-up days without incidents come first, so each home's baseline is learned from
its own nights as in production. Then every alert is matched against what was injected.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.alerts.engine import AlertEngine
from gridwatch.alerts.lifecycle import Open
from gridwatch.alerts.rules import (
    HomeHistory,
    Rules,
    morning_window,
    no_activity_deadline,
    window_on,
)
from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.ingest.worker import parse_message
from gridwatch.ingest.writer import BatchWriter
from gridwatch.model.vocabulary import ACTIVITY_KINDS, FALL, METER_OFFLINE, SOS
from gridwatch.simulators.faults import Absence, Fall, FaultRates, MeterOutage, Sos
from gridwatch.simulators.sample import load_sample_district
from gridwatch.simulators.scenario import Scenario
from gridwatch.store.absences import add_absence
from gridwatch.store.alert_store import AlertStore
from gridwatch.store.migrate import migrate

WINDOW_GRACE = timedelta(minutes=5)
DEFAULT_START = datetime(2026, 11, 2, tzinfo=ZoneInfo("Asia/Shanghai"))


@dataclass
class QualityRun:
    """Everything the run saw: alerts opened (with simulated times) and the ground truth."""

    scenario: Scenario
    residents: int
    days: float
    alerts: list[tuple[datetime, str, str, datetime]] = field(default_factory=list)
    # Each fallen resident's last sign of life, and last evening sign, as of the fall.
    last_signs: dict[str, tuple[datetime, datetime | None]] = field(default_factory=dict)
    messages: int = 0
    seconds: float = 0.0
    warmup_alerts: int = 0
    engine: AlertEngine | None = None


def run_quality(
    database_url: str,
    *,
    residents: int = 2000,
    days: float = 7,
    warmup_days: float = 3,
    seed: int = 1,
    meter_interval_s: int = 60,
    start: datetime = DEFAULT_START,
    rates: FaultRates | None = None,
    progress=None,
) -> QualityRun:
    """Simulate, ingest and evaluate; `database_url` must name an empty database."""
    from gridwatch.simulators.cli import sample_district

    zone = start.tzinfo if isinstance(start.tzinfo, ZoneInfo) else ZoneInfo("Asia/Shanghai")
    district = sample_district(residents)
    began = time.monotonic()
    warmup_start = start - timedelta(days=warmup_days)
    with psycopg.connect(database_url) as conn:
        migrate(conn, tz=zone.key)
        load_sample_district(conn, Path(tempfile.mkdtemp(prefix="gw-quality-")), district=district)
        conn.execute("UPDATE residents SET created_at = %s", (warmup_start,))
        conn.commit()
    writer_conn = psycopg.connect(database_url)
    # A benchmark's database: no need to wait for each commit to reach the disk.
    writer_conn.execute("SET synchronous_commit = off")
    writer = BatchWriter(writer_conn, mode="plain", zone=zone)
    router = TopicRouter("gw")
    scenario = Scenario(
        district,
        start,
        days,
        seed=seed,
        meter_interval_s=meter_interval_s,
        tz=zone.key,
        rates=rates or FaultRates(),
    )
    run = QualityRun(scenario, len(district.residents), days)
    engine_conn = psycopg.connect(database_url)
    engine_conn.execute("SET synchronous_commit = off")
    engine_conn.commit()
    for incident in scenario.incidents:
        if isinstance(incident, Absence):
            add_absence(
                engine_conn,
                incident.resident_id,
                starts_at=incident.at,
                ends_at=incident.until,
                note="外出报备",
                created_by="simulator",
            )
    engine = AlertEngine(AlertStore(engine_conn), zone=zone, overlap=timedelta(0))
    engine.load(warmup_start)
    total = 0
    if warmup_days > 0:
        # Warm-up days with no incidents: the engine learns each home's nights and mornings
        # as it would have in the weeks before; its alerts here are not scored.
        calm = Scenario(
            district,
            warmup_start,
            warmup_days,
            seed=seed,  # the same residents, so the same routines
            meter_interval_s=meter_interval_s,
            tz=zone.key,
            rates=FaultRates.none(),
        )
        for step_end, batch in calm.messages_by_step(timedelta(minutes=10)):
            total += _write(writer, router, batch, step_end, zone)
            engine.poll()
            run.warmup_alerts += sum(isinstance(a, Open) for a in engine.step(step_end))
        engine.relearn_baselines(start)
    # Each fallen resident's last signs of life as of the fall, for the expected deadline:
    # taken once the reading that covers the moment of the fall is in, since a meter stamps
    # the use of the minutes before the fall at the end of its interval, after the fall.
    covering = timedelta(seconds=meter_interval_s)
    falling = {i.resident_id: i.at + covering for i in scenario.incidents if i.kind == "fall"}
    for step_end, batch in scenario.messages_by_step(timedelta(minutes=1)):
        total += _write(writer, router, batch, step_end, zone)
        engine.poll()
        for action in engine.step(step_end):
            if isinstance(action, Open):
                condition = action.condition
                run.alerts.append((step_end, action.resident_id, condition.kind, condition.since))
        for resident, covered_at in list(falling.items()):
            if step_end >= covered_at:
                state = engine.homes.get(resident)
                if state is not None and state.last_activity is not None:
                    run.last_signs[resident] = (state.last_activity, state.last_evening_sign)
                del falling[resident]
        if progress is not None:
            progress(step_end, total)
    run.engine = engine
    writer_conn.close()
    engine_conn.close()
    run.messages = total
    run.seconds = time.monotonic() - began
    return run


def _write(writer: BatchWriter, router: TopicRouter, batch, step_end: datetime, zone) -> int:
    if not batch:
        return 0
    messages = []
    for _sim_time, topic, payload in batch:
        messages.append(parse_message(router, topic, payload, ParseContext(step_end, zone)))
    writer.write(messages)
    writer.conn.commit()
    return len(messages)


def quality_report(run: QualityRun, zone: ZoneInfo) -> dict:
    """Match alerts to incidents: recall, delays, false alerts per 100 resident-days."""
    scenario = run.scenario
    by_resident: defaultdict[str, list[tuple[datetime, str, datetime]]] = defaultdict(list)
    for opened, resident, kind, since in run.alerts:
        by_resident[resident].append((opened, kind, since))
    # The quiet rules watch residents who live alone; one who lives with others has them to
    # notice a fall, and without a fall detector gridwatch is not meant to (reported apart).
    with_others = {r.resident_id for r in scenario.residents if not r.living_alone}
    falls: list[Fall] = []
    unwatched = 0
    for fall in (i for i in scenario.incidents if isinstance(i, Fall)):
        if fall.detector_id is None and fall.resident_id in with_others:
            unwatched += 1
        else:
            falls.append(fall)
    sos = [i for i in scenario.incidents if isinstance(i, Sos)]
    outages = [i for i in scenario.incidents if isinstance(i, MeterOutage)]
    end = scenario.end
    delays: list[float] = []
    late: list[dict] = []
    detected = 0
    pending = 0
    missed: list[str] = []
    explained: set[tuple[str, datetime]] = set()
    for fall in falls:
        down_until = fall.rescued_at or end
        hits = [
            (o, k)
            for o, k, _s in by_resident[fall.resident_id]
            if fall.at <= o <= down_until and (k in ACTIVITY_KINDS or k == FALL)
        ]
        for o, _k, s in by_resident[fall.resident_id]:
            if fall.at - timedelta(hours=24) <= s and o <= down_until and o >= fall.at:
                explained.add((fall.resident_id, o))
        expected = None
        if fall.detector_id is None:
            expected = _expected_detection(fall, run, zone)
        if not hits:
            if expected is not None and expected > end:
                pending += 1  # the run ended before any rule could have noticed
            else:
                missed.append(fall.resident_id)
            continue
        detected += 1
        first = min(o for o, _k in hits)
        delays.append((first - fall.at).total_seconds() / 60)
        if expected is not None and first > expected + WINDOW_GRACE:
            kind = min(hits)[1]
            late.append(
                {
                    "resident_id": fall.resident_id,
                    "fell_at": fall.at.isoformat(),
                    "expected": expected.isoformat(),
                    "alerted": first.isoformat(),
                    "kind": kind,
                }
            )
    for press in sos:
        answers = [o for o, k, _s in by_resident[press.resident_id] if k == SOS and o >= press.at]
        if answers:
            detected += 1
            delays.append((min(answers) - press.at).total_seconds() / 60)
        else:
            missed.append(press.resident_id)
    resident_days = run.residents * run.days
    false_by_kind = {kind: 0 for kind in ACTIVITY_KINDS}
    outage_alarms = 0
    for resident, alerts in by_resident.items():
        for opened, kind, _since in alerts:
            if kind not in ACTIVITY_KINDS or (resident, opened) in explained:
                continue
            if any(
                o.resident_id == resident and o.at <= opened <= o.until + timedelta(hours=1)
                for o in outages
            ):
                outage_alarms += 1
                continue
            false_by_kind[kind] += 1
    per_100 = {k: round(100 * v / resident_days, 3) for k, v in false_by_kind.items()}
    per_100["total"] = round(100 * sum(false_by_kind.values()) / resident_days, 3)
    incidents = len(falls) + len(sos) - pending
    # A watched home's outage long enough for its meter_offline rule (after the last reading
    # before it) should raise one alert while it lasts; a shorter one may raise none.
    offline_after = Rules().offline + timedelta(seconds=scenario.meter_interval_s)
    watched_outages = [o for o in outages if o.resident_id not in with_others]
    long_outages = [o for o in watched_outages if o.until - o.at > offline_after]
    outages_alerted = sum(
        1
        for o in long_outages
        if any(
            k == METER_OFFLINE and o.at <= opened <= o.until
            for opened, k, _s in by_resident[o.resident_id]
        )
    )
    return {
        "incidents": incidents,
        "detected": detected,
        "recall": round(detected / incidents, 4) if incidents else None,
        "median_delay_min": round(statistics.median(delays), 1) if delays else None,
        "max_delay_min": round(max(delays), 1) if delays else None,
        "false_alerts_per_100_resident_days": per_100,
        "outages_reported_as_inactivity": outage_alarms,
        "falls": len(falls),
        "falls_living_with_others": unwatched,
        "sos": len(sos),
        "falls_later_than_window_plus_5_min": len(late),
        "late_falls": late,
        "missed": missed,
        "pending_at_end_of_run": pending,
        "meter_outages": len(watched_outages),
        "meter_outages_longer_than_offline_rule": len(long_outages),
        "meter_outages_alerted": outages_alerted,
        "meter_outages_living_with_others": len(outages) - len(watched_outages),
        "residents": run.residents,
        "days": run.days,
        "warmup_alerts": run.warmup_alerts,
        "messages": run.messages,
        "seconds": round(run.seconds, 1),
    }


def _expected_detection(fall: Fall, run: QualityRun, zone: ZoneInfo) -> datetime | None:
    """When the home's rules should notice a fall with no detector: the first of its quiet
    threshold and the ends of its next morning and evening windows, with what the engine
    had learned of the home (a late riser's window, a long sleeper's threshold)."""
    if fall.resident_id not in run.last_signs:
        return None
    last_activity, last_evening_sign = run.last_signs[fall.resident_id]
    state = run.engine.homes.get(fall.resident_id) if run.engine else None
    rules = state.effective_rules() if state else Rules()
    learned = replace(state.history(), last_activity=last_activity) if state else None
    history = learned or HomeHistory(monitored_since=fall.at, last_activity=last_activity)
    history = replace(history, monitored_since=fall.at - timedelta(days=30), absences=())
    candidates = [no_activity_deadline(history, rules)]
    # The evening looks for light or power use only (a door is not a lamp).
    windows = (
        (lambda day: morning_window(history, rules, day), last_activity),
        (lambda day: rules.evening, last_evening_sign),
    )
    for window_of, last_sign in windows:
        fall_day = fall.at.astimezone(zone).date()
        for offset in range(3):
            day = fall_day + timedelta(days=offset)
            start, end = window_on(day, window_of(day), zone)
            if end > fall.at and (last_sign is None or last_sign < start or start > fall.at):
                candidates.append(end)
                break
    return min(candidates)
