"""Which adapter converts a source, and what every conversion then does the
same way: Safe Harbor on birth years, the history start the user gives, and
the mapping report beside the batch."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from audit.adapters import fhir, omop, synthea
from audit.adapters.common import ConversionReport, Tokenizer, as_of_of
from audit.batchio import sha256_of
from audit.errors import UsageError


def _safe_harbor(out: Path, manifest: dict, report: ConversionReport) -> dict:
    """Safe Harbor in the converted batch itself: a birth year that makes the
    patient 90 or older at the batch's ``as_of`` is written as the latest
    such year (``as_of`` year - 90), so the batch still says "90 or older"
    (the loader keeps only that marker) but no real birth year of a patient
    over 89 is on disk, whatever becomes of the folder."""
    cutoff = as_of_of(manifest).year - 90
    path = out / "patients.csv"
    if not path.is_file():
        return manifest
    tmp = path.with_name(".patients.csv.tmp")
    changed = 0
    with (
        path.open(newline="", encoding="utf-8") as src,
        tmp.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\n")
        header = next(reader, None)
        if header is None or "birth_year" not in header:
            tmp.unlink()
            return manifest
        col = header.index("birth_year")
        writer.writerow(header)
        for row in reader:
            if col < len(row) and row[col].isdigit() and int(row[col]) < cutoff:
                row[col] = str(cutoff)
                changed += 1
            writer.writerow(row)
    if not changed:
        tmp.unlink()
        return manifest
    tmp.replace(path)
    files = {**manifest["files"], "patients.csv": {**manifest["files"]["patients.csv"],
                                                  "sha256": sha256_of(path)}}  # fmt: skip
    manifest = {**manifest, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    report.notes["age_90_plus"] = {"patients": changed,
                                   "birth_year": f"written as {cutoff} (90 or older)"}  # fmt: skip
    return manifest


def convert(
    kind: str, src: Path, out: Path, as_of: dt.date | None = None, site: str | None = None,
    key: str | None = None, order_supply_days: int | None = None,
    history_from: dt.date | None = None,
) -> tuple[dict, ConversionReport]:  # fmt: skip
    """Convert a source export into a native batch; return its manifest and report.

    ``history_from``: the first date the extract covers, as the user knows it
    (``--history-from``); it wins over what the source says (a FHIR bulk
    export's ``_since``). The mapping report says where the batch's came from."""
    src = Path(src)
    if not src.is_dir():
        raise UsageError(f"{src} is not a folder")
    if order_supply_days is not None and kind != "fhir":
        raise UsageError("--order-supply-days applies to --from fhir only")
    tokens = Tokenizer(key)
    if kind == "synthea":
        manifest, report = synthea.convert(src, Path(out), tokens, as_of, site)
    elif kind == "omop":
        manifest, report = omop.convert(src, Path(out), tokens, as_of, site)
    elif kind == "fhir":
        manifest, report = fhir.convert(
            src, Path(out), tokens, as_of, site,
            fhir.DEFAULT_ORDER_SUPPLY_DAYS if order_supply_days is None else order_supply_days,
        )  # fmt: skip
    else:
        raise UsageError(f"unknown source kind {kind!r}: omop, synthea or fhir")
    manifest = _safe_harbor(Path(out), manifest, report)
    if history_from is not None:
        if as_of_of(manifest) < history_from:
            raise UsageError(f"--history-from {history_from} is after the batch's as_of")
        manifest = {**manifest, "history_from": history_from.isoformat()}
        ordered = {k: manifest[k] for k in ("batch_id", "schema_version", "source", "as_of",
                                            "history_from") if k in manifest}  # fmt: skip
        manifest = {**ordered, **manifest}
        (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        report.notes["history_from"] = {"date": history_from.isoformat(), "from": "--history-from"}
    elif manifest.get("history_from") and "history_from" not in report.notes:
        report.notes["history_from"] = {"date": manifest["history_from"], "from": "the source"}
    (Path(out).parent / f"{Path(out).name}.mapping.json").write_text(
        json.dumps(report.as_json(), indent=2) + "\n"
    )
    return manifest, report
