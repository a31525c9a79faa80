"""The loader against a real PostgreSQL: manifest, guard, quarantine, history."""

from __future__ import annotations

import json

import pytest

from audit import contract, originals
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest, stage
from tests.batches import base_tables, make_batch

pytestmark = pytest.mark.db


def count(conn, table: str, where: str = "true") -> int:
    # Table names below come from the test itself, never from data.
    return conn.execute(f"select count(*) from {table} where {where}").fetchone()[0]  # noqa: S608


def loaded_nothing(conn) -> bool:
    core = sum(count(conn, f"core.{f.table}") for f in contract.FILES)
    originals = count(conn, "audit.delivered_files")
    stage_tables = conn.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'stage' and c.relkind = 'r'"
    ).fetchone()[0]
    return core == 0 and originals == 0 and stage_tables == 0


def test_valid_batch_loads_every_row_with_its_line(conn, tmp_path):
    path = make_batch(tmp_path, tables=base_tables(n_rx=3))
    result = ingest(conn, path)
    assert result.status == "loaded"
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (7, 7, 0)
    assert count(conn, "core.prescriptions", "is_current") == 3
    lines = [r[0] for r in conn.execute(
        "select line_no from core.prescriptions order by line_no")]  # fmt: skip
    assert lines == [2, 3, 4]  # the header is line 1
    # what arrived is kept as it arrived, and the load's stage is gone
    kept = b"".join(originals.chunks(conn, "b-001", "prescriptions.csv"))
    assert kept == (path / "prescriptions.csv").read_bytes()
    assert loaded_nothing(conn) is False
    row = conn.execute(
        "select days_supply, strength_mg, filled_on::text from core.prescriptions where rx_id = 'rx2'"
    ).fetchone()
    assert row == (30, 50, "2025-01-15")
    status = conn.execute("select status, rows_in from audit.batches").fetchone()
    assert status == ("loaded", 7)


