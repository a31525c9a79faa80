"""SSRI-SHORT-TRIAL, SSRI-LOW-DOSE, SSRI-EARLY-STOP, DOSE-ABOVE-MAX, VEN-SEQUENCE."""

from __future__ import annotations

import pytest

from tests.rulekit import World, d, of

pytestmark = pytest.mark.db

T0 = "2024-01-01"  # trial starts; as_of is far enough for trials to complete


def test_short_trial_83_vs_84_covered_days(conn, tmp_path):
    w = World()
    w.patient("p83", ptsd_on="2023-12-01").fill("sertraline", T0, days=83, dose=50)
    w.patient("p84", ptsd_on="2023-12-01").fill("sertraline", T0, days=84, dose=50)
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    assert set(cases) == {"p83"}
    [case] = cases["p83"]
    assert case["case_date"] == d(T0, 82)
    assert case["summary"] == (
        "Sertraline trial of 83 covered days (first 115 days: 83 of 84 needed), stopped 2024-03-23"
    )
    assert case["severity"] == "medium" and case["status"] == "open"


def test_overlapping_early_refills_carry_forward(conn, tmp_path):
    w = World()
    # 30 + 30 + 24 carried forward = 84 covered days: adequate duration.
    p = w.patient("p84", ptsd_on="2023-12-01")
    p.fill("sertraline", T0, 30, 50)
    p.fill("sertraline", d(T0, 25), 30, 50)
    p.fill("sertraline", d(T0, 55), 24, 50)
    # The same with 23 days on the last fill: 83 covered days.
    q = w.patient("p83", ptsd_on="2023-12-01")
    q.fill("sertraline", T0, 30, 50)
    q.fill("sertraline", d(T0, 25), 30, 50)
    q.fill("sertraline", d(T0, 55), 23, 50)
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    assert set(cases) == {"p83"}
    assert cases["p83"][0]["case_date"] == d(T0, 82)
    assert cases["p83"][0]["evidence"].count("prescriptions:") == 3


def test_a_fill_30_days_after_the_last_covered_day_continues_the_trial(conn, tmp_path):
    w = World()
    gap30 = w.patient("gap30", ptsd_on="2023-12-01")
    gap30.fill("sertraline", T0, 60, 50)  # covers day 0..59
    gap30.fill("sertraline", d(T0, 89), 30, 50)  # 89 - 59 = 30: same trial
    gap31 = w.patient("gap31", ptsd_on="2023-12-01")
    gap31.fill("sertraline", T0, 60, 50)
    gap31.fill("sertraline", d(T0, 90), 30, 50)  # 31 days: a new trial
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    # gap30: one trial, 60 + 26 (days 89..114) = 86 covered days in the window.
    assert "gap30" not in cases
    assert [c["case_date"] for c in cases["gap31"]] == [d(T0, 59), d(T0, 119)]


def test_ongoing_trial_is_never_short(conn, tmp_path):
    as_of = "2025-12-31"
    w = World(as_of=as_of)
    # end + 30 = as_of: ongoing. end + 30 = as_of - 1: completed.
    w.patient("ongoing", ptsd_on="2025-01-01").fill("sertraline", d(as_of, -59), 30, 50)
    w.patient("completed", ptsd_on="2025-01-01").fill("sertraline", d(as_of, -60), 30, 50)
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    assert set(cases) == {"completed"}


def test_short_trial_must_end_on_or_after_the_index_date(conn, tmp_path):
    w = World()
    w.patient("before", ptsd_on=d(T0, 30)).fill("sertraline", T0, 30, 50)  # ends day 29
    w.patient("on", ptsd_on=d(T0, 29)).fill("sertraline", T0, 30, 50)  # ends on index
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    assert set(cases) == {"on"}


def test_drug_recognition_brand_code_only_and_combination(conn, tmp_path):
    w = World()
    w.patient("brand", ptsd_on="2023-12-01").fill("sertraline", T0, 30, 50, name="Zoloft 50 mg")
    w.patient("code", ptsd_on="2023-12-01").fill(
        "sertraline", T0, 30, 50, name="tablet, film coated", system="RXNORM", code="36437"
    )
    w.patient("ndc", ptsd_on="2023-12-01").fill(
        "sertraline", T0, 30, 50, name="SERTRALINE HCL 50MG TAB", system="NDC", code="0093-7146-56"
    )
    w.patient("word", ptsd_on="2023-12-01").fill(
        "sertraline", T0, 30, 50, name="Sertralinex 50 mg", system="NONE"
    )
    # An ingredient RXCUI maps to that ingredient only, whatever the name says.
    w.patient("rxcui-wins", ptsd_on="2023-12-01").fill(
        "paroxetine", T0, 30, 20, name="Sertraline 50 mg", system="RXNORM", code="32937"
    )
    cases = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")
    assert set(cases) == {"brand", "code", "ndc", "rxcui-wins"}
    assert cases["rxcui-wins"][0]["summary"].startswith("Paroxetine trial")


