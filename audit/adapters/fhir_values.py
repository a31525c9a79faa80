"""FHIR R4 vocabularies and values: code systems, the resource types the
adapter reads, and the helpers that read codes, references, dates, doses and
durations out of a resource without trusting its shape."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from audit.adapters.common import parse_date

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
# rxaudit's own code systems, for what no standard code says (the writer of
# `rxaudit generate --format fhir` uses them; a site may too).
RXAUDIT_MODALITY = "https://rxaudit.org/fhir/CodeSystem/psychotherapy-modality"
RXAUDIT_EVENT = "https://rxaudit.org/fhir/CodeSystem/clinical-event"
RXAUDIT_SETTING = "https://rxaudit.org/fhir/CodeSystem/setting"
RXAUDIT_INSTRUMENT = "https://rxaudit.org/fhir/CodeSystem/instrument"

PCL5_LOINC = {"101698-9"}  # PTSD PCL-5 score [PCL-5]
# SNOMED CT psychotherapy concepts (the display text is matched as well).
PSYCHOTHERAPY_SNOMED = {
    "75516001",  # Psychotherapy
    "228557008",  # Cognitive and behavioral therapy
    "304891004",  # Cognitive behavioral therapy
    "76168009",  # Group psychotherapy
}
# The wording of psychotherapy; counseling only with a mental-health word
# ("counseling for termination of pregnancy" is not psychotherapy).
FHIR_PSYCHOTHERAPY_WORDS = re.compile(
    r"psychotherap|cognitive[- ]behaviou?ral therapy|cognitive processing|prolonged exposure"
    r"|exposure therapy|eye movement desensiti[sz]ation|\bemdr\b|narrative exposure"
    r"|written exposure|(psycholog|mental health|trauma|behaviou?ral health)[\w -]{0,24}counsel",
    re.IGNORECASE,
)
# Hospice care, admission to hospice, and CMS128's hospice diagnosis value set.
HOSPICE_SNOMED = {"385763009", "305336008", "170935008", "170936009", "305911006"}
HOSPICE_WORDS = re.compile(r"\bhospice\b", re.I)
NIGHTMARE_WORDS = re.compile(r"\bnightmare", re.I)

# The order types are read in: references point backwards only.
TYPES = (
    "Practitioner", "Medication", "Organization", "Location", "Patient", "Encounter", "Condition", "Procedure",
    "Observation", "MedicationRequest", "MedicationDispense", "MedicationAdministration",
    "MedicationStatement", "ResearchStudy", "ResearchSubject",
)  # fmt: skip
#: Resource types a report may name; any other value is reported without
#: itself (input text is never echoed: it may hold an identifier).
KNOWN_TYPES = frozenset(TYPES) | frozenset(
    """Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic
    Binary BodyStructure Bundle CapabilityStatement CarePlan CareTeam ChargeItem Claim
    ClaimResponse ClinicalImpression CodeSystem Communication CommunicationRequest Composition ConceptMap Consent
    Contract Coverage DetectedIssue Device DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
    DocumentReference Endpoint EpisodeOfCare ExplanationOfBenefit FamilyMemberHistory Flag Goal Group
    GuidanceResponse HealthcareService ImagingStudy Immunization ImmunizationRecommendation InsurancePlan Invoice Library
    Linkage List Location Measure MeasureReport Media MedicationKnowledge MessageHeader
    NutritionOrder ObservationDefinition OperationOutcome Organization Parameters Person PlanDefinition PractitionerRole
    Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup RiskAssessment Schedule ServiceRequest
    Slot Specimen StructureDefinition Subscription Substance SupplyDelivery SupplyRequest Task
    ValueSet VisionPrescription""".split()
)  # FHIR R4 resource types
REQUEST_STATUSES = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                       "stopped", "draft", "unknown", None})  # fmt: skip
REQUEST_INTENTS = frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                      "filler-order", "instance-order", "option", None})  # fmt: skip

SOURCE_TYPE_OF = {
    "MedicationDispense": "dispensed",
    "MedicationAdministration": "administered",
    "MedicationRequest": "ordered",
    "MedicationStatement": "reported",
}
DEFAULT_ORDER_SUPPLY_DAYS = 30


def said(value: object, known: frozenset) -> str:
    """A value of the input as a report may say it: itself when it is one of
    the known codes, else a placeholder (never the text)."""
    if value is None or (isinstance(value, str) and value in known):
        return str(value)
    return "(an unexpected value)"


ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def site_slug(name: object) -> str | None:
    """An Organization's or Location's name as a site id: NFKC, lower case,
    each run of other characters one hyphen (``Springfield General Hospital``
    is ``springfield-general-hospital``); None when nothing is left."""
    if not isinstance(name, str):
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKC", name).lower()).strip("-")
    slug = slug[:64].rstrip("-")
    return slug if ID_OK.match(slug) else None


_PER_DAY = {"s": 86400, "min": 1440, "h": 24, "d": 1, "wk": 1 / 7, "mo": 1 / 30, "a": 1 / 365}
_UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30,
              "month": 30, "months": 30}  # fmt: skip


# -- FHIR values ---------------------------------------------------------------


def codings(concept: object) -> list[dict]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def code_in(concept: object, system: str) -> str | None:
    for c in codings(concept):
        if c.get("system") == system and c.get("code"):
            return str(c["code"])
    return None


def texts(concept: object) -> list[str]:
    if not isinstance(concept, dict):
        return []
    out = [str(c["display"]) for c in codings(concept) if c.get("display")]
    if concept.get("text"):
        out.insert(0, str(concept["text"]))
    return out


def concepts(value: object) -> list[dict]:
    """A CodeableConcept or a list of them, as a list."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def ref_id(ref: object, kind: str) -> str | None:
    """The id of a literal reference ``Kind/id`` or ``urn:uuid:id``."""
    if not isinstance(ref, dict):
        return None
    value = ref.get("reference")
    if not isinstance(value, str):
        return None
    if value.startswith("urn:uuid:"):
        return value[len("urn:uuid:") :]
    if "?" in value:
        return None
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == kind:
        return parts[-1]
    if len(parts) >= 4 and parts[-4] == kind and parts[-2] == "_history":
        return parts[-3]
    return None


