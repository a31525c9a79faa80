"""A small language for rule fixtures: patients, fills, sessions, events.

    world = World(as_of="2025-12-31")
    p = world.patient("p1", ptsd_on="2025-01-01")
    p.fill("sertraline", "2025-01-10", days=30, dose=50)
    cases = world.run(conn, tmp_path)   # load, evaluate, return the run's cases

Each fixture writes a real batch, loads it through the loader and runs the
real rule SQL against PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from audit import policy, rules
from audit.batchio import write_batch
from audit.ingest import LoadSettings, ingest

RXCUI = {
    "sertraline": "36437", "paroxetine": "32937", "fluoxetine": "4493", "citalopram": "2556",
    "escitalopram": "321988", "fluvoxamine": "42355", "venlafaxine": "39786",
    "alprazolam": "596", "clonazepam": "2598", "diazepam": "3322", "lorazepam": "6470",
    "prazosin": "8629", "duloxetine": "72625", "desvenlafaxine": "734064", "mirtazapine": "15996",
}  # fmt: skip

_ids = itertools.count(1)


def d(value: str | dt.date, plus: int = 0) -> str:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return (day + dt.timedelta(days=plus)).isoformat()


@dataclass
class Patient:
    world: World
    patient_id: str
    site_id: str = "north"

    def fill(
        self,
        ingredient: str,
        on: str,
        days: int = 30,
        dose: float | None = None,
        *,
        name: str | None = None,
        code: str | None = None,
        system: str | None = None,
        strength: float | None = None,
        quantity: float | None = None,
        setting: str = "outpatient",
        prescriber: str = "dr-1",
        site: str | None = None,
        rx_id: str | None = None,
        source_type: str | None = None,
    ) -> str:
        """A fill; by default coded by RxNorm when the ingredient has a RXCUI."""
        rx_id = rx_id or f"rx-{next(_ids)}"
        if system is None:
            system = "RXNORM" if ingredient in RXCUI and code is None and name is None else "NONE"
        if system == "RXNORM" and code is None:
            code = RXCUI.get(ingredient)
        self.world.tables["prescriptions"].append(
            {
                "rx_id": rx_id,
                "patient_id": self.patient_id,
                "prescriber_id": prescriber,
                "site_id": site or self.site_id,
                "drug_code_system": system,
                "drug_code": code,
                "drug_name": name or f"{ingredient.title()} oral tablet",
                "strength_mg": strength,
                "quantity": quantity,
                "days_supply": days,
                "daily_dose_mg": dose,
                "filled_on": on,
                "setting": setting,
                "source_type": source_type,
            }
        )
        return rx_id

    def fills(self, ingredient: str, start: str, n: int, every: int = 30, **kw) -> list[str]:
        return [self.fill(ingredient, d(start, i * every), **kw) for i in range(n)]

    def session(
        self, on: str, modality: str = "PE", site: str | None = None, session_id: str | None = None
    ) -> str:
        sid = session_id or f"s-{next(_ids)}"
        self.world.tables["therapy_sessions"].append(
            {
                "session_id": sid,
                "patient_id": self.patient_id,
                "clinician_id": "th-1",
                "site_id": site or self.site_id,
                "session_date": on,
                "cpt_code": "90837",
                "modality": modality,
                "minutes": 60,
            }
        )
        return sid

    def sessions(self, start: str, n: int, every: int = 7, modality: str = "PE") -> list[str]:
        return [self.session(d(start, i * every), modality) for i in range(n)]

    def diagnosis(
        self, code: str, on: str, system: str = "ICD10CM", diagnosis_id: str | None = None
    ) -> str:
        did = diagnosis_id or f"dx-{next(_ids)}"
        self.world.tables["diagnoses"].append(
            {
                "diagnosis_id": did,
                "patient_id": self.patient_id,
                "code_system": system,
                "code": code,
                "diagnosed_on": on,
            }  # fmt: skip
        )
        return did

    def event(self, on: str, event_type: str, event_id: str | None = None) -> str:
        eid = event_id or f"ev-{next(_ids)}"
        self.world.tables.setdefault("clinical_events", []).append(
            {
                "event_id": eid,
                "patient_id": self.patient_id,
                "event_date": on,
                "event_type": event_type,
            }  # fmt: skip
        )
        return eid

    def pcl5(
        self, on: str, score: int, assessment_id: str | None = None, instrument: str = "PCL5"
    ) -> str:
        aid = assessment_id or f"as-{next(_ids)}"
        self.world.tables.setdefault("assessments", []).append(
            {
                "assessment_id": aid,
                "patient_id": self.patient_id,
                "assessed_on": on,
                "instrument": instrument,
                "score": score,
            }  # fmt: skip
        )
        return aid

    def caps5(self, on: str, score: int, assessment_id: str | None = None) -> str:
        return self.pcl5(on, score, assessment_id, instrument="CAPS5")

    def enrol(self, trial_id: str, on: str, ended: str | None = None) -> str:
        eid = f"en-{next(_ids)}"
        self.world.tables.setdefault("trial_enrollments", []).append(
            {
                "enrollment_id": eid,
                "patient_id": self.patient_id,
                "trial_id": trial_id,
                "enrolled_on": on,
                "ended_on": ended,
            }  # fmt: skip
        )
        return eid


@dataclass
class World:
    as_of: str = "2025-12-31"
    tables: dict[str, list[dict]] = field(
        default_factory=lambda: {
            "patients": [],
            "diagnoses": [],
            "prescriptions": [],
            "therapy_sessions": [],
        }  # fmt: skip
    )
    batches: int = 0
    history_from: str | None = None

    def patient(
        self, patient_id: str, ptsd_on: str | None = None, site: str = "north",
        code: str = "F43.10", system: str = "ICD10CM", birth_year: int | None = 1980,
        history_from: str | None = None,
    ) -> Patient:  # fmt: skip
        self.tables["patients"].append(
            {"patient_id": patient_id, "birth_year": birth_year, "sex": "F", "site_id": site,
             "history_from": history_from}
        )  # fmt: skip
        p = Patient(self, patient_id, site)
        if ptsd_on:
            p.diagnosis(code, ptsd_on, system)
        return p

    def trial(self, trial_id: str, approved: str = "true") -> None:
        self.tables.setdefault("trials", []).append(
            {"trial_id": trial_id, "title": "MDMA-assisted therapy", "approved": approved}
        )

    def load(self, conn, root: Path, as_of: str | None = None) -> None:
        self.batches += 1
        batch_id = f"fixture-{self.batches:03d}"
        write_batch(
            root / batch_id, batch_id, as_of or self.as_of, self.tables,
            history_from=self.history_from,
        )  # fmt: skip
        ingest(conn, root / batch_id, LoadSettings())
        self.tables = {k: [] for k in ("patients", "diagnoses", "prescriptions",
                                       "therapy_sessions")}  # fmt: skip

    def run(self, conn, root: Path, policy_path: Path | None = None) -> list[dict]:
        """Load what was written so far and evaluate; return this run's cases."""
        if any(self.tables.values()):
            self.load(conn, root)
        return evaluate(conn, policy_path)


_runs = itertools.count(1)


def evaluate(conn, policy_path: Path | None = None) -> list[dict]:
    pol = policy.load(policy_path)
    run_id = f"run-{next(_runs):04d}"
    with conn.transaction():
        conn.execute(
            "insert into audit.runs (run_id, started_at, status, policy_version, policy_sha256)"
            " values (%s, now(), 'running', %s, %s)",
            (run_id, pol.version, pol.sha256),
        )
        rules.evaluate(conn, pol, run_id)
    cur = conn.execute(
        "select rule_id, patient_id, case_date::text, severity, status, site_id, prescriber_id,"
        " summary, evidence, case_id from audit.run_cases where run_id = %s"
        " order by rule_id, patient_id, case_date",
        (run_id,),
    )
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def of(cases: list[dict], rule_id: str) -> dict[str, list[dict]]:
    """Cases of one rule, by patient."""
    out: dict[str, list[dict]] = {}
    for c in cases:
        if c["rule_id"] == rule_id:
            out.setdefault(c["patient_id"], []).append(c)
    return out
