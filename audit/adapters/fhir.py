"""FHIR R4 into a native batch: a Bulk Data ($export) folder or a folder of Bundles.

``SRC`` is either a bulk export folder (``<Type>.ndjson``, ``<Type>.000.ndjson``,
``.ndjson.gz``; the export manifest and ``log.ndjson`` are ignored) or a
folder of Bundle JSON files (transaction, batch, collection or searchset),
whose entries are first spooled by type into a temporary bulk layout. Each
resource type is then streamed, line by line, in the order its references
need; what is kept between passes is small (patients, practitioners'
identifiers, medications) or on disk (orders, in a temporary SQLite file),
so memory stays flat in the size of the export. See docs/sources.md for
the mapping.

Nothing is written into ``out`` until the batch is complete: the files are
written in a temporary sibling folder and renamed into place, so a
malformed export leaves no half-written batch.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from audit import contract
from audit.adapters.common import (
    PSYCHOTHERAPY_CPT,
    ConversionReport,
    NativeWriter,
    Tokenizer,
    modality_of,
    parse_date,
    strength_mg,
)
from audit.errors import UsageError

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
    "Practitioner", "Medication", "Patient", "Encounter", "Condition", "Procedure",
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
_STATUSES = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                       "stopped", "draft", "unknown", None})  # fmt: skip
_INTENTS = frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                      "filler-order", "instance-order", "option", None})  # fmt: skip


def _said(value: object, known: frozenset) -> str:
    """A value of the input as a report may say it: itself when it is one of
    the known codes, else a placeholder (never the text)."""
    if value is None or (isinstance(value, str) and value in known):
        return str(value)
    return "(an unexpected value)"


_FILE = re.compile(r"^(?P<type>[A-Za-z]+)(\.\d+)?\.ndjson(\.gz)?$")
SOURCE_TYPE_OF = {
    "MedicationDispense": "dispensed",
    "MedicationAdministration": "administered",
    "MedicationRequest": "ordered",
    "MedicationStatement": "reported",
}
DEFAULT_ORDER_SUPPLY_DAYS = 30
#: A longer NDJSON line (one resource) or a larger Bundle file is refused:
#: no resource of these types is near it, and reading it would take the memory.
MAX_LINE_CHARS = 64 * 2**20
MAX_BUNDLE_BYTES = 256 * 2**20
_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PER_DAY = {"s": 86400, "min": 1440, "h": 24, "d": 1, "wk": 1 / 7, "mo": 1 / 30, "a": 1 / 365}
_UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30,
              "month": 30, "months": 30}  # fmt: skip


class FhirError(UsageError):
    """A malformed export: one sentence naming the file, line and reason."""


# -- reading -----------------------------------------------------------------


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _first_type(path: Path) -> str | None:
    """The resourceType of a file's first resource (for files not named by type)."""
    try:
        with _open(path) as fh:
            line = fh.readline(MAX_LINE_CHARS)
        kind = json.loads(line).get("resourceType") if line.strip() else None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, AttributeError):
        return None  # read_ndjson names the fault when the file is read
    return kind if isinstance(kind, str) else None


#: A Bulk Data export manifest is small; a larger JSON file is not one.
MAX_BULK_MANIFEST_BYTES = 1024 * 1024


def bulk_since(src: Path) -> dt.date | None:
    """The ``_since`` of a Bulk Data export (its manifest's ``request`` URL):
    the first date the export covers. None when there is no manifest, it
    names no ``_since``, or it cannot be read (it is metadata, never data)."""
    from urllib.parse import parse_qs, urlsplit

    for path in sorted(src.iterdir()):
        if path.suffix.lower() != ".json" or not path.is_file():
            continue
        if path.stat().st_size > MAX_BULK_MANIFEST_BYTES:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("request"), str):
            continue
        if "output" not in doc or "transactionTime" not in doc:
            continue
        values = parse_qs(urlsplit(doc["request"]).query).get("_since") or []
        try:
            return dt.date.fromisoformat(values[0][:10]) if values else None
        except ValueError:
            return None
    return None