def test_a_file_of_many_chunks_is_kept_compressed_and_given_back_whole(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(stage, "ORIGINAL_CHUNK", 100)  # a chunk per 100 bytes
    path = make_batch(tmp_path, tables=base_tables(n_rx=40))
    assert ingest(conn, path).status == "loaded"
    sent = (path / "prescriptions.csv").read_bytes()
    stored = conn.execute(
        "select count(*), bool_and(zlib), sum(length(bytes)) from audit.delivered_files"
        " where file_name = 'prescriptions.csv'"
    ).fetchone()
    assert stored[0] == -(-len(sent) // 100) and stored[1] is True
    assert stored[2] < len(sent)  # compressed
    assert b"".join(originals.chunks(conn, "b-001", "prescriptions.csv")) == sent


def test_an_original_stored_uncompressed_is_given_back_too(conn, tmp_path):
    # chunks stored before the load compressed them hold the bytes as they came
    path = make_batch(tmp_path)
    ingest(conn, path)
    sent = (path / "patients.csv").read_bytes()
    conn.execute(
        "update audit.delivered_files set bytes = %s, zlib = false"
        " where file_name = 'patients.csv'",
        (sent,),
    )
    assert b"".join(originals.chunks(conn, "b-001", "patients.csv")) == sent


def test_validation_results_are_stored_without_values(conn, tmp_path):
    tables = base_tables(n_rx=150)
    tables["prescriptions"][0]["days_supply"] = "4O0"
    ingest(conn, make_batch(tmp_path, tables=tables))
    rows = conn.execute(
        "select file_name, success, results from audit.validation_results order by file_name"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(
        ["patients.csv", "diagnoses.csv", "prescriptions.csv", "therapy_sessions.csv"]
    )
    rx = {r[0]: r for r in rows}["prescriptions.csv"]
    assert rx[1] is False
    failed = [e for e in rx[2] if not e["success"]]
    assert [(e["expectation"], e["column"]) for e in failed] == [
        ("expect_column_values_to_match_regex", "days_supply")
    ]
    assert failed[0]["unexpected_count"] == 1
    assert "4O0" not in json.dumps(rx[2])


# -- manifest faults ----------------------------------------------------------


def _corrupt_checksum(path):
    with (path / "prescriptions.csv").open("a") as fh:
        fh.write("rx9,p1,dr1,north,RXNORM,36437,Sertraline,50,30,30,,2025-01-15,outpatient,\n")


def _wrong_rows(path):
    doc = json.loads((path / "manifest.json").read_text())
    doc["files"]["patients.csv"]["rows"] = 3
    (path / "manifest.json").write_text(json.dumps(doc))


def _extra_file(path):
    (path / "notes.txt").write_text("hello\n")


def _missing_file(path):
    (path / "therapy_sessions.csv").unlink()


def _unknown_version(path):
    doc = json.loads((path / "manifest.json").read_text())
    doc["schema_version"] = "2"
    (path / "manifest.json").write_text(json.dumps(doc))


def _not_json(path):
    (path / "manifest.json").write_text('{"batch_id": "b-001",\n "files": [}')


def _no_manifest(path):
    (path / "manifest.json").unlink()


def _traversal_batch_id(path):
    doc = json.loads((path / "manifest.json").read_text())
    doc["batch_id"] = "../../etc"
    (path / "manifest.json").write_text(json.dumps(doc))


def _traversal_file_name(path):
    doc = json.loads((path / "manifest.json").read_text())
    doc["files"]["../patients.csv"] = doc["files"]["patients.csv"]
    (path / "manifest.json").write_text(json.dumps(doc))


def _required_not_listed(path):
    doc = json.loads((path / "manifest.json").read_text())
    del doc["files"]["diagnoses.csv"]
    (path / "diagnoses.csv").unlink()
    (path / "manifest.json").write_text(json.dumps(doc))


def _huge_manifest(path):
    (path / "manifest.json").write_text('{"pad": "' + "x" * (2 << 20) + '"}')


def _file_listed_twice(path):
    text = (path / "manifest.json").read_text()
    entry = '"prescriptions.csv": {'
    twice = entry.replace("{", '{"sha256": "' + "0" * 64 + '", "rows": 1}, ' + entry[:-1] + "{")
    (path / "manifest.json").write_text(text.replace(entry, twice, 1))


def _absolute_path(path):
    doc = json.loads((path / "manifest.json").read_text())
    doc["files"]["/etc/passwd"] = doc["files"]["patients.csv"]
    (path / "manifest.json").write_text(json.dumps(doc))


MANIFEST_FAULTS = {
    "checksum": (_corrupt_checksum, "prescriptions.csv: SHA-256 differs from the manifest"),
    "row count": (_wrong_rows, "patients.csv: row count 2 differs from the manifest's 3"),
    "extra file": (_extra_file, "notes.txt: file not listed in the manifest"),
    "missing file": (_missing_file, "therapy_sessions.csv: listed in the manifest but missing"),
    "schema version": (_unknown_version, "unknown schema_version"),
    "not json": (_not_json, "manifest.json line 2: not valid JSON"),
    "no manifest": (_no_manifest, "no manifest.json: the batch is incomplete"),
    "batch_id traversal": (_traversal_batch_id, "'batch_id' must be 1-128 characters"),
    "file name traversal": (_traversal_file_name, "lists a file that is not part of the extract"),
    "required file": (_required_not_listed, "required file diagnoses.csv is not listed"),
    "huge manifest": (_huge_manifest, "manifest larger than"),
    "file listed twice": (_file_listed_twice, "a key appears twice in one object"),
    "absolute path": (_absolute_path, "lists a file that is not part of the extract"),
}
#: Faults after which the manifest's batch id cannot be read.
NO_BATCH_ID = {"not json", "no manifest", "batch_id traversal", "huge manifest"}


@pytest.mark.parametrize("fault", MANIFEST_FAULTS, ids=list(MANIFEST_FAULTS))
def test_manifest_faults_reject_the_whole_batch(conn, tmp_path, fault):
    mutate, message = MANIFEST_FAULTS[fault]
    path = make_batch(tmp_path)
    mutate(path)
    with pytest.raises(BatchRejected) as info:
        ingest(conn, path)
    assert message in str(info.value)
    assert loaded_nothing(conn)
    # every delivery attempt is recorded, under its batch id when it is readable
    attempts = conn.execute("select batch_id, outcome, reason from audit.deliveries").fetchall()
    assert len(attempts) == 1 and attempts[0][1] == "rejected" and message in attempts[0][2]
    assert attempts[0][0] == ("(unreadable manifest)" if fault in NO_BATCH_ID else "b-001")


def test_checksum_rejection_is_recorded_with_its_reason(conn, tmp_path):
    path = make_batch(tmp_path)
    _corrupt_checksum(path)
    with pytest.raises(BatchRejected):
        ingest(conn, path)
    status, reason = conn.execute("select status, reason from audit.batches").fetchone()
    assert status == "rejected"
    assert reason == "batch b-001 rejected: prescriptions.csv: SHA-256 differs from the manifest"
    assert count(conn, "audit.deliveries", "outcome = 'rejected'") == 1


# -- hostile CSV ------------------------------------------------------------------


def _write_and_fix_manifest(path, file_name, data: bytes):
    from audit.batchio import write_manifest

    (path / file_name).write_bytes(data)
    doc = json.loads((path / "manifest.json").read_text())
    rows = {k: v["rows"] for k, v in doc["files"].items()}
    rows[file_name] = 1
    write_manifest(path, doc["batch_id"], doc["as_of"], rows=rows, created_at=doc["created_at"])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"patient_id,birth_year,sex,site_id\np1,1980,F\xff,north\n", "line 2"),
        (b"patient_id,birth_year,sex,site_id\np1,1980,F,north,extra\n", "extra data after last"),
        (b'patient_id,birth_year,sex,site_id\np1,1980,"F,north\n', "unterminated quoted field"),
        (b"patient_id,birth_year,sex,site_id\np1,1980,F\x00,north\n", "line 2"),
        (b"", "empty file"),
    ],
    ids=["bad utf-8", "extra field", "open quote", "nul byte", "empty"],
)
def test_malformed_csv_is_rejected_with_its_place(conn, tmp_path, data, message):
    path = make_batch(tmp_path)
    _write_and_fix_manifest(path, "patients.csv", data)
    with pytest.raises(BatchRejected) as info:
        ingest(conn, path)
    assert "patients.csv" in str(info.value)
    assert message in str(info.value)
    assert loaded_nothing(conn)


