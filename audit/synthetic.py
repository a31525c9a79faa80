"""The synthetic cohort's vocabulary (sites, prescribers, drugs, trials) and
its two building blocks: the streaming CSV writer of a batch and one
patient's records, written as the generator decides them."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from audit import contract

if TYPE_CHECKING:
    from audit.generate import Generator

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
    "prazosin": ("8629", "Prazosin", ["Minipress"], [1, 2, 5], [1, 3, 6]),
    "alprazolam": ("596", "Alprazolam", ["Xanax"], [0.25, 0.5, 1], [0.5, 1, 2]),
    "clonazepam": ("2598", "Clonazepam", ["Klonopin"], [0.5, 1, 2], [0.5, 1, 2]),
    "lorazepam": ("6470", "Lorazepam", ["Ativan"], [0.5, 1, 2], [1, 2]),
    "diazepam": ("3322", "Diazepam", ["Valium"], [2, 5, 10], [5, 10]),
    "midazolam": ("6960", "Midazolam", ["Versed"], [1, 2, 5], [2, 5]),
    "clobazam": ("21241", "Clobazam", ["Onfi"], [10, 20], [10, 20]),
    "duloxetine": ("72625", "Duloxetine", ["Cymbalta"], [20, 30, 60], [60]),
    "desvenlafaxine": ("734064", "Desvenlafaxine", ["Pristiq"], [25, 50, 100], [50]),
    "mirtazapine": ("15996", "Mirtazapine", ["Remeron"], [15, 30, 45], [15, 30]),
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


class Writer:
    def __init__(self, out: Path):
        self.out = out
        self.files = {}
        self.writers = {}
        self.rows = {}
        self.widths = {}
        self.pending: dict[str, list[list]] = {}
        for spec in contract.FILES:
            fh = (out / spec.file_name).open("w", newline="", encoding="utf-8")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(spec.column_names)
            self.widths[spec.table] = len(spec.column_names)
            self.files[spec.table] = fh
            self.writers[spec.table] = w
            self.rows[spec.table] = 0

    def add(self, table: str, row: list) -> None:
        """A row; trailing optional (1.1, 1.2) columns it leaves out are empty.
        Rows wait in a short buffer (``recode`` may still change them)."""
        self.pending.setdefault(table, []).append([*row, *[""] * (self.widths[table] - len(row))])
        self.rows[table] += 1
        if len(self.pending[table]) > 64:
            self.writers[table].writerows(self.pending[table][:-8])
            del self.pending[table][:-8]

    def recode(self, table: str, n: int, values: dict[int, object]) -> None:
        for row in self.pending.get(table, [])[-n:]:
            for col, value in values.items():
                row[col] = value

    def close(self) -> dict[str, int]:
        for table, rows in self.pending.items():
            self.writers[table].writerows(rows)
        for fh in self.files.values():
            fh.close()
        return {f"{t}.csv": n for t, n in self.rows.items()}


class Patient:
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
        source_type: str = "",
        exact: tuple | None = None,
    ) -> None:
        """A prescription row. ``exact`` = (drug name, strength, quantity, sig
        dose) as written, for the planted situations that need them."""
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
        if exact is not None:
            system, code = "NONE", ""
            drug_name, strength, qty, dose = ("" if v is None else v for v in exact)
        if not source_type and setting == "outpatient" and rng.random() < 0.02:
            source_type = "ordered"  # an order with no dispensing known
        elif not source_type and setting == "inpatient":
            source_type = "administered"
        self.g.w.add(
            "prescriptions",
            [self._id("rx"), self.pid, prescriber, site, system, code, drug_name, strength, qty,
             days, dose, self.day(on), setting, source_type],
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

    def pcl5(self, on: dt.date, score: int, instrument: str = "PCL5") -> None:
        if on <= self.g.as_of:
            self.g.w.add("assessments", [self._id("as"), self.pid, self.day(on), instrument, score])

    def caps5(self, on: dt.date, score: int) -> None:
        self.pcl5(on, score, "CAPS5")

    def code_last(self, n: int, system: str, code: str) -> None:
        """Code the last ``n`` prescription rows written (by RxNorm, say)."""
        self.g.w.recode("prescriptions", n, {4: system, 5: code})
