"""PSY-INCOMPLETE and PSY-DELAYED."""

from __future__ import annotations

import pytest

from tests.rulekit import World, d, of

pytestmark = pytest.mark.db

INDEX = "2025-01-01"


def test_incomplete_course_8_vs_9_sessions(conn, tmp_path):
    w = World()
    w.patient("s8", ptsd_on=INDEX).sessions("2025-02-01", 8)
    w.patient("s9", ptsd_on=INDEX).sessions("2025-02-01", 9)
    same_day = w.patient("s9-two-same-day", ptsd_on=INDEX)
    same_day.sessions("2025-02-01", 8)
    same_day.session("2025-02-01", "EMDR")  # counted by distinct date: still 8
    cases = of(w.run(conn, tmp_path), "PSY-INCOMPLETE")
    assert set(cases) == {"s8", "s9-two-same-day"}
    case = cases["s8"][0]
    assert case["case_date"] == d("2025-02-01", 49)
    assert case["summary"] == (
        "Trauma-focused course (PE) from 2025-02-01 ended 2025-03-22 after 8 of 9 sessions"
    )
    assert case["evidence"].count("therapy_sessions:") == 8


def test_course_gap_60_days_stays_in_the_course(conn, tmp_path):
    w = World()
    gap60 = w.patient("gap60", ptsd_on=INDEX)
    gap60.sessions("2025-02-01", 4)  # last on day 21
    gap60.sessions(d("2025-02-01", 81), 5)  # 60 days later
    gap61 = w.patient("gap61", ptsd_on=INDEX)
    gap61.sessions("2025-02-01", 4)
    gap61.sessions(d("2025-02-01", 82), 5)  # 61 days: a new course
    cases = of(w.run(conn, tmp_path), "PSY-INCOMPLETE")
    assert "gap60" not in cases
    assert len(cases["gap61"]) == 2


def test_ongoing_course_and_course_start_before_the_index(conn, tmp_path):
    as_of = "2025-12-31"
    w = World(as_of=as_of)
    w.patient("ongoing", ptsd_on=INDEX).sessions(d(as_of, -81), 4)  # last = as_of - 60
    w.patient("completed", ptsd_on=INDEX).sessions(d(as_of, -82), 4)  # last = as_of - 61
    w.patient("index-30", ptsd_on=INDEX).sessions(d(INDEX, -30), 3)
    w.patient("index-31", ptsd_on=INDEX).sessions(d(INDEX, -31), 3)
    w.patient("non-tf", ptsd_on=INDEX).sessions("2025-02-01", 3, modality="SUPPORTIVE")
    cases = of(w.run(conn, tmp_path), "PSY-INCOMPLETE")
    assert set(cases) == {"completed", "index-30"}


def test_delayed_after_6_non_tf_sessions(conn, tmp_path):
    w = World()
    w.patient("six", ptsd_on=INDEX).sessions("2025-01-05", 6, modality="SUPPORTIVE")
    w.patient("five", ptsd_on=INDEX).sessions("2025-01-05", 5, modality="STABILIZATION")
    unknown = w.patient("unknown", ptsd_on=INDEX)
    unknown.sessions("2025-01-05", 5, modality="SKILLS")
    unknown.session("2025-03-01", "UNKNOWN")
    before = w.patient("before-index", ptsd_on=INDEX)
    before.session(d(INDEX, -1), "SUPPORTIVE")
    before.sessions("2025-01-05", 5, modality="SUPPORTIVE")
    tf_first = w.patient("tf-before-6th", ptsd_on=INDEX)
    tf_first.sessions("2025-01-05", 5, modality="OTHER")
    tf_first.session("2025-02-05", "CPT")
    tf_first.sessions("2025-02-10", 3, modality="OTHER")
    tf_after = w.patient("tf-after-6th", ptsd_on=INDEX)
    tf_after.sessions("2025-01-05", 6, modality="SUPPORTIVE")
    tf_after.session("2025-03-01", "WET")
    cases = of(w.run(conn, tmp_path), "PSY-DELAYED")
    assert set(cases) == {"six", "tf-after-6th"}
    assert cases["six"][0]["case_date"] == d("2025-01-05", 35)
    assert cases["six"][0]["summary"] == (
        "6 non-trauma-focused sessions after the PTSD diagnosis of 2025-01-01, "
        "no trauma-focused session yet (the 6th on 2025-02-09)"
    )
    assert (
        "before the first trauma-focused session on 2025-03-01"
        in (cases["tf-after-6th"][0]["summary"])
    )
