"""The de-identification guard: one test per identifier kind."""

from __future__ import annotations

import pytest

from audit.errors import BatchRejected
from audit.guard import identifier_kind
from audit.ingest import ingest
from tests.batches import base_tables, make_batch
from tests.test_loader import count, loaded_nothing

IDENTIFIER_COLUMNS = {
    "name": "a name",
    "first_name": "a name",
    "LastName": "a name",
    "patient_name": "a name",
    "ssn": "a social security number",
    "social_security_number": "a social security number",
    "mrn": "a medical record number",
    "medical_record_number": "a medical record number",
    "address": "an address",
    "street": "an address",
    "city": "an address",
    "zip": "a ZIP code",
    "zip_code": "a ZIP code",
    "phone": "a phone number",
    "fax": "a fax number",
    "email": "an e-mail address",
    "date_of_birth": "a date of birth",
    "DOB": "a date of birth",
    "url": "a URL",
    "ip_address": "an IP address",
}


@pytest.mark.unit
@pytest.mark.parametrize("column", IDENTIFIER_COLUMNS)
def test_identifier_column_names_are_recognised(column):
    assert identifier_kind(column) == IDENTIFIER_COLUMNS[column]


@pytest.mark.unit
@pytest.mark.parametrize(
    "column",
    [
        "drug_name",
        "product_name",
        "site_id",
        "pharmacy_chain",
        "zipper_size",
        "ipsilateral",
        "refills",
    ],
)
def test_harmless_column_names_pass(column):
    assert identifier_kind(column) is None


@pytest.mark.db
@pytest.mark.parametrize("column", ["first_name", "ssn", "mrn", "street", "zip", "phone1", "surname",
                                    "email", "date_of_birth", "url", "ip_address"])  # fmt: skip
