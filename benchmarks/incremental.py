"""An incremental batch after a full load: its time as a share of the full run.

    python benchmarks/incremental.py --patients 100000 [--share 0.01]

Loads the cached cohort of benchmarks/pipeline.py into a fresh database (the
full run: ingest, audit, reports), then a second batch touching ``--share`` of
the patients: for each, one new fill, one new session, and a correction of one
of their earlier fills (same rx_id, a longer supply). Times the second run the
same way, once no autovacuum worker is busy with the load's rows any more and
after a checkpoint (as for a batch arriving the next night). The last line printed is JSON with both
times, the share, the seconds waited for autovacuum and the incremental run's
stages (its audit re-evaluates only the touched patients).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit import db, pipeline, policy  # noqa: E402
from audit.batchio import write_batch  # noqa: E402
from benchmarks.pipeline import checkpoint, cohort, drop_db, scratch_db  # noqa: E402


def touching_batch(full: Path, out: Path, share: float, seed: int) -> int:
    rng = random.Random(seed)
    with (full / "patients.csv").open(newline="") as fh:
        patients = [r["patient_id"] for r in csv.DictReader(fh)]
    chosen = set(rng.sample(patients, max(1, int(len(patients) * share))))
    corrections: dict[str, dict] = {}
    with (full / "prescriptions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["patient_id"] in chosen and row["patient_id"] not in corrections:
                corrections[row["patient_id"]] = dict(row, days_supply="90")
    manifest = json.loads((full / "manifest.json").read_text())
    as_of = manifest["as_of"]
    fills, sessions = list(corrections.values()), []
    for i, pid in enumerate(sorted(chosen)):
        fills.append({"rx_id": f"rx-inc-{i}", "patient_id": pid, "site_id": "site-01",
                      "drug_code_system": "RXNORM", "drug_code": "36437",
                      "drug_name": "Sertraline 50 MG Oral Tablet", "days_supply": 30,
                      "daily_dose_mg": 50, "filled_on": as_of, "setting": "outpatient"})  # fmt: skip
        sessions.append({"session_id": f"ses-inc-{i}", "patient_id": pid, "site_id": "site-01",
                         "session_date": as_of, "modality": "PE", "cpt_code": "90837"})  # fmt: skip
    write_batch(out, "incremental-001", as_of, {"prescriptions": fills,
                                                 "therapy_sessions": sessions})  # fmt: skip
    return len(chosen)


def timed_run(url: str, batch: Path, out: Path) -> tuple[float, dict]:
    """Seconds of one run, and its stages (ingest, audit parts, reports)."""
    t0 = time.perf_counter()
    with db.session(url) as conn:
        t = time.perf_counter()
        results = pipeline.ingest_batches(conn, [batch])
        assert results[0]["status"] == "loaded", results[0]
        stages = {"ingest": time.perf_counter() - t}
        summary = pipeline.audit(conn, policy.load(), results)
        for k in ("derive", "rules", "pathway", "cases", "measures"):
            stages[f"audit.{k}"] = summary["timings_s"].get(k, 0.0)
        t = time.perf_counter()
        pipeline.report(conn, summary, out)
        stages["reports"] = time.perf_counter() - t
    stages["mode"] = summary["evaluation"]["mode"]
    return time.perf_counter() - t0, stages


def settle(url: str, limit_s: float = 300.0) -> float:
    """Wait until no autovacuum worker runs on the database, then checkpoint;
    the seconds it took.

    A nightly batch arrives long after the load before it, when autovacuum has
    long finished with the load's new rows and its dirty pages are written;
    timed straight after the load, the incremental run would share two cores
    and the disk with them.
    """
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - t0 < limit_s:
            busy = conn.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and backend_type = 'autovacuum worker'"
            ).fetchone()[0]
            if not busy:
                break
            time.sleep(0.5)
        checkpoint(conn)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--share", type=float, default=0.01)
    args = parser.parse_args()
    full = cohort(args.patients, args.seed)
    work = Path(tempfile.mkdtemp(prefix="rxaudit-incremental-"))
    touched = touching_batch(full, work / "incremental-001", args.share, args.seed)
    admin = db.database_url()
    name = "rxaudit_bench_incremental"
    try:
        url = scratch_db(admin, name)
        full_s, _ = timed_run(url, full, work / "reports")
        settled_s = settle(url)
        incremental_s, stages = timed_run(url, work / "incremental-001", work / "reports")
    finally:
        drop_db(admin, name)
    print(
        json.dumps(
            {
                "patients": args.patients,
                "touched_patients": touched,
                "full_s": round(full_s, 2),
                "incremental_s": round(incremental_s, 2),
                "share": round(incremental_s / full_s, 3),
                "settled_after_s": round(settled_s, 1),
                "incremental_stages_s": {
                    k: round(v, 2) if isinstance(v, float) else v for k, v in stages.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
