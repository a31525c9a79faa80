"""A run: ingest batches in order, then write the run's report folder.

``DIR/<run_id>/run.json`` records what the run did; ``DIR/latest`` points at
the newest run folder.
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

from audit import __version__, db
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
) -> dict:
    progress = progress or (lambda msg: None)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    run_id = new_run_id(started)
    results = []
    counts = {"loaded": 0, "duplicate": 0, "rejected": 0}
    with db.session() as conn:
        loader = Loader(conn, settings, progress)
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
        as_of = conn.execute(
            "select max(as_of) from audit.batches where status = 'loaded'"
        ).fetchone()[0]
        finished = dt.datetime.now(dt.UTC)
        summary = {
            "run_id": run_id,
            "rxaudit_version": __version__,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "as_of": as_of.isoformat() if as_of else None,
            "batches": results,
            "counts": counts,
            "rows_in": sum(r.get("rows_in", 0) for r in results),
            "rows_quarantined": sum(r.get("rows_quarantined", 0) for r in results),
            "timings_s": {"total": round(time.perf_counter() - t0, 3)},
        }
        conn.execute(
            "insert into audit.runs (run_id, started_at, finished_at, as_of, status, summary)"
            " values (%s, %s, %s, %s, %s, %s)",
            (
                run_id,
                started,
                finished,
                as_of,
                "rejected" if counts["rejected"] else "ok",
                Jsonb(summary),
            ),  # fmt: skip
        )
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / run_id
    run_dir.mkdir()
    write_json(run_dir / "run.json", summary)
    point_latest(out, run_dir)
    summary["report_dir"] = str(run_dir)
    return summary
