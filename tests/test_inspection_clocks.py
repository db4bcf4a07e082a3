"""An inspection overdue by its schedule: counted on the duty desk once its due time passes
(kept figures too), and, on the injected clock of `gridwatch alerts`, one level up per grace
after it (grid → community → street) with an event of the place, back at its grid once the
place is inspected."""

from __future__ import annotations

import time
from datetime import timedelta

from gridwatch.cases.escalation import Climb
from gridwatch.cases.inspections import (
    InspectionClock,
    InspectionEscalation,
    level_deadline,
    next_due,
    plan_inspection_escalations,
)
from tests.support.alert_process import running_alerts
from tests.support.api import NOW, ApiServer, Clock, api_settings, make_users, role_clients
from tests.support.databases import query, query_one
from tests.support.places import EVERY_DAYS, PLACE_A, PLACE_B, inspection, register_places
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

GRACE = timedelta(days=3)
T0 = NOW - timedelta(days=20)  # when the places were registered: A is due at T0 + 7 days
ROLES = ("admin", "worker_a", "worker_b")


def test_an_overdue_inspection_climbs_one_level_per_grace_and_catches_up():
    due = T0 + timedelta(days=EVERY_DAYS)
    clock = InspectionClock("P-1", "grid", due)
    assert plan_inspection_escalations([clock], due + GRACE - timedelta(seconds=1), GRACE) == []
    assert level_deadline(due, "community", GRACE) == due + 2 * GRACE
    # Clocks that were down for ten days catch up level by level, and stop at the street.
    plan = plan_inspection_escalations([clock], due + timedelta(days=10), GRACE)
    assert plan == [
        InspectionEscalation("P-1", due, Climb("grid", "community", due + GRACE, due + 2 * GRACE)),
        InspectionEscalation(
            "P-1", due, Climb("community", "street", due + 2 * GRACE, due + 3 * GRACE)
        ),
    ]
    at_street = InspectionClock("P-1", "street", due)
    assert plan_inspection_escalations([at_street], due + timedelta(days=99), GRACE) == []


def _place(url: str, place_id: str) -> tuple | None:
    statement = "SELECT level, last_inspected_at, next_due_at FROM places WHERE id = %s"
    return query_one(url, statement, (place_id,))


def _events(url: str, place_id: str) -> list[tuple]:
    return query(
        url,
        "SELECT action, from_level, to_level, actor FROM place_events WHERE place_id = %s "
        "ORDER BY id",
        (place_id,),
    )


def test_overdue_inspections_on_the_desk_and_their_escalation(
    district_database_url, tmp_path, mqtt_url
):
    url = district_database_url
    places = register_places(url, tmp_path, T0)
    tokens = make_users(url)
    clock = Clock(T0 + timedelta(days=EVERY_DAYS, hours=-1))  # 11:00 local, A due at noon
    plain = ApiServer(api_settings(tmp_path / "plain", url), url, clock)
    kept = ApiServer(api_settings(tmp_path / "kept", url, api_counts_ttl_s=60), url, clock)
    with (
        plain,
        kept,
        role_clients(plain, tokens, ROLES) as from_db,
        role_clients(kept, tokens, ROLES) as from_kept,
    ):
        assert kept.state.changes.live, "the API hears change notices"

        def overdue_on_desks() -> dict[str, list[int]]:
            counts: dict[str, list[int]] = {}
            for clients in (from_db, from_kept):
                for role, client in clients.items():
                    answer = client.get("/console/summary.json")
                    assert answer.status_code == 200, answer.text
                    counts.setdefault(role, []).append(answer.json()["inspections"]["overdue"])
            return counts

        nothing = {"admin": [0, 0], "worker_a": [0, 0], "worker_b": [0, 0]}
        assert overdue_on_desks() == nothing
        clock.advance(timedelta(hours=2))  # place A's inspection is an hour overdue
        # The kept figures held until A fell due (the same day), not beyond: both desks count
        # it, in its grid.
        assert overdue_on_desks() == {"admin": [1, 1], "worker_a": [1, 1], "worker_b": [0, 0]}
        listed = (
            from_db["worker_a"].get("/collections/places/items", params={"overdue": "true"}).json()
        )
        assert [(f["id"], f["properties"]["overdue"]) for f in listed["features"]] == [
            (PLACE_A, True)
        ]

        settings = make_settings(
            tmp_path, url, mqtt_url, hazard_check_s=0.05, inspection_grace_days=GRACE.days
        )
        with running_alerts(settings, url, mqtt_url, clock):
            time.sleep(1.0)  # passes of the clocks within the grace: nothing goes up
            assert _place(url, PLACE_A)[0] == "grid" and _events(url, PLACE_A) == []
            clock.advance(GRACE)
            wait_for(lambda: _place(url, PLACE_A)[0] == "community", 30, "escalation")
            clock.advance(GRACE)
            wait_for(lambda: _place(url, PLACE_A)[0] == "street", 30, "escalation")
            assert _events(url, PLACE_A) == [
                ("escalate", "grid", "community", "gridwatch"),
                ("escalate", "community", "street", "gridwatch"),
            ]
            assert _place(url, PLACE_B)[0] == "grid" and _events(url, PLACE_B) == []
            with plain.client("worker_a", tokens) as client:
                shown = client.get(f"/collections/places/items/{PLACE_A}").json()["properties"]
            assert (shown["level"], shown["overdue"]) == ("street", True)
            assert [e["to_level"] for e in shown["events"]] == ["community", "street"]

            # Inspected at last: back at its grid, due a period on, off the desks.
            at = clock().replace(microsecond=0)
            lon, lat = places[PLACE_A]
            with kept.client("worker_a", tokens) as client:
                posted = client.post("/checkins", json=inspection(PLACE_A, lon, lat, at))
            assert posted.status_code == 201, posted.text
            assert _place(url, PLACE_A) == ("grid", at, next_due(at, EVERY_DAYS))
            wait_for(lambda: overdue_on_desks() == nothing, 10, "the desks to hear of it")
            time.sleep(0.5)
            assert len(_events(url, PLACE_A)) == 2
