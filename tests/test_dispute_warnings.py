"""Warnings as texts are stored (`record_warnings`, against the real database): one per
category hit, level 2 on the third hit of a category in a grid within 7 days or for a visit
to a resident who lives alone, each level-2 warning queued in the alert outbox and opening a
case of the community's; a text scanned again makes none."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gridwatch.dispatch.clocks import escalate_requests
from gridwatch.disputes.levels import REPEAT_HITS, others_in_window, warning_level
from gridwatch.disputes.scanning import ScannedText
from gridwatch.store.keywords import LibraryMatchers
from gridwatch.store.requests import warning_case_id
from gridwatch.store.warnings import Notify, record_warnings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOTIFY = Notify("gwtest", ("http://127.0.0.1:9/hook",))


@pytest.fixture
def district(district_database_url):
    with psycopg.connect(district_database_url) as conn:
        grids = [g for (g,) in conn.execute(
            "SELECT id FROM grids WHERE level = 'grid' ORDER BY id LIMIT 2"
        )]  # fmt: skip
        [(alone, grid_of_alone)] = conn.execute(
            "SELECT id, grid_id FROM residents WHERE grid_id IS NOT NULL ORDER BY id LIMIT 1"
        ).fetchall()
        [(family,)] = conn.execute(
            "SELECT id FROM residents WHERE id <> %s ORDER BY id LIMIT 1", (alone,)
        ).fetchall()
        conn.execute("UPDATE residents SET living_alone = (id = %s)", (alone,))
    return district_database_url, grids, alone, grid_of_alone, family


def note(n: int, text: str, grid: int | None, at: datetime, **extra) -> ScannedText:
    return ScannedText("checkin", f"gw:w1@{n}", text, grid, at, 111.6, 40.8, **extra)


def outbox(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT o.warning_id, o.topic, o.payload->>'category', o.payload->>'reason', "
            "o.payload->>'state', (SELECT count(*) FROM webhook_deliveries d "
            "WHERE d.outbox_id = o.id) FROM alert_outbox o ORDER BY o.id"
        ).fetchall()


def test_the_level_rule():
    assert warning_level(0, in_grid=True, visit_to_resident_alone=False).level == 1
    assert warning_level(REPEAT_HITS - 2, in_grid=True, visit_to_resident_alone=False).level == 1
    assert warning_level(REPEAT_HITS - 1, in_grid=True, visit_to_resident_alone=False).reason == (
        "repeated"
    )
    assert warning_level(9, in_grid=False, visit_to_resident_alone=False).level == 1
    assert warning_level(0, in_grid=False, visit_to_resident_alone=True).reason == "lives_alone"


def test_others_in_one_window_either_way_in_time():
    day = timedelta(days=1)
    assert others_in_window(T0, []) == 0
    assert others_in_window(T0, [T0 - 6 * day, T0 + 6 * day]) == 1  # 12 days apart
    assert others_in_window(T0, [T0 - 3 * day, T0 + 3 * day]) == 2
    assert others_in_window(T0, [T0 - 7 * day, T0 + 7 * day, T0]) == 1
    assert others_in_window(T0, [T0 + day, T0 + 2 * day, T0 - 5 * day, T0 - 6 * day]) == 2


def test_third_hit_in_a_grid_within_seven_days_is_level_2(district):
    url, (grid, other), *_ = district
    matchers = LibraryMatchers()
    with psycopg.connect(url) as conn:
        record = lambda *texts: record_warnings(conn, matchers, texts, NOTIFY)  # noqa: E731
        [first] = record(note(1, "楼上邻居吵架 半夜装修", grid, T0))
        assert (first.category, first.level, first.keywords) == (
            "邻里纠纷",
            1,
            ["邻居吵架", "半夜装修"],
        )
        assert first.grid_id == grid and first.grid_code and first.library_version is None
        # Another grid, another category, and a hit 8 days before: none counts.
        record(note(2, "邻居吵架", other, T0 + timedelta(hours=1)))
        record(note(3, "老板拖欠工资", grid, T0 + timedelta(hours=2)))
        record(note(4, "邻居吵架", grid, T0 - timedelta(days=8)))
        [second] = record(note(5, "和邻居吵起来了 噪音扰民", grid, T0 + timedelta(days=3)))
        assert second.level == 1
        [third] = record(note(6, "鄰居吵架又開始了", grid, T0 + timedelta(days=6)))
        assert (third.level, third.reason) == (2, "repeated")
        conn.commit()
    [(warning_id, topic, category, reason, state, hooks)] = outbox(url)
    assert (warning_id, category, reason, state, hooks) == (
        third.id,
        "邻里纠纷",
        "repeated",
        "warning",
        1,
    )
    assert topic == f"gwtest/alerts/{third.grid_code}"


def test_hits_of_one_batch_count_in_their_time_order(district):
    url, (grid, _), *_ = district
    texts = [note(n, "讨薪 拖欠工资", grid, T0 + timedelta(days=3 - n)) for n in range(3)]
    with psycopg.connect(url) as conn:
        stored = record_warnings(conn, LibraryMatchers(), texts, NOTIFY)
    assert [(w.source_id, w.level) for w in stored] == [
        ("gw:w1@2", 1),
        ("gw:w1@1", 1),
        ("gw:w1@0", 2),
    ]


def test_a_visit_to_a_resident_who_lives_alone_is_level_2_at_once(district):
    url, _, alone, grid, family = district
    text = "老人说子女不管 不想活了"
    with psycopg.connect(url) as conn:
        matchers = LibraryMatchers()
        stored = record_warnings(
            conn,
            matchers,
            [
                note(1, text, grid, T0, resident_id=alone),
                note(2, text, grid, T0, resident_id=family),
                note(3, text, None, T0, resident_id="nobody-here"),  # outside every grid
            ],
            NOTIFY,
        )
        conn.commit()
    got = [(w.source_id, w.category, w.level, w.reason, w.resident_id) for w in stored]
    assert got == [
        ("gw:w1@1", "婚姻家庭", 2, "lives_alone", alone),
        ("gw:w1@1", "涉稳信访", 2, "lives_alone", alone),
        ("gw:w1@2", "婚姻家庭", 1, None, family),
        ("gw:w1@2", "涉稳信访", 1, None, family),
        ("gw:w1@3", "婚姻家庭", 1, None, None),  # no such resident: kept, without the link
        ("gw:w1@3", "涉稳信访", 1, None, None),
    ]
    assert [(row[2], row[3]) for row in outbox(url)] == [
        ("婚姻家庭", "lives_alone"),
        ("涉稳信访", "lives_alone"),
    ]


def test_a_text_scanned_again_makes_no_second_warning(district):
    url, (grid, _), *_ = district
    texts = [note(n, "进京上访", grid, T0 + timedelta(minutes=n)) for n in range(3)]
    with psycopg.connect(url) as conn:
        matchers = LibraryMatchers()
        assert [w.level for w in record_warnings(conn, matchers, texts, NOTIFY)] == [1, 1, 2]
        assert record_warnings(conn, matchers, texts, NOTIFY) == []
        assert record_warnings(conn, matchers, texts[2:], NOTIFY) == []
        [(count,)] = conn.execute("SELECT count(*) FROM warnings").fetchall()
        conn.commit()
    assert count == 3 and len(outbox(url)) == 1


def test_texts_without_hits_or_text_make_nothing(district):
    url, (grid, _), *_ = district
    quiet = [note(1, "走访 老人身体很好", grid, T0), note(2, None, grid, T0), note(3, "", grid, T0)]
    with psycopg.connect(url) as conn:
        assert record_warnings(conn, LibraryMatchers(), quiet, NOTIFY) == []


def test_a_late_text_makes_the_third_of_three(district):
    url, (grid, _), *_ = district
    with psycopg.connect(url) as conn:
        matchers = LibraryMatchers()
        for n, days in enumerate((0, 2)):
            record_warnings(
                conn, matchers, [note(n, "婆媳吵架", grid, T0 + timedelta(days))], NOTIFY
            )
        [late] = record_warnings(
            conn, matchers, [note(9, "婆媳矛盾", grid, T0 + timedelta(1))], NOTIFY
        )
    assert (late.level, late.reason) == (2, "repeated")


@pytest.mark.parametrize("category_text", ["欠薪", "物业费", "宅基地", "高利贷", "医闹"])
def test_two_writers_at_once_count_each_other(district, category_text):
    """One hit stored, then two writers store one more each at the same moment: whichever
    goes second sees the other's, so one of the two is the third hit (level 2)."""
    url, (grid, _), *_ = district
    with psycopg.connect(url) as conn:
        record_warnings(conn, LibraryMatchers(), [note(0, category_text, grid, T0)], NOTIFY)
        conn.commit()
    barrier = threading.Barrier(2)
    levels: list[int] = []

    def writer(n: int) -> None:
        with psycopg.connect(url) as conn:
            matchers = LibraryMatchers()
            matchers.current(conn)
            text = note(n, category_text, grid, T0 + timedelta(minutes=n))
            barrier.wait(timeout=10)
            levels.extend(w.level for w in record_warnings(conn, matchers, [text], NOTIFY))
            conn.commit()

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(levels) == [1, 2]


