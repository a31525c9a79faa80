"""Hostile input: each gets one clear rejection and nothing loaded; fuzzing."""

from __future__ import annotations

import csv
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.batchio import write_manifest
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest
from audit.ingest.stage import read_header
from audit.manifest import parse_manifest, read_manifest
from tests.batches import base_tables, make_batch
from tests.test_loader import loaded_nothing


def _rewrite(path, name, header, rows):
    with (path / name).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    counts = {p.name: sum(1 for _ in p.open()) - 1 for p in path.glob("*.csv")}
    write_manifest(path, path.name, "2025-12-31", created_at="2026-01-01T00:00:00Z", rows=counts)


@pytest.mark.db
def test_embedded_quotes_and_newlines_load_verbatim(conn, tmp_path):
    tables = base_tables()
    tables["prescriptions"][0]["drug_name"] = 'Sertraline "Zoloft"\n50 mg, tablet'
    ingest(conn, make_batch(tmp_path, tables=tables), LoadSettings())
    assert conn.execute("select drug_name from core.prescriptions").fetchone() == (
        'Sertraline "Zoloft"\n50 mg, tablet',
    )


@pytest.mark.db
def test_ten_million_character_field_is_rejected_without_echo(conn, tmp_path):
    path = make_batch(tmp_path)
    huge = "A" * 10_000_000
    _rewrite(path, "diagnoses.csv", ["diagnosis_id", "patient_id", "code_system", "code",
                                     "diagnosed_on"],
             [["d1", "p1", "ICD10CM", huge, "2025-01-10"]])  # fmt: skip
    with pytest.raises(BatchRejected) as info:
        ingest(conn, path)
    message = str(info.value)
    assert "diagnoses.csv line 2 column code: value looks like an over-long field" in message
    assert len(message) < 300
    assert loaded_nothing(conn)


@pytest.mark.db
def test_latin1_file_is_rejected(conn, tmp_path):
    path = make_batch(tmp_path)
    (path / "patients.csv").write_bytes(
        "patient_id,birth_year,sex,site_id\np1,1980,F,M\xfcnster\n".encode("latin-1")
    )
    write_manifest(path, path.name, "2025-12-31", rows={"patients.csv": 1, "diagnoses.csv": 1,
                                                         "prescriptions.csv": 1,
                                                         "therapy_sessions.csv": 1})  # fmt: skip
    with pytest.raises(BatchRejected, match="patients.csv line 2: not valid UTF-8"):
        ingest(conn, path)
    assert loaded_nothing(conn)


def test_a_one_gigabyte_manifest_is_refused_without_reading_it(tmp_path):
    path = make_batch(tmp_path)
    with (path / "manifest.json").open("r+b") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GB on paper, nothing on disk
    with pytest.raises(BatchRejected, match="manifest larger than"):
        read_manifest(path)


@pytest.mark.parametrize("name", ["../escape.csv", "/etc/passwd", "patients.csv/../x.csv",
                                  "..", "PATIENTS.CSV"])  # fmt: skip
def test_path_traversal_in_file_names(tmp_path, name):
    path = make_batch(tmp_path)
    doc = json.loads((path / "manifest.json").read_text())
    doc["files"][name] = {"sha256": "0" * 64, "rows": 0}
    with pytest.raises(BatchRejected, match="not part of the extract format"):
        parse_manifest(json.dumps(doc).encode())


# -- fuzzing ----------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                       children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_manifest_parser_survives_any_bytes(data):
    try:
        parse_manifest(data)
    except BatchRejected as exc:
        assert exc.file == "manifest.json"


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["batch_id", "schema_version", "as_of", "created_at", "files", "source", "x"]),
    JSONISH, max_size=7))  # fmt: skip
def test_manifest_parser_survives_any_json_object(doc):
    try:
        manifest = parse_manifest(json.dumps(doc).encode())
    except BatchRejected:
        return
    assert manifest.batch_id == doc["batch_id"]


@pytest.mark.unit
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=3000))
def test_header_reader_survives_any_bytes(tmp_path, data):
    path = tmp_path / "patients.csv"
    path.write_bytes(data)
    try:
        header = read_header(path)
    except BatchRejected as exc:
        assert exc.file == "patients.csv" and exc.line == 1
        return
    assert isinstance(header, list)


CELLS = st.text(alphabet=string.printable + "éü\u2028\x00\ufeff", max_size=12)


@pytest.mark.db
@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(CELLS, min_size=0, max_size=6), min_size=0, max_size=6))
def test_loader_survives_any_patients_file(conn, tmp_path_factory, rows):
    path = make_batch(tmp_path_factory.mktemp("fuzz"))
    with (path / "patients.csv").open("w", newline="", encoding="utf-8") as fh:
        fh.write("patient_id,birth_year,sex,site_id\n")
        csv.writer(fh, lineterminator="\n").writerows(rows)
    try:
        n = sum(1 for _ in csv.reader((path / "patients.csv").open(newline="", encoding="utf-8")))
        write_manifest(path, path.name, "2025-12-31", rows={"patients.csv": max(n - 1, 0)})
    except (csv.Error, UnicodeDecodeError):
        write_manifest(path, path.name, "2025-12-31")
    try:
        result = ingest(conn, path, LoadSettings())
    except BatchRejected:
        assert conn.info.transaction_status.name == "IDLE"
        return
    assert result.status in ("loaded", "duplicate")
