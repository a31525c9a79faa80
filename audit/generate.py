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

import csv
import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

from audit import contract
from audit.batchio import write_manifest

SITES = [f"site-{i:02d}" for i in range(1, 7)]
PRESCRIBERS = {s: [f"dr-{s[-2:]}{j:02d}" for j in range(1, 9)] for s in SITES}
CLINICIANS = {s: [f"th-{s[-2:]}{j:02d}" for j in range(1, 7)] for s in SITES}

# ingredient: (rxcui, generic display, brands, strengths in mg, usual mg/day)
DRUGS = {
    "sertraline": ("36437", "Sertraline", ["Zoloft"], [25, 50, 100], [50, 100, 150]),
    "paroxetine": ("32937", "Paroxetine", ["Paxil"], [10, 20, 40], [20, 30, 40]),
    "fluoxetine": ("4493", "Fluoxetine", ["Prozac"], [10, 20, 40], [20, 40]),
    "citalopram": ("2556", "Citalopram", ["Celexa"], [10, 20, 40], [20, 40]),
    "escitalopram": ("321988", "Escitalopram", ["Lexapro"], [5, 10, 20], [10, 20]),
    "venlafaxine": ("39786", "Venlafaxine", ["Effexor XR"], [37.5, 75, 150], [75, 150, 225]),
    "prazosin": ("", "Prazosin", ["Minipress"], [1, 2, 5], [1, 3, 6]),
    "alprazolam": ("596", "Alprazolam", ["Xanax"], [0.25, 0.5, 1], [0.5, 1, 2]),
    "clonazepam": ("2598", "Clonazepam", ["Klonopin"], [0.5, 1, 2], [0.5, 1, 2]),
    "lorazepam": ("6470", "Lorazepam", ["Ativan"], [0.5, 1, 2], [1, 2]),
    "diazepam": ("3322", "Diazepam", ["Valium"], [2, 5, 10], [5, 10]),
}
MIN_MG = {"sertraline": 50, "paroxetine": 20, "fluoxetine": 20, "citalopram": 20,
          "escitalopram": 10, "venlafaxine": 75}  # fmt: skip
MAX_MG = {"sertraline": 200, "paroxetine": 50, "fluoxetine": 80, "citalopram": 40,
          "escitalopram": 20, "venlafaxine": 300}  # fmt: skip
BACKGROUND = [
    ("Lisinopril 10 MG Oral Tablet", 10), ("Metformin 500 MG Oral Tablet", 500),
    ("Atorvastatin 20 MG Oral Tablet", 20), ("Omeprazole 20 MG Delayed Release Capsule", 20),
    ("Trazodone 50 MG Oral Tablet", 50), ("Gabapentin 300 MG Oral Capsule", 300),
    ("Levothyroxine 0.05 MG Oral Tablet", 0.05), ("Amlodipine 5 MG Oral Tablet", 5),
]  # fmt: skip
NDC = {"sertraline": "16714-0612-01", "paroxetine": "60505-0083-03",
       "fluoxetine": "50111-0647-01", "venlafaxine": "00093-7384-56"}  # fmt: skip
APPROVED_TRIAL = "NCT05000001"
UNAPPROVED_TRIAL = "NCT05000002"


class _Writer:
    def __init__(self, out: Path):
        self.out = out
        self.files = {}
        self.writers = {}
        self.rows = {}
        self.widths = {}
        for spec in contract.FILES:
            fh = (out / spec.file_name).open("w", newline="", encoding="utf-8")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(spec.column_names)
            self.widths[spec.table] = len(spec.column_names)
            self.files[spec.table] = fh
            self.writers[spec.table] = w
            self.rows[spec.table] = 0

    def add(self, table: str, row: list) -> None:
        """A row; trailing optional (1.1) columns it leaves out are empty."""
        self.writers[table].writerow([*row, *[""] * (self.widths[table] - len(row))])
        self.rows[table] += 1

    def close(self) -> dict[str, int]:
        for fh in self.files.values():
            fh.close()
        return {f"{t}.csv": n for t, n in self.rows.items()}


