"""Row-level checks: every quarantine reason, and the 1% threshold on both sides."""

from __future__ import annotations

import csv
import io

import pytest

from audit import contract, originals
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest
from audit.ingest import rowchecks as checks
from tests.batches import base_tables, make_batch
from tests.test_loader import count, loaded_nothing

pytestmark = pytest.mark.db

INVALID_DATE = "invalid date: expected an existing date YYYY-MM-DD between 1900 and 2099"

# (table, column, bad value, expected reason)
REASONS = {
    "missing drug_name": ("prescriptions", "drug_name", "", checks.MISSING),
    "invalid rx_id": ("prescriptions", "rx_id", "rx 1!",
                      "invalid id: expected 1-64 characters of A-Z a-z 0-9 . _ -"),
    "id too long": ("prescriptions", "prescriber_id", "d" * 65,
                    "invalid id: expected 1-64 characters of A-Z a-z 0-9 . _ -"),
    "unknown setting": ("prescriptions", "setting", "home",
                        "not one of: outpatient inpatient procedure research"),
    "unknown drug code system": ("prescriptions", "drug_code_system", "ATC",
                                 "not one of: RXNORM NDC NONE"),
    "no such day": ("prescriptions", "filled_on", "2025-02-30", INVALID_DATE),
    "not iso": ("prescriptions", "filled_on", "15/01/2025", INVALID_DATE),
    "before 1900": ("prescriptions", "filled_on", "1899-12-31", INVALID_DATE),
    "supply not a number": ("prescriptions", "days_supply", "ten", "not a whole number"),
    "supply 0": ("prescriptions", "days_supply", "0", "out of range: expected 1 to 365"),
    "supply 366": ("prescriptions", "days_supply", "366", "out of range: expected 1 to 365"),
    "negative supply": ("prescriptions", "days_supply", "-30", "out of range: expected 1 to 365"),
    "negative strength": ("prescriptions", "strength_mg", "-5", "must be greater than 0"),
    "zero quantity": ("prescriptions", "quantity", "0", "must be greater than 0"),
    "dose not a number": ("prescriptions", "daily_dose_mg", "50mg", "not a decimal number"),
    "unknown patient": ("prescriptions", "patient_id", "p999", checks.UNKNOWN_PATIENT),
    "unknown code system": ("diagnoses", "code_system", "ICD9", "not one of: ICD10CM SNOMED"),
    "unknown modality": ("therapy_sessions", "modality", "CBT",
                         "not one of: PE CPT EMDR NET WET SUPPORTIVE STABILIZATION SKILLS "
                         "IRT OTHER UNKNOWN"),
    "minutes 0": ("therapy_sessions", "minutes", "0", "out of range: expected 1 to 1440"),
    "unknown sex": ("patients", "sex", "female", "not one of: F M X U"),
    "birth year text": ("patients", "birth_year", "nineteen", "not a whole number"),
}  # fmt: skip


def _many_rows():
    return base_tables(n_rx=196)  # 200 rows: one bad row is 0.5%


@pytest.mark.parametrize("case", REASONS, ids=list(REASONS))
def test_each_reason_quarantines_the_row_with_file_line_and_column(conn, tmp_path, case):
    table, column, value, reason = REASONS[case]
    tables = _many_rows()
    index = len(tables[table]) - 1
    tables[table][index][column] = value
    result = ingest(conn, make_batch(tmp_path, tables=tables))
    assert result.status == "loaded"
    rows = conn.execute(
        "select file_name, line_no, column_name, reason from audit.quarantine"
    ).fetchall()
    assert (f"{table}.csv", index + 2, column, reason) in rows
    if table == "patients":  # the patient's other rows now refer to an unknown patient
        assert all(r[2] in (column, "patient_id") for r in rows)
    else:
        assert rows == [(f"{table}.csv", index + 2, column, reason)]
    # The bad row stays out of core; the file as it arrived still holds it,
    # on the line the quarantine names.
    assert count(conn, f"core.{table}") == len(tables[table]) - 1
    out = io.StringIO()
    originals.write_line(conn, "b-001", f"{table}.csv", index + 2, out)
    record = dict(zip(*csv.reader(io.StringIO(out.getvalue())), strict=True))
    assert record[column] == str(tables[table][index][column])