def test_low_dose_flags_trials_held_below_the_minimum(conn, tmp_path):
    w = World()
    w.patient("low", ptsd_on="2023-12-01").fills("sertraline", T0, 4, dose=40)
    w.patient("effective", ptsd_on="2023-12-01").fills("sertraline", T0, 4, dose=50)
    w.patient("unknown", ptsd_on="2023-12-01").fills("sertraline", T0, 4)
    late = w.patient("late", ptsd_on="2023-12-01")
    late.fills("sertraline", T0, 4, dose=40)  # days 0, 30, 60, 90
    late.fill("sertraline", d(T0, 115), 30, 50)  # effective, but after the window
    edge = w.patient("edge", ptsd_on="2023-12-01")
    edge.fills("sertraline", T0, 3, dose=40)
    edge.fill("sertraline", d(T0, 114), 30, 50)  # effective on the window's last day
    computed = w.patient("computed", ptsd_on="2023-12-01")
    computed.fills("sertraline", T0, 4, strength=25, quantity=60)  # 25 x 60 / 30 = 50
    sig_wins = w.patient("sig-wins", ptsd_on="2023-12-01")
    sig_wins.fills("sertraline", T0, 4, dose=40, strength=50, quantity=30)
    cases = of(w.run(conn, tmp_path), "SSRI-LOW-DOSE")
    assert set(cases) == {"low", "late", "sig-wins"}
    assert cases["low"][0]["case_date"] == d(T0, 83)
    assert cases["low"][0]["summary"] == (
        "Sertraline trial from 2024-01-01: 115 covered days in the first 115 days, "
        "but the highest dose was 40 mg/day (effective from 50 mg/day)"
    )


def test_low_dose_needs_84_covered_days_and_counts_ongoing_trials(conn, tmp_path):
    as_of = "2025-12-31"
    w = World(as_of=as_of)
    w.patient("p83", ptsd_on="2025-01-01").fill("sertraline", "2025-02-01", 83, 40)
    w.patient("p84", ptsd_on="2025-01-01").fill("sertraline", "2025-02-01", 84, 40)
    # Ongoing at as_of: 84th covered day falls on as_of itself.
    w.patient("ongoing", ptsd_on="2025-01-01").fill("sertraline", d(as_of, -83), 90, 40)
    w.patient("short", ptsd_on="2025-01-01").fill("sertraline", d(as_of, -82), 90, 40)
    cases = of(w.run(conn, tmp_path), "SSRI-LOW-DOSE")
    assert set(cases) == {"p84", "ongoing"}
    assert cases["ongoing"][0]["case_date"] == as_of


def test_early_stop_269_vs_270_days_after_remission(conn, tmp_path):
    w = World()
    # Each trial covers T0..T0+399 (4 fills of 100 days).
    stop269 = w.patient("stop269", ptsd_on="2023-12-01")
    for i in range(4):
        stop269.fill("sertraline", d(T0, 100 * i), 100, 50)
    remission = stop269.event(d(T0, 130), "REMISSION")  # end (day 399) - 130 = 269
    stop270 = w.patient("stop270", ptsd_on="2023-12-01")
    for i in range(4):
        stop270.fill("sertraline", d(T0, 100 * i), 100, 50)
    stop270.event(d(T0, 129), "REMISSION")  # 270 days
    cases = of(w.run(conn, tmp_path), "SSRI-EARLY-STOP")
    assert set(cases) == {"stop269"}
    case = cases["stop269"][0]
    assert case["case_date"] == d(T0, 399)
    assert case["summary"] == (
        "Sertraline stopped 2025-02-03, 269 days after remission on 2024-05-10 "
        "(continue at least 270 days)"
    )
    assert case["evidence"].endswith(f";clinical_events:{remission}")


def test_early_stop_remission_from_pcl5_below_33(conn, tmp_path):
    w = World()
    for pid, score in (("pcl32", 32), ("pcl33", 33)):
        p = w.patient(pid, ptsd_on="2023-12-01")
        p.fills("paroxetine", T0, 6, dose=20)  # covers days 0..179
        p.pcl5(d(T0, 60), score)
    ongoing = w.patient("ongoing", ptsd_on="2023-12-01")
    ongoing.fills("paroxetine", "2025-10-01", 3, dose=20)
    ongoing.event("2025-10-15", "REMISSION")
    cases = of(w.run(conn, tmp_path), "SSRI-EARLY-STOP")
    assert set(cases) == {"pcl32"}
    assert "assessments:" in cases["pcl32"][0]["evidence"]


def test_dose_above_max_one_case_per_trial_at_the_first_fill(conn, tmp_path):
    w = World()
    at_max = w.patient("at-max", ptsd_on="2023-12-01")
    at_max.fills("sertraline", T0, 3, dose=200)
    above = w.patient("above", ptsd_on="2023-12-01")
    above.fill("sertraline", T0, 30, 150)
    first = above.fill("sertraline", d(T0, 30), 30, 250)
    above.fill("sertraline", d(T0, 60), 30, 201)
    w.patient("unknown", ptsd_on="2023-12-01").fills("sertraline", T0, 3)
    cases = of(w.run(conn, tmp_path), "DOSE-ABOVE-MAX")
    assert set(cases) == {"above"}
    [case] = cases["above"]
    assert case["case_date"] == d(T0, 30) and case["evidence"] == f"prescriptions:{first}"
    assert case["summary"] == (
        "Sertraline 250 mg/day dispensed 2024-01-31, above the labelled maximum of 200 mg/day"
    )


def test_venlafaxine_after_730_days_without_an_ssri(conn, tmp_path):
    start = "2025-06-01"
    w = World()
    p730 = w.patient("ssri730", ptsd_on="2023-01-01")
    p730.fill("fluoxetine", d(start, -730), 30, 20)
    p730.fills("venlafaxine", start, 3, dose=75)
    p731 = w.patient("ssri731", ptsd_on="2023-01-01")
    p731.fill("fluoxetine", d(start, -731), 30, 20)
    p731.fills("venlafaxine", start, 3, dose=75)
    before_index = w.patient("before-index", ptsd_on=d(start, 1))
    before_index.fills("venlafaxine", start, 3, dose=75)
    cases = of(w.run(conn, tmp_path), "VEN-SEQUENCE")
    assert set(cases) == {"ssri731"}
    assert cases["ssri731"][0]["case_date"] == start
    assert cases["ssri731"][0]["severity"] == "low"