def test_utf8_bom_and_quoted_newlines_load(conn, tmp_path):
    path = make_batch(tmp_path)
    data = (
        '\ufeffpatient_id,birth_year,sex,site_id\r\np1,1980,F,north\r\np2,1975,M,"south"\r\n'
    ).encode()
    _write_and_fix_manifest(path, "patients.csv", data)
    doc = json.loads((path / "manifest.json").read_text())
    rows = {k: v["rows"] for k, v in doc["files"].items()}
    rows["patients.csv"] = 2
    from audit.batchio import write_manifest

    write_manifest(path, "b-001", doc["as_of"], rows=rows)
    assert ingest(conn, path).status == "loaded"
    assert count(conn, "core.patients") == 2


# -- delivery semantics ----------------------------------------------------------


def test_same_batch_twice_is_a_no_op(conn, tmp_path):
    path = make_batch(tmp_path)
    assert ingest(conn, path).status == "loaded"
    again = ingest(conn, path)
    assert again.status == "duplicate"
    assert count(conn, "core.prescriptions") == 1
    assert count(conn, "audit.delivered_files", "file_name = 'prescriptions.csv'") == 1
    assert count(conn, "audit.deliveries", "outcome = 'duplicate'") == 1


def test_same_batch_id_with_other_content_is_rejected(conn, tmp_path):
    ingest(conn, make_batch(tmp_path / "first"))
    tables = base_tables()
    tables["prescriptions"][0]["days_supply"] = "60"
    changed = make_batch(tmp_path / "second", tables=tables)
    with pytest.raises(BatchRejected, match="already loaded with different content"):
        ingest(conn, changed)
    assert conn.execute("select days_supply from core.prescriptions").fetchall() == [(30,)]
    assert conn.execute("select status from audit.batches").fetchall() == [("loaded",)]


