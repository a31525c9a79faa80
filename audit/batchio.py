"""Writing native batches: CSV files plus a manifest written last.

Used by the synthetic generator, the adapters and the tests. The manifest
lists every file with its SHA-256 and data-row count, as the extract format
requires.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from audit import contract
from audit.manifest import MANIFEST

#: The mapping report's note of the records dated after the patient's recorded death.
AFTER_DEATH = "records dated after the patient's recorded death (kept)"
MAPPING_REPORT_MAX_BYTES = 1 << 20


def mapping_report_of(batch_dir: Path) -> Path:
    """Where a converted batch's mapping report is: beside the batch folder."""
    batch_dir = Path(batch_dir)
    return batch_dir.parent / f"{batch_dir.name}.mapping.json"


def after_death_of(batch_dir: Path) -> dict | None:
    """The records dated after death that the batch's mapping report counts
    (``{file: {"rows": n, "lines": [...]}}``), or None: no report, or one
    that is not the adapters' (only contract file names and whole numbers
    are taken from it)."""
    path = mapping_report_of(batch_dir)
    try:
        if (
            not path.is_file()
            or path.is_symlink()
            or path.stat().st_size > MAPPING_REPORT_MAX_BYTES
        ):
            return None
        notes = json.loads(path.read_text(encoding="utf-8")).get("notes") or {}
        found = notes.get(AFTER_DEATH)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(found, dict) or not found:
        return None
    out = {}
    for name, v in found.items():
        ok = name in contract.FILES_BY_NAME and isinstance(v, dict)
        rows, lines = (v.get("rows"), v.get("lines")) if ok else (None, None)
        if not (isinstance(rows, int) and rows > 0 and isinstance(lines, list)
                and all(isinstance(n, int) and n > 1 for n in lines[:20])):  # fmt: skip
            return None
        out[name] = {"rows": rows, "lines": lines[:20]}
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_csv(path: Path, columns: Iterable[str], rows: Iterable[Mapping[str, object]]) -> int:
    """Write rows (missing keys become empty fields); return the row count."""
    columns = list(columns)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
            n += 1
    return n


def count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def write_manifest(
    batch_dir: Path,
    batch_id: str,
    as_of: dt.date | str,
    *,
    source: str = "rxaudit",
    created_at: str | None = None,
    rows: Mapping[str, int] | None = None,
    schema_version: str = "1.2",
    history_from: dt.date | str | None = None,
) -> dict:
    """Write ``manifest.json`` listing every CSV of the folder (written last)."""
    files = {}
    for path in sorted(batch_dir.glob("*.csv")):
        n = rows[path.name] if rows and path.name in rows else count_rows(path)
        files[path.name] = {"sha256": sha256_of(path), "rows": n}
    doc = {
        "batch_id": batch_id,
        "schema_version": schema_version,
        "source": source,
        "as_of": str(as_of),
        **({"history_from": str(history_from)} if history_from else {}),
        "created_at": created_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
    }
    (batch_dir / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def write_batch(
    batch_dir: Path,
    batch_id: str,
    as_of: dt.date | str,
    tables: Mapping[str, Iterable[Mapping[str, object]]],
    **manifest_fields,
) -> dict:
    """Write a batch folder: the given tables (required ones empty if absent),
    with the columns of its schema version (``schema_version``, default 1.2)."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    version = str(manifest_fields.get("schema_version", "1.2"))
    for spec in contract.FILES:
        if spec.table in tables or spec.required:
            write_csv(
                batch_dir / spec.file_name,
                spec.column_names_for(version),
                tables.get(spec.table, []),
            )
    return write_manifest(batch_dir, batch_id, as_of, **manifest_fields)
