"""A synthetic cohort in the native batch format, for the demo, tests and benchmarks.

``rxaudit generate --patients N --seed S --out DIR`` writes one batch with
realistic volumes (per patient on average some 20 fills and 10 therapy
sessions, several sites and prescribers, patients without PTSD too) and
guideline problems of every rule planted at plausible rates. The same N, seed
and as_of give byte-identical files.

The rates below are illustrative, chosen to resemble published VA and
commercial-claims figures (benzodiazepines in roughly one PTSD patient in ten,
about half of trauma-focused courses ending early, most SSRI trials too short);
they are not estimates for any real population.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

from audit import plants
from audit.batchio import write_manifest
from audit.synthetic import (
    APPROVED_TRIAL,
    BACKGROUND,
    DRUGS,
    MAX_MG,
    MIN_MG,
    UNAPPROVED_TRIAL,
    Patient,
    Writer,
)


class Generator:
    def __init__(self, patients: int, seed: int, as_of: dt.date):
        self.n = patients
        self.rng = random.Random(seed)
        # the 2027.2 situations (audit.plants) draw from a stream of their own
        self.rng2 = random.Random(f"{seed}-2027.2")
        self.as_of = as_of
        self.start = as_of - dt.timedelta(days=3 * 365)

    def date_between(self, a: dt.date, b: dt.date) -> dt.date:
        span = max((b - a).days, 0)
        return a + dt.timedelta(days=self.rng.randint(0, span))

    def write(self, out: Path, progress: Callable[[str], None]) -> dict[str, int]:
        out.mkdir(parents=True, exist_ok=True)
        self.w = Writer(out)
        self.w.add("trials", [APPROVED_TRIAL, "MDMA-assisted therapy for PTSD (phase 3)", "true"])
        self.w.add("trials", [UNAPPROVED_TRIAL, "Observational psychedelic registry", "false"])
        step = max(self.n // 10, 1)
        for i in range(1, self.n + 1):
            self.patient(i)
            if i % step == 0:
                progress(f"generated {i:,} of {self.n:,} patients")
        return self.w.close()

    def patient(self, i: int) -> None:
        rng = self.rng
        p = Patient(self, i)
        age_90 = rng.random() < 0.01
        birth = self.as_of.year - (rng.randint(90, 97) if age_90 else rng.randint(19, 85))
        sex = rng.choices(("F", "M", "X", "U"), (0.45, 0.52, 0.01, 0.02))[0]
        birth_year = birth if rng.random() > 0.02 else ""
        # schema 1.2: a few patients whose records start later (a plan enrolment)
        history = ""
        if self.rng2.random() < 0.03:
            history = (self.start + dt.timedelta(days=self.rng2.randint(30, 500))).isoformat()
        self.w.add("patients", [p.pid, birth_year, sex, p.site, history])
        self.background(p)
        if rng.random() < 0.65:
            self.ptsd(p)
            plants.plant(self, p, p.index, birth_year)
        else:
            self.other(p)

    def background(self, p: Patient) -> None:
        rng = self.rng
        for _ in range(rng.choices((0, 1, 2, 3), (0.2, 0.35, 0.3, 0.15))[0]):
            name, mg = rng.choice(BACKGROUND)
            start = self.date_between(self.start, self.as_of - dt.timedelta(days=60))
            on = start
            for _ in range(rng.randint(5, 20)):
                p.fill(None, on, 30, mg, name=name)
                on += dt.timedelta(days=rng.randint(26, 40))

    def other(self, p: Patient) -> None:
        """A patient without PTSD: depression or anxiety, some SSRIs and BZDs."""
        rng = self.rng
        on = self.date_between(self.start, self.as_of - dt.timedelta(days=30))
        p.dx(rng.choice(("F32.1", "F33.0", "F41.1", "F43.21", "F41.0")), on)
        if rng.random() < 0.5:
            ing = rng.choice(("sertraline", "escitalopram", "fluoxetine", "citalopram"))
            p.fills(ing, on, rng.randint(1, 8), rng.choice(DRUGS[ing][4]))
        if rng.random() < 0.12:
            ing = rng.choice(("alprazolam", "lorazepam", "clonazepam"))
            p.fills(ing, on, rng.randint(1, 4), rng.choice(DRUGS[ing][4]))
        if rng.random() < 0.65:
            p.sessions(on, rng.randint(6, 24), rng.choice(("SUPPORTIVE", "OTHER", "SKILLS")), 14)

    def ptsd(self, p: Patient) -> None:
        rng = self.rng
        index = self.date_between(self.start, self.as_of - dt.timedelta(days=60))
        p.index = index
        style = rng.random()
        if style < 0.1:
            p.dx(rng.choice(("47505003", "47505003", "313182004", "318784009", "443919007",
                             "699241002")), index, "SNOMED")  # fmt: skip
        else:
            p.dx(rng.choice(("F43.10", "F43.12", "F4310", "F43.11", "F43.1")), index)
        if rng.random() < 0.3:
            p.pcl5(index, rng.randint(40, 70))

        # Psychotherapy: a TF course, sometimes after prolonged non-TF therapy.
        tf_start = None
        if rng.random() < 0.1:
            after = p.sessions(
                index + dt.timedelta(days=7),
                rng.randint(6, 10),
                rng.choice(("SUPPORTIVE", "STABILIZATION", "SKILLS")),
            )
            tf_start = after if rng.random() < 0.5 else None
        elif rng.random() < 0.55:
            tf_start = index + dt.timedelta(days=rng.randint(7, 120))
        if tf_start is not None:
            kind = rng.random()
            if kind < 0.08:  # massed CPT: two sessions a day for six days
                for day in range(6):
                    p.session(tf_start + dt.timedelta(days=day), "CPT")
                    p.session(tf_start + dt.timedelta(days=day), "CPT")
                end = tf_start + dt.timedelta(days=6)
            elif kind < 0.16:  # Written Exposure Therapy: a five-session protocol
                end = p.sessions(tf_start, rng.choice((4, 5, 5, 5, 6)), "WET")
            else:
                n = rng.randint(9, 15) if rng.random() < 0.55 else rng.randint(2, 8)
                end = p.sessions(tf_start, n, rng.choice(("PE", "CPT", "CPT", "EMDR", "NET")))
                if n < 9 and rng.random() < 0.25:  # ended in response
                    p.pcl5(tf_start - dt.timedelta(days=7), rng.randint(45, 70))
                    p.pcl5(end + dt.timedelta(days=7), rng.randint(12, 30))
            if rng.random() < 0.6:  # maintenance therapy after the course
                p.sessions(end + dt.timedelta(days=21), rng.randint(6, 20),
                           rng.choice(("SUPPORTIVE", "SKILLS")), 14)  # fmt: skip
        elif rng.random() < 0.2:
            p.sessions(index + dt.timedelta(days=14), rng.randint(1, 5), "SUPPORTIVE")

        # Pharmacotherapy.
        if rng.random() < 0.7:
            self.antidepressant(p, index)

        # Benzodiazepines.
        r = rng.random()
        if r < 0.06:  # a new start after the diagnosis
            ing = rng.choice(("alprazolam", "clonazepam", "lorazepam", "diazepam"))
            p.fills(ing, index + dt.timedelta(days=rng.randint(10, 300)), rng.randint(1, 6),
                    rng.choice(DRUGS[ing][4]))  # fmt: skip
        elif r < 0.11:  # continuing from before the diagnosis
            ing = rng.choice(("alprazolam", "clonazepam"))
            p.fills(ing, index - dt.timedelta(days=rng.randint(20, 200)), rng.randint(3, 10),
                    rng.choice(DRUGS[ing][4]))  # fmt: skip
            if rng.random() < 0.15:
                p.dx(rng.choice(("G40.909", "F10.230")), index - dt.timedelta(days=30))
        elif r < 0.13:  # inpatient one-day doses: never flagged
            p.fill("lorazepam", index + dt.timedelta(days=5), 1, 1, setting="inpatient")
        elif r < 0.16:  # procedural midazolam, or two tablets before an MRI: incidental
            on = index + dt.timedelta(days=rng.randint(10, 500))
            if rng.random() < 0.5:
                p.fill("midazolam", on, 1, 2, setting="procedure")
            else:
                p.fill("lorazepam", on, 2, None, exact=("Lorazepam 1 MG Oral Tablet", 1, 2, None))
        elif r < 0.18:  # as-needed tablets each quarter: one long episode
            on = index + dt.timedelta(days=rng.randint(10, 200))
            for _ in range(rng.randint(3, 8)):
                p.fill("alprazolam", on, 10, None, exact=("Alprazolam 0.5 MG Oral Tablet", 0.5,
                                                           10, None))  # fmt: skip
                on += dt.timedelta(days=rng.randint(70, 95))
        elif r < 0.185:  # clobazam for epilepsy coded years before
            p.dx("G40.909", index - dt.timedelta(days=rng.randint(400, 2000)))
            p.fills("clobazam", index + dt.timedelta(days=rng.randint(0, 60)), rng.randint(4, 12),
                    rng.choice((10, 20)))  # fmt: skip
        elif r < 0.19:  # alcohol withdrawal treated with chlordiazepoxide
            on = index + dt.timedelta(days=rng.randint(30, 400))
            p.dx(rng.choice(("F10.139", "F10.239", "F13.239")), on)
            p.fill(None, on, 7, None, name="Chlordiazepoxide 25 MG Oral Capsule")
        elif r < 0.192:  # REM sleep behaviour disorder on clonazepam
            p.dx("G47.52", index - dt.timedelta(days=rng.randint(30, 900)))
            p.fills("clonazepam", index + dt.timedelta(days=10), rng.randint(3, 10), 0.5)

        # Nightmares and prazosin.
        if rng.random() < 0.2:
            found = index + dt.timedelta(days=rng.randint(0, 200))
            if rng.random() < 0.6:
                p.event(found, "NIGHTMARES")
            else:
                p.dx("F51.5", found)
            if rng.random() < 0.15:  # imagery rehearsal therapy instead of a drug
                p.sessions(found + dt.timedelta(days=rng.randint(7, 60)), rng.randint(3, 6), "IRT")
            elif rng.random() < 0.55:
                start = found + dt.timedelta(days=rng.randint(0, 60))
                first = 2 if rng.random() < 0.12 else 1
                p.fill("prazosin", start, 30, first)
                top = rng.choice((15, 25)) if rng.random() < 0.06 else rng.choice((3, 5, 6, 10))
                if rng.random() < 0.1:
                    p.dx("I10", found - dt.timedelta(days=rng.randint(100, 900)))
                p.fills("prazosin", start + dt.timedelta(days=30), rng.randint(1, 6), top)

        # Treatment-resistant label, referrals and MDMA.
        if rng.random() < 0.06:
            label = index + dt.timedelta(days=rng.randint(150, 700))
            p.event(label, "TREATMENT_RESISTANT")
            if rng.random() < 0.3:
                p.event(label + dt.timedelta(days=14), "REFERRAL_INTENSIVE")
        if rng.random() < 0.006:
            on = index + dt.timedelta(days=rng.randint(200, 800))
            if rng.random() < 0.5:
                trial = APPROVED_TRIAL if rng.random() < 0.8 else UNAPPROVED_TRIAL
                self.w.add("trial_enrollments", [p._id("en"), p.pid, trial,
                                                 (on - dt.timedelta(days=20)).isoformat(), ""])  # fmt: skip
            p.fill(None, on, 1, 120, name="MDMA 120 mg (midomafetamine)", setting="research")
        if rng.random() < 0.01:  # a patient-reported ecstasy history: reported use
            p.fill(None, index + dt.timedelta(days=rng.randint(0, 300)), 1, None,
                   name="MDMA (ecstasy), patient reported", source_type="reported")  # fmt: skip
        if rng.random() < 0.006:  # low-dose paroxetine for hot flushes: not an antidepressant
            name = rng.choice(("Brisdelle 7.5 MG Oral Capsule", "Paroxetine 7.5 MG Oral Capsule"))
            p.fill(
                None,
                index + dt.timedelta(days=rng.randint(0, 200)),
                30,
                None,
                exact=(name, 7.5, 30, 7.5),
            )
        if rng.random() < 0.01:  # hospice or palliative care
            on = index + dt.timedelta(days=rng.randint(60, 900))
            if rng.random() < 0.6:
                p.event(on, "HOSPICE")
            else:
                p.dx("Z51.5", on)

    def antidepressant(self, p: Patient, index: dt.date) -> None:
        rng = self.rng
        ing = rng.choices(
            ("sertraline", "paroxetine", "fluoxetine", "citalopram", "escitalopram", "venlafaxine"),
            (0.42, 0.2, 0.1, 0.06, 0.07, 0.15),
        )[0]
        start = index + dt.timedelta(days=rng.randint(-60, 180))
        if ing == "venlafaxine" and rng.random() < 0.5:  # after an SSRI, as advised
            prior = rng.choice(("sertraline", "paroxetine"))
            end = p.fills(prior, start, rng.randint(2, 5), rng.choice(DRUGS[prior][4]))
            start = end + dt.timedelta(days=rng.randint(10, 60))
        outcome = rng.choices(
            ("adequate", "short", "low", "high", "early-stop", "unknown-dose", "switch",
             "two-strengths", "split-tablet", "titrated-late"),
            (0.44, 0.2, 0.08, 0.03, 0.06, 0.05, 0.05, 0.03, 0.02, 0.04),
        )[0]  # fmt: skip
        usual = rng.choice([m for m in DRUGS[ing][4] if m >= MIN_MG[ing]])
        if ing == "paroxetine" and rng.random() < 0.2:  # paroxetine CR: its own range
            mg = rng.choice((25, 37.5, 62.5))
            on = start
            for _ in range(rng.randint(2, 9)):
                p.fill(None, on, 30, None, exact=(f"Paroxetine CR {mg:g} MG Extended Release Tablet",
                                                  mg, 30, mg))  # fmt: skip
                on += dt.timedelta(days=30)
            return
        if ing == "citalopram" and outcome == "high":  # 40 mg from age 60 is above 20
            outcome = "adequate"
            usual = 40
        if outcome == "switch":  # side effects: switch to another SSRI within the gap
            end = p.fills(ing, start, rng.randint(1, 2), usual)
            other = rng.choice(
                [i for i in ("sertraline", "paroxetine", "escitalopram") if i != ing]
            )
            p.fills(other, end + dt.timedelta(days=rng.randint(0, 20)), rng.randint(3, 9),
                    rng.choice([m for m in DRUGS[other][4] if m >= MIN_MG[other]]))  # fmt: skip
        elif outcome == "two-strengths":  # two strengths filled the same day
            on = start
            extra = 150 if ing == "venlafaxine" and rng.random() < 0.4 else DRUGS[ing][3][0]
            for _ in range(rng.randint(2, 6)):
                p.fill(ing, on, 30, usual)
                p.fill(ing, on, 30, extra)
                on += dt.timedelta(days=30)
        elif outcome == "split-tablet":  # days_supply written for whole tablets
            unit = DRUGS[ing][3][-1]
            on = start
            for _ in range(rng.randint(3, 8)):
                p.fill(ing, on, 30, None, exact=(f"{DRUGS[ing][1]} {unit:g} MG Oral Tablet", unit,
                                                 30, unit / 2))  # fmt: skip
                on += dt.timedelta(days=60)
        elif outcome == "titrated-late":  # below the minimum for months, then effective
            end = p.fills(ing, start, rng.randint(4, 6), MIN_MG[ing] / 2)
            p.fills(ing, end, rng.randint(4, 12), usual)
        elif outcome == "short":
            p.fills(ing, start, rng.randint(1, 2), usual)
        elif outcome == "low":
            p.fills(ing, start, rng.randint(4, 10), MIN_MG[ing] / 2)
        elif outcome == "unknown-dose":
            p.fills(ing, start, rng.randint(3, 9), None)
        elif outcome == "high":
            p.fills(ing, start, rng.randint(4, 8), MAX_MG[ing] * 1.5)
        else:
            self.continued(p, ing, start, usual, outcome == "early-stop")

    def continued(self, p: Patient, ing: str, start: dt.date, usual: float, stop: bool) -> None:
        rng = self.rng
        end = p.fills(ing, start, rng.randint(4, 14), usual)
        if stop or rng.random() < 0.15:
            remission = start + dt.timedelta(days=rng.randint(60, max(61, (end - start).days - 5)))
            if rng.random() < 0.5:
                p.event(remission, "REMISSION")
            else:
                if rng.random() < 0.8:  # a baseline score: the drop is a response
                    p.pcl5(start - dt.timedelta(days=rng.randint(0, 30)), rng.randint(40, 70))
                p.pcl5(remission, rng.randint(15, 32))


def generate(
    patients: int,
    seed: int,
    out: Path,
    as_of: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a synthetic batch folder; return its manifest."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    as_of = as_of or dt.date(2025, 12, 31)
    gen = Generator(patients, seed, as_of)
    rows = gen.write(Path(out), progress or (lambda msg: None))
    return write_manifest(
        Path(out),
        f"synthetic-s{seed}-n{patients}",
        as_of,
        source="rxaudit-generate",
        created_at=f"{as_of.isoformat()}T23:00:00Z",
        rows=rows,
        history_from=gen.start - dt.timedelta(days=365),
    )