class _Patient:
    """Writes one patient's records; keeps its own id counters."""

    def __init__(self, gen: Generator, n: int):
        self.g = gen
        self.rng = gen.rng
        self.pid = f"pt-{n:07d}"
        self.site = self.rng.choice(SITES)
        self.k = 0

    def _id(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}-{self.pid[3:]}-{self.k:03d}"

    def day(self, d: dt.date) -> str:
        return d.isoformat()

    def dx(self, code: str, on: dt.date, system: str = "ICD10CM") -> None:
        self.g.w.add("diagnoses", [self._id("dx"), self.pid, system, code, self.day(on)])

    def fill(
        self,
        ingredient: str | None,
        on: dt.date,
        days: int,
        mg_day: float | None,
        *,
        name: str | None = None,
        setting: str = "outpatient",
        site: str | None = None,
        prescriber: str | None = None,
    ) -> None:
        if on > self.g.as_of:
            return
        rng = self.rng
        site = site or self.site
        prescriber = prescriber or rng.choice(PRESCRIBERS[site])
        system, code, strength, qty, dose = "NONE", "", "", "", ""
        if ingredient is None:
            drug_name = name or "Unknown product"
            if mg_day is not None:
                strength, qty = mg_day, days
        else:
            rxcui, generic, brands, strengths, _ = DRUGS[ingredient]
            style = rng.random()
            if style < 0.15 and brands:
                drug_name = f"{rng.choice(brands)} {mg_day if mg_day else strengths[0]:g} mg"
            elif style < 0.25 and rxcui:
                system, code = "RXNORM", rxcui
                drug_name = "oral tablet"  # code-only: the name alone would not say what it is
            elif style < 0.32 and ingredient in NDC:
                system, code = "NDC", NDC[ingredient]
                drug_name = f"{generic.upper()} TAB"
            else:
                unit = strengths[0]
                drug_name = f"{generic} {unit:g} MG Oral Tablet"
            if mg_day is None:
                pass  # unknown dose: neither sig nor strength x quantity
            elif rng.random() < 0.5:
                unit = next((s for s in strengths if mg_day % s == 0), strengths[0])
                strength = unit
                qty = round(mg_day / unit * days, 3)
            else:
                dose = mg_day
        self.g.w.add(
            "prescriptions",
            [self._id("rx"), self.pid, prescriber, site, system, code, drug_name, strength, qty,
             days, dose, self.day(on), setting],
        )  # fmt: skip

    def fills(self, ingredient, start: dt.date, n: int, mg_day, days: int = 30, jitter: int = 4):
        on = start
        prescriber = self.rng.choice(PRESCRIBERS[self.site])
        for _ in range(n):
            self.fill(ingredient, on, days, mg_day, prescriber=prescriber)
            on = on + dt.timedelta(days=days + self.rng.randint(-jitter, jitter))
        return on

    def session(self, on: dt.date, modality: str) -> None:
        if on > self.g.as_of:
            return
        cpt = {"SUPPORTIVE": "90834", "SKILLS": "90853"}.get(modality, "90837")
        self.g.w.add(
            "therapy_sessions",
            [self._id("ses"), self.pid, self.rng.choice(CLINICIANS[self.site]), self.site,
             self.day(on), cpt, modality, self.rng.choice((45, 60, 90))],
        )  # fmt: skip

    def sessions(self, start: dt.date, n: int, modality: str, every: int = 7) -> dt.date:
        on = start
        for _ in range(n):
            self.session(on, "UNKNOWN" if self.rng.random() < 0.04 else modality)
            on = on + dt.timedelta(days=every + self.rng.randint(-2, 3))
        return on

    def event(self, on: dt.date, kind: str) -> None:
        if on <= self.g.as_of:
            self.g.w.add("clinical_events", [self._id("ev"), self.pid, self.day(on), kind])

    def pcl5(self, on: dt.date, score: int) -> None:
        if on <= self.g.as_of:
            self.g.w.add("assessments", [self._id("as"), self.pid, self.day(on), "PCL5", score])


