"""The pipeline against PostgreSQL's own COPY of the same files, side by side.

    python benchmarks/pipeline.py --patients 100000 [--seed 1]
    python benchmarks/pipeline.py --patients 100000 --compare-policies 2027.1,2027.2

With ``--compare-policies A,B`` (and ``--repeat N``, 3), after the full
pipeline the audit alone is run again under A and B in turn (A B A B ...),
each a full audit on the same loaded cohort, and ``policy_audit_s`` gives
each policy's audit seconds, their medians and the ratio B over A.

Generates a cohort with ``rxaudit generate`` (cached in benchmarks/.cache by
size and seed), then in one run measures

(a) the floor: ``COPY`` of the same CSV files into bare unlogged tables with
    no constraints or indexes, in a scratch database, after a checkpoint;
    the fastest of ``--floor-runs`` (3) such COPYs, since the floor itself
    varies from run to run and a slow one would flatter the ratio;
(b) the full pipeline, from batch folder to every report file, in another
    fresh database, by stage.

The last line printed is one JSON object: patients, rows, floor_s,
pipeline_s, ratio (pipeline over floor), peak_rss_mb of this Python process,
and the seconds of each stage. Uses DATABASE_URL's server (else the embedded
one); the two scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit import contract, db, pipeline, policy  # noqa: E402
from audit.generate import generate  # noqa: E402
from audit.ingest import LoadSettings  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"


def cohort(patients: int, seed: int) -> Path:
    path = CACHE / f"n{patients}-s{seed}"
    if not (path / "manifest.json").exists():
        print(f"generating {patients:,} patients into {path}", file=sys.stderr)
        tmp = CACHE / f".n{patients}-s{seed}.tmp"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        generate(patients, seed, tmp)
        tmp.rename(path)
    return path


def scratch_db(admin_url: str, name: str) -> str:
    with psycopg.connect(db.to_libpq(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(db.to_libpq(admin_url), dbname=name)


def drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(db.to_libpq(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def checkpoint(conn: psycopg.Connection) -> None:
    """Write out dirty pages now, where the role may (superuser or pg_checkpoint)."""
    try:
        conn.execute("checkpoint")
    except psycopg.errors.InsufficientPrivilege:
        pass


def floor(url: str, batch: Path, runs: int = 3) -> list[float]:
    """Seconds of ``runs`` COPYs of every file into bare unlogged tables of
    text columns (fresh tables each time)."""
    return [_floor_once(url, batch, f"f{i}_") for i in range(runs)]


def _floor_once(url: str, batch: Path, prefix: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        for spec in contract.FILES:
            if (batch / spec.file_name).exists():
                cols = sql.SQL(", ").join(
                    sql.SQL("{} text").format(sql.Identifier(c)) for c in spec.column_names
                )
                conn.execute(
                    sql.SQL("create unlogged table {} ({})").format(
                        sql.Identifier(prefix + spec.table), cols
                    )
                )
        checkpoint(conn)  # no dirty pages of an earlier run to write meanwhile
        t0 = time.perf_counter()
        for spec in contract.FILES:
            path = batch / spec.file_name
            if not path.exists():
                continue
            stmt = sql.SQL("copy {} from stdin with (format csv, header true)").format(
                sql.Identifier(prefix + spec.table)
            )
            with conn.cursor().copy(stmt) as copy, path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=3,
        help="COPY the files this many times; the floor is the fastest",
    )
    parser.add_argument(
        "--out", type=Path, help="write the report folder here (default: a temporary folder)"
    )
    parser.add_argument("--compare-policies", metavar="A,B",
                        help="then time the audit under two bundled policies in turn")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="audits per compared policy")
    args = parser.parse_args()
    compared: dict[str, list[float]] = {}

    batch = cohort(args.patients, args.seed)
    manifest = json.loads((batch / "manifest.json").read_text())
    rows = sum(f["rows"] for f in manifest["files"].values())
    admin = db.database_url()
    tag = f"rxaudit_bench_{os.getpid()}"
    try:
        floor_runs = floor(scratch_db(admin, tag + "_floor"), batch, args.floor_runs)
        floor_s = min(floor_runs)
        with psycopg.connect(db.to_libpq(admin), autocommit=True) as conn:
            checkpoint(conn)
        url = scratch_db(admin, tag + "_run")
        out = args.out or Path(tempfile.mkdtemp(prefix="rxaudit-bench-"))
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        with db.session(url) as conn:
            t = time.perf_counter()
            results = pipeline.ingest_batches(conn, [batch], LoadSettings())
            stages["ingest"] = time.perf_counter() - t
            for k, v in results[0].get("timings_s", {}).items():
                stages[f"ingest.{k}"] = v
            summary = pipeline.audit(conn, policy.load(), results)
            for k in ("derive", "rules", "pathway", "cases", "measures"):
                stages[f"audit.{k}"] = summary["timings_s"].get(k, 0.0)
            t = time.perf_counter()
            pipeline.report(conn, summary, out, shared=True)
            stages["reports"] = time.perf_counter() - t
        pipeline_s = time.perf_counter() - t0
        dashboard_mb = (out / "latest" / "dashboard.html").stat().st_size / 1e6
        if args.compare_policies:
            names = args.compare_policies.split(",")
            with db.session(url) as conn:
                for _ in range(args.repeat):
                    for name in names:
                        t = time.perf_counter()
                        pipeline.audit(conn, policy.load(name), [], full=True)
                        compared.setdefault(name, []).append(time.perf_counter() - t)
                        print(f"audit under {name}: {compared[name][-1]:.1f} s", file=sys.stderr)
    finally:
        drop_db(admin, tag + "_floor")
        drop_db(admin, tag + "_run")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "patients": args.patients,
                "rows": rows,
                "floor_s": round(floor_s, 2),
                "floor_runs_s": [round(f, 2) for f in floor_runs],
                "pipeline_s": round(pipeline_s, 2),
                "ratio": round(pipeline_s / floor_s, 1),
                "peak_rss_mb": round(peak),
                "dashboard_mb": round(dashboard_mb, 2),
                "report_dir": str(out / "latest"),
                "stages_s": {k: round(v, 2) for k, v in stages.items()},
                **({"policy_audit_s": _compare(compared)} if compared else {}),
            }
        )
    )


def _compare(compared: dict[str, list[float]]) -> dict:
    import statistics

    medians = {k: statistics.median(v) for k, v in compared.items()}
    a, b = list(medians)[:2]
    return {"runs": {k: [round(x, 2) for x in v] for k, v in compared.items()},
            "median": {k: round(v, 2) for k, v in medians.items()},
            "ratio": round(medians[b] / medians[a], 3)}  # fmt: skip


if __name__ == "__main__":
    main()