def org_key(ref: object, kind: str = "Organization") -> str | None:
    """An organization (or location) as a site key: its id, or the identifier
    value of a conditional reference ``Organization?identifier=system|value``."""
    found = ref_id(ref, kind)
    if found:
        return found
    value = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(value, str) and value.startswith(f"{kind}?identifier="):
        return value.split("=", 1)[1].rsplit("|", 1)[-1] or None
    return None


def when(*values: object) -> dt.date | None:
    for v in values:
        if isinstance(v, dict):
            v = v.get("start")
        if isinstance(v, str) and (d := parse_date(v)):
            return d
    return None


def minutes_of(period: object) -> int | None:
    if not isinstance(period, dict) or not period.get("start") or not period.get("end"):
        return None
    try:
        start = dt.datetime.fromisoformat(str(period["start"]).replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(str(period["end"]).replace("Z", "+00:00"))
    except ValueError:
        return None
    minutes = round((end - start).total_seconds() / 60)
    return minutes if 1 <= minutes <= 1440 else None


def number_of(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def daily_dose(dosage: object, strength: float | None) -> float | None:
    """mg a day from the first dosageInstruction, where it says enough."""
    if not isinstance(dosage, list) or not dosage or not isinstance(dosage[0], dict):
        return None
    d = dosage[0]
    rates = d.get("doseAndRate") or []
    dose = rates[0].get("doseQuantity") if rates and isinstance(rates[0], dict) else None
    if not isinstance(dose, dict) or number_of(dose.get("value")) is None:
        return None
    value = number_of(dose.get("value"))
    unit = str(dose.get("unit") or dose.get("code") or "").lower()
    if unit != "mg":
        if strength is None:
            return None
        value = value * strength  # tablets, capsules: a unit of the product
    repeat = (d.get("timing") or {}).get("repeat") if isinstance(d.get("timing"), dict) else None
    per_day = 1.0
    if isinstance(repeat, dict) and number_of(repeat.get("frequency")):
        period = number_of(repeat.get("period")) or 1.0
        unit_per_day = _PER_DAY.get(str(repeat.get("periodUnit") or "d"))
        if unit_per_day is None:
            return None
        per_day = number_of(repeat.get("frequency")) * unit_per_day / period
    mg = round(value * per_day, 3)
    return mg if mg > 0 else None


def duration_days(value: object) -> int | None:
    if not isinstance(value, dict) or number_of(value.get("value")) is None:
        return None
    unit = str(value.get("unit") or value.get("code") or "d").lower()
    factor = _UNIT_DAYS.get(unit)
    if factor is None:
        return None
    days = round(number_of(value["value"]) * factor)
    return days if days >= 1 else None


# -- the conversion ---------------------------------------------------------
