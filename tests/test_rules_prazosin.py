"""PRZ-DOSE and PRZ-NIGHTMARE-GAP."""

from __future__ import annotations

import pytest

from tests.rulekit import World, d, of

pytestmark = pytest.mark.db

INDEX = "2025-01-01"


def test_prazosin_dose_limits(conn, tmp_path):
    w = World()
    w.patient("start-1", ptsd_on=INDEX).fill("prazosin", "2025-02-01", 30, 1)
    w.patient("start-1.5", ptsd_on=INDEX).fill("prazosin", "2025-02-01", 30, 1.5)
    titrated = w.patient("max-10", ptsd_on=INDEX)
    titrated.fill("prazosin", "2025-02-01", 30, 1)
    titrated.fill("prazosin", "2025-03-01", 30, 10)
    above = w.patient("max-10.5", ptsd_on=INDEX)
    above.fill("prazosin", "2025-02-01", 30, 1)
    above.fill("prazosin", "2025-03-01", 30, 10.5)
    both = w.patient("both", ptsd_on=INDEX)
    both.fill("prazosin", "2025-02-01", 30, 2)
    both.fill("prazosin", "2025-03-01", 30, 12)
    same_day = w.patient("second-first-fill", ptsd_on=INDEX)
    same_day.fill("prazosin", "2025-02-01", 30, 1)
    same_day.fill("prazosin", "2025-02-01", 30, 2, name="Minipress 2 mg")
    cases = of(w.run(conn, tmp_path), "PRZ-DOSE")
    assert set(cases) == {"start-1.5", "max-10.5", "both", "second-first-fill"}
    assert cases["start-1.5"][0]["severity"] == "low"
    assert cases["start-1.5"][0]["summary"] == (
        "Prazosin started 2025-02-01 at 1.5 mg/day (start at 1 mg)"
    )
    assert (cases["max-10.5"][0]["severity"], cases["max-10.5"][0]["case_date"]) == (
        "medium",
        "2025-03-01",
    )
    assert (cases["both"][0]["severity"], cases["both"][0]["case_date"]) == ("medium", "2025-02-01")
    assert cases["second-first-fill"][0]["severity"] == "low"


@pytest.mark.parametrize(
    "prazosin_offset, flagged",
    [(None, True), (90, False), (91, True), (-365, False), (-366, True), (0, False)],
)
def test_nightmare_gap_window(conn, tmp_path, prazosin_offset, flagged):
    nightmare = "2025-03-01"
    w = World()
    p = w.patient("p", ptsd_on=INDEX if prazosin_offset != -366 else "2024-01-01")
    p.event(nightmare, "NIGHTMARES")
    if prazosin_offset is not None:
        p.fill("prazosin", d(nightmare, prazosin_offset), 30, 1)
    cases = of(w.run(conn, tmp_path), "PRZ-NIGHTMARE-GAP")
    assert ("p" in cases) is flagged
    if flagged:
        assert cases["p"][0]["case_date"] == d(nightmare, 90)
        assert cases["p"][0]["evidence"].startswith("clinical_events:")


def test_nightmare_gap_waits_90_days_and_needs_a_finding_after_the_index(conn, tmp_path):
    as_of = "2025-12-31"
    w = World(as_of=as_of)
    w.patient("n-89", ptsd_on=INDEX).event(d(as_of, -89), "NIGHTMARES")
    w.patient("n-90", ptsd_on=INDEX).event(d(as_of, -90), "NIGHTMARES")
    w.patient("before-index", ptsd_on=INDEX).event(d(INDEX, -1), "NIGHTMARES")
    w.patient("f51.5", ptsd_on=INDEX).diagnosis("F51.5", "2025-02-01")
    w.patient("f515", ptsd_on=INDEX).diagnosis("F515", "2025-02-01")
    w.patient("f51.51", ptsd_on=INDEX).diagnosis("F51.51", "2025-02-01")
    cases = of(w.run(conn, tmp_path), "PRZ-NIGHTMARE-GAP")
    assert set(cases) == {"n-90", "f51.5", "f515"}
    assert cases["f515"][0]["evidence"].startswith("diagnoses:")
