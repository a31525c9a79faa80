"""Synthea CSV output into a native batch.

Both layouts are read: the older one (conditions without a ``SYSTEM`` column,
medications with ``COST``) and v3+ (``SYSTEM`` columns, ``PAYER``,
``BASE_COST``). See docs/sources.md for the mapping table.

- ``patients.csv``: the id becomes a token; only the birth year and sex leave
  the adapter. SSN, names, addresses, passport, driver's licence, birthplace
  and every other column are never read into the batch.
- ``conditions.csv``: diagnoses (SNOMED CT, or ICD-10-CM when ``SYSTEM`` says so).
- ``medications.csv``: each order is expanded into fills between ``START`` and
  ``STOP`` (or as_of when open) from ``DISPENSES``; strength is parsed from the
  description; a ``REASONCODE`` whose condition row is missing adds the
  diagnosis, dated at the order's start.
- ``procedures.csv`` and ``encounters.csv``, when present: psychotherapy
  procedures and encounters become sessions (modality ``UNKNOWN`` unless the
  description names the protocol); an encounter's ``REASONCODE`` adds a
  missing diagnosis too.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from audit.adapters.common import (
    PSYCHOTHERAPY_WORDS,
    ConversionReport,
    NativeWriter,
    Tokenizer,
    clean_code,
    find_file,
    header_of,
    modality_of,
    parse_date,
    read_csv,
    strength_mg,
)
from audit.errors import UsageError

PATIENT_COLUMNS_KEPT = {"id", "birthdate", "gender"}
MONTHLY = 30


def _code_system(system: str | None) -> str | None:
    s = (system or "").lower()
    if not s or "snomed" in s:
        return "SNOMED"
    if "icd" in s and "10" in s:
        return "ICD10CM"
    return None


def _latest_date(src: Path) -> dt.date:
    """as_of by default: the latest START or STOP date of the export."""
    latest = None
    for name in ("conditions.csv", "medications.csv", "procedures.csv", "encounters.csv"):
        path = find_file(src, name)
        if path is None:
            continue
        for row in read_csv(path):
            for key in ("start", "stop", "date"):
                d = parse_date(row.get(key))
                if d and (latest is None or d > latest):
                    latest = d
    if latest is None:
        raise UsageError("the Synthea export holds no dated record: pass --as-of")
    return latest


def fills_of_order(start: dt.date, stop: dt.date | None, dispenses: int, as_of: dt.date):
    """(fill date, days supply) of an order: DISPENSES fills spread over its span.

    Dispensing more often than monthly (Synthea counts daily units for some
    chronic orders) is written as monthly fills of the same coverage.
    """
    end = min(stop or as_of, as_of)
    span = max((end - start).days, 1)
    n = max(dispenses, 1)
    days = max(1, min(365, round(span / n)))
    if days < MONTHLY and span >= MONTHLY:
        days = MONTHLY
        n = math.ceil(span / MONTHLY)
    for k in range(n):
        on = start + dt.timedelta(days=k * days)
        if on > end:
            break
        yield on, days


def convert(
    src: Path, out: Path, tokens: Tokenizer, as_of: dt.date | None, site: str | None
) -> tuple[dict, ConversionReport]:
    patients_path = find_file(src, "patients.csv")
    if patients_path is None:
        raise UsageError(f"{src} holds no patients.csv: not a Synthea CSV export")
    as_of = as_of or _latest_date(src)
    site = site or "synthea"
    report = ConversionReport("synthea")
    w = NativeWriter(out)
    report.dropped_columns["patients.csv"] = sorted(
        set(header_of(patients_path)) - PATIENT_COLUMNS_KEPT
    )
    report.cannot_fill = {
        "patients": [],
        "diagnoses": [],
        "prescriptions": ["prescriber_id", "quantity", "daily_dose_mg"],
        "therapy_sessions": ["clinician_id", "minutes", "modality (UNKNOWN unless named)"],
        "trial_enrollments": ["all: Synthea has no research enrollments"],
        "trials": ["all"],
        "clinical_events": ["all: no mapping from Synthea"],
        "assessments": ["all: no PCL-5 or CAPS-5 in Synthea's CSV"],
    }

    # Patients: token, birth year, sex. Nothing else is read into the batch.
    known: dict[str, str] = {}
    t = report.table("patients.csv")
    for row in read_csv(patients_path):
        t.read += 1
        source_id = row.get("id", "")
        born = parse_date(row.get("birthdate"))
        if not source_id:
            report.drop("patients.csv", "no id")
            continue
        pid = tokens("p", source_id)
        known[source_id] = pid
        w.add("patients", {
            "patient_id": pid,
            "birth_year": born.year if born else None,
            "sex": {"M": "M", "F": "F"}.get((row.get("gender") or "").upper(), "U"),
            "site_id": site,
        })  # fmt: skip
        t.written += 1

    diagnosed: set[tuple[str, str]] = set()

    def diagnosis(patient: str, system: str, code: str, on: dt.date, table: str) -> bool:
        did = tokens("dx", patient, system, code, on.isoformat())
        if w.add("diagnoses", {"diagnosis_id": did, "patient_id": known[patient],
                               "code_system": system, "code": code,
                               "diagnosed_on": on.isoformat()}):  # fmt: skip
            diagnosed.add((patient, code))
            return True
        return False

    path = find_file(src, "conditions.csv")
    if path is not None:
        t = report.table("conditions.csv")
        for row in read_csv(path):
            t.read += 1
            patient, on = row.get("patient", ""), parse_date(row.get("start"))
            code, system = clean_code(row.get("code")), _code_system(row.get("system"))
            if patient not in known:
                report.drop("conditions.csv", "unknown patient")
            elif on is None or on > as_of:
                report.drop("conditions.csv", "no start date or after as_of")
            elif system is None or not code:
                report.drop("conditions.csv", "unmapped code system")
                report.unmapped_code("condition system", row.get("system", ""))
            elif diagnosis(patient, system, code, on, "conditions.csv"):
                t.written += 1
            else:
                report.drop("conditions.csv", "repeats a diagnosis already written")

    def reason_diagnosis(row: dict, on: dt.date | None, table: str) -> None:
        reason = clean_code(row.get("reasoncode"))
        patient = row.get("patient", "")
        if (
            reason
            and on
            and on <= as_of
            and patient in known
            and (patient, reason) not in diagnosed
        ):
            if diagnosis(patient, "SNOMED", reason, on, table):
                report.table(f"{table} (reason diagnoses)").written += 1

    path = find_file(src, "medications.csv")
    if path is not None:
        t = report.table("medications.csv")
        for row in read_csv(path):
            t.read += 1
            patient = row.get("patient", "")
            start, stop = parse_date(row.get("start")), parse_date(row.get("stop"))
            if patient not in known:
                report.drop("medications.csv", "unknown patient")
                continue
            if start is None or start > as_of:
                report.drop("medications.csv", "no start date or after as_of")
                continue
            reason_diagnosis(row, start, "medications.csv")
            try:
                dispenses = int(float(row.get("dispenses") or 1))
            except ValueError:
                dispenses = 1
            code, name = clean_code(row.get("code")), (row.get("description") or "").strip()
            if not name:
                report.drop("medications.csv", "no description")
                continue
            for k, (on, days) in enumerate(fills_of_order(start, stop, dispenses, as_of)):
                written = w.add("prescriptions", {
                    "rx_id": tokens("rx", patient, row.get("encounter", ""), code,
                                    start.isoformat(), k),
                    "patient_id": known[patient], "prescriber_id": None, "site_id": site,
                    "drug_code_system": "RXNORM" if code.isdigit() else "NONE",
                    "drug_code": code if code.isdigit() else None, "drug_name": name,
                    "strength_mg": strength_mg(name), "quantity": None, "days_supply": days,
                    "daily_dose_mg": None, "filled_on": on.isoformat(), "setting": "outpatient",
                })  # fmt: skip
                if written:
                    report.table("prescriptions (fills)").written += 1
            t.written += 1

    for name, date_key in (("procedures.csv", "date"), ("encounters.csv", "start")):
        path = find_file(src, name)
        if path is None:
            continue
        t = report.table(name)
        for row in read_csv(path):
            t.read += 1
            patient, on = row.get("patient", ""), parse_date(row.get(date_key) or row.get("start"))
            if patient not in known or on is None or on > as_of:
                report.drop(name, "unknown patient, no date or after as_of")
                continue
            if name == "encounters.csv":
                reason_diagnosis(row, on, name)
            description = row.get("description") or ""
            if not PSYCHOTHERAPY_WORDS.search(description):
                report.drop(name, "not psychotherapy")
                continue
            w.add("therapy_sessions", {
                "session_id": tokens("ses", patient, name, row.get("id") or row.get("encounter"),
                                     on.isoformat(), clean_code(row.get("code"))),
                "patient_id": known[patient], "clinician_id": None, "site_id": site,
                "session_date": on.isoformat(), "cpt_code": None,
                "modality": modality_of(description, row.get("reasondescription")),
                "minutes": None,
            })  # fmt: skip
            t.written += 1

    manifest = w.finish(tokens("synthea", src.resolve().name, as_of.isoformat()), as_of,
                        "synthea")  # fmt: skip
    return manifest, report