def test_identifier_column_rejects_the_batch(conn, tmp_path, column):
    tables = base_tables()
    for row in tables["patients"]:
        row[column] = "secret-value"
    path = make_batch(tmp_path, tables={**tables})
    # write_batch writes only contract columns: add the column by hand.
    import csv

    from audit.batchio import write_manifest

    with (path / "patients.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["patient_id", "birth_year", "sex", "site_id", column])
        for r in tables["patients"]:
            w.writerow([r["patient_id"], r["birth_year"], r["sex"], r["site_id"], r[column]])
    write_manifest(path, "b-001", "2025-12-31")
    with pytest.raises(BatchRejected) as info:
        ingest(conn, path)
    message = str(info.value)
    kind = identifier_kind(column)
    assert (
        f"patients.csv line 1: column 5 is named like {kind} (de-identification guard)" in message
    )
    assert "secret-value" not in message
    assert loaded_nothing(conn)


@pytest.mark.db
def test_unknown_harmless_column_is_dropped_and_reported(conn, tmp_path):
    import csv

    from audit.batchio import write_manifest

    path = make_batch(tmp_path)
    with (path / "patients.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["site_id", "pharmacy_chain", "patient_id", "sex", "birth_year"])
        w.writerow(["north", "acme", "p1", "F", "1980"])
        w.writerow(["south", "acme", "p2", "M", "1975"])
    write_manifest(path, "b-001", "2025-12-31")
    result = ingest(conn, path)
    assert result.dropped_columns == [{"file": "patients.csv", "columns": ["pharmacy_chain"]}]
    assert conn.execute(
        "select patient_id, sex, birth_year from core.patients order by 1"
    ).fetchall() == [("p1", "F", 1980), ("p2", "M", 1975)]
    assert conn.execute("select line_no from core.patients order by 1").fetchall() == [(2,), (3,)]
    stored = conn.execute("select dropped_columns from audit.batches").fetchone()[0]
    assert stored == [{"file": "patients.csv", "columns": ["pharmacy_chain"]}]


IDENTIFIER_VALUES = {
    "ssn": ("prescriptions", "drug_name", "Sertraline 123-45-6789", "an SSN"),
    "email": ("prescriptions", "prescriber_id", "jane.doe@example.org", "an e-mail address"),
    "phone": ("therapy_sessions", "cpt_code", "(555) 123-4567", "a phone number"),
    "phone dashed": ("prescriptions", "drug_name", "call 555-123-4567", "a phone number"),
    "url": ("prescriptions", "drug_name", "see https://example.org/p1", "a URL"),
    "url www": ("diagnoses", "code", "www.example.org", "a URL"),
    # a file's key is read row by row, every other column as distinct values
    "ssn as the key": ("prescriptions", "rx_id", "123-45-6789", "an SSN"),
    "e-mail as the key": (
        "therapy_sessions",
        "session_id",
        "jane.doe@example.org",
        "an e-mail address",
    ),  # fmt: skip
}


@pytest.mark.db
@pytest.mark.parametrize("case", IDENTIFIER_VALUES, ids=list(IDENTIFIER_VALUES))
def test_identifier_values_reject_the_batch_without_echo(conn, tmp_path, case):
    table, column, value, kind = IDENTIFIER_VALUES[case]
    tables = base_tables(n_rx=2)
    tables[table][-1][column] = value
    with pytest.raises(BatchRejected) as info:
        ingest(conn, make_batch(tmp_path, tables=tables))
    message = str(info.value)
    line = len(tables[table]) + 1
    assert f"{table}.csv line {line} column {column}: value looks like {kind}" in message
    assert value not in message
    assert loaded_nothing(conn)
    reason = conn.execute("select reason from audit.batches").fetchone()[0]
    assert value not in reason


@pytest.mark.db
def test_a_repeated_identifier_is_named_at_its_first_line(conn, tmp_path):
    """The guard reads each distinct value once; the rejection still names
    the first line holding it, as a row-by-row scan would."""
    tables = base_tables(n_rx=4)
    for row in tables["prescriptions"][1:]:
        row["drug_name"] = "Sertraline 123-45-6789"
    tables["prescriptions"][3]["prescriber_id"] = "jane.doe@example.org"
    with pytest.raises(BatchRejected) as info:
        ingest(conn, make_batch(tmp_path, tables=tables))
    assert "prescriptions.csv line 3 column drug_name: value looks like an SSN" in str(info.value)


@pytest.mark.db
@pytest.mark.parametrize(
    "value", ["Sertraline 50 MG Oral Tablet", "0093-7146-56", "12345-678-90", "Xanax 0.5 mg"]
)
def test_drug_names_and_ndc_codes_are_not_mistaken_for_identifiers(conn, tmp_path, value):
    tables = base_tables()
    tables["prescriptions"][0]["drug_name"] = value
    tables["prescriptions"][0]["drug_code"] = "0093-7146-56"
    tables["prescriptions"][0]["drug_code_system"] = "NDC"
    assert ingest(conn, make_batch(tmp_path, tables=tables)).status == "loaded"


@pytest.mark.db
def test_age_90_plus_keeps_a_marker_not_the_birth_year(conn, tmp_path):
    tables = base_tables()
    tables["patients"][0]["birth_year"] = 1935  # 90 at the as_of year 2025
    tables["patients"][1]["birth_year"] = 1936  # 89
    ingest(conn, make_batch(tmp_path, tables=tables))
    rows = conn.execute(
        "select patient_id, birth_year, age_90_plus from core.patients order by 1"
    ).fetchall()
    assert rows == [("p1", None, True), ("p2", 1936, False)]
    # the stored original holds what arrived; no role but the pipeline's reads it
    for role in ("rxaudit_reader", "rxaudit_shared", "rxaudit_web", "rxaudit_web_views",
                 "rxaudit_reviews"):  # fmt: skip
        assert not conn.execute(
            "select has_table_privilege(%s, 'audit.delivered_files', 'select')", (role,)
        ).fetchone()[0]
    assert count(conn, "core.patients", "birth_year = 1935") == 0
    assert conn.execute("select age_90_plus_patients from audit.batches").fetchone() == (1,)
