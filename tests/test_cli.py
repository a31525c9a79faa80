"""The rxaudit command line: exit codes, one-sentence errors, run.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from audit import db
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
        "values",
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
    # nothing new loaded, everything rejected: no audit, no report, no success line
    assert proc.stdout.strip() == (
        "nothing loaded: 1 batch(es) rejected; no audit run and no report written"
    )
    assert not (tmp_path / "o" / "latest").exists()


@pytest.mark.db
def test_a_folder_that_is_not_a_batch_is_named(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    (tmp_path / "docs").mkdir()
    code = main(["--quiet", "run", str(tmp_path / "docs"), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.strip() == (
        f"rxaudit: batch folder {tmp_path / 'docs'} rejected: manifest.json: no manifest.json:"
        " the batch is incomplete (the producer writes it last)"
    )
    assert captured.out.startswith("nothing loaded")


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
    assert err.strip() == "rxaudit: the server at 127.0.0.1:1 does not answer"
    assert "s3cret" not in err


@pytest.mark.db
def test_a_missing_database_on_a_live_server_is_named(tmp_path, monkeypatch, capsys, db_url):
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info["dbname"] = "rxaudit_no_such_db"
    monkeypatch.setenv("DATABASE_URL", psycopg.conninfo.make_conninfo(**info))
    code = main(["--quiet", "cases"])
    err = capsys.readouterr().err.strip()
    assert code == 4
    assert err.startswith("rxaudit: database 'rxaudit_no_such_db' does not exist on the server at")


@pytest.mark.unit
@pytest.mark.parametrize("url", ["mysql://u@h/db", "127.0.0.1:5432/db"])
def test_a_url_that_is_not_postgresql_is_a_usage_error(tmp_path, monkeypatch, capsys, url):
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(["--quiet", "cases"])
    assert code == 2
    assert "is not a PostgreSQL URL" in capsys.readouterr().err


@pytest.mark.unit
def test_out_is_checked_before_anything_loads(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    batch = make_batch(tmp_path)
    code = main(["--quiet", "run", str(batch), "--out", str(blocker / "reports")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert str(blocker / "reports") in err and "cannot create the folder" in err
    code = main(["--quiet", "run", str(batch), "--out", str(blocker)])
    assert code == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.unit
def test_options_with_fixed_values_refuse_others(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cases", "--review", "bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


@pytest.mark.db
def test_read_only_commands_create_nothing(tmp_path, monkeypatch, capsys, server_url):
    # against a server database without rxaudit's schema
    import psycopg
    from psycopg import sql

    name = f"rxaudit_empty_{os.getpid()}"
    admin = psycopg.connect(psycopg.conninfo.make_conninfo(db.to_libpq(server_url)),
                            autocommit=True)  # fmt: skip
    admin.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        url = psycopg.conninfo.make_conninfo(db.to_libpq(server_url), dbname=name)
        monkeypatch.setenv("DATABASE_URL", url)
        for argv in (
            ["cases"],
            ["batches"],
            ["batch", "show", "b-1"],
            ["review", "C1", "--status", "confirmed", "--note", "n", "--reviewer", "r"],
        ):
            assert main(["--quiet", *argv]) == 4, argv
            assert "no rxaudit database at" in capsys.readouterr().err
        with psycopg.connect(url) as conn:
            schemas = conn.execute(
                "select count(*) from pg_namespace where nspname in ('stage', 'core', 'audit')"
            ).fetchone()[0]
        assert schemas == 0
    finally:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))  # fmt: skip
        admin.close()
    # with no DATABASE_URL and an empty RXAUDIT_HOME: no embedded server is started
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("RXAUDIT_HOME", str(tmp_path / "home"))
    assert main(["--quiet", "cases"]) == 4
    assert "no rxaudit database at" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


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


@pytest.mark.db
def test_batches_and_batch_show_give_the_replacement_log(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    first = make_batch(tmp_path, "b-001", tables=base_tables(n_rx=2))
    fix = base_tables(n_rx=1)
    fix["prescriptions"][0]["days_supply"] = 90
    second = make_batch(tmp_path, "b-002", tables=fix, created_at="2026-01-02T02:00:00Z")
    assert main(["--quiet", "run", str(first), "--out", str(tmp_path / "o")]) == 0
    assert main(["--quiet", "run", str(second), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert main(["--quiet", "batches"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:-1]]
    assert [r["batch_id"] for r in rows] == ["b-001", "b-002"]
    # every file of b-002 re-sends records of b-001 (patients, one fill, ...)
    assert int(rows[1]["replaced"]) >= 2
    assert rows[1]["replaced_from"] == f"b-001 ({rows[1]['replaced']})"
    assert rows[1]["cases_resolved"] == "0"
    assert lines[-1] == "2 batch(es)"
    assert main(["--quiet", "batch", "show", "b-002"]) == 0
    out = capsys.readouterr().out
    assert "prescriptions.csv: 0 added, 1 replaced (from b-001 (1))" in out
    assert "\ncases_resolved: 0\n" in out  # as `rxaudit batches` lists it (hardening 3, 19)
    assert main(["--quiet", "batch", "show", "nope"]) == 2
