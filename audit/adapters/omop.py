"""OMOP CDM v5.4 (a CSV export of its tables) into a native batch.

Header names may be in either case. Tables read: PERSON, CONDITION_OCCURRENCE,
DRUG_EXPOSURE, PROCEDURE_OCCURRENCE, OBSERVATION (optional), CONCEPT, and
DRUG_STRENGTH when the export has it. CONCEPT is read in a second pass keeping
only the concepts the clinical tables use, so a full vocabulary export fits in
memory. See docs/sources.md for the mapping table.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from audit.adapters.common import (
    PSYCHOTHERAPY_CPT,
    PSYCHOTHERAPY_WORDS,
    ConversionReport,
    NativeWriter,
    Tokenizer,
    find_file,
    modality_of,
    parse_date,
    read_csv,
)
from audit.errors import UsageError

GENDER = {"8507": "M", "8532": "F"}
ICD10 = re.compile(r"^[A-TV-Z][0-9][0-9AB]\.?[0-9A-TV-Z]{0,4}$")
MG_UNIT = "8576"  # concept id of the unit "milligram"
# OBSERVATION concept names -> clinical events (extend as sites need).
EVENT_RULES = (
    (re.compile(r"nightmare", re.I), "NIGHTMARES"),
    (re.compile(r"treatment[- ]resistant", re.I), "TREATMENT_RESISTANT"),
    (re.compile(r"\bremission\b", re.I), "REMISSION"),
)

CLINICAL = {
    "condition_occurrence.csv": ("condition_concept_id", "condition_source_concept_id"),
    "drug_exposure.csv": ("drug_concept_id",),
    "procedure_occurrence.csv": ("procedure_concept_id", "procedure_source_concept_id"),
    "observation.csv": ("observation_concept_id",),
}


def _concepts(src: Path) -> dict[str, tuple[str, str, str]]:
    """concept_id -> (name, vocabulary_id, concept_code), for the ids in use."""
    wanted: set[str] = set()
    for name, columns in CLINICAL.items():
        path = find_file(src, name)
        if path is not None:
            for row in read_csv(path):
                wanted.update(row.get(c, "") for c in columns)
    wanted.discard("")
    wanted.discard("0")
    out = {}
    path = find_file(src, "concept.csv")
    if path is not None:
        for row in read_csv(path):
            cid = row.get("concept_id", "")
            if cid in wanted:
                out[cid] = (row.get("concept_name", ""), row.get("vocabulary_id", ""),
                            row.get("concept_code", ""))  # fmt: skip
    return out


def _strengths(src: Path) -> dict[str, float]:
    """drug_concept_id -> mg per unit, from DRUG_STRENGTH when exported."""
    path = find_file(src, "drug_strength.csv")
    out: dict[str, float] = {}
    if path is None:
        return out
    for row in read_csv(path):
        if row.get("amount_unit_concept_id") == MG_UNIT and row.get("amount_value"):
            try:
                out.setdefault(row["drug_concept_id"], float(row["amount_value"]))
            except ValueError:
                continue
    return out


def _number(value: str | None) -> float | None:
    try:
        n = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return n if n and n > 0 else None


def convert(
    src: Path, out: Path, tokens: Tokenizer, as_of: dt.date | None, site: str | None
) -> tuple[dict, ConversionReport]:
    person_path = find_file(src, "person.csv")
    if person_path is None:
        raise UsageError(f"{src} holds no PERSON table: not an OMOP CDM export")
    report = ConversionReport("omop")
    concepts = _concepts(src)
    strengths = _strengths(src)
    if as_of is None:
        as_of = _latest_date(src)
    w = NativeWriter(out)
    report.dropped_columns["person"] = ["person_source_value", "birth_datetime", "month_of_birth",
                                        "day_of_birth", "location_id", "race and ethnicity"]  # fmt: skip
    report.cannot_fill = {
        "patients": [] if site is None else ["site_id (set by --site)"],
        "prescriptions": ["setting (always outpatient)", "daily_dose_mg (no sig)"]
        + ([] if strengths else ["strength_mg (no DRUG_STRENGTH in the export)"]),
        "therapy_sessions": [
            "modality (UNKNOWN unless the source names the protocol)",
            "minutes",
            "clinician_id",
        ],  # fmt: skip
        "trial_enrollments": ["all: OMOP has no trial enrollment table"],
        "trials": ["all"],
        "assessments": ["all: no mapping for PCL-5 measurements yet"],
    }

    # Schema 1.2: each person's history starts at their earliest observation
    # period (the CDM's span of time in which records are expected).
    observed: dict[str, dt.date] = {}
    path = find_file(src, "observation_period.csv")
    if path is not None:
        for row in read_csv(path):
            start = parse_date(row.get("observation_period_start_date"))
            person = row.get("person_id", "")
            if start and person and (person not in observed or start < observed[person]):
                observed[person] = start
    known: dict[str, str] = {}
    sites: dict[str, str] = {}
    t = report.table("person")
    for row in read_csv(person_path):
        t.read += 1
        person = row.get("person_id", "")
        if not person:
            report.drop("person", "no person_id")
            continue
        known[person] = tokens("p", person)
        year = row.get("year_of_birth", "")
        care_site = row.get("care_site_id", "")
        sites[person] = site or (f"cs-{care_site}" if care_site else "omop")
        w.add("patients", {
            "patient_id": known[person],
            "birth_year": int(year) if year.isdigit() else None,
            "sex": GENDER.get(row.get("gender_concept_id", ""), "U"),
            "site_id": sites[person],
            "history_from": observed[person].isoformat() if person in observed else None,
        })  # fmt: skip
        t.written += 1
    report.notes["patients.history_from"] = {
        "from": "each person's earliest observation_period_start_date",
        "persons": sum(1 for p in known if p in observed),
    }

    def home(person: str) -> str:
        return sites[person]

    path = find_file(src, "condition_occurrence.csv")
    if path is not None:
        t = report.table("condition_occurrence")
        for row in read_csv(path):
            t.read += 1
            person, on = row.get("person_id", ""), parse_date(row.get("condition_start_date"))
            if person not in known or on is None or on > as_of:
                report.drop("condition_occurrence", "unknown person, no date or after as_of")
                continue
            source = concepts.get(row.get("condition_source_concept_id", ""))
            standard = concepts.get(row.get("condition_concept_id", ""))
            value = (row.get("condition_source_value") or "").strip()
            if source and source[1] == "ICD10CM":
                system, code = "ICD10CM", source[2]
            elif ICD10.match(value.upper()) and not value.isdigit():
                system, code = "ICD10CM", value.upper()
            elif standard and standard[1] == "SNOMED":
                system, code = "SNOMED", standard[2]
            elif value.isdigit():
                system, code = "SNOMED", value
            else:
                report.drop("condition_occurrence", "unmapped code")
                report.unmapped_code("condition", value or row.get("condition_concept_id", ""))
                continue
            w.add("diagnoses", {
                "diagnosis_id": tokens("dx", row.get("condition_occurrence_id", "")),
                "patient_id": known[person], "code_system": system, "code": code,
                "diagnosed_on": on.isoformat(),
            })  # fmt: skip
            t.written += 1

    path = find_file(src, "drug_exposure.csv")
    if path is not None:
        t = report.table("drug_exposure")
        for row in read_csv(path):
            t.read += 1
            person = row.get("person_id", "")
            start = parse_date(row.get("drug_exposure_start_date"))
            end = parse_date(row.get("drug_exposure_end_date"))
            if person not in known or start is None or start > as_of:
                report.drop("drug_exposure", "unknown person, no date or after as_of")
                continue
            concept = concepts.get(row.get("drug_concept_id", ""))
            name = (concept[0] if concept else "") or (row.get("drug_source_value") or "").strip()
            if not name:
                report.drop("drug_exposure", "no drug name")
                report.unmapped_code("drug", row.get("drug_concept_id", ""))
                continue
            days = _number(row.get("days_supply"))
            if days is None:  # OHDSI convention: end minus start plus one
                days = (end - start).days + 1 if end and end >= start else 1
            rxnorm = concept and concept[1] in ("RxNorm", "RxNorm Extension")
            w.add("prescriptions", {
                "rx_id": tokens("rx", row.get("drug_exposure_id", "")),
                "patient_id": known[person],
                "prescriber_id": tokens("dr", row["provider_id"]) if row.get("provider_id") else None,
                "site_id": home(person),
                "drug_code_system": "RXNORM" if rxnorm else "NONE",
                "drug_code": concept[2] if rxnorm else None, "drug_name": name,
                "strength_mg": strengths.get(row.get("drug_concept_id", "")),
                "quantity": _number(row.get("quantity")),
                "days_supply": int(max(1, min(365, days))), "daily_dose_mg": None,
                "filled_on": start.isoformat(), "setting": "outpatient",
            })  # fmt: skip
            t.written += 1

    path = find_file(src, "procedure_occurrence.csv")
    if path is not None:
        t = report.table("procedure_occurrence")
        for row in read_csv(path):
            t.read += 1
            person, on = row.get("person_id", ""), parse_date(row.get("procedure_date"))
            if person not in known or on is None or on > as_of:
                report.drop("procedure_occurrence", "unknown person, no date or after as_of")
                continue
            concept = concepts.get(row.get("procedure_concept_id", "")) or ("", "", "")
            value = (row.get("procedure_source_value") or "").strip()
            cpt = (
                value
                if value in PSYCHOTHERAPY_CPT
                else (
                    concept[2] if concept[1] == "CPT4" and concept[2] in PSYCHOTHERAPY_CPT else None
                )
            )
            if cpt is None and not PSYCHOTHERAPY_WORDS.search(concept[0]):
                report.drop("procedure_occurrence", "not psychotherapy")
                continue
            w.add("therapy_sessions", {
                "session_id": tokens("ses", row.get("procedure_occurrence_id", "")),
                "patient_id": known[person], "clinician_id": None, "site_id": home(person),
                "session_date": on.isoformat(), "cpt_code": cpt,
                "modality": modality_of(concept[0], value), "minutes": None,
            })  # fmt: skip
            t.written += 1

    path = find_file(src, "observation.csv")
    if path is not None:
        t = report.table("observation")
        for row in read_csv(path):
            t.read += 1
            person, on = row.get("person_id", ""), parse_date(row.get("observation_date"))
            concept = concepts.get(row.get("observation_concept_id", "")) or ("", "", "")
            kind = next((k for p, k in EVENT_RULES if p.search(concept[0])), None)
            if person not in known or on is None or on > as_of or kind is None:
                report.drop("observation", "no mapping to a clinical event")
                continue
            w.add("clinical_events", {
                "event_id": tokens("ev", row.get("observation_id", "")),
                "patient_id": known[person], "event_date": on.isoformat(), "event_type": kind,
            })  # fmt: skip
            t.written += 1

    manifest = w.finish(tokens("omop", src.resolve().name, as_of.isoformat()), as_of, "omop")
    return manifest, report


def _latest_date(src: Path) -> dt.date:
    latest = None
    for name, column in (("observation_period.csv", "observation_period_end_date"),
                         ("drug_exposure.csv", "drug_exposure_start_date"),
                         ("condition_occurrence.csv", "condition_start_date")):  # fmt: skip
        path = find_file(src, name)
        if path is None:
            continue
        for row in read_csv(path):
            d = parse_date(row.get(column))
            if d and (latest is None or d > latest):
                latest = d
        if latest:
            return latest
    raise UsageError("the OMOP export holds no dated record: pass --as-of")
