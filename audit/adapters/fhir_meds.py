"""The medication resources of a FHIR export: dispenses, administrations,
statements and orders (an order is a fill only when no dispense of the same
drug to the same patient exists), and research enrolments."""

from __future__ import annotations

import datetime as dt
import re

from audit import contract
from audit.adapters.common import strength_mg
from audit.adapters.fhir_values import (
    NDC,
    REQUEST_INTENTS,
    REQUEST_STATUSES,
    RXNORM,
    SOURCE_TYPE_OF,
    code_in,
    codings,
    concepts,
    daily_dose,
    duration_days,
    number_of,
    org_key,
    ref_id,
    said,
    texts,
    when,
)


class Medications:
    """The medication passes of a conversion (mixed into it)."""

    def _drug(self, resource: dict) -> tuple[str, str | None, str, float | None]:
        """(code system, code, name, strength mg) of a medication[x]: a code, a
        contained Medication (``#id``) or a Medication resource of the export."""
        concept = resource.get("medicationCodeableConcept")
        med = None
        ref = (resource.get("medicationReference") or {}).get("reference")
        if isinstance(ref, str) and ref.startswith("#"):
            med = next((c for c in resource.get("contained") or []
                        if isinstance(c, dict) and c.get("id") == ref[1:]), None)  # fmt: skip
        elif ref:
            med = self.medications.get(ref_id(resource.get("medicationReference"), "Medication"))
        if concept is None and med:
            concept = med.get("code")
        strength = None
        ingredients = (med or {}).get("ingredient") or []
        if len(ingredients) == 1 and isinstance(ingredients[0], dict):
            num = (ingredients[0].get("strength") or {}).get("numerator") or {}
            if str(num.get("unit") or num.get("code") or "").lower() == "mg":
                strength = number_of(num.get("value"))
        rx, ndc = code_in(concept, RXNORM), code_in(concept, NDC)
        names = texts(concept)
        rx_display = next((c.get("display") for c in codings(concept)
                           if c.get("system") == RXNORM and c.get("display")), None)  # fmt: skip
        name = str(rx_display or (names[0] if names else ""))
        system, code = ("RXNORM", rx) if rx else (("NDC", ndc) if ndc else ("NONE", None))
        return system, code, name, strength if strength else strength_mg(name)

    def _setting(self, resource: dict, default: str) -> str:
        for c in concepts(resource.get("category")):
            for coding in codings(c):
                code = str(coding.get("code") or "")
                if code in contract.SETTINGS:
                    return code
                if code in ("community", "discharge"):
                    return "outpatient"
        return default

    def _requests_first_pass(self) -> None:
        rows = []
        for r in self.resources("MedicationRequest", count=False):
            if r.get("id"):
                rows.append((str(r["id"]), self.practitioner(r.get("requester"))))
            if len(rows) >= 5000:
                self.db.executemany("insert or replace into request values (?, ?)", rows)
                rows.clear()
        self.db.executemany("insert or replace into request values (?, ?)", rows)

    def _medication_events(self, kind: str) -> None:
        source_type = SOURCE_TYPE_OF[kind]
        t = self.report.table("prescriptions")
        pending_req, pending_drug = [], []
        for r in self.resources(kind):
            pid = self.patient_of(r, kind)
            if pid is None:
                continue
            status = r.get("status")
            if status in ("entered-in-error", "cancelled", "declined", "not-done", "not-taken"):
                self.report.drop(kind, f"status {status}")
                continue
            system, code, name, strength = self._drug(r)
            if not name and not code:
                self.report.drop(kind, "no medication")
                continue
            if kind == "MedicationDispense":
                on = when(r.get("whenHandedOver"), r.get("whenPrepared"))
                days = number_of((r.get("daysSupply") or {}).get("value"))
                quantity = number_of((r.get("quantity") or {}).get("value"))
                requests = [
                    ref_id(a, "MedicationRequest") for a in r.get("authorizingPrescription") or []
                ]
                prescriber = None
                for req in filter(None, requests):
                    pending_req.append((req,))
                    row = self.db.execute(
                        "select prescriber from request where id = ?", (req,)
                    ).fetchone()
                    prescriber = prescriber or (row[0] if row else None)
                setting = self._setting(r, "outpatient")
            elif kind == "MedicationAdministration":
                on = when(r.get("effectiveDateTime"), r.get("effectivePeriod"))
                period = r.get("effectivePeriod") or {}
                end = when(period.get("end")) if isinstance(period, dict) else None
                days = float((end - on).days + 1) if on and end and end >= on else 1.0
                quantity = None
                prescriber = self.practitioner(
                    next(
                        (p.get("actor") for p in r.get("performer") or [] if isinstance(p, dict)),
                        None,
                    )
                )
                setting = self._setting(r, "inpatient")
            else:  # MedicationStatement
                on = when(
                    r.get("effectiveDateTime"), r.get("effectivePeriod"), r.get("dateAsserted")
                )
                period = r.get("effectivePeriod") or {}
                end = when(period.get("end")) if isinstance(period, dict) else None
                days = float((end - on).days + 1) if on and end and end >= on else None
                quantity, prescriber = None, None
                setting = self._setting(r, "outpatient")
            if on is None:
                self.report.drop(kind, "no date")
                continue
            self.seen(on)
            site = self.site or self.site_of_location(org_key(r.get("location"), "Location"))
            dose = daily_dose(r.get("dosageInstruction") or r.get("dosage"), strength)
            if days is None and quantity and dose and strength:
                days = quantity * strength / dose
            if days is None:
                days = float(self.order_supply_days)
                self.counts[f"{kind}: supply unknown, {self.order_supply_days} days assumed"] += 1
            days_supply = max(1, min(365, round(days)))
            pending_drug.append((pid, code or name.lower()))
            self.w.add("prescriptions", {
                "rx_id": self.tokens("rx", kind, r.get("id")), "patient_id": self.tokens("pt", pid),
                "prescriber_id": prescriber, "site_id": site or self._home(pid),
                "drug_code_system": system, "drug_code": code, "drug_name": name or code,
                "strength_mg": strength, "quantity": quantity if quantity and quantity > 0 else None,
                "days_supply": days_supply, "daily_dose_mg": dose, "filled_on": on.isoformat(),
                "setting": setting, "source_type": source_type,
            })  # fmt: skip
            t.written += 1
            self.counts[f"fills from {kind}"] += 1
            if len(pending_drug) >= 5000:
                self._flush(pending_req, pending_drug)
        self._flush(pending_req, pending_drug)

    def _flush(self, reqs: list, drugs: list) -> None:
        self.db.executemany("insert or ignore into dispensed_request values (?)", reqs)
        self.db.executemany("insert or ignore into dispensed_drug values (?, ?)", drugs)
        reqs.clear()
        drugs.clear()

    def _orders(self) -> None:
        t = self.report.table("prescriptions")
        has_events = bool(self.counts["fills from MedicationDispense"]
                          + self.counts["fills from MedicationAdministration"]
                          + self.counts["fills from MedicationStatement"])  # fmt: skip
        linked = self.db.execute("select count(*) from dispensed_request").fetchone()[0] > 0
        for r in self.resources("MedicationRequest"):
            pid = self.patient_of(r, "MedicationRequest")
            if pid is None:
                continue
            if r.get("status") in ("entered-in-error", "cancelled", "draft") or r.get("intent") in (
                "proposal", "plan"):  # fmt: skip
                self.report.drop(
                    "MedicationRequest",
                    f"status {said(r.get('status'), REQUEST_STATUSES)}"
                    f" / intent {said(r.get('intent'), REQUEST_INTENTS)}",
                )
                continue
            system, code, name, strength = self._drug(r)
            rid = str(r.get("id"))
            # A dispense that names its order (authorizingPrescription) covers
            # it; where the export names none, one of the same drug does.
            if self.db.execute("select 1 from dispensed_request where id = ?", (rid,)).fetchone() or (
                not linked and self.db.execute(
                    "select 1 from dispensed_drug where patient = ? and drug = ?",
                    (pid, code or name.lower())).fetchone()):  # fmt: skip
                self.report.drop(
                    "MedicationRequest", "dispensed, administered or reported: the fills say it"
                )
                continue
            on = when(r.get("authoredOn"), (r.get("dispenseRequest") or {}).get("validityPeriod"))
            if on is None:
                self.report.drop("MedicationRequest", "no authoredOn date")
                continue
            self.seen(on)
            request = r.get("dispenseRequest") or {}
            dose = daily_dose(r.get("dosageInstruction"), strength)
            days = duration_days(request.get("expectedSupplyDuration"))
            how = "expectedSupplyDuration"
            quantity = number_of((request.get("quantity") or {}).get("value"))
            if days is None and quantity and dose and strength:
                days, how = round(quantity * strength / dose), "quantity and dose"
            if days is None:
                days, how = (
                    self.order_supply_days,
                    f"--order-supply-days ({self.order_supply_days})",
                )
            self.counts[f"orders: supply from {how}"] += 1
            repeats = request.get("numberOfRepeatsAllowed")
            repeats = repeats if isinstance(repeats, int) and 0 < repeats <= 12 else 0
            days = max(1, min(365, days))
            for k in range(repeats + 1):
                fill_on = on + dt.timedelta(days=k * days)
                self.w.add("prescriptions", {
                    "rx_id": self.tokens("rx", "MedicationRequest", rid, k),
                    "patient_id": self.tokens("pt", pid),
                    "prescriber_id": self.practitioner(r.get("requester")),
                    "site_id": self._home(pid), "drug_code_system": system, "drug_code": code,
                    "drug_name": name or code, "strength_mg": strength,
                    "quantity": quantity if quantity and quantity > 0 else None,
                    "days_supply": days, "daily_dose_mg": dose, "filled_on": fill_on.isoformat(),
                    "setting": self._setting(r, "outpatient"), "source_type": "ordered",
                })  # fmt: skip
                t.written += 1
                self.counts["fills from MedicationRequest (orders)"] += 1
        if self.counts["fills from MedicationRequest (orders)"] and not has_events:
            self.counts["note: no dispense, administration or statement: coverage from orders"] = 1

    def _research(self) -> None:
        studies: dict[str, str] = {}
        for s in self.resources("ResearchStudy"):
            nct = next((str(i.get("value")) for i in s.get("identifier") or []
                        if isinstance(i, dict) and re.fullmatch(contract.NCT_PATTERN, str(i.get("value", ""))))
                       , None)  # fmt: skip
            if nct is None:
                self.report.drop("ResearchStudy", "no NCT identifier")
                continue
            studies[str(s.get("id"))] = nct
            approved = s.get("status") not in ("in-review", "withdrawn", "disapproved")
            self.w.add("trials", {"trial_id": nct, "title": s.get("title"),
                                  "approved": "true" if approved else "false"})  # fmt: skip
        for r in self.resources("ResearchSubject"):
            pid = self.patient_of(r, "ResearchSubject", "individual")
            if pid is None:
                continue
            nct = studies.get(ref_id(r.get("study"), "ResearchStudy") or "")
            period = r.get("period") or {}
            start = when(period.get("start")) if isinstance(period, dict) else None
            if nct is None or start is None:
                self.report.drop("ResearchSubject", "no known study or no start date")
                continue
            end = when(period.get("end")) if isinstance(period, dict) else None
            self.w.add("trial_enrollments", {
                "enrollment_id": self.tokens("en", r.get("id")), "patient_id": self.tokens("pt", pid),
                "trial_id": nct, "enrolled_on": start.isoformat(),
                "ended_on": end.isoformat() if end else None,
            })  # fmt: skip