def test_forgetting_a_resident_takes_the_words_of_their_warnings(district):
    from gridwatch.store.personal_data import forget_resident

    url, _, alone, grid, _ = district
    with psycopg.connect(url) as conn:
        visit = note(1, "老人说子女不管", grid, T0, resident_id=alone)
        [w] = record_warnings(conn, LibraryMatchers(), [visit], NOTIFY)
        conn.commit()
        forget_resident(conn, alone, actor="test", now=T0)
        conn.commit()
        [(resident, keywords, level)] = conn.execute(
            "SELECT resident_id, keywords, level FROM warnings WHERE id = %s", (w.id,)
        ).fetchall()
        [(payload,)] = conn.execute(
            "SELECT payload FROM alert_outbox WHERE warning_id = %s", (w.id,)
        ).fetchall()
    assert (resident, keywords, level) == (None, [], 2)
    assert "keywords" not in payload and "resident_id" not in payload
    assert payload["category"] == "婚姻家庭"


def _warning_cases(conn) -> list[tuple]:
    return conn.execute(
        "SELECT r.id, r.source_key, r.service_code, r.status, r.level, r.grid_id, r.accept_by, "
        "r.due_at, r.reporter FROM requests r WHERE r.source = 'warning' ORDER BY r.received_at"
    ).fetchall()