class Generator:
    def __init__(self, patients: int, seed: int, as_of: dt.date):
        self.n = patients
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.start = as_of - dt.timedelta(days=3 * 365)

    def date_between(self, a: dt.date, b: dt.date) -> dt.date:
        span = max((b - a).days, 0)
        return a + dt.timedelta(days=self.rng.randint(0, span))

    def write(self, out: Path, progress: Callable[[str], None]) -> dict[str, int]:
        out.mkdir(parents=True, exist_ok=True)
        self.w = _Writer(out)
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
        p = _Patient(self, i)
        age_90 = rng.random() < 0.01
        birth = self.as_of.year - (rng.randint(90, 97) if age_90 else rng.randint(19, 85))
        sex = rng.choices(("F", "M", "X", "U"), (0.45, 0.52, 0.01, 0.02))[0]
        self.w.add("patients", [p.pid, birth if rng.random() > 0.02 else "", sex, p.site])
        self.background(p)
        if rng.random() < 0.65:
            self.ptsd(p)
        else:
            self.other(p)

    def background(self, p: _Patient) -> None:
        rng = self.rng
        for _ in range(rng.choices((0, 1, 2, 3), (0.2, 0.35, 0.3, 0.15))[0]):
            name, mg = rng.choice(BACKGROUND)
            start = self.date_between(self.start, self.as_of - dt.timedelta(days=60))
            on = start
            for _ in range(rng.randint(5, 20)):
                p.fill(None, on, 30, mg, name=name)
                on += dt.timedelta(days=rng.randint(26, 40))

    def other(self, p: _Patient) -> None:
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

    def ptsd(self, p: _Patient) -> None:
        rng = self.rng
        index = self.date_between(self.start, self.as_of - dt.timedelta(days=60))
        style = rng.random()
        if style < 0.1:
            p.dx("47505003", index, "SNOMED")
        else:
            p.dx(rng.choice(("F43.10", "F43.12", "F4310", "F43.11", "F43.1")), index)
        if rng.random() < 0.3:
            p.pcl5(index, rng.randint(40, 70))

        # Psychotherapy: a TF course, sometimes after prolonged non-TF therapy.
        tf_start = None
        if rng.random() < 0.1:
            after = p.sessions(index + dt.timedelta(days=7), rng.randint(6, 10), "SUPPORTIVE")
            tf_start = after if rng.random() < 0.5 else None
        elif rng.random() < 0.55:
            tf_start = index + dt.timedelta(days=rng.randint(7, 120))
        if tf_start is not None:
            n = rng.randint(9, 15) if rng.random() < 0.55 else rng.randint(2, 8)
            end = p.sessions(tf_start, n, rng.choice(("PE", "CPT", "CPT", "EMDR", "NET")))
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

        # Nightmares and prazosin.
        if rng.random() < 0.2:
            found = index + dt.timedelta(days=rng.randint(0, 200))
            if rng.random() < 0.6:
                p.event(found, "NIGHTMARES")
            else:
                p.dx("F51.5", found)
            if rng.random() < 0.55:
                start = found + dt.timedelta(days=rng.randint(0, 60))
                first = 2 if rng.random() < 0.12 else 1
                p.fill("prazosin", start, 30, first)
                top = 15 if rng.random() < 0.06 else rng.choice((3, 5, 6, 10))
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

    def antidepressant(self, p: _Patient, index: dt.date) -> None:
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
            ("adequate", "short", "low", "high", "early-stop", "unknown-dose"),
            (0.52, 0.24, 0.1, 0.03, 0.06, 0.05),
        )[0]
        usual = rng.choice([m for m in DRUGS[ing][4] if m >= MIN_MG[ing]])
        if outcome == "short":
            p.fills(ing, start, rng.randint(1, 2), usual)
        elif outcome == "low":
            p.fills(ing, start, rng.randint(4, 10), MIN_MG[ing] / 2)
        elif outcome == "unknown-dose":
            p.fills(ing, start, rng.randint(3, 9), None)
        elif outcome == "high":
            p.fills(ing, start, rng.randint(4, 8), MAX_MG[ing] * 1.5)
        else:
            self.continued(p, ing, start, usual, outcome == "early-stop")

    def continued(self, p: _Patient, ing: str, start: dt.date, usual: float, stop: bool) -> None:
        rng = self.rng
        end = p.fills(ing, start, rng.randint(4, 14), usual)
        if stop or rng.random() < 0.15:
            remission = start + dt.timedelta(days=rng.randint(60, max(61, (end - start).days - 5)))
            if rng.random() < 0.5:
                p.event(remission, "REMISSION")
            else:
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
    )
