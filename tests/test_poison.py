"""A batch that cannot be loaded, for any reason, is rejected and recorded;
the other batches of the run load. Manifest values pass the guard."""

from __future__ import annotations

import json

import pytest

from audit import orchestrate
from audit.batchio import write_manifest
from audit.errors import BatchRejected
from audit.ingest import LoadSettings, ingest
from audit.manifest import parse_manifest
from audit.pipeline import ingest_batches
from tests.batches import base_tables, make_batch

NO_GX = LoadSettings()


def _with_extra_columns(path, n: int) -> None:
    csv = path / "patients.csv"
    lines = csv.read_text().splitlines()
    lines[0] += "".join(f",x{i}" for i in range(n))
    lines[1:] = [line + "," * n for line in lines[1:]]
    csv.write_text("\n".join(lines) + "\n")
    doc = json.loads((path / "manifest.json").read_text())
    write_manifest(path, doc["batch_id"], doc["as_of"], created_at=doc["created_at"])


@pytest.mark.db
def test_a_header_of_2000_columns_is_rejected_and_the_good_batch_loads(conn, tmp_path):
    poison = make_batch(tmp_path, "b-poison")
    _with_extra_columns(poison, 2000)
    good = make_batch(tmp_path, "b-good", tables=base_tables(n_rx=2))
    results = ingest_batches(conn, [poison, good], NO_GX)
    assert [r["status"] for r in results] == ["rejected", "loaded"]
    assert "header has 2,005 columns, more than the 200" in results[0]["reason"]
    rows = conn.execute(
        "select batch_id, outcome from audit.deliveries order by delivery_no"
    ).fetchall()
    assert rows == [("b-poison", "rejected"), ("b-good", "loaded")]


@pytest.mark.db
def test_any_fault_of_a_batch_rejects_it_and_the_next_loads(conn, tmp_path, monkeypatch):
    import psycopg

    from audit.ingest import stage

    real = stage.copy_file

    def poisoned(conn, path, spec, *args):
        if path.parent.name == "b-bad" and spec.table == "diagnoses":
            raise psycopg.errors.TooManyColumns("tables can have at most 1600 columns")
        return real(conn, path, spec, *args)

    monkeypatch.setattr(stage, "copy_file", poisoned)
    bad = make_batch(tmp_path, "b-bad")
    good = make_batch(tmp_path, "b-good", created_at="2026-01-02T02:00:00Z")
    results = ingest_batches(conn, [bad, good], NO_GX)
    assert [r["status"] for r in results] == ["rejected", "loaded"]
    assert results[0]["reason"] == (
        "batch b-bad rejected: could not be loaded (TooManyColumns); nothing of it was kept"
    )
    assert conn.execute("select status from audit.batches where batch_id = 'b-bad'").fetchone() == (
        "rejected",
    )
    assert (
        conn.execute(
            "select count(*) from core.patients where batch_no ="
            " (select batch_no from audit.batches where batch_id = 'b-bad')"
        ).fetchone()[0]
        == 0
    )


@pytest.mark.db
def test_the_inbox_moves_a_poison_batch_aside_with_its_reason(db_url, tmp_path):
    inbox = tmp_path / "inbox"
    poison = make_batch(inbox, "b-poison")
    _with_extra_columns(poison, 2000)
    make_batch(inbox, "b-good", created_at="2026-01-02T02:00:00Z")
    result = orchestrate.ingest_inbox(inbox, db_url, NO_GX)
    assert result.loaded == ["b-good"]
    assert [r["batch"] for r in result.rejected] == ["b-poison"]
    assert (inbox / "rejected" / "b-poison").is_dir()
    assert "columns" in (inbox / "rejected" / "b-poison.reason.txt").read_text()
    # a second pass finds nothing left to crash on
    again = orchestrate.ingest_inbox(inbox, db_url, NO_GX)
    assert again.loaded == [] and again.rejected == []


@pytest.mark.db
def test_a_manifest_level_rejection_is_recorded(conn, tmp_path):
    (tmp_path / "not-a-batch").mkdir()
    with pytest.raises(BatchRejected) as err:
        ingest(conn, tmp_path / "not-a-batch", NO_GX)
    assert f"batch folder {tmp_path / 'not-a-batch'} rejected" in str(err.value)
    [(outcome, reason)] = conn.execute("select outcome, reason from audit.deliveries").fetchall()
    assert outcome == "rejected" and "no manifest.json" in reason


def _doc(**extra) -> bytes:
    doc = {"batch_id": "b", "schema_version": "1.1", "as_of": "2025-12-31",
           "created_at": "2026-01-01T00:00:00Z",
           "files": {n: {"sha256": "0" * 64, "rows": 0} for n in
                     ("patients.csv", "diagnoses.csv", "prescriptions.csv",
                      "therapy_sessions.csv")}}  # fmt: skip
    return json.dumps({**doc, **extra}).encode()


@pytest.mark.unit
@pytest.mark.parametrize("source", ["123-45-6789", "jane@example.org", "http://host.example/x"])
def test_manifest_source_passes_the_guard(source):
    with pytest.raises(BatchRejected) as err:
        parse_manifest(_doc(source=source))
    assert "'source' looks like" in str(err.value) and source not in str(err.value)


@pytest.mark.unit
def test_unknown_manifest_keys_are_refused_without_echoing_them():
    with pytest.raises(BatchRejected) as err:
        parse_manifest(_doc(contact="jane@example.org"))
    assert "1 key(s) outside the extract format" in str(err.value)
    assert "jane" not in str(err.value) and "contact" not in str(err.value)