OPTIONAL_FILE_REASONS = {
    "bad trial id": ("trial_enrollments", "trial_id", "NCT123",
                     "invalid trial id: expected NCT and 8 digits"),
    "ended before enrolled": ("trial_enrollments", "ended_on", "2024-01-01",
                              checks.ENDED_BEFORE_ENROLLED),
    "approved yes": ("trials", "approved", "yes", "expected true or false"),
    "score 81": ("assessments", "score", "81", "out of range: expected 0 to 80"),
    "unknown instrument": ("assessments", "instrument", "PHQ9", "not one of: PCL5 CAPS5"),
    "unknown event": ("clinical_events", "event_type", "RELAPSE",
                      "not one of: TREATMENT_RESISTANT REMISSION NIGHTMARES REFERRAL_INTENSIVE "
                      "HOSPICE"),
}  # fmt: skip


def _with_optional_files():
    tables = _many_rows()
    tables["trial_enrollments"] = [{"enrollment_id": "e1", "patient_id": "p1",
                                    "trial_id": "NCT01234567", "enrolled_on": "2025-03-01",
                                    "ended_on": "2025-06-01"}]  # fmt: skip
    tables["trials"] = [{"trial_id": "NCT01234567", "title": "MAPP3", "approved": "TRUE"}]
    tables["assessments"] = [
        {
            "assessment_id": "a1",
            "patient_id": "p1",
            "assessed_on": "2025-03-01",
            "instrument": "PCL5",
            "score": "45",
        }
    ]
    tables["clinical_events"] = [
        {
            "event_id": "ev1",
            "patient_id": "p1",
            "event_date": "2025-03-01",
            "event_type": "NIGHTMARES",
        }
    ]
    return tables


def test_optional_files_load_typed(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, tables=_with_optional_files()))
    assert conn.execute("select approved from core.trials").fetchone() == (True,)
    assert conn.execute("select score from core.assessments").fetchone() == (45,)
    assert count(conn, "audit.quarantine") == 0


@pytest.mark.parametrize("case", OPTIONAL_FILE_REASONS, ids=list(OPTIONAL_FILE_REASONS))
def test_optional_file_reasons(conn, tmp_path, case):
    table, column, value, reason = OPTIONAL_FILE_REASONS[case]
    tables = _with_optional_files()
    tables[table][0][column] = value
    ingest(conn, make_batch(tmp_path, tables=tables))
    rows = conn.execute(
        "select file_name, line_no, column_name, reason from audit.quarantine"
    ).fetchall()
    assert rows == [(f"{table}.csv", 2, column, reason)]
    assert count(conn, f"core.{table}") == 0


def test_duplicate_ids_in_one_file_are_all_quarantined(conn, tmp_path):
    tables = _many_rows()
    tables["prescriptions"][5]["rx_id"] = "rx1"
    ingest(conn, make_batch(tmp_path, tables=tables))
    rows = conn.execute(
        "select line_no, column_name, reason from audit.quarantine order by line_no"
    ).fetchall()
    assert rows == [(2, "rx_id", checks.DUPLICATE_KEY), (7, "rx_id", checks.DUPLICATE_KEY)]
    assert count(conn, "core.prescriptions", "rx_id = 'rx1'") == 0


def test_patient_from_an_earlier_batch_is_known(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "b-001"))
    later = {"patients": [], "diagnoses": [], "therapy_sessions": [],
             "prescriptions": base_tables()["prescriptions"]}  # fmt: skip
    later["prescriptions"][0]["rx_id"] = "rx-later"
    later["prescriptions"][0]["patient_id"] = "p2"
    assert ingest(conn, make_batch(tmp_path, "b-002", tables=later)).rows_quarantined == 0


def test_row_checks_leave_out_only_what_the_validation_suite_showed():
    spec = contract.FILES_BY_NAME["prescriptions.csv"]
    everything = checks.column_checks_sql(spec, 1).as_string(None)
    gated = checks.column_checks_sql(spec, 1, frozenset(spec.column_names)).as_string(None)
    # formats, sets and id lengths were shown by the suite
    assert "invalid id" in everything and "invalid id" not in gated
    assert "not one of" in everything and "not one of" not in gated
    # calendar dates, ranges, signs and the length of numbers were not
    for reason in (INVALID_DATE, "out of range: expected 1 to 365", "must be greater than 0",
                   "not a whole number", "not a decimal number"):  # fmt: skip
        assert reason in everything and reason in gated
    # free text is never gated; a file with nothing left to check has no statement
    assert "longer than 1000 characters" in gated
    trials = contract.FILES_BY_NAME["trials.csv"]
    assert checks.column_checks_sql(trials, 1, frozenset(trials.column_names)) is not None


