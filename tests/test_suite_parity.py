"""The suites are Great Expectations suites, and their SQL compilation counts
what Great Expectations counts, expectation by expectation."""

from __future__ import annotations

import pytest

from audit import contract
from audit.ingest import LoadSettings, compile, ingest, stage, suite, values
from audit.ingest.fragments import staged
from audit.manifest import read_manifest
from tests.batches import base_tables, make_batch


@pytest.mark.parametrize("spec", contract.FILES, ids=lambda s: s.file_name)
def test_every_suite_is_a_gx_suite_and_compiles(spec):
    for batch_no in (None, 7):
        data = suite.suite_of(spec, batch_no)
        gx_suite = suite.to_gx(data)
        assert len(gx_suite.expectations) == len(data["expectations"]) > 0
        assert [e.expectation_type for e in gx_suite.expectations] == [
            e["type"] for e in data["expectations"]
        ]
        compiled = compile.compile_suite(data, staged(spec, batch_no or 1))
        assert len(compiled) == len(data["expectations"])


def test_an_expectation_type_without_sql_fails_the_build():
    data = suite.suite_of(contract.FILES_BY_NAME["patients.csv"])
    data["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "birth_year"}}
    )
    with pytest.raises(compile.UnknownExpectation, match="expect_column_values_to_be_between"):
        compile.compile_suite(data, staged(contract.FILES_BY_NAME["patients.csv"], 1))


def _defective_batches(root):
    """Batches that break every expectation of the suites somewhere."""
    good = base_tables(n_rx=40)
    bad = base_tables(n_rx=40)
    rx = bad["prescriptions"]
    rx[0]["days_supply"] = "4O0"  # not a whole number
    rx[1]["patient_id"] = ""  # null
    rx[2]["patient_id"] = "p 1"  # not an id
    rx[3]["rx_id"] = rx[4]["rx_id"]  # a duplicate key
    rx[5]["setting"] = "home"  # not in the set
    rx[6]["filled_on"] = "15/01/2025"  # not a date
    rx[7]["strength_mg"] = "fifty"  # not a decimal
    rx[8]["patient_id"] = "p9"  # unknown patient
    rx[9]["prescriber_id"] = "d" * 70  # too long an id
    rx[10]["drug_name"] = ""  # null text
    bad["patients"].append({"patient_id": "p3", "birth_year": "19x0", "sex": "Q", "site_id": ""})
    bad["therapy_sessions"][0]["minutes"] = "-5"
    bad["diagnoses"].append({**bad["diagnoses"][0], "code_system": "ICD9"})
    late = {
        "prescriptions": [dict(r, rx_id=f"late{i}") for i, r in enumerate(good["prescriptions"])]
    }
    late["prescriptions"][0]["patient_id"] = "p2"  # known from an earlier batch
    late["prescriptions"][1]["patient_id"] = "p7"  # unknown
    return [
        make_batch(root, "b-good", good),
        make_batch(root, "b-bad", bad, created_at="2026-01-02T02:00:00Z"),
        make_batch(root, "b-late", late, created_at="2026-01-03T02:00:00Z"),
    ]


def _comparable(summary: dict) -> list[tuple]:
    return sorted(
        (r["expectation"], r["column"] or "", r["success"], r["element_count"] or -1,
         r["unexpected_count"], -1 if r["unexpected_percent"] is None
         else round(r["unexpected_percent"], 9))
        for r in summary["results"]
    )  # fmt: skip


def _staged_again(conn, path, batch_no):
    """The batch's files in a stage of their own (the load drops its stage)."""
    manifest = read_manifest(path)
    stage.create(conn, batch_no)
    specs = [contract.FILES_BY_NAME[name] for name in manifest.files]
    for spec in specs:
        stage.copy_file(conn, path / spec.file_name, spec, batch_no,
                        manifest.files[spec.file_name].sha256, manifest.schema_version,
                        lambda _: None)  # fmt: skip
        values.build(conn, spec, batch_no)
    return sorted(specs, key=contract.FILES.index)


class _Rollback(Exception):
    pass


@pytest.mark.db
def test_compiled_suites_count_what_great_expectations_counts(conn, tmp_path):
    settings = LoadSettings(max_quarantine_fraction=1.0, allow_replace=True)
    compared, failing = 0, set()
    for path in _defective_batches(tmp_path):
        result = ingest(conn, path, settings)
        assert result.status == "loaded"
        stored = conn.execute(
            "select results from audit.validation_results where batch_no = %s",
            (result.batch_no,),
        ).fetchall()
        try:
            with conn.transaction():
                # a stage numbered like the batch sees the same earlier core
                batch_no = result.batch_no + 900
                specs = _staged_again(conn, path, batch_no)
                ours = compile.validate_batch(conn, batch_no, specs)
                theirs = suite.validate_with_gx(conn, batch_no, specs)
                raise _Rollback
        except _Rollback:
            pass
        for mine, gx in zip(ours, theirs, strict=True):
            assert mine["file"] == gx["file"] and mine["suite"] == gx["suite"]
            assert _comparable(mine) == _comparable(gx), mine["file"]
            assert mine["statistics"] == gx["statistics"]
            assert mine["success"] == gx["success"]
            compared += len(mine["results"])
            failing |= {r["expectation"] for r in mine["results"] if r["unexpected_count"]}
        # what the load stored is what the suites count (its own rows are in
        # core now, so only the column checks compare)
        assert len(stored) == len(ours)
    assert compared > 50
    assert failing == {"expect_column_values_to_not_be_null", "expect_column_values_to_match_regex",
                       "expect_column_values_to_be_in_set", "expect_column_value_lengths_to_be_between",
                       "expect_column_values_to_be_unique", "unexpected_rows_expectation"}  # fmt: skip
