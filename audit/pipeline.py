"""A run: ingest batches in order, audit, measure, write the report folder.

Each batch loads in its own transaction; the audit (rules, care pathway, case
states, measures) is one transaction; the report files are written after it
commits, into ``DIR/<run_id>/``, and ``DIR/latest`` then points at them.
``run.json`` is written last.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from psycopg.types.json import Jsonb

from audit import __version__, db, measures, policy, reports, rules
from audit.errors import BatchRejected
from audit.loader import Loader, LoadSettings


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def point_latest(out: Path, run_dir: Path) -> None:
    """Atomically make ``out/latest`` a symlink to ``run_dir``."""
    tmp = out / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, out / "latest")


def write_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def run(
    batch_dirs: list[Path],
    out: Path,
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
    policy_path: Path | None = None,
    shared: bool = False,
) -> dict:
    """Ingest ``batch_dirs`` in order, evaluate the rules, write the run folder."""
    progress = progress or (lambda msg: None)
    pol = policy.load(policy_path)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    run_id = new_run_id(started)
    results = []
    counts = {"loaded": 0, "duplicate": 0, "rejected": 0}
    timings: dict[str, float] = {}
    with db.session() as conn:
        loader = Loader(conn, settings, progress)
        t = time.perf_counter()
        for i, batch_dir in enumerate(batch_dirs, start=1):
            progress(f"batch {i} of {len(batch_dirs)}: {batch_dir}")
            try:
                result = loader.ingest(batch_dir)
                doc = result.as_json()
            except BatchRejected as exc:
                doc = {"batch_dir": str(batch_dir), "batch_id": exc.batch_id,
                       "status": "rejected", "reason": str(exc)}  # fmt: skip
            counts[doc["status"]] += 1
            results.append(doc)
        timings["ingest"] = time.perf_counter() - t

        t = time.perf_counter()
        with conn.transaction():
            db.take_loader_lock(conn)
            conn.execute(
                "insert into audit.runs (run_id, started_at, status, policy_version,"
                " policy_sha256) values (%s, %s, 'running', %s, %s)",
                (run_id, started, pol.version, pol.sha256),
            )
            audit = rules.evaluate(conn, pol, run_id, progress)
            progress("measures")
            tm = time.perf_counter()
            measures.compute(
                conn, run_id, {**pol.params(), "as_of": audit.as_of or rules.NOTHING_LOADED}
            )
            audit.timings["measures"] = time.perf_counter() - tm
            timings["audit"] = time.perf_counter() - t
            timings.update({k: v for k, v in audit.timings.items() if "." not in k})
            finished = dt.datetime.now(dt.UTC)
            timings["total"] = time.perf_counter() - t0
            summary = {
                "run_id": run_id,
                "rxaudit_version": __version__,
                "started_at": started.isoformat(timespec="seconds"),
                "finished_at": finished.isoformat(timespec="seconds"),
                "as_of": audit.as_of.isoformat() if audit.as_of else None,
                "policy": {"version": pol.version, "sha256": pol.sha256, "source": pol.source},
                "batches": results,
                "counts": counts,
                "rows_in": sum(r.get("rows_in", 0) for r in results),
                "rows_quarantined": sum(r.get("rows_quarantined", 0) for r in results),
                "cohort_patients": audit.cohort_patients,
                "cases": {
                    "open": audit.open_cases,
                    "excluded": audit.excluded_cases,
                    "new": audit.new_cases,
                    "persisting": audit.persisting_cases,
                    "resolved": audit.resolved_cases,
                    "by_rule": audit.cases_by_rule,
                },
                "timings_s": {k: round(v, 3) for k, v in timings.items()},
            }
            conn.execute(
                "update audit.runs set finished_at = %s, as_of = %s, status = %s, summary = %s"
                " where run_id = %s",
                (
                    finished,
                    audit.as_of,
                    "rejected" if counts["rejected"] else "ok",
                    Jsonb(summary),
                    run_id,
                ),  # fmt: skip
            )
        out.mkdir(parents=True, exist_ok=True)
        run_dir = out / run_id
        run_dir.mkdir()
        progress("reports")
        t = time.perf_counter()
        summary["report_files"] = reports.write_reports(conn, run_id, run_dir, summary, shared)
        summary["timings_s"]["reports"] = round(time.perf_counter() - t, 3)
    write_json(run_dir / "run.json", summary)
    point_latest(out, run_dir)
    summary["report_dir"] = str(run_dir)
    return summary