def bulk_files(src: Path) -> dict[str, list[Path]]:
    """The NDJSON files of a bulk export folder, by resource type.

    ``Patient.ndjson``, ``Patient.000.ndjson``, ``patient.ndjson.gz``: the type
    is in the name (any case). A file named otherwise (``<uuid>.ndjson``, as
    some servers write) is typed by its first resource.
    """
    known = {t.lower(): t for t in TYPES}
    out: dict[str, list[Path]] = {}
    for path in sorted(src.iterdir()):
        name = path.name.lower()
        if not path.is_file() or name == "log.ndjson":
            continue
        if not (name.endswith(".ndjson") or name.endswith(".ndjson.gz")):
            continue
        m = _FILE.match(path.name)
        kind = known.get(m.group("type").lower()) if m else None
        if kind is None:
            kind = _first_type(path) or (m.group("type") if m else path.name)
        out.setdefault(kind, []).append(path)
    return out


def read_ndjson(path: Path, expected_type: str, report: ConversionReport) -> Iterator[dict]:
    """The resources of one NDJSON file; a line that is not JSON is an error."""
    name = path.name
    try:
        with _open(path) as fh:
            line_no = 0
            while line := fh.readline(MAX_LINE_CHARS + 1):
                line_no += 1
                if len(line) > MAX_LINE_CHARS:
                    raise FhirError(
                        f"{name} line {line_no}: a resource of more than"
                        f" {MAX_LINE_CHARS // 2**20} MiB (a corrupt file?)"
                    )
                if not line.strip():
                    continue
                try:
                    resource = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FhirError(
                        f"{name} line {line_no} column {exc.colno}: not a JSON resource"
                        f" ({exc.msg}; a truncated line?)"
                    ) from None
                if not isinstance(resource, dict):
                    raise FhirError(f"{name} line {line_no}: not a JSON object")
                kind = resource.get("resourceType")
                if kind != expected_type:
                    report.drop(f"{expected_type} (file)",
                                f"resource of type {_said(kind, KNOWN_TYPES)} skipped")  # fmt: skip
                    continue
                yield resource
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FhirError(f"{name}: cannot be read ({type(exc).__name__})") from None