def test_a_level_2_warning_opens_one_case_that_escalates_like_any(district):
    """The third hit in 7 days in one grid opens exactly one dispute case at the community
    level with the dispute service's clocks; the same texts again (a redelivered batch) and a
    fourth hit while it is open open none; past its accept-by it goes up to the street."""
    url, (grid, _), *_ = district
    texts = [note(n, "邻居吵架", grid, T0 + timedelta(hours=n)) for n in range(4)]
    matchers = LibraryMatchers()
    with psycopg.connect(url) as conn:
        stored = record_warnings(conn, matchers, texts[:3], NOTIFY)
        conn.commit()
        third = stored[-1]
        assert [w.level for w in stored] == [1, 1, 2]
        [case] = _warning_cases(conn)
        case_id, key, service, status, level, case_grid, accept_by, due, reporter = case
        assert case_id == warning_case_id(third.id) and key == str(third.id)
        assert (service, status, level, case_grid, reporter) == (
            "dispute", "dispatched", "community", grid, "gridwatch",
        )  # fmt: skip
        assert (accept_by - third.created_at, due - third.created_at) == (
            timedelta(hours=2),
            timedelta(hours=72),
        )
        assert record_warnings(conn, matchers, texts[:3], NOTIFY) == []
        [fourth] = record_warnings(conn, matchers, texts[3:], NOTIFY)
        conn.commit()
        assert fourth.level == 2
        assert [row[0] for row in _warning_cases(conn)] == [case_id]
        [(payload,)] = conn.execute(
            "SELECT payload->>'case_id' FROM alert_outbox WHERE warning_id = %s", (third.id,)
        ).fetchall()
        assert payload == str(case_id)
        assert escalate_requests(conn, accept_by - timedelta(seconds=1)) == 0
        assert escalate_requests(conn, accept_by) == 1
        [(level, action)] = conn.execute(
            "SELECT r.level, e.action FROM requests r JOIN request_events e "
            "ON e.request_id = r.id WHERE r.id = %s ORDER BY e.id DESC LIMIT 1",
            (case_id,),
        ).fetchall()
    assert (level, action) == ("street", "escalate")
