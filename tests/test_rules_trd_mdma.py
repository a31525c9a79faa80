"""TRD-PREMATURE, MDMA-OFF-TRIAL and MDMA-PREMATURE."""

from __future__ import annotations

import pytest

from tests.rulekit import World, d, of

pytestmark = pytest.mark.db

INDEX = "2024-01-01"
EVENT = "2025-06-01"


def _ready(p, tf: int = 9, trial_start: str = "2024-02-01", ingredient: str = "sertraline",
           dose: float = 50) -> None:  # fmt: skip
    p.sessions("2024-02-01", tf)
    p.fills(ingredient, trial_start, 4, dose=dose)  # 120 days, adequate when dose >= min


def test_trd_premature_needs_both_tf_sessions_and_an_adequate_trial(conn, tmp_path):
    w = World()
    ready = w.patient("ready", ptsd_on=INDEX)
    _ready(ready)
    ready.event(EVENT, "TREATMENT_RESISTANT")
    tf8 = w.patient("tf8", ptsd_on=INDEX)
    _ready(tf8, tf=8)
    tf8.event(EVENT, "TREATMENT_RESISTANT")
    low = w.patient("low-dose", ptsd_on=INDEX)
    _ready(low, dose=25)
    low.event(EVENT, "TREATMENT_RESISTANT")
    not_first_line = w.patient("fluoxetine", ptsd_on=INDEX)
    _ready(not_first_line, ingredient="fluoxetine", dose=20)
    not_first_line.event(EVENT, "TREATMENT_RESISTANT")
    # Window end (start + 114) on the event day: does not count; the day before: counts.
    window_on = w.patient("window-on-event", ptsd_on=INDEX)
    _ready(window_on, trial_start=d(EVENT, -114))
    window_on.event(EVENT, "TREATMENT_RESISTANT")
    window_before = w.patient("window-before-event", ptsd_on=INDEX)
    _ready(window_before, trial_start=d(EVENT, -115))
    window_before.event(EVENT, "TREATMENT_RESISTANT")
    nothing = w.patient("nothing", ptsd_on=INDEX)
    nothing.event(EVENT, "TREATMENT_RESISTANT")
    cases = of(w.run(conn, tmp_path), "TRD-PREMATURE")
    assert set(cases) == {"tf8", "low-dose", "fluoxetine", "window-on-event", "nothing"}
    summaries = {p: c[0]["summary"].split(": ", 1)[1] for p, c in cases.items()}
    assert summaries == {
        "tf8": "TF sessions: 8 of 9; adequate trial: yes",
        "low-dose": "TF sessions: 9 of 9; adequate trial: Sertraline from 2024-02-01 "
        "(no fill at an effective dose)",
        "fluoxetine": "TF sessions: 9 of 9; adequate trial: none",
        "window-on-event": "TF sessions: 9 of 9; adequate trial: Sertraline from 2025-02-07 "
        "(acute window not complete)",
        "nothing": "TF sessions: 0 of 9; adequate trial: none",
    }
    assert cases["nothing"][0]["case_date"] == EVENT
    assert cases["nothing"][0]["severity"] == "high"


def test_tf_sessions_counted_strictly_before_the_event(conn, tmp_path):
    w = World()
    p = w.patient("ninth-on-event", ptsd_on=INDEX)
    p.fills("sertraline", "2024-02-01", 4, dose=50)
    p.sessions(d(EVENT, -56), 9)  # 9th session on the event day
    p.event(EVENT, "TREATMENT_RESISTANT")
    cases = of(w.run(conn, tmp_path), "TRD-PREMATURE")
    assert cases["ninth-on-event"][0]["summary"].endswith(
        "TF sessions: 8 of 9; adequate trial: yes"
    )


def test_mdma_off_trial(conn, tmp_path):
    w = World()
    w.trial("NCT00000001", "true")
    w.trial("NCT00000002", "FALSE")
    w.patient("no-enrolment", ptsd_on=INDEX).fill("midomafetamine", EVENT, 1, name="MDMA 120 mg",
                                                  setting="research")  # fmt: skip
    approved = w.patient("approved", ptsd_on=INDEX)
    approved.enrol("NCT00000001", d(EVENT, -10), EVENT)  # ended_on inclusive
    approved.fill("midomafetamine", EVENT, 1, name="midomafetamine 80 mg", setting="research")
    after = w.patient("after-enrolment", ptsd_on=INDEX)
    after.enrol("NCT00000001", d(EVENT, -10), d(EVENT, -1))
    after.fill("midomafetamine", EVENT, 1, name="MDMA", setting="procedure")
    open_ended = w.patient("open-enrolment", ptsd_on=INDEX)
    open_ended.enrol("NCT00000001", d(EVENT, -10))
    open_ended.fill("midomafetamine", EVENT, 1, name="MDMA", setting="research")
    not_approved = w.patient("not-approved", ptsd_on=INDEX)
    not_approved.enrol("NCT00000002", d(EVENT, -10))
    not_approved.fill("midomafetamine", EVENT, 1, name="MDMA", setting="research")
    unregistered = w.patient("unregistered", ptsd_on=INDEX)
    unregistered.enrol("NCT00000099", d(EVENT, -10))
    unregistered.fill("midomafetamine", EVENT, 1,
                      name="3,4-methylenedioxymethamphetamine", setting="research")  # fmt: skip
    same_day = w.patient("same-day", ptsd_on=INDEX)
    same_day.fill("midomafetamine", EVENT, 1, name="MDMA", setting="research")
    same_day.fill("midomafetamine", EVENT, 1, name="MDMA booster", setting="research")
    cases = of(w.run(conn, tmp_path), "MDMA-OFF-TRIAL")
    assert set(cases) == {"no-enrolment", "after-enrolment", "not-approved", "unregistered",
                          "same-day"}  # fmt: skip
    assert len(cases["same-day"]) == 1
    assert cases["same-day"][0]["evidence"].count("prescriptions:") == 2
    assert cases["no-enrolment"][0]["severity"] == "critical"
    assert cases["after-enrolment"][0]["summary"] == (
        "MDMA given 2025-06-01 (procedure) outside an approved clinical trial"
    )


def test_mdma_premature(conn, tmp_path):
    w = World()
    w.trial("NCT00000001", "true")
    ready = w.patient("ready", ptsd_on=INDEX)
    _ready(ready)
    ready.enrol("NCT00000001", d(EVENT, -10))
    ready.fill("midomafetamine", EVENT, 1, name="MDMA", setting="research")
    early = w.patient("early", ptsd_on=INDEX)
    _ready(early, tf=3)
    early.enrol("NCT00000001", d(EVENT, -10))
    first = early.fill("midomafetamine", EVENT, 1, name="MDMA", setting="research")
    early.fill("midomafetamine", d(EVENT, 30), 1, name="MDMA", setting="research")
    cases = w.run(conn, tmp_path)
    premature = of(cases, "MDMA-PREMATURE")
    assert set(premature) == {"early"}
    [case] = premature["early"]
    assert (case["case_date"], case["evidence"]) == (EVENT, f"prescriptions:{first}")
    assert of(cases, "MDMA-OFF-TRIAL") == {}