def spool_bundles(src: Path, work: Path, report: ConversionReport) -> Path:
    """Split a folder of Bundle JSON files into ``<Type>.ndjson`` files."""
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if not files:
        raise FhirError(f"{src} holds neither NDJSON files nor Bundle JSON files")
    spool = work / "spool"
    spool.mkdir()
    handles: dict[str, object] = {}
    try:
        for path in files:
            if path.stat().st_size > MAX_BUNDLE_BYTES:
                raise FhirError(
                    f"{path.name}: a Bundle of more than {MAX_BUNDLE_BYTES // 2**20} MiB;"
                    " export large data as bulk NDJSON"
                )
            try:
                with path.open(encoding="utf-8") as fh:
                    doc = json.load(fh)
            except json.JSONDecodeError as exc:
                raise FhirError(
                    f"{path.name} line {exc.lineno} column {exc.colno}: not JSON ({exc.msg})"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise FhirError(f"{path.name}: cannot be read ({type(exc).__name__})") from None
            if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
                report.drop("Bundle (file)", "a JSON file that is not a Bundle skipped")
                continue
            report.table("Bundle").read += 1
            for entry in doc.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    report.drop("Bundle", "entry without a resource")
                    continue
                kind = resource["resourceType"]
                if kind not in TYPES:
                    report.drop("Bundle", f"{_said(kind, KNOWN_TYPES)} not used")
                    continue
                # a transaction's fullUrl (urn:uuid:...) is what its references use
                full = entry.get("fullUrl")
                if isinstance(full, str) and full.startswith("urn:uuid:") and "id" not in resource:
                    resource["id"] = full[len("urn:uuid:") :]
                fh = handles.get(kind)
                if fh is None:
                    fh = handles[kind] = (spool / f"{kind}.ndjson").open("w", encoding="utf-8")
                fh.write(json.dumps(resource, separators=(",", ":")) + "\n")
    finally:
        for fh in handles.values():
            fh.close()
    return spool


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


def _number(value: object) -> float | None:
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
    if not isinstance(dose, dict) or _number(dose.get("value")) is None:
        return None
    value = _number(dose.get("value"))
    unit = str(dose.get("unit") or dose.get("code") or "").lower()
    if unit != "mg":
        if strength is None:
            return None
        value = value * strength  # tablets, capsules: a unit of the product
    repeat = (d.get("timing") or {}).get("repeat") if isinstance(d.get("timing"), dict) else None
    per_day = 1.0
    if isinstance(repeat, dict) and _number(repeat.get("frequency")):
        period = _number(repeat.get("period")) or 1.0
        unit_per_day = _PER_DAY.get(str(repeat.get("periodUnit") or "d"))
        if unit_per_day is None:
            return None
        per_day = _number(repeat.get("frequency")) * unit_per_day / period
    mg = round(value * per_day, 3)
    return mg if mg > 0 else None


def duration_days(value: object) -> int | None:
    if not isinstance(value, dict) or _number(value.get("value")) is None:
        return None
    unit = str(value.get("unit") or value.get("code") or "d").lower()
    factor = _UNIT_DAYS.get(unit)
    if factor is None:
        return None
    days = round(_number(value["value"]) * factor)
    return days if days >= 1 else None


# -- the conversion ---------------------------------------------------------


class _Conversion:
    def __init__(self, files, out: Path, tokens: Tokenizer, site: str | None, supply: int, work,
                 report: ConversionReport):  # fmt: skip
        self.files = files
        self.tokens = tokens
        self.site = site
        self.order_supply_days = supply
        self.report = report
        # FHIR ids are unique per type, so rows keyed by their resource need
        # no memory of what was written; only an encounter's session, which
        # its procedures share, is remembered (by encounter id)
        self.w = NativeWriter(out, dedupe=("trials",))
        self.encounter_sessions: set[str] = set()
        self.practitioners: dict[str, str] = {}  # "system|value" -> Practitioner id
        self.medications: dict[str, dict] = {}
        self.patients: dict[str, list] = {}  # id -> [birth year, sex, org, then site]
        self.site_votes: dict[str, Counter] = {}  # only patients without managingOrganization
        self.latest: dt.date | None = None
        self.db = sqlite3.connect(work / "orders.sqlite")
        self.db.execute("create table request (id text primary key, prescriber text)")
        self.db.execute("create table dispensed_request (id text primary key)")
        self.db.execute("create table dispensed_drug (patient text, drug text, primary key"
                        " (patient, drug))")  # fmt: skip
        self.counts = Counter()

    def resources(self, kind: str, count: bool = True) -> Iterator[dict]:
        for path in self.files.get(kind, []):
            for resource in read_ndjson(path, kind, self.report):
                if count:
                    self.report.table(kind).read += 1
                yield resource

    def seen(self, d: dt.date | None) -> None:
        if d and (self.latest is None or d > self.latest):
            self.latest = d

    def patient_of(self, resource: dict, kind: str, field: str = "subject") -> str | None:
        pid = ref_id(resource.get(field) or resource.get("patient"), "Patient")
        if pid is None:
            self.report.drop(kind, "no patient reference")
            return None
        if pid not in self.patients:
            self.report.drop(kind, "reference to a missing patient")
            return None
        return pid

    def practitioner(self, ref: object) -> str | None:
        if not isinstance(ref, dict):
            return None
        pid = ref_id(ref, "Practitioner")
        value = ref.get("reference")
        if pid is None and isinstance(value, str) and value.startswith("Practitioner?identifier="):
            pid = self.practitioners.get(value.split("=", 1)[1])
            if pid is None:
                self.report.drop("references", "Practitioner?identifier= that resolves to none")
                return None
        if pid is None and isinstance(ref.get("identifier"), dict):
            i = ref["identifier"]
            pid = self.practitioners.get(f"{i.get('system', '')}|{i.get('value', '')}")
        return self.tokens("dr", pid) if pid else None

    def site_of_org(self, org_id: str | None) -> str | None:
        if not org_id:
            return None
        return org_id if _ID_OK.match(org_id) else self.tokens("site", org_id)

    # -- passes

    def run(self) -> None:
        for p in self.resources("Practitioner"):
            for ident in p.get("identifier") or []:
                if isinstance(ident, dict) and ident.get("value"):
                    self.practitioners[f"{ident.get('system', '')}|{ident['value']}"] = str(
                        p.get("id")
                    )
                    self.practitioners.setdefault(f"|{ident['value']}", str(p.get("id")))
        for m in self.resources("Medication"):
            if m.get("id"):
                self.medications[str(m["id"])] = m
        self._patients()
        self._encounters()
        self._write_patients()
        self._conditions()
        self._procedures()
        self._observations()
        self._requests_first_pass()
        for kind in ("MedicationDispense", "MedicationAdministration", "MedicationStatement"):
            self._medication_events(kind)
        self._orders()
        self._research()

    def _patients(self) -> None:
        for p in self.resources("Patient"):
            pid = p.get("id")
            if not isinstance(pid, str) or not pid:
                self.report.drop("Patient", "no id")
                continue
            birth = p.get("birthDate")
            year = int(birth[:4]) if isinstance(birth, str) and birth[:4].isdigit() else None
            sex = {"female": "F", "male": "M", "other": "X"}.get(str(p.get("gender")), "U")
            org = org_key(p.get("managingOrganization"))
            self.patients[pid] = [year, sex, org, None]
            if org is None:
                self.site_votes[pid] = Counter()
        if not self.patients:
            raise FhirError("the export holds no Patient resource")

    def _encounters(self) -> None:
        for e in self.resources("Encounter"):
            pid = self.patient_of(e, "Encounter")
            if pid is None:
                continue
            org = org_key(e.get("serviceProvider"))
            if org and pid in self.site_votes:
                self.site_votes[pid][org] += 1
            if e.get("status") in ("cancelled", "entered-in-error"):
                continue
            on = when(e.get("period"))
            self.seen(on)
            types = [*concepts(e.get("type")), *concepts(e.get("class")),
                     *concepts((e.get("hospitalization") or {}).get("dischargeDisposition"))]  # fmt: skip
            if on and self._is_hospice(types):
                self._event(pid, "HOSPICE", on, "Encounter", e.get("id"))
            if on and self._is_psychotherapy(types):
                self._session(pid, e, types, on, e.get("period"), "Encounter", e.get("id"),
                              e.get("participant"))  # fmt: skip

    def _write_patients(self) -> None:
        t = self.report.table("Patient")
        unsited = 0
        for pid, (year, sex, org, _) in self.patients.items():
            votes = self.site_votes.get(pid)
            site = self.site or self.site_of_org(org)
            if site is None and votes:
                site = self.site_of_org(votes.most_common(1)[0][0])
            if site is None:
                site, unsited = "fhir", unsited + 1
            self.patients[pid][3] = site
            self.w.add("patients", {"patient_id": self.tokens("pt", pid), "birth_year": year,
                                    "sex": sex, "site_id": site})  # fmt: skip
            t.written += 1
        if unsited:
            self.counts["patients without a site (site 'fhir')"] = unsited
        self.site_votes.clear()

    def _home(self, pid: str) -> str:
        return self.patients[pid][3]

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
        site = self.site or self.site_of_org(
            org_key(resource.get("location"), "Location")
            or org_key(resource.get("serviceProvider"))
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
            score = _number(value)
            if score is None or score != int(score):
                self.report.drop("Observation", f"{instrument} without a whole total score")
                continue
            self.w.add("assessments", {
                "assessment_id": self.tokens("as", o.get("id")), "patient_id": self.tokens("pt", pid),
                "assessed_on": on.isoformat(), "instrument": instrument, "score": int(score),
            })  # fmt: skip
            t.written += 1

    # -- medications

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
                strength = _number(num.get("value"))
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
                days = _number((r.get("daysSupply") or {}).get("value"))
                quantity = _number((r.get("quantity") or {}).get("value"))
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
            site = self.site or self.site_of_org(org_key(r.get("location"), "Location"))
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
                    f"status {_said(r.get('status'), _STATUSES)}"
                    f" / intent {_said(r.get('intent'), _INTENTS)}",
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
            quantity = _number((request.get("quantity") or {}).get("value"))
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


def convert(
    src: Path, out: Path, tokens: Tokenizer, as_of: dt.date | None, site: str | None,
    order_supply_days: int = DEFAULT_ORDER_SUPPLY_DAYS,
) -> tuple[dict, ConversionReport]:  # fmt: skip
    """Convert a FHIR export folder into the native batch ``out``."""
    if not 1 <= order_supply_days <= 365:
        raise UsageError("--order-supply-days must be between 1 and 365")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        report = ConversionReport("fhir")
        files = bulk_files(src)
        layout = "bulk"
        if not files:
            files, layout = bulk_files(spool_bundles(src, work, report)), "bundles"
        unknown = sorted(set(files) - set(TYPES))
        c = _Conversion(files, work / "batch", tokens, site, order_supply_days, work, report)
        for kind in unknown:
            report.drop("files", f"{_said(kind, KNOWN_TYPES)}: resource type not used")
        c.run()
        c.db.close()
        as_of = as_of or c.latest
        if as_of is None:
            raise FhirError("the export holds no dated record: pass --as-of")
        batch_id = tokens("fhir", src.resolve().name, as_of.isoformat())
        since = bulk_since(src) if layout == "bulk" else None
        if since is not None and since > as_of:
            since = None
        manifest = c.w.finish(batch_id, as_of, "fhir", history_from=since)
        report.cannot_fill = _not_filled(c)
        report.notes = {"layout": layout, **{k: v for k, v in sorted(c.counts.items())}}
        if since is not None:
            report.notes["history_from"] = {
                "date": since.isoformat(), "from": "the bulk export manifest's request (_since)"}  # fmt: skip
        if out.exists():
            out.rmdir()
        (work / "batch").rename(out)
        return manifest, report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _not_filled(c: _Conversion) -> dict[str, list[str]]:
    n = c.w.rows
    missing = {
        "patients": [
            "every direct identifier (names, addresses, telecom, identifiers): never read"
        ],
        "diagnoses": [],
        "prescriptions": [],
        "therapy_sessions": [],
        "trial_enrollments": [] if n["trial_enrollments"] else ["all: no ResearchSubject"],
        "trials": [] if n["trials"] else ["all: no ResearchStudy with an NCT identifier"],
        "clinical_events": [] if n["clinical_events"] else ["all: no hospice or event resource"],
        "assessments": [] if n["assessments"] else ["all: no PCL-5 or CAPS-5 Observation"],
    }
    dispensed = c.counts["fills from MedicationDispense"]
    orders = c.counts["fills from MedicationRequest (orders)"]
    if orders and not dispensed:
        missing["prescriptions"].append(
            f"{orders:,} fills from orders, 0 dispenses: coverage from orders"
        )
    if not n["therapy_sessions"]:
        missing["therapy_sessions"].append("all: no psychotherapy Procedure or Encounter")
    return missing
