"""A native batch written as a FHIR R4 Bulk Data export (``rxaudit generate
--format fhir``): one ``<Type>.ndjson`` file per resource type, streamed row
by row, so that a round trip through ``rxaudit convert --from fhir`` can be
tested on the same cohort.

Every native field has a place: standard codes where FHIR has them (RxNorm,
ICD-10-CM, SNOMED CT, CPT, LOINC 101698-9 for the PCL-5 score), rxaudit's
own code systems (see :mod:`audit.adapters.fhir`) for psychotherapy modality,
clinical events, settings and CAPS-5. A dispense names its order
(``authorizingPrescription``), whose ``requester`` is the prescriber.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from audit.adapters import fhir_values as fhir
from audit.errors import UsageError

_GENDER = {"F": "female", "M": "male", "X": "other", "U": "unknown"}
_CODE_SYSTEM = {"ICD10CM": fhir.ICD10CM, "SNOMED": fhir.SNOMED}
_DRUG_SYSTEM = {"RXNORM": fhir.RXNORM, "NDC": fhir.NDC}
_DISPENSE_CATEGORY = "http://terminology.hl7.org/fhir/CodeSystem/medicationdispense-category"
_MODALITY_NAME = {
    "PE": "Prolonged exposure therapy", "CPT": "Cognitive processing therapy",
    "EMDR": "Eye movement desensitization and reprocessing therapy",
    "NET": "Narrative exposure therapy", "WET": "Written exposure therapy",
    "SUPPORTIVE": "Supportive psychotherapy", "STABILIZATION": "Stabilization psychotherapy",
    "SKILLS": "Skills training psychotherapy", "IRT": "Imagery rehearsal therapy",
    "OTHER": "Psychotherapy", "UNKNOWN": "Psychotherapy",
}  # fmt: skip


def _rows(batch: Path, name: str):
    path = batch / name
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _num(text: str | None) -> float | int | None:
    if not text:
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


class _Out:
    def __init__(self, out: Path):
        self.out = out
        self.handles = {}
        self.counts: dict[str, int] = {}

    def write(self, resource: dict) -> None:
        kind = resource["resourceType"]
        fh = self.handles.get(kind)
        if fh is None:
            fh = self.handles[kind] = (self.out / f"{kind}.000.ndjson").open("w", encoding="utf-8")
        fh.write(json.dumps(resource, separators=(",", ":")) + "\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def close(self) -> None:
        for fh in self.handles.values():
            fh.close()


def _category(setting: str) -> list[dict]:
    system = _DISPENSE_CATEGORY if setting in ("inpatient", "outpatient") else fhir.RXAUDIT_SETTING
    return [{"coding": [{"system": system, "code": setting}]}]


def _medication(row: dict) -> tuple[list[dict], dict]:
    """A contained Medication (code, name, strength) and the reference to it."""
    coding = {"display": row["drug_name"]}
    system = _DRUG_SYSTEM.get(row["drug_code_system"])
    if system and row.get("drug_code"):
        coding = {"system": system, "code": row["drug_code"], "display": row["drug_name"]}
    med = {"resourceType": "Medication", "id": "med", "code": {"coding": [coding],
                                                               "text": row["drug_name"]}}  # fmt: skip
    if row.get("strength_mg"):
        med["ingredient"] = [{
            "itemCodeableConcept": {"text": row["drug_name"]},
            "strength": {"numerator": {"value": _num(row["strength_mg"]), "unit": "mg"},
                         "denominator": {"value": 1, "unit": "1"}},
        }]  # fmt: skip
    return [med], {"reference": "#med"}


def _dosage(row: dict) -> list[dict]:
    if not row.get("daily_dose_mg"):
        return []
    return [{
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": _num(row["daily_dose_mg"]), "unit": "mg"}}],
    }]  # fmt: skip


def write_bulk(batch: Path, out: Path) -> dict[str, int]:
    """Write the native batch folder ``batch`` as a bulk export into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty")
    w = _Out(out)
    try:
        _write(batch, w)
    finally:
        w.close()
    native = json.loads((batch / "manifest.json").read_text())
    since = f"?_since={native['history_from']}" if native.get("history_from") else ""
    manifest = {
        "transactionTime": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # what the native batch covers, as a Bulk Data request says it
        "request": f"rxaudit generate --format fhir{since}",
        "requiresAccessToken": False,
        "output": [
            {"type": k, "url": f"{k}.000.ndjson", "count": n} for k, n in sorted(w.counts.items())
        ],  # fmt: skip
        "error": [],
    }
    (out / "export-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dict(w.counts)


def _write(batch: Path, w: _Out) -> None:
    sites: set[str] = set()
    practitioners: set[str] = set()
    for r in _rows(batch, "patients.csv"):
        sites.add(r["site_id"])
        p = {"resourceType": "Patient", "id": r["patient_id"],
             "gender": _GENDER.get(r.get("sex") or "U", "unknown"),
             "managingOrganization": {"reference": f"Organization/{r['site_id']}"}}  # fmt: skip
        if r.get("birth_year"):
            p["birthDate"] = r["birth_year"]
        w.write(p)
    for r in _rows(batch, "diagnoses.csv"):
        w.write({
            "resourceType": "Condition", "id": r["diagnosis_id"],
            "subject": {"reference": f"Patient/{r['patient_id']}"},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": _CODE_SYSTEM[r["code_system"]], "code": r["code"]}]},
            "onsetDateTime": r["diagnosed_on"],
        })  # fmt: skip
    for r in _rows(batch, "prescriptions.csv"):
        sites.add(r["site_id"])
        kind = r.get("source_type") or "dispensed"
        contained, ref = _medication(r)
        subject = {"reference": f"Patient/{r['patient_id']}"}
        requester = None
        if r.get("prescriber_id"):
            practitioners.add(r["prescriber_id"])
            requester = {"reference": f"Practitioner/{r['prescriber_id']}"}
        location = {"reference": f"Location/{r['site_id']}"}
        if kind == "ordered":
            req = {"resourceType": "MedicationRequest", "id": r["rx_id"], "status": "active",
                   "intent": "order", "subject": subject, "authoredOn": r["filled_on"],
                   "contained": contained, "medicationReference": ref,
                   "category": _category(r["setting"]), "dosageInstruction": _dosage(r),
                   "dispenseRequest": {"expectedSupplyDuration": {
                       "value": int(r["days_supply"]), "unit": "days",
                       "system": "http://unitsofmeasure.org", "code": "d"}}}  # fmt: skip
            if r.get("quantity"):
                req["dispenseRequest"]["quantity"] = {"value": _num(r["quantity"])}
            if requester:
                req["requester"] = requester
            w.write(req)
            continue
        if kind == "dispensed":
            disp = {"resourceType": "MedicationDispense", "id": r["rx_id"], "status": "completed",
                    "subject": subject, "contained": contained, "medicationReference": ref,
                    "whenHandedOver": r["filled_on"], "location": location,
                    "daysSupply": {"value": int(r["days_supply"]), "unit": "days"},
                    "category": _category(r["setting"]), "dosageInstruction": _dosage(r)}  # fmt: skip
            if r.get("quantity"):
                disp["quantity"] = {"value": _num(r["quantity"])}
            if requester:
                order_id = f"req-{r['rx_id']}"[:64]
                disp["authorizingPrescription"] = [{"reference": f"MedicationRequest/{order_id}"}]
                w.write({"resourceType": "MedicationRequest", "id": order_id,
                         "status": "completed", "intent": "order", "subject": subject,
                         "authoredOn": r["filled_on"], "contained": contained,
                         "medicationReference": ref, "requester": requester})  # fmt: skip
            w.write(disp)
            continue
        start = dt.date.fromisoformat(r["filled_on"])
        end = start + dt.timedelta(days=int(r["days_supply"]) - 1)
        period = {"start": start.isoformat(), "end": end.isoformat()}
        if kind == "administered":
            adm = {"resourceType": "MedicationAdministration", "id": r["rx_id"],
                   "status": "completed", "subject": subject, "contained": contained,
                   "medicationReference": ref, "effectivePeriod": period,
                   "category": _category(r["setting"])[0]}  # fmt: skip
            if r.get("daily_dose_mg"):
                adm["dosage"] = _dosage(r)
            if requester:
                adm["performer"] = [{"actor": requester}]
            w.write(adm)
        else:  # reported
            w.write({"resourceType": "MedicationStatement", "id": r["rx_id"], "status": "active",
                     "subject": subject, "contained": contained, "medicationReference": ref,
                     "effectivePeriod": period, "category": _category(r["setting"])[0],
                     "dosage": _dosage(r)})  # fmt: skip
    for r in _rows(batch, "therapy_sessions.csv"):
        sites.add(r["site_id"])
        coding = [{"system": fhir.RXAUDIT_MODALITY, "code": r["modality"],
                   "display": _MODALITY_NAME.get(r["modality"], "Psychotherapy")}]  # fmt: skip
        if r.get("cpt_code"):
            coding.insert(0, {"system": fhir.CPT, "code": r["cpt_code"]})
        proc = {"resourceType": "Procedure", "id": r["session_id"], "status": "completed",
                "subject": {"reference": f"Patient/{r['patient_id']}"},
                "code": {"coding": coding, "text": _MODALITY_NAME.get(r["modality"])},
                "location": {"reference": f"Location/{r['site_id']}"}}  # fmt: skip
        if r.get("minutes"):
            start = dt.datetime.fromisoformat(f"{r['session_date']}T09:00:00+00:00")
            end = start + dt.timedelta(minutes=int(r["minutes"]))
            proc["performedPeriod"] = {"start": start.isoformat(), "end": end.isoformat()}
        else:
            proc["performedDateTime"] = r["session_date"]
        if r.get("clinician_id"):
            practitioners.add(r["clinician_id"])
            proc["performer"] = [{"actor": {"reference": f"Practitioner/{r['clinician_id']}"}}]
        w.write(proc)
    for r in _rows(batch, "clinical_events.csv"):
        w.write({"resourceType": "Observation", "id": r["event_id"], "status": "final",
                 "subject": {"reference": f"Patient/{r['patient_id']}"},
                 "code": {"coding": [{"system": fhir.RXAUDIT_EVENT, "code": r["event_type"]}]},
                 "effectiveDateTime": r["event_date"]})  # fmt: skip
    for r in _rows(batch, "assessments.csv"):
        if r["instrument"] == "PCL5":
            code = {"coding": [{"system": fhir.LOINC, "code": "101698-9",
                                "display": "PTSD PCL-5 score [PCL-5]"}]}  # fmt: skip
        else:
            code = {"coding": [{"system": fhir.RXAUDIT_INSTRUMENT, "code": r["instrument"]}],
                    "text": "CAPS-5 total severity score"}  # fmt: skip
        w.write({"resourceType": "Observation", "id": r["assessment_id"], "status": "final",
                 "subject": {"reference": f"Patient/{r['patient_id']}"}, "code": code,
                 "effectiveDateTime": r["assessed_on"],
                 "valueQuantity": {"value": int(r["score"]), "unit": "{score}"}})  # fmt: skip
    for r in _rows(batch, "trials.csv"):
        approved = str(r.get("approved", "")).lower() == "true"
        w.write({"resourceType": "ResearchStudy", "id": r["trial_id"],
                 "identifier": [{"system": "https://clinicaltrials.gov", "value": r["trial_id"]}],
                 "title": r.get("title") or r["trial_id"],
                 "status": "active" if approved else "in-review"})  # fmt: skip
    for r in _rows(batch, "trial_enrollments.csv"):
        period = {"start": r["enrolled_on"]}
        if r.get("ended_on"):
            period["end"] = r["ended_on"]
        w.write({"resourceType": "ResearchSubject", "id": r["enrollment_id"], "status": "on-study",
                 "individual": {"reference": f"Patient/{r['patient_id']}"},
                 "study": {"reference": f"ResearchStudy/{r['trial_id']}"}, "period": period})  # fmt: skip
    for site in sorted(sites):
        w.write({"resourceType": "Organization", "id": site, "name": site})
        w.write({"resourceType": "Location", "id": site, "name": site,
                 "managingOrganization": {"reference": f"Organization/{site}"}})  # fmt: skip
    for dr in sorted(practitioners):
        w.write({"resourceType": "Practitioner", "id": dr,
                 "identifier": [{"system": "https://rxaudit.org/fhir/practitioner", "value": dr}]})  # fmt: skip
