"""Small hand-written batches for the loader tests."""

from __future__ import annotations

import copy
from pathlib import Path

from audit.batchio import write_batch

AS_OF = "2025-12-31"


def base_tables(n_rx: int = 1) -> dict[str, list[dict]]:
    """A valid batch: 2 patients, 1 diagnosis, ``n_rx`` fills, 1 session."""
    return {
        "patients": [
            {"patient_id": "p1", "birth_year": 1980, "sex": "F", "site_id": "north"},
            {"patient_id": "p2", "birth_year": 1975, "sex": "M", "site_id": "south"},
        ],
        "diagnoses": [
            {"diagnosis_id": "d1", "patient_id": "p1", "code_system": "ICD10CM",
             "code": "F43.10", "diagnosed_on": "2025-01-10"},
        ],
        "prescriptions": [
            {"rx_id": f"rx{i}", "patient_id": "p1", "prescriber_id": "dr1", "site_id": "north",
             "drug_code_system": "RXNORM", "drug_code": "36437",
             "drug_name": "Sertraline 50 MG Oral Tablet", "strength_mg": "50",
             "quantity": "30", "days_supply": "30", "filled_on": "2025-01-15",
             "setting": "outpatient"}
            for i in range(1, n_rx + 1)
        ],
        "therapy_sessions": [
            {"session_id": "s1", "patient_id": "p1", "clinician_id": "c1", "site_id": "north",
             "session_date": "2025-02-01", "cpt_code": "90837", "modality": "PE",
             "minutes": "60"},
        ],
    }  # fmt: skip


def make_batch(
    root: Path,
    batch_id: str = "b-001",
    tables: dict | None = None,
    as_of: str = AS_OF,
    created_at: str = "2026-01-01T02:00:00Z",
    **manifest_fields,
) -> Path:
    tables = copy.deepcopy(tables if tables is not None else base_tables())
    path = root / batch_id
    write_batch(path, batch_id, as_of, tables, created_at=created_at, **manifest_fields)
    return path
