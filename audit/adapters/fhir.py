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
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from audit.adapters.common import (
    AFTER_DEATH,
    ConversionReport,
    NativeWriter,
    Tokenizer,
    parse_date,
)
from audit.adapters.fhir_care import Care
from audit.adapters.fhir_meds import Medications
from audit.adapters.fhir_read import FhirError, bulk_files, bulk_since, read_ndjson, spool_bundles
from audit.adapters.fhir_values import (
    DEFAULT_ORDER_SUPPLY_DAYS,
    ID_OK,
    KNOWN_TYPES,
    TYPES,
    concepts,
    org_key,
    ref_id,
    said,
    site_slug,
    when,
)
from audit.errors import UsageError


class _Conversion(Care, Medications):
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
        self.deaths: dict[str, dt.date] = {}  # patient token -> deceasedDateTime
        self.w = NativeWriter(out, dedupe=("trials",), deaths=self.deaths)
        self.encounter_sessions: set[str] = set()
        self.practitioners: dict[str, str] = {}  # "system|value" -> Practitioner id
        self.medications: dict[str, dict] = {}
        self.patients: dict[str, list] = {}  # id -> [birth year, sex, org, then site]
        self.site_votes: dict[str, Counter] = {}  # only patients without managingOrganization
        self.org_sites: dict[str, str] = {}  # Organization id -> its name as a site id
        self.location_sites: dict[str, str] = {}  # Location id -> its organization's site
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
        """The site of an Organization: its name when it has one (no other
        Organization's name reads the same), else its id, else a token."""
        if not org_id:
            return None
        if org_id in self.org_sites:
            return self.org_sites[org_id]
        return org_id if ID_OK.match(org_id) else self.tokens("site", org_id)

    def site_of_location(self, location_id: str | None) -> str | None:
        """The site of a Location: that of its managing Organization, else its name."""
        if location_id in self.location_sites:
            return self.location_sites[location_id]
        return self.site_of_org(location_id)

    def _sites(self) -> None:
        """Organization and Location names as site ids (a name two of them
        share is no site: those keep their ids, counted in the report)."""
        names: dict[str, set[str]] = {}
        for o in self.resources("Organization"):
            slug = site_slug(o.get("name"))
            if isinstance(o.get("id"), str) and slug:
                names.setdefault(slug, set()).add(o["id"])
        shared = {slug for slug, ids in names.items() if len(ids) > 1}
        self.org_sites = {i: slug for slug, ids in names.items() if slug not in shared for i in ids}
        for loc in self.resources("Location"):
            if not isinstance(loc.get("id"), str):
                continue
            org = org_key(loc.get("managingOrganization"))
            site = self.site_of_org(org) if org else None
            if site is None and (slug := site_slug(loc.get("name"))) and slug not in names:
                site = slug
            if site:
                self.location_sites[loc["id"]] = site
        if self.org_sites:
            self.counts["sites named by their Organization's name"] = len(
                set(self.org_sites.values())
            )
        if shared:
            self.counts["Organizations sharing a name (site from their id)"] = sum(
                len(names[s]) for s in shared
            )

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
        self._sites()
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
            known = self.patients.get(pid)
            if known is not None:
                if known[:2] != [year, sex]:
                    # which is meant is not known; a batch changing a loaded
                    # patient's birth year or sex is refused the same way
                    raise FhirError(
                        "a Patient id appears twice with another birth year or sex: which"
                        " one is meant is not known (send one version of each patient)"
                    )
                self.report.drop("Patient", "repeated (the same birth year and sex)")
                continue
            self.patients[pid] = [year, sex, org, None]
            died = p.get("deceasedDateTime")
            if isinstance(died, str) and (on := parse_date(died)):
                self.deaths[self.tokens("pt", pid)] = on
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
            report.drop("files", f"{said(kind, KNOWN_TYPES)}: resource type not used")
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
        if c.w.after_death:
            report.notes[AFTER_DEATH] = dict(sorted(c.w.after_death.items()))
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
