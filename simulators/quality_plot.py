"""A picture of one resident's week, as a duty officer would look at it: the meter's power,
the home's learned base-load bars, the signs of life the engine saw, what was injected,
and the alerts it raised."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg

from gridwatch.alerts.activity import Baseline, MeterTracker
from gridwatch.simulators.faults import Fall
from gridwatch.simulators.quality import QualityRun

KIND_COLOURS = {
    "no_activity": "tab:red",
    "morning": "tab:orange",
    "evening": "tab:purple",
    "meter_offline": "tab:gray",
    "sos": "black",
    "fall": "darkred",
}


def plot_week(database_url: str, run: QualityRun, zone: ZoneInfo, path: str) -> str:
    """Draw the week of a resident who fell (one whose fall only the rules could notice,
    with no fall detector, if there is one; or else the first resident) into `path` (PNG);
    returns the resident's id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    scenario = run.scenario
    falls = sorted(
        (i for i in scenario.incidents if isinstance(i, Fall)),
        key=lambda f: f.detector_id is not None,
    )
    resident = falls[0].resident_id if falls else scenario.residents[0].resident_id
    row = next(r for r in scenario.residents if r.resident_id == resident)
    state = run.engine.homes.get(resident) if run.engine else None
    baseline = state.tracker.baseline if state and state.tracker else Baseline()
    with psycopg.connect(database_url) as conn:
        readings = conn.execute(
            "SELECT observed_at, power_w, energy_kwh, water_l FROM meter_readings "
            "WHERE meter_id = %s AND observed_at >= %s AND observed_at < %s ORDER BY observed_at",
            (row.meter_id, scenario.start, scenario.end),
        ).fetchall()
        events = conn.execute(
            "SELECT observed_at, event FROM sensor_events WHERE device_id = ANY(%s) "
            "AND observed_at >= %s AND observed_at < %s ORDER BY observed_at",
            (list(row.sensor_ids), scenario.start, scenario.end),
        ).fetchall()
    tracker = MeterTracker(baseline)
    active = [
        at for at, power, energy, water in readings if tracker.observe(at, power, energy, water)
    ]

    def local(instant: datetime) -> float:
        """The instant on the x axis (local wall time, as Matplotlib counts days)."""
        return float(mdates.date2num(instant.astimezone(zone).replace(tzinfo=None)))

    fig, ax = plt.subplots(figsize=(16, 5), dpi=100)
    ax.xaxis_date()  # x values are the days `local` counts: label them as dates
    ax.plot(
        [local(r[0]) for r in readings],
        [r[1] or 0 for r in readings],
        lw=0.6,
        color="tab:blue",
        label="power (W)",
    )
    ax.axhline(baseline.spike_w, ls="--", lw=0.8, color="tab:green", label="spike bar")
    ax.axhline(baseline.sustained_w, ls=":", lw=0.8, color="tab:green", label="running-level bar")
    top = max([r[1] or 0 for r in readings] + [baseline.spike_w]) * 1.05
    ax.scatter(
        [local(a) for a in active],
        [top * 0.97] * len(active),
        s=4,
        color="tab:green",
        label="sign of life (meter)",
    )
    ax.scatter(
        [local(e[0]) for e in events],
        [top * 0.93] * len(events),
        s=8,
        marker="|",
        color="tab:olive",
        label="sensor event",
    )
    for incident in scenario.incidents:
        if incident.resident_id != resident:
            continue
        end = getattr(incident, "until", None) or getattr(incident, "rescued_at", None)
        end = end or scenario.end
        ax.axvspan(
            local(incident.at),
            local(end),
            color="salmon",
            alpha=0.3,
            label=f"{incident.kind} (injected)",
        )
    for opened, who, kind, _since in run.alerts:
        if who == resident:
            ax.axvline(
                local(opened), color=KIND_COLOURS.get(kind, "red"), lw=1.5, label=f"alert: {kind}"
            )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    # Below the plot, where it hides no sign of life.
    ax.legend(
        unique.values(),
        unique.keys(),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        fontsize=8,
        ncol=6,
        frameon=False,
    )
    ax.set_ylim(0, top)
    ax.set_ylabel("W")
    ax.set_title(
        f"{resident}: {scenario.start.astimezone(zone):%Y-%m-%d} to "
        f"{scenario.end.astimezone(zone):%Y-%m-%d} ({zone.key})"
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return resident
