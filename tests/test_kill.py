"""A load killed part-way (SIGKILL) leaves all or nothing; a re-run completes it."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from audit import contract, db
from audit.batchio import write_manifest
from audit.ingest import ingest
from tests.batches import base_tables, make_batch
from tests.test_loader import loaded_nothing

pytestmark = [pytest.mark.db, pytest.mark.slow]

N_FILLS = 150_000


def big_batch(root):
    """A valid batch whose prescriptions file takes a while to COPY."""
    path = make_batch(root, "big-001", tables=base_tables())
    template = base_tables()["prescriptions"][0]
    cols = contract.FILES_BY_TABLE["prescriptions"].column_names
    with (path / "prescriptions.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for i in range(N_FILLS):
            row = dict(template, rx_id=f"rx{i}", patient_id="p1" if i % 2 else "p2")
            w.writerow([row.get(c, "") for c in cols])
    write_manifest(path, "big-001", "2025-12-31", created_at="2026-01-01T00:00:00Z")
    return path


def core_digest(url: str) -> dict[str, str]:
    """A digest of every core table's business content (not batch numbers)."""
    out = {}
    with db.connect(url) as conn:
        for spec in contract.FILES:
            cols = ", ".join(("line_no", "is_current", *spec.column_names))
            out[spec.table] = conn.execute(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "  # noqa: S608
                f"from (select {cols} from core.{spec.table}) t"
            ).fetchone()[0]
    return out


def _other_backends(conn) -> int:
    return conn.execute(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid()"
    ).fetchone()[0]


def _in_copy(conn) -> bool:
    return bool(
        conn.execute(
            "select count(*) from pg_stat_progress_copy p join pg_database d on d.oid = p.datid "
            "where d.datname = current_database() and p.bytes_processed > 0"
        ).fetchone()[0]
    )


@pytest.mark.parametrize("point", ["copy", "validate", "quarantine", "merge"])
def test_sigkill_during_load_leaves_nothing_and_rerun_matches(db_url, new_db, tmp_path, point):
    batch = big_batch(tmp_path)
    env = dict(os.environ, DATABASE_URL=db_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit", "run", str(batch), "--out", str(tmp_path / "out")],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    killed_in = None
    with psycopg.connect(db.to_libpq(db_url), autocommit=True) as watch:
        deadline = time.monotonic() + 120
        if point == "copy":
            while time.monotonic() < deadline and proc.poll() is None:
                if _in_copy(watch):
                    killed_in = "copy"
                    break
                time.sleep(0.01)
        else:
            for line in proc.stderr:
                if line.rstrip().endswith(f"big-001: {point}"):
                    time.sleep(0.2)
                    killed_in = point
                    break
        assert killed_in == point, "the load finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        while _other_backends(watch) and time.monotonic() < deadline:
            time.sleep(0.05)  # the server notices the dead client and rolls back

    with db.connect(db_url) as conn:
        assert loaded_nothing(conn)
        assert conn.execute("select count(*) from audit.batches").fetchone()[0] == 0
        assert ingest(conn, batch).status == "loaded"

    reference = new_db()
    with db.connect(reference) as conn:
        assert ingest(conn, batch).status == "loaded"
    assert core_digest(db_url) == core_digest(reference)
    with db.connect(db_url) as conn:
        assert conn.execute("select count(*) from core.prescriptions").fetchone()[0] == N_FILLS
