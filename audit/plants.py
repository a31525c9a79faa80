"""The situations of policy 2027.2, planted by the generator.

Each cohort patient may get one of them, drawn from its own random stream
(the rest of the cohort is the same as before for the same seed), so that
``rxaudit generate --patients 20000`` then ``run`` shows every change of
2027.2 (``docs/rules/changes-2027.2.md``): an order nobody filled, other
antidepressants, a switch after a washout, an inpatient admission, a CAPS-5
response, a SNOMED-coded epilepsy, a taper by another prescriber, seizure
products, prazosin at 1 mg and coded by RXCUI only, hospice weeks after a
stop, paroxetine from 65, two tablets before an MRI, a remission that lasts,
a single remote PTSD code.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from audit.generate import Generator
    from audit.synthetic import Patient

_D = dt.timedelta


def plant(gen: Generator, p: Patient, index: dt.date, birth: int | str) -> None:
    """Maybe plant one 2027.2 situation for a cohort patient (about 7 in 100)."""
    rng = gen.rng2
    saved, p.rng = p.rng, rng
    try:
        _plant(gen, p, index, birth, rng.random())
    finally:
        p.rng = saved


def _plant(gen: Generator, p: Patient, index: dt.date, birth, r: float) -> None:
    rng = gen.rng2

    def day(a: int, b: int) -> dt.date:
        return index + _D(days=rng.randint(a, b))

    if r < 0.010:  # an order nobody filled, from a source that dispenses
        p.fill("sertraline", day(10, 300), 90, 100, source_type="ordered")
    elif r < 0.018:  # sertraline for 60 days, then duloxetine for 14 months: one episode
        on = day(10, 200)
        p.fills("sertraline", on, 2, 50, jitter=0)
        p.fills("duloxetine", on + _D(days=60), 14, 60, jitter=0)
    elif r < 0.023:  # desvenlafaxine for 17 months, ongoing
        p.fills("desvenlafaxine", gen.as_of - _D(days=510), 17, 50, jitter=0)
    elif r < 0.027:  # mirtazapine alone for a month: never judged
        p.fills("mirtazapine", day(10, 300), 1, 15)
    elif r < 0.032:  # a switch after a washout: short sertraline, 60 days off, escitalopram
        on = day(10, 200)
        p.fills("sertraline", on, 2, 50, jitter=0)
        p.fills("escitalopram", on + _D(days=120), 6, 10, jitter=0)
    elif r < 0.036:  # a 4-week admission on sertraline, then outpatient
        on = day(10, 200)
        for k in range(28):
            p.fill("sertraline", on + _D(days=k), 1, 50, setting="inpatient")
        p.fills("sertraline", on + _D(days=28), 2, 50, jitter=0)
    elif r < 0.041:  # PE stopped after 7 sessions, CAPS-5 45 to 11: a response
        on = day(5, 200)
        p.caps5(on - _D(days=7), rng.randint(40, 55))
        last = p.sessions(on, 7, "PE")
        p.caps5(last + _D(days=7), rng.randint(5, 15))
    elif r < 0.044:  # epilepsy on the problem list in SNOMED CT, clonazepam from neurology
        p.dx(rng.choice(("84757009", "128613002")), index - _D(days=rng.randint(200, 2000)),
             "SNOMED")  # fmt: skip
        p.fills("clonazepam", day(10, 100), 8, 1, jitter=0)
    elif r < 0.048:  # alprazolam 3 mg for a year, tapered to zero by another prescriber
        on = day(10, 100)
        neuro = f"dr-taper-{p.site[-2:]}"
        p.fills("alprazolam", on, 12, 3, jitter=0)
        for k, mg in enumerate((2, 1, 0.5)):
            p.fill("alprazolam", on + _D(days=360 + 30 * k), 30, mg, prescriber=neuro)
    elif r < 0.050:  # rectal diazepam for seizure clusters: a seizure product
        p.fill(None, day(10, 300), 30, None, exact=("Diastat AcuDial diazepam rectal gel",
                                                    None, 2, None))  # fmt: skip
    elif r < 0.053:  # nightmares; prazosin held at 1 mg for a year
        on = day(10, 200)
        p.fills("prazosin", on - _D(days=60), 12, 1, jitter=0)
        p.event(on, "NIGHTMARES")
    elif r < 0.055:  # prazosin coded by RXCUI only, under a generic name, titrated to 25 mg
        on = min(day(10, 300), gen.as_of - _D(days=60))  # both rows are written
        p.fill(None, on, 30, None, exact=("alpha blocker cap", 1, 30, 1))
        p.fill(None, on + _D(days=30), 30, None, exact=("alpha blocker cap", 5, 150, 25))
        p.code_last(2, "RXNORM", "8629")
    elif r < 0.058:  # sertraline stopped six weeks before hospice enrolment
        on = day(10, 200)
        p.fills("sertraline", on, 2, 50, jitter=0)
        p.event(on + _D(days=60 + 42), "HOSPICE")
    elif r < 0.060 and birth and gen.as_of.year - int(birth) >= 65:  # paroxetine 50 mg from 65
        p.fills("paroxetine", day(10, 300), 3, 50, jitter=0)
    elif r < 0.064:  # two lorazepam tablets before an MRI, entered as a week
        p.fill(None, day(10, 400), 7, None, exact=("Lorazepam 1 MG Oral Tablet", 1, 2, None))
    elif r < 0.068 and index < gen.as_of - _D(days=600):  # remission after CPT that lasts
        on = index + _D(days=20)
        p.pcl5(on - _D(days=10), rng.randint(50, 65))
        last = p.sessions(on, 12, "CPT")
        p.pcl5(last + _D(days=14), rng.randint(15, 30))
    elif r < 0.071 and index < gen.as_of - _D(days=900):  # one PTSD code, alprazolam years on
        p.fills("alprazolam", index + _D(days=rng.randint(760, 800)), 4, 1, jitter=0)
