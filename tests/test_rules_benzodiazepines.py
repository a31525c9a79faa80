"""BZD-PTSD: episodes, the index date, new starts, exclusions, settings."""

from __future__ import annotations

import pytest

from tests.rulekit import World, d, of

pytestmark = pytest.mark.db

INDEX = "2025-03-01"


def test_episode_must_reach_the_index_date(conn, tmp_path):
    w = World()
    w.patient("ends-before", ptsd_on=INDEX).fill("alprazolam", d(INDEX, -30), 29)  # to index-2
    w.patient("ends-day-before", ptsd_on=INDEX).fill("alprazolam", d(INDEX, -30), 29 + 1)
    w.patient("ends-on-index", ptsd_on=INDEX).fill("alprazolam", d(INDEX, -30), 31)
    cases = of(w.run(conn, tmp_path), "BZD-PTSD")
    assert set(cases) == {"ends-on-index"}
    case = cases["ends-on-index"][0]
    # Already running at the index date, no fill after it: case_date = index date.
    assert (case["case_date"], case["severity"]) == (INDEX, "medium")
    assert case["summary"].endswith("review for taper")


def test_new_start_versus_continuing(conn, tmp_path):
    start = d(INDEX, 200)
    w = World()
    w.patient("new", ptsd_on=INDEX).fill("clonazepam", start, 30)
    # The earlier episodes end before these patients' index date: no case of their own.
    covered180 = w.patient("covered-180", ptsd_on=d(start, -100))
    covered180.fill("diazepam", d(start, -209), 30)  # last covered day = start - 180
    covered180.fill("clonazepam", start, 30)
    covered181 = w.patient("covered-181", ptsd_on=d(start, -100))
    covered181.fill("diazepam", d(start, -210), 30)  # last covered day = start - 181
    covered181.fill("clonazepam", start, 30)
    cases = of(w.run(conn, tmp_path), "BZD-PTSD")
    assert cases["new"][0]["severity"] == "high"
    assert cases["new"][0]["summary"] == (
        f"New benzodiazepine start (clonazepam) on {start} after the PTSD diagnosis of "
        f"{INDEX}: 1 fill(s) covering to {d(start, 29)}"
    )
    assert [c["severity"] for c in cases["covered-180"]] == ["medium"]
    assert [c["severity"] for c in cases["covered-181"]] == ["high"]


def test_case_date_is_the_first_fill_on_or_after_the_index(conn, tmp_path):
    w = World()
    p = w.patient("p", ptsd_on=INDEX)
    p.fill("lorazepam", d(INDEX, -10), 20)
    first_after = p.fill("lorazepam", d(INDEX, 5), 30, prescriber="dr-9", site="east")
    [case] = of(w.run(conn, tmp_path), "BZD-PTSD")["p"]
    assert case["case_date"] == d(INDEX, 5)
    assert (case["prescriber_id"], case["site_id"]) == ("dr-9", "east")
    assert case["evidence"].endswith(f"prescriptions:{first_after}")


def test_episodes_mix_ingredients_within_the_gap(conn, tmp_path):
    w = World()
    one = w.patient("one-episode", ptsd_on=INDEX)
    one.fill("alprazolam", d(INDEX, 10), 30)  # to index+39
    one.fill("clonazepam", d(INDEX, 69), 30)  # 30 days later: same episode
    two = w.patient("two-episodes", ptsd_on=INDEX)
    two.fill("alprazolam", d(INDEX, 10), 30)
    two.fill("clonazepam", d(INDEX, 70), 30)  # 31 days: a new episode
    cases = of(w.run(conn, tmp_path), "BZD-PTSD")
    assert len(cases["one-episode"]) == 1
    assert "alprazolam, clonazepam" in cases["one-episode"][0]["summary"]
    assert [c["severity"] for c in cases["two-episodes"]] == ["high", "medium"]


@pytest.mark.parametrize(
    "code, offset, excluded",
    [
        ("G40.909", -365, True),
        ("G40909", -366, False),
        ("F10.230", 0, True),
        ("F10.939", 29, True),
        ("F10.20", 0, False),
        ("G40.909", 30, False),  # after the episode's end
    ],
)
def test_exclusion_diagnoses(conn, tmp_path, code, offset, excluded):
    start = d(INDEX, 10)
    w = World()
    p = w.patient("p", ptsd_on=INDEX)
    p.fill("diazepam", start, 30)  # episode start..start+29
    p.diagnosis(code, d(start, offset))
    [case] = of(w.run(conn, tmp_path), "BZD-PTSD")["p"]
    assert case["status"] == ("excluded" if excluded else "open")
    assert case["summary"].endswith("epilepsy diagnosis)") is excluded


def test_one_day_inpatient_and_procedure_fills_are_ignored(conn, tmp_path):
    w = World()
    w.patient("inpatient-1", ptsd_on=INDEX).fill("lorazepam", d(INDEX, 5), 1, setting="inpatient")
    w.patient("procedure", ptsd_on=INDEX).fill("midazolam", d(INDEX, 5), 1, setting="procedure",
                                               name="Midazolam 2 mg/2 mL injection")  # fmt: skip
    w.patient("inpatient-2", ptsd_on=INDEX).fill("lorazepam", d(INDEX, 5), 2, setting="inpatient")
    cases = of(w.run(conn, tmp_path), "BZD-PTSD")
    assert set(cases) == {"inpatient-2"}


def test_patients_without_ptsd_are_never_flagged(conn, tmp_path):
    w = World()
    other = w.patient("anxiety")
    other.diagnosis("F41.1", INDEX)
    other.fill("alprazolam", d(INDEX, 10), 30)
    w.patient("ptsd-f43-2", ptsd_on=INDEX, code="F43.2").fill("alprazolam", d(INDEX, 10), 30)
    w.patient("snomed", ptsd_on=INDEX, code="47505003", system="SNOMED").fill(
        "alprazolam", d(INDEX, 10), 30
    )
    w.patient("no-dot", ptsd_on=INDEX, code="F4312").fill("alprazolam", d(INDEX, 10), 30)
    cases = of(w.run(conn, tmp_path), "BZD-PTSD")
    assert set(cases) == {"snomed", "no-dot"}


def test_records_after_as_of_are_ignored(conn, tmp_path):
    as_of = "2025-12-31"
    w = World(as_of=as_of)
    w.patient("after", ptsd_on=INDEX).fill("alprazolam", d(as_of, 1), 30)
    w.patient("late-dx", ptsd_on=d(as_of, 1)).fill("alprazolam", d(as_of, -10), 30)
    assert of(w.run(conn, tmp_path), "BZD-PTSD") == {}
