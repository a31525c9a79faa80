"""Memory and speed of `rxaudit convert --from fhir` on a large generated export.

    python benchmarks/fhir_convert.py --patients 100000 [--seed 1] [--bundles]

Writes the synthetic cohort as a FHIR bulk export (``rxaudit generate
--format fhir``, cached in benchmarks/.cache), then converts it in a child
process and reports the export's size, the conversion's seconds and the
child's peak resident memory. ``--gzip`` converts the export gzipped. The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"


def export(patients: int, seed: int) -> Path:
    path = CACHE / f"fhir-n{patients}-s{seed}"
    if not (path / "export-manifest.json").exists():
        print(f"writing {patients:,} patients as a FHIR export into {path}", file=sys.stderr)
        if path.exists():
            shutil.rmtree(path)
        subprocess.run(
            [sys.executable, "-m", "audit", "--quiet", "generate", "--patients", str(patients),
             "--seed", str(seed), "--format", "fhir", "--out", str(path)],
            check=True, cwd=ROOT,
        )  # fmt: skip
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gzip", action="store_true", help="convert the export gzipped")
    args = parser.parse_args()
    src = export(args.patients, args.seed)
    work = Path(tempfile.mkdtemp(prefix="rxaudit-fhir-bench-"))
    try:
        if args.gzip:
            gz = work / "gz"
            gz.mkdir()
            for p in src.glob("*.ndjson"):
                with p.open("rb") as fin, gzip.open(gz / f"{p.name}.gz", "wb", 1) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            src = gz
        size = sum(p.stat().st_size for p in src.iterdir())
        env = {**os.environ, "RXAUDIT_TOKEN_KEY": os.environ.get(
            "RXAUDIT_TOKEN_KEY", "benchmark-key-not-a-secret")}  # fmt: skip
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "audit", "--quiet", "convert", "--from", "fhir", str(src),
             "--out", str(work / "batch")],
            check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.perf_counter() - t
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        manifest = json.loads((work / "batch" / "manifest.json").read_text())
        rows = sum(f["rows"] for f in manifest["files"].values())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "patients": args.patients, "export_mb": round(size / 2**20, 1), "gzip": args.gzip,
        "rows_out": rows, "convert_s": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024),
        "mb_per_s": round(size / 2**20 / seconds, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
