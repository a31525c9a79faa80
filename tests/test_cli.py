"""The rxaudit command line: exit codes, one-sentence errors, run.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from audit.cli import main
from tests.batches import base_tables, make_batch


@pytest.mark.db
def test_run_writes_run_json_and_latest(db_url, tmp_path, capsys):
    batch = make_batch(tmp_path / "in")
    code = main(["--quiet", "run", str(batch), "--out", str(tmp_path / "out")])
    assert code == 0
    out = capsys.readouterr().out
    assert "1 batch(es) loaded" in out and out.count("\n") == 1
    run = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())
    assert run["as_of"] == "2025-12-31"
    assert run["batches"][0]["status"] == "loaded"
    assert run["rows_in"] == 5
    assert (tmp_path / "out" / "latest").resolve().name == run["run_id"]
    assert set(run["batches"][0]["timings_s"]) == {
        "copy",
        "guard",
        "validate",
        "quarantine",
        "merge",
    }


@pytest.mark.db
def test_a_rerun_is_incremental_unless_a_full_audit_is_asked_for(db_url, tmp_path, capsys):
    batch = make_batch(tmp_path / "in")
    out = tmp_path / "out"
    modes = []
    for extra in ([], [], ["--full-audit"]):
        assert main(["--quiet", "run", str(batch), "--out", str(out), *extra]) == 0
        modes.append(json.loads((out / "latest" / "run.json").read_text())["evaluation"])
    assert modes == [
        {"mode": "full", "reason": "first audit", "touched_patients": None},
        {"mode": "incremental", "reason": "0 patient(s) touched", "touched_patients": 0},
        {"mode": "full", "reason": "a full evaluation was asked for", "touched_patients": None},
    ]


@pytest.mark.db
def test_rejected_batch_exits_3_with_one_sentence(db_url, tmp_path):
    tables = base_tables()
    tables["prescriptions"][0]["drug_name"] = "jane@example.org"
    batch = make_batch(tmp_path / "in", tables=tables)
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "--quiet", "run", str(batch), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DATABASE_URL": db_url},
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "rxaudit: batch b-001 rejected: prescriptions.csv line 2 column drug_name: "
        "value looks like an e-mail address (de-identification guard)"
    ]
    assert "Traceback" not in proc.stderr and "jane@example.org" not in proc.stderr
    run = json.loads((tmp_path / "o" / "latest" / "run.json").read_text())
    assert run["counts"] == {"loaded": 0, "duplicate": 0, "rejected": 1}
    assert "jane@example.org" not in json.dumps(run)


@pytest.mark.db
def test_later_batches_load_after_a_rejected_one(db_url, tmp_path, capsys):
    bad = make_batch(tmp_path / "a", "b-bad")
    (bad / "notes.txt").write_text("x")
    good = make_batch(tmp_path / "b", "b-good")
    code = main(["--quiet", "run", str(bad), str(good), "--out", str(tmp_path / "out")])
    assert code == 3
    run = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())
    assert [b["status"] for b in run["batches"]] == ["rejected", "loaded"]


@pytest.mark.unit
def test_unreachable_database_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://rx:s3cret@127.0.0.1:1/nowhere")
    batch = make_batch(tmp_path)
    code = main(["--quiet", "run", str(batch), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 4
    assert err.strip() == "rxaudit: cannot reach the database at 127.0.0.1:1/nowhere"
    assert "s3cret" not in err


@pytest.mark.unit
def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2
    assert main([]) == 2


@pytest.mark.db
def test_db_upgrade_is_idempotent(db_url, capsys):
    assert main(["db", "upgrade"]) == 0
    assert "0 migration(s) applied, schema current" in capsys.readouterr().out
