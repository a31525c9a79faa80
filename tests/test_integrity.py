"""Silent integrity gaps closed: a line holding only ``\\.`` (PostgreSQL's
end-of-data marker), a quoted line break in a header, a file whose records
were not all loaded, a symlinked manifest, a file listed twice."""

from __future__ import annotations

import json
import os

import pytest

from audit.batchio import count_rows, write_manifest
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest
from audit.manifest import parse_manifest
from tests.batches import base_tables, make_batch
from tests.test_loader import loaded_nothing

NO_GX = LoadSettings()


def _rewrite(path, name: str, text: str, rows: int | None = None) -> None:
    """Replace one file and re-sign the manifest (rows as given, else counted)."""
    (path / name).write_bytes(text.encode())
    doc = json.loads((path / "manifest.json").read_text())
    write_manifest(path, doc["batch_id"], doc["as_of"], created_at=doc["created_at"])
    if rows is not None:
        doc = json.loads((path / "manifest.json").read_text())
        doc["files"][name]["rows"] = rows
        (path / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.db
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_an_end_of_data_line_rejects_the_file(conn, tmp_path, ending):
    path = make_batch(tmp_path, tables=base_tables(n_rx=4))
    lines = (path / "prescriptions.csv").read_text().splitlines()
    # the manifest is made to agree with what COPY would load before the marker
    text = ending.join([*lines[:3], "\\.", *lines[3:]]) + ending
    _rewrite(path, "prescriptions.csv", text, rows=2)
    with pytest.raises(BatchRejected) as err:
        ingest(conn, path, NO_GX)
    assert "prescriptions.csv line 4: a line holding only \\. (PostgreSQL's end-of-data" in str(
        err.value
    )
    assert loaded_nothing(conn)


@pytest.mark.db
def test_an_end_of_data_line_at_the_end_rejects_the_file(conn, tmp_path):
    path = make_batch(tmp_path)
    text = (path / "patients.csv").read_text() + "\\."
    _rewrite(path, "patients.csv", text)
    with pytest.raises(BatchRejected) as err:
        ingest(conn, path, NO_GX)
    # COPY itself may take it as a short row; either way it is line 4, rejected
    assert "patients.csv line 4:" in str(err.value)
    assert loaded_nothing(conn)


@pytest.mark.db
def test_a_quoted_end_of_data_value_is_data_not_a_marker(conn, tmp_path):
    tables = base_tables()
    tables["prescriptions"][0]["drug_name"] = "\\."
    path = make_batch(tmp_path, tables=tables)
    assert ingest(conn, path, NO_GX).status == "loaded"
    assert conn.execute(
        "select count(*) from core.prescriptions where drug_name = '\\.'"
    ).fetchone() == (1,)


@pytest.mark.db
def test_a_quoted_line_break_in_the_header_rejects_the_file(conn, tmp_path):
    path = make_batch(tmp_path)
    lines = (path / "patients.csv").read_text().splitlines()
    lines[0] = lines[0].replace("site_id", '"site\nid"')
    _rewrite(path, "patients.csv", "\n".join(lines) + "\n", rows=len(lines) - 2)
    with pytest.raises(BatchRejected) as err:
        ingest(conn, path, NO_GX)
    assert "patients.csv line 1: header holds a line break inside quotes" in str(err.value)
    assert loaded_nothing(conn)


@pytest.mark.db
def test_line_breaks_inside_quoted_fields_still_load(conn, tmp_path):
    tables = base_tables(n_rx=3)
    tables["prescriptions"][1]["drug_name"] = "Sertraline\n50 mg\r\ntablet"
    tables["prescriptions"][2]["drug_name"] = "Fluoxetine\n20 mg"
    path = make_batch(tmp_path, tables=tables)
    assert count_rows(path / "prescriptions.csv") == 3
    result = ingest(conn, path, NO_GX)
    assert result.status == "loaded"
    assert conn.execute("select count(*) from core.prescriptions").fetchone() == (3,)


@pytest.mark.db
def test_a_file_without_a_final_line_break_loads(conn, tmp_path):
    path = make_batch(tmp_path)
    _rewrite(path, "patients.csv", (path / "patients.csv").read_text().rstrip("\n"))
    assert ingest(conn, path, NO_GX).status == "loaded"


@pytest.mark.db
def test_a_symlinked_manifest_is_refused(conn, tmp_path):
    path = make_batch(tmp_path)
    real = tmp_path / "elsewhere.json"
    (path / "manifest.json").rename(real)
    os.symlink(real, path / "manifest.json")
    with pytest.raises(BatchRejected) as err:
        ingest(conn, path, NO_GX)
    assert "manifest.json is a symbolic link" in str(err.value)
    assert loaded_nothing(conn)


@pytest.mark.unit
def test_a_file_listed_twice_is_refused():
    entry = '{"sha256": "%s", "rows": 1}'
    text = (
        '{"batch_id": "b", "schema_version": "1.1", "as_of": "2025-12-31", "files": {'
        f'"patients.csv": {entry % ("0" * 64)}, "patients.csv": {entry % ("1" * 64)},'
        f'"diagnoses.csv": {entry % ("0" * 64)}, "prescriptions.csv": {entry % ("0" * 64)},'
        f'"therapy_sessions.csv": {entry % ("0" * 64)}}}}}'
    )
    with pytest.raises(BatchRejected) as err:
        parse_manifest(text.encode())
    assert "a key appears twice in one object ('patients.csv')" in str(err.value)


@pytest.mark.unit
def test_a_repeated_unknown_key_is_not_echoed():
    text = '{"batch_id": "b", "ssn-123-45-6789": 1, "ssn-123-45-6789": 2}'
    with pytest.raises(BatchRejected) as err:
        parse_manifest(text.encode())
    assert "a key outside the format" in str(err.value)
    assert "6789" not in str(err.value)


@pytest.mark.unit
def test_records_not_all_loaded_reject_the_file():
    from audit.ingest.stage import LineScan as _LineScan

    scan = _LineScan("prescriptions.csv")
    for chunk in (b"a,b\n1,2\n3,", b'"x\ny"\n5,6\n'):
        scan.feed(chunk)
    scan.check(rows=3, embedded=1)  # header, 3 records, one break inside quotes
    with pytest.raises(BatchRejected) as err:
        scan.check(rows=2, embedded=1)
    assert "prescriptions.csv: 2 rows were loaded but the file's line breaks make 3" in str(
        err.value
    )


@pytest.mark.unit
@pytest.mark.parametrize("split", range(1, 12))
def test_an_end_of_data_line_is_found_across_chunk_boundaries(split):
    from audit.ingest.stage import LineScan as _LineScan

    data = b"a,b\n1,2\n\\.\r\n5,6\n"
    scan = _LineScan("patients.csv")
    with pytest.raises(BatchRejected) as err:
        scan.feed(data[:split])
        scan.feed(data[split:])
    assert "patients.csv line 3:" in str(err.value)


@pytest.mark.unit
def test_a_batch_id_that_looks_like_an_identifier_is_refused():
    text = json.dumps({"batch_id": "123-45-6789", "schema_version": "1.1", "as_of": "2025-12-31",
                       "files": {}})  # fmt: skip
    with pytest.raises(BatchRejected) as err:
        parse_manifest(text.encode())
    assert "'batch_id' looks like an SSN (de-identification guard)" in str(err.value)
    assert "6789" not in str(err.value)
