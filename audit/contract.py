"""The native extract format (schema versions 1, 1.1 and 1.2) as data.

This module owns the catalogue of batch files and their columns: which files a
batch holds, each column's type, whether it is required, its allowed values.
Everything that checks a batch (the manifest verifier, the de-identification
guard, the Great Expectations suites, the row-level quarantine SQL, the typed
merge into ``core``) is derived from this one catalogue, so they cannot drift
apart. SQL identifiers used anywhere in the loader come only from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSIONS = frozenset({"1", "1.1", "1.2"})

# Patterns avoid bounded repetition ({1,64}), which PostgreSQL's regex engine
# expands into large automata; lengths are checked separately.
ID_PATTERN = r"^[A-Za-z0-9._-]+$"
ID_MAX_LENGTH = 64
BATCH_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
NCT_PATTERN = r"^NCT[0-9]{8}$"
#: ISO date with a year from 1900 to 2099; calendar validity is checked in SQL.
DATE_PATTERN = r"^(19|20)[0-9][0-9]-[01][0-9]-[0-3][0-9]$"
INT_PATTERN = r"^[+-]?[0-9]+$"
INT_MAX_LENGTH = 10
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
DECIMAL_MAX_LENGTH = 20

# Column kinds.
ID = "id"
TEXT = "text"
DATE = "date"
INT = "int"
DECIMAL = "decimal"  # strictly greater than zero
ENUM = "enum"
BOOL = "bool"  # true/false, case-insensitive
NCT = "nct"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False
    values: tuple[str, ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    #: The schema version that added the column. A column added after 1 may
    #: be absent from the header of any batch (it is then empty on every
    #: row); a version 1 batch that sends it has it dropped as outside its
    #: contract, so version 1 batches load exactly as before.
    since: str = "1"

    @property
    def sql_type(self) -> str:
        return {
            ID: "text",
            TEXT: "text",
            DATE: "date",
            INT: "integer",
            DECIMAL: "numeric",
            ENUM: "text",
            BOOL: "boolean",
            NCT: "text",
        }[self.kind]

    @property
    def guarded(self) -> bool:
        """Free-text and id columns are scanned for identifier-like values."""
        return self.kind in (ID, TEXT, NCT)


@dataclass(frozen=True)
class FileSpec:
    table: str
    key: str
    columns: tuple[Column, ...]
    required: bool = True
    refers_to_patient: bool = True
    checks: tuple[str, ...] = field(default=())
    #: Records are keyed by their id within the batch's source (every file
    #: but the trial registry, whose NCT ids are the same everywhere).
    per_source: bool = True

    @property
    def file_name(self) -> str:
        return f"{self.table}.csv"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column_names_for(self, schema_version: str) -> tuple[str, ...]:
        """The columns a batch of ``schema_version`` may send."""
        return tuple(c.name for c in self.columns if c.since <= schema_version)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


SEX = ("F", "M", "X", "U")
CODE_SYSTEMS = ("ICD10CM", "SNOMED")
DRUG_CODE_SYSTEMS = ("RXNORM", "NDC", "NONE")
SETTINGS = ("outpatient", "inpatient", "procedure", "research")
MODALITIES = (
    "PE", "CPT", "EMDR", "NET", "WET",
    "SUPPORTIVE", "STABILIZATION", "SKILLS", "IRT", "OTHER", "UNKNOWN",
)  # fmt: skip
EVENT_TYPES = ("TREATMENT_RESISTANT", "REMISSION", "NIGHTMARES", "REFERRAL_INTENSIVE", "HOSPICE")
#: What a prescription row records (1.1); empty means dispensed.
SOURCE_TYPES = ("dispensed", "administered", "ordered", "reported")
INSTRUMENTS = ("PCL5", "CAPS5")

FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "patients",
        "patient_id",
        (
            Column("patient_id", ID, True),
            Column("birth_year", INT, False, min_value=1850, max_value=2100),
            Column("sex", ENUM, False, SEX),
            Column("site_id", ID, True),
            Column("history_from", DATE, False, since="1.2"),
        ),
        refers_to_patient=False,
    ),
    FileSpec(
        "diagnoses",
        "diagnosis_id",
        (
            Column("diagnosis_id", ID, True),
            Column("patient_id", ID, True),
            Column("code_system", ENUM, True, CODE_SYSTEMS),
            Column("code", TEXT, True),
            Column("diagnosed_on", DATE, True),
        ),
    ),
    FileSpec(
        "prescriptions",
        "rx_id",
        (
            Column("rx_id", ID, True),
            Column("patient_id", ID, True),
            Column("prescriber_id", ID, False),
            Column("site_id", ID, True),
            Column("drug_code_system", ENUM, True, DRUG_CODE_SYSTEMS),
            Column("drug_code", TEXT, False),
            Column("drug_name", TEXT, True),
            Column("strength_mg", DECIMAL, False),
            Column("quantity", DECIMAL, False),
            Column("days_supply", INT, True, min_value=1, max_value=365),
            Column("daily_dose_mg", DECIMAL, False),
            Column("filled_on", DATE, True),
            Column("setting", ENUM, True, SETTINGS),
            Column("source_type", ENUM, False, SOURCE_TYPES, since="1.1"),
        ),
    ),
    FileSpec(
        "therapy_sessions",
        "session_id",
        (
            Column("session_id", ID, True),
            Column("patient_id", ID, True),
            Column("clinician_id", ID, False),
            Column("site_id", ID, True),
            Column("session_date", DATE, True),
            Column("cpt_code", TEXT, False),
            Column("modality", ENUM, True, MODALITIES),
            Column("minutes", INT, False, min_value=1, max_value=1440),
        ),
    ),
    FileSpec(
        "trial_enrollments",
        "enrollment_id",
        (
            Column("enrollment_id", ID, True),
            Column("patient_id", ID, True),
            Column("trial_id", NCT, True),
            Column("enrolled_on", DATE, True),
            Column("ended_on", DATE, False),
        ),
        required=False,
        checks=("ended_on_after_enrolled_on",),
    ),
    FileSpec(
        "trials",
        "trial_id",
        (
            Column("trial_id", NCT, True),
            Column("title", TEXT, False),
            Column("approved", BOOL, True),
        ),
        required=False,
        refers_to_patient=False,
        per_source=False,
    ),
    FileSpec(
        "clinical_events",
        "event_id",
        (
            Column("event_id", ID, True),
            Column("patient_id", ID, True),
            Column("event_date", DATE, True),
            Column("event_type", ENUM, True, EVENT_TYPES),
        ),
        required=False,
    ),
    FileSpec(
        "assessments",
        "assessment_id",
        (
            Column("assessment_id", ID, True),
            Column("patient_id", ID, True),
            Column("assessed_on", DATE, True),
            Column("instrument", ENUM, True, INSTRUMENTS),
            Column("score", INT, True, min_value=0, max_value=80),
        ),
        required=False,
    ),
)

FILES_BY_NAME: dict[str, FileSpec] = {f.file_name: f for f in FILES}
FILES_BY_TABLE: dict[str, FileSpec] = {f.table: f for f in FILES}


def spec_for_file(file_name: str) -> FileSpec | None:
    return FILES_BY_NAME.get(file_name)