def test_correction_replaces_the_record_and_keeps_the_old_version(conn, tmp_path):
    ingest(conn, make_batch(tmp_path, "b-001"))
    fix = {"patients": [], "diagnoses": [], "therapy_sessions": [],
           "prescriptions": base_tables()["prescriptions"]}  # fmt: skip
    fix["prescriptions"][0]["days_supply"] = "90"
    ingest(conn, make_batch(tmp_path, "b-002", tables=fix))
    rows = conn.execute(
        "select b.batch_id, p.days_supply, p.is_current, s.batch_id from core.prescriptions p "
        "join audit.batches b on b.batch_no = p.batch_no "
        "left join audit.batches s on s.batch_no = p.superseded_by order by b.batch_no"
    ).fetchall()
    assert rows == [("b-001", 30, False, "b-002"), ("b-002", 90, True, None)]
    assert count(conn, "audit.delivered_files", "file_name = 'prescriptions.csv'") == 2


def test_a_rejected_batch_can_be_delivered_again_fixed(conn, tmp_path):
    path = make_batch(tmp_path)
    _corrupt_checksum(path)
    with pytest.raises(BatchRejected):
        ingest(conn, path)
    fixed = make_batch(tmp_path / "again")
    assert ingest(conn, fixed).status == "loaded"
    assert conn.execute("select status from audit.batches").fetchall() == [("loaded",)]


def test_settings_threshold_is_configurable(conn, tmp_path):
    tables = base_tables(n_rx=3)
    tables["prescriptions"][0]["filled_on"] = "2025-02-30"
    path = make_batch(tmp_path, tables=tables)
    with pytest.raises(BatchRejected):
        ingest(conn, path)
    result = ingest(conn, path, LoadSettings(max_quarantine_fraction=0.2))
    assert (result.status, result.rows_quarantined) == ("loaded", 1)


# -- schema 1.1 ---------------------------------------------------------------


def test_schema_1_1_source_type_history_from_irt_and_hospice_load(conn, tmp_path):
    tables = base_tables(n_rx=3)
    tables["prescriptions"][0]["source_type"] = "reported"
    tables["prescriptions"][1]["source_type"] = "ordered"
    tables["therapy_sessions"][0]["modality"] = "IRT"
    tables["clinical_events"] = [
        {"event_id": "e1", "patient_id": "p1", "event_date": "2025-02-01", "event_type": "HOSPICE"}
    ]
    path = make_batch(tmp_path, tables=tables, history_from="2019-01-01")
    assert ingest(conn, path).status == "loaded"
    rows = conn.execute(
        "select rx_id, source_type from core.prescriptions order by rx_id"
    ).fetchall()
    assert rows == [("rx1", "reported"), ("rx2", "ordered"), ("rx3", None)]  # empty: dispensed
    assert conn.execute("select history_from::text from audit.batches").fetchone()[0] == (
        "2019-01-01"
    )
    assert count(conn, "core.clinical_events", "event_type = 'HOSPICE'") == 1
    assert count(conn, "core.therapy_sessions", "modality = 'IRT'") == 1


def test_version_1_batch_loads_unchanged_and_drops_a_1_1_column(conn, tmp_path):
    # A version 1 batch has no source_type column: it loads as before.
    path = make_batch(tmp_path, tables=base_tables(n_rx=2), schema_version="1")
    header = (path / "prescriptions.csv").read_text().splitlines()[0]
    assert "source_type" not in header
    assert ingest(conn, path).status == "loaded"
    # A version 1 batch that sends the 1.1 column: outside its contract, dropped and reported.
    tables = base_tables(n_rx=2)
    tables["prescriptions"][0]["source_type"] = "reported"
    path = make_batch(tmp_path, "b-002", tables=tables, schema_version="1.1")
    doc = json.loads((path / "manifest.json").read_text())
    doc["schema_version"] = "1"
    (path / "manifest.json").write_text(json.dumps(doc))
    result = ingest(conn, path)
    assert result.dropped_columns == [{"file": "prescriptions.csv", "columns": ["source_type"]}]
    assert count(conn, "core.prescriptions", "source_type is not null") == 0


@pytest.mark.parametrize(
    "history_from, reason",
    [("2026-02-01", "'history_from' is after 'as_of'"), ("2019-13-01", "not a calendar date")],
)
def test_history_from_after_as_of_or_not_a_date_rejects(conn, tmp_path, history_from, reason):
    path = make_batch(tmp_path, history_from=history_from)
    with pytest.raises(BatchRejected) as err:
        ingest(conn, path)
    assert reason in str(err.value)
    assert "manifest.json" in str(err.value)