def test_a_gated_file_still_quarantines_what_only_the_row_checks_see(conn, tmp_path):
    tables = _many_rows()
    tables["prescriptions"][3]["filled_on"] = "2025-02-30"  # the right shape, no such day
    tables["prescriptions"][4]["days_supply"] = "400"
    result = ingest(conn, make_batch(tmp_path, tables=tables))
    assert result.rows_quarantined == 2
    gx = conn.execute(
        "select success from audit.validation_results where file_name = 'prescriptions.csv'"
    ).fetchone()
    assert gx == (True,)  # the suite found every value well formed
    rows = conn.execute("select line_no, column_name, reason from audit.quarantine").fetchall()
    assert sorted(rows) == [(5, "filled_on", INVALID_DATE),
                            (6, "days_supply", "out of range: expected 1 to 365")]  # fmt: skip


def test_a_bad_value_on_several_lines_quarantines_each_line(conn, tmp_path):
    """Bad values are found among a column's distinct values, then every line
    holding one is quarantined; an empty required value on two lines too."""
    tables = _many_rows()
    for i in (2, 5, 7):
        tables["prescriptions"][i]["filled_on"] = "2025-02-30"
    for i in (3, 6):
        tables["prescriptions"][i]["site_id"] = ""
    result = ingest(conn, make_batch(tmp_path, tables=tables),
                    LoadSettings(max_quarantine_fraction=0.05))  # fmt: skip
    assert result.rows_quarantined == 5
    rows = conn.execute(
        "select line_no, column_name, reason from audit.quarantine order by line_no"
    ).fetchall()
    assert rows == [(4, "filled_on", INVALID_DATE), (5, "site_id", checks.MISSING),
                    (7, "filled_on", INVALID_DATE), (8, "site_id", checks.MISSING),
                    (9, "filled_on", INVALID_DATE)]  # fmt: skip
    assert count(conn, "core.prescriptions") == len(tables["prescriptions"]) - 5


def test_rows_of_a_quarantined_patient_refer_to_an_unknown_patient(conn, tmp_path):
    tables = _many_rows()
    tables["patients"].append({"patient_id": "p3", "birth_year": 1990, "sex": "female",
                               "site_id": "north"})  # fmt: skip
    fill = dict(tables["prescriptions"][0], rx_id="rx-p3", patient_id="p3")
    tables["prescriptions"].append(fill)
    ingest(conn, make_batch(tmp_path, tables=tables))
    # the validation suite counts p3's raw row as a known patient ...
    patients_check = conn.execute(
        "select e ->> 'success' from audit.validation_results,"
        " jsonb_array_elements(results) as e where file_name = 'prescriptions.csv'"
        " and e ->> 'expectation' = 'unexpected_rows_expectation'"
    ).fetchone()
    assert patients_check == ("true",)
    # ... the row checks do not: the patient row was quarantined
    rows = conn.execute(
        "select file_name, column_name, reason from audit.quarantine order by file_name"
    ).fetchall()
    assert rows == [("patients.csv", "sex", "not one of: F M X U"),
                    ("prescriptions.csv", "patient_id", checks.UNKNOWN_PATIENT)]  # fmt: skip


def _hundred_rows():
    tables = base_tables(n_rx=96)  # 2 patients + 1 diagnosis + 96 fills + 1 session
    assert sum(len(v) for v in tables.values()) == 100
    return tables


def test_one_percent_quarantined_still_loads(conn, tmp_path):
    tables = _hundred_rows()
    tables["prescriptions"][10]["days_supply"] = "0"
    result = ingest(conn, make_batch(tmp_path, tables=tables))
    assert (result.status, result.rows_quarantined, result.rows_loaded) == ("loaded", 1, 99)


def test_more_than_one_percent_rejects_the_whole_batch(conn, tmp_path):
    tables = _hundred_rows()
    tables["prescriptions"][10]["days_supply"] = "0"
    tables["prescriptions"][20]["filled_on"] = "2025-13-01"
    with pytest.raises(BatchRejected) as info:
        ingest(conn, make_batch(tmp_path, tables=tables))
    assert str(info.value) == (
        "batch b-001 rejected: prescriptions.csv line 12 column days_supply: "
        "2 of 100 rows (2.00%) failed checks, more than the 1.00% allowed; "
        "first: out of range: expected 1 to 365"
    )
    assert loaded_nothing(conn)
    summary = conn.execute("select status, quarantine_summary from audit.batches").fetchone()
    assert summary[0] == "rejected"
    assert [(s["first_line"], s["column"]) for s in summary[1]] == [
        (12, "days_supply"),
        (22, "filled_on"),
    ]
