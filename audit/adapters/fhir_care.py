"""The care resources of a FHIR export: conditions (PTSD, nightmares,
hospice, withdrawal), psychotherapy sessions from encounters and procedures,
clinical events, and scores from observations."""

from __future__ import annotations

import datetime as dt
import re

from audit import contract
from audit.adapters.common import (
    CODE_CHARS,
    PSYCHOTHERAPY_CPT,
    modality_of,
    normal_code,
)
from audit.adapters.fhir_values import (
    CPT,
    FHIR_PSYCHOTHERAPY_WORDS,
    HOSPICE_SNOMED,
    HOSPICE_WORDS,
    ICD10CM,
    LOINC,
    NIGHTMARE_WORDS,
    PCL5_LOINC,
    PSYCHOTHERAPY_SNOMED,
    RXAUDIT_EVENT,
    RXAUDIT_INSTRUMENT,
    RXAUDIT_MODALITY,
    SNOMED,
    code_in,
    concepts,
    minutes_of,
    number_of,
    org_key,
    ref_id,
    texts,
    when,
)


class Care:
    """The care passes of a conversion (mixed into it)."""

    def _is_hospice(self, types: list[dict]) -> bool:
        return any(
            code_in(c, SNOMED) in HOSPICE_SNOMED
            or code_in(c, RXAUDIT_EVENT) == "HOSPICE"
            or any(HOSPICE_WORDS.search(x) for x in texts(c))
            for c in types
        )

    def _is_psychotherapy(self, types: list[dict]) -> bool:
        for c in types:
            if code_in(c, CPT) in PSYCHOTHERAPY_CPT or code_in(c, SNOMED) in PSYCHOTHERAPY_SNOMED:
                return True
            if code_in(c, RXAUDIT_MODALITY):
                return True
            if any(FHIR_PSYCHOTHERAPY_WORDS.search(x) for x in texts(c)):
                return True
        return False

    def _event(self, pid: str, kind: str, on: dt.date, rtype: str, rid: object) -> None:
        if self.w.add("clinical_events", {
            "event_id": self.tokens("ev", rtype, rid, kind), "patient_id": self.tokens("pt", pid),
            "event_date": on.isoformat(), "event_type": kind,
        }):  # fmt: skip
            self.report.table("clinical_events").written += 1

    def _session(self, pid, resource, types, on, period, rtype, rid, performers) -> None:
        modality = None
        for c in types:
            code = code_in(c, RXAUDIT_MODALITY)
            if code in contract.MODALITIES:
                modality = code
        if modality is None:
            modality = modality_of(*[x for c in types for x in texts(c)])
        cpt = next((code_in(c, CPT) for c in types if code_in(c, CPT)), None)
        clinician = None
        for p in performers or []:
            if isinstance(p, dict):
                clinician = clinician or self.practitioner(p.get("actor") or p.get("individual"))
        # a procedure of an encounter is the encounter's session, written once
        enc = ref_id(resource.get("encounter"), "Encounter") if rtype == "Procedure" else None
        if rtype == "Encounter":
            enc = str(rid)
        if enc is not None:
            if enc in self.encounter_sessions:
                return
            self.encounter_sessions.add(enc)
        key = ("Encounter", enc) if enc else (rtype, rid)
        location = org_key(resource.get("location"), "Location")
        site = self.site or (
            self.site_of_location(location)
            if location
            else self.site_of_org(org_key(resource.get("serviceProvider")))
        )
        if self.w.add("therapy_sessions", {  # one per encounter, see above
            "session_id": self.tokens("ses", *key), "patient_id": self.tokens("pt", pid),
            "clinician_id": clinician, "site_id": site or self._home(pid),
            "session_date": on.isoformat(),
            "cpt_code": cpt, "modality": modality, "minutes": minutes_of(period),
        }):  # fmt: skip
            self.report.table("therapy_sessions").written += 1

    def _conditions(self) -> None:
        t = self.report.table("diagnoses")
        for c in self.resources("Condition"):
            pid = self.patient_of(c, "Condition")
            if pid is None:
                continue
            status = code_in(
                c.get("verificationStatus"),
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            )
            if status in ("entered-in-error", "refuted"):
                self.report.drop("Condition", f"verification status {status}")
                continue
            on = when(c.get("onsetDateTime"), c.get("onsetPeriod"), c.get("recordedDate"))
            if on is None:
                self.report.drop("Condition", "no onset or recorded date")
                continue
            self.seen(on)
            concept = c.get("code")
            event = code_in(concept, RXAUDIT_EVENT)
            if event in contract.EVENT_TYPES:
                self._event(pid, event, on, "Condition", c.get("id"))
                continue
            if self._is_hospice([concept] if concept else []):
                self._event(pid, "HOSPICE", on, "Condition", c.get("id"))
            if any(NIGHTMARE_WORDS.search(x) for x in texts(concept)):
                self._event(pid, "NIGHTMARES", on, "Condition", c.get("id"))
            wrote = False
            for system, native in ((ICD10CM, "ICD10CM"), (SNOMED, "SNOMED")):
                code = code_in(concept, system)
                if code:
                    clean = normal_code(code)
                    if clean != code:  # full-width, spaces, invisible characters
                        self.counts["diagnosis codes normalised"] += 1
                        code = clean
                    if not CODE_CHARS.fullmatch(code):  # kept, and said
                        self.counts["diagnosis codes with characters outside A-Z a-z 0-9 . -"
                                    " (kept as sent)"] += 1  # fmt: skip
                    self.w.add("diagnoses", {
                        "diagnosis_id": self.tokens("dx", c.get("id"), native),
                        "patient_id": self.tokens("pt", pid), "code_system": native,
                        "code": code, "diagnosed_on": on.isoformat(),
                    })  # fmt: skip
                    t.written += 1
                    wrote = True
            if not wrote:
                self.report.drop("Condition", "no ICD-10-CM or SNOMED CT coding")

    def _procedures(self) -> None:
        for p in self.resources("Procedure"):
            pid = self.patient_of(p, "Procedure")
            if pid is None:
                continue
            if p.get("status") in ("not-done", "entered-in-error", "preparation"):
                self.report.drop("Procedure", f"status {p.get('status')}")
                continue
            on = when(p.get("performedDateTime"), p.get("performedPeriod"))
            self.seen(on)
            types = concepts(p.get("code"))
            if on and self._is_hospice(types):
                self._event(pid, "HOSPICE", on, "Procedure", p.get("id"))
            elif on and self._is_psychotherapy(types):
                self._session(pid, p, types, on, p.get("performedPeriod"), "Procedure",
                              p.get("id"), p.get("performer"))  # fmt: skip
            else:
                self.report.drop("Procedure", "not psychotherapy or hospice")

    def _observations(self) -> None:
        t = self.report.table("assessments")
        for o in self.resources("Observation"):
            concept = o.get("code")
            instrument = code_in(concept, RXAUDIT_INSTRUMENT)
            if instrument not in contract.INSTRUMENTS:
                instrument = None
                if code_in(concept, LOINC) in PCL5_LOINC or any(
                    re.search(r"\bPCL-?5\b", x, re.I) for x in texts(concept)
                ):
                    instrument = "PCL5"
                elif any(re.search(r"\bCAPS-?5\b", x, re.I) for x in texts(concept)):
                    instrument = "CAPS5"
            event = code_in(concept, RXAUDIT_EVENT)
            if instrument is None and event not in contract.EVENT_TYPES:
                if not any(NIGHTMARE_WORDS.search(x) for x in texts(concept)):
                    self.report.drop("Observation", "not a PCL-5, CAPS-5 or clinical event")
                    continue
                event = "NIGHTMARES"
            pid = self.patient_of(o, "Observation")
            if pid is None:
                continue
            if o.get("status") in ("entered-in-error", "cancelled", "preliminary"):
                self.report.drop("Observation", f"status {o.get('status')}")
                continue
            on = when(o.get("effectiveDateTime"), o.get("effectivePeriod"), o.get("issued"))
            if on is None:
                self.report.drop("Observation", "no date")
                continue
            self.seen(on)
            if instrument is None:
                self._event(pid, event, on, "Observation", o.get("id"))
                continue
            value = o.get("valueQuantity", {}).get("value") if isinstance(
                o.get("valueQuantity"), dict) else o.get("valueInteger")  # fmt: skip
            score = number_of(value)
            if score is None or score != int(score):
                self.report.drop("Observation", f"{instrument} without a whole total score")
                continue
            self.w.add("assessments", {
                "assessment_id": self.tokens("as", o.get("id")), "patient_id": self.tokens("pt", pid),
                "assessed_on": on.isoformat(), "instrument": instrument, "score": int(score),
            })  # fmt: skip
            t.written += 1

    # -- medications
