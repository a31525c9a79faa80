"""The reliability table: inbox faults, concurrent loads, a killed audit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from audit import db, orchestrate
from audit.batchio import write_batch
from audit.generate import generate
from audit.ingest import ingest
from tests.batches import base_tables, make_batch

pytestmark = pytest.mark.db


def test_half_written_batches_are_never_read_and_order_follows_created_at(db_url, tmp_path):
    inbox = tmp_path / "inbox"
    # Folder names sort opposite to their created_at.
    make_batch(inbox, "a-late", created_at="2026-01-02T00:00:00Z")
    early = base_tables()
    for row in early["prescriptions"]:
        row["rx_id"] = "rx-early"
    make_batch(inbox, "z-early", tables=early, created_at="2026-01-01T00:00:00Z")
    half = inbox / "b-half"
    write_batch(half, "b-half", "2025-12-31", base_tables())
    (half / "manifest.json").unlink()  # the producer has not finished
    result = orchestrate.ingest_inbox(inbox, db_url)
    assert result.loaded == ["z-early", "a-late"]
    assert result.waiting == ["b-half"]
    assert (inbox / "b-half" / "patients.csv").exists()  # untouched, not moved
    with psycopg.connect(db.to_libpq(db_url)) as conn:
        order = conn.execute("select batch_id from audit.batches order by batch_no").fetchall()
    assert order == [("z-early",), ("a-late",)]
    again = orchestrate.ingest_inbox(inbox, db_url)  # a retry finds nothing new
    assert (again.loaded, again.rejected) == ([], [])


def test_rejected_inbox_batch_is_kept_with_its_reason(db_url, tmp_path):
    inbox = tmp_path / "inbox"
    bad = make_batch(inbox, "bad-1")
    (bad / "prescriptions.csv").write_text("rx_id\n")
    result = orchestrate.ingest_inbox(inbox, db_url)
    assert [r["batch"] for r in result.rejected] == ["bad-1"]
    kept = inbox / "rejected" / "bad-1"
    assert (kept / "manifest.json").exists() and (kept / "prescriptions.csv").exists()
    reason = (inbox / "rejected" / "bad-1.reason.txt").read_text()
    assert reason.startswith("batch bad-1 rejected: prescriptions.csv")


@pytest.mark.slow
def test_two_loads_at_once_run_one_after_the_other(db_url, tmp_path):
    generate(3000, 1, tmp_path / "one")
    generate(3000, 2, tmp_path / "two")
    env = {**os.environ, "DATABASE_URL": db_url}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit",
                "--quiet",
                "run",
                str(tmp_path / name),
                "--out",
                str(tmp_path / f"out-{name}"),
                "--allow-replace",  # two cohorts under the same ids: a deliberate replacement
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for name in ("one", "two")
    ]
    for p in procs:
        assert p.wait(600) == 0, p.stderr.read()
    with psycopg.connect(db.to_libpq(db_url)) as conn:
        assert (
            conn.execute("select count(*) from audit.batches where status = 'loaded'").fetchone()[0]
            == 2
        )
        # Line numbers come from a sequence the loader resets per file under its
        # lock: any interleaving would break the run 2..n+1 of each partition.
        rows = conn.execute(
            "select batch_no, min(line_no), max(line_no), count(*), count(distinct line_no)"
            " from core.prescriptions group by batch_no"
        ).fetchall()
        for _, low, high, n, distinct in rows:
            assert (low, high, distinct) == (2, n + 1, n)


def _cases(url: str) -> set[str]:
    with psycopg.connect(db.to_libpq(url)) as conn:
        return {r[0] for r in conn.execute("select case_id from audit.cases")}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["derive med_trials", "rule PSY-DELAYED", "measures"])
def test_sigkill_during_the_audit_keeps_the_previous_state(db_url, new_db, tmp_path, point):
    generate(4000, 5, tmp_path / "cohort")
    with db.connect(db_url) as conn:
        assert ingest(conn, tmp_path / "cohort").status == "loaded"
    env = {**os.environ, "DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit", "run", str(tmp_path / "cohort"), "--out",
         str(tmp_path / "out")], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    seen = False
    for line in proc.stderr:
        if line.rstrip().endswith(point):
            seen = True
            time.sleep(0.1)
            break
    assert seen, "the audit finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with psycopg.connect(db.to_libpq(db_url), autocommit=True) as watch:
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and watch.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid()"
            ).fetchone()[0]
        ):
            time.sleep(0.05)
        assert watch.execute("select count(*) from audit.runs").fetchone()[0] == 0
        assert watch.execute("select count(*) from audit.cases").fetchone()[0] == 0
        assert watch.execute("select count(*) from audit.measures").fetchone()[0] == 0
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "latest").exists()

    assert subprocess.run([sys.executable, "-m", "audit", "--quiet", "run",
                           str(tmp_path / "cohort"), "--out", str(tmp_path / "out")],
                          env=env, capture_output=True).returncode == 0  # fmt: skip
    reference = new_db()
    with db.connect(reference) as conn:
        ingest(conn, tmp_path / "cohort")
    assert subprocess.run([sys.executable, "-m", "audit", "--quiet", "run",
                           str(tmp_path / "cohort"), "--out", str(tmp_path / "ref")],
                          env={**env, "DATABASE_URL": reference},
                          capture_output=True).returncode == 0  # fmt: skip
    assert _cases(db_url) == _cases(reference) != set()
    run = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())
    assert run["cases"]["new"] == len(_cases(db_url))


@pytest.mark.slow
def test_three_concurrent_runs_each_report_their_own_run(db_url, tmp_path):
    """Each run's reports and printed summary are its own: an audit keeps a
    shared hold of the loader's lock until its reports are written, and each
    writer works in its own temporary folder."""
    import csv

    for seed in (1, 2, 3):
        generate(800, seed, tmp_path / f"c{seed}")
    env = {**os.environ, "DATABASE_URL": db_url}
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit",
                "--quiet",
                "run",
                str(tmp_path / f"c{seed}"),
                "--out",
                str(out),
                "--allow-replace",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in (1, 2, 3)
    ]
    printed = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
        printed.append(stdout)
    runs = set()
    for stdout in printed:
        run_id = stdout.split()[1].rstrip(":")
        open_cases = int(stdout.split(" open case(s)")[0].rsplit(" ", 1)[1])
        doc = json.loads((out / run_id / "run.json").read_text())
        assert doc["run_id"] == run_id and doc["cases"]["open"] == open_cases
        with (out / run_id / "flagged_cases.csv").open() as fh:
            rows = [r for r in csv.DictReader(fh) if r["status"] != "resolved"]
        assert rows and {r["last_seen_run"] for r in rows} == {run_id}
        assert sum(r["status"] == "open" for r in rows) == open_cases
        runs.add(run_id)
    assert len(runs) == 3
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.db
def test_a_failed_report_writer_leaves_no_run_folder(db_url, tmp_path, monkeypatch):
    from audit import pipeline, reports
    from audit.pipeline import ReportFailed

    monkeypatch.setenv("DATABASE_URL", db_url)
    generate(200, 4, tmp_path / "cohort")

    def broken(conn, run_id, run_dir, summary, shared=False):
        (run_dir / "flagged_cases.csv").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports, "write_reports", broken)
    with pytest.raises(ReportFailed):
        pipeline.run([tmp_path / "cohort"], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
