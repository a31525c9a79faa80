"""Reading a FHIR export: a Bulk Data folder's NDJSON files (plain or
gzip) or a folder of Bundles spooled by type into the same layout, line by
line and bounded in memory. A malformed file is one sentence naming it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

from audit.adapters import fhir_shape
from audit.adapters.common import ConversionReport
from audit.adapters.fhir_values import (
    KNOWN_TYPES,
    TYPES,
    said,
)
from audit.errors import UsageError

_FILE = re.compile(r"^(?P<type>[A-Za-z]+)(\.\d+)?\.ndjson(\.gz)?$")
#: A longer NDJSON line (one resource) or a larger Bundle file is refused:
#: no resource of these types is near it, and reading it would take the memory.
MAX_LINE_BYTES = 64 * 2**20
MAX_BUNDLE_BYTES = 256 * 2**20


class FhirError(UsageError):
    """A malformed export: one sentence naming the file, line and reason."""


# -- reading -----------------------------------------------------------------


def _open(path: Path):
    """The file's bytes (gzip undone); a symbolic link is refused, as the
    native loader refuses one: it may point outside the export."""
    if path.is_symlink():
        raise FhirError(f"{path.name} is a symbolic link: an export's files must be regular files")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _first_type(path: Path) -> str | None:
    """The resourceType of a file's first resource (for files not named by type)."""
    try:
        with _open(path) as fh:
            line = fh.readline(MAX_LINE_BYTES)
        kind = json.loads(line).get("resourceType") if line.strip() else None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, AttributeError, RecursionError,
            FhirError):  # fmt: skip
        return None  # read_ndjson names the fault when the file is read
    return kind if isinstance(kind, str) else None


#: A Bulk Data export manifest is small; a larger JSON file is not one.
MAX_BULK_MANIFEST_BYTES = 1024 * 1024


def bulk_since(src: Path) -> dt.date | None:
    """The ``_since`` of a Bulk Data export (its manifest's ``request`` URL):
    the first date the export covers. None when there is no manifest, it
    names no ``_since``, or it cannot be read (it is metadata, never data)."""
    from urllib.parse import parse_qs, urlsplit

    for path in sorted(src.iterdir()):
        if path.suffix.lower() != ".json" or not path.is_file():
            continue
        if path.stat().st_size > MAX_BULK_MANIFEST_BYTES:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("request"), str):
            continue
        if "output" not in doc or "transactionTime" not in doc:
            continue
        values = parse_qs(urlsplit(doc["request"]).query).get("_since") or []
        try:
            return dt.date.fromisoformat(values[0][:10]) if values else None
        except ValueError:
            return None
    return None


def bulk_files(src: Path) -> dict[str, list[Path]]:
    """The NDJSON files of a bulk export folder, by resource type.

    ``Patient.ndjson``, ``Patient.000.ndjson``, ``patient.ndjson.gz``: the type
    is in the name (any case). A file named otherwise (``<uuid>.ndjson``, as
    some servers write) is typed by its first resource.
    """
    known = {t.lower(): t for t in TYPES}
    out: dict[str, list[Path]] = {}
    for path in sorted(src.iterdir()):
        name = path.name.lower()
        if not (path.is_file() or path.is_symlink()) or name == "log.ndjson":
            continue
        if not (name.endswith(".ndjson") or name.endswith(".ndjson.gz")):
            continue
        m = _FILE.match(path.name)
        kind = known.get(m.group("type").lower()) if m else None
        if kind is None:
            kind = _first_type(path) or (m.group("type") if m else path.name)
        out.setdefault(kind, []).append(path)
    return out


def read_ndjson(path: Path, expected_type: str, report: ConversionReport) -> Iterator[dict]:
    """The resources of one NDJSON file; a line that is not JSON is an error."""
    name = path.name
    try:
        with _open(path) as fh:
            line_no = 0
            while line := fh.readline(MAX_LINE_BYTES + 1):
                line_no += 1
                if len(line) > MAX_LINE_BYTES:
                    raise FhirError(
                        f"{name} line {line_no}: a resource of more than"
                        f" {MAX_LINE_BYTES // 2**20} MiB (a corrupt file?)"
                    )
                if not line.strip():
                    continue
                try:
                    resource = fhir_shape.loads(line.decode("utf-8"))
                except json.JSONDecodeError as exc:
                    raise FhirError(
                        f"{name} line {line_no} column {exc.colno}: not a JSON resource"
                        f" ({exc.msg}; a truncated line?)"
                    ) from None
                except fhir_shape.ShapeError as exc:
                    raise FhirError(f"{name} line {line_no}: the resource {exc}") from None
                if not isinstance(resource, dict):
                    raise FhirError(f"{name} line {line_no}: not a JSON object")
                try:
                    fhir_shape.check(resource)
                except fhir_shape.ShapeError as exc:
                    raise FhirError(f"{name} line {line_no}: {exc}") from None
                kind = resource.get("resourceType")
                if kind != expected_type:
                    report.drop(f"{expected_type} (file)",
                                f"resource of type {said(kind, KNOWN_TYPES)} skipped")  # fmt: skip
                    continue
                yield resource
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FhirError(f"{name}: cannot be read ({type(exc).__name__})") from None


def spool_bundles(src: Path, work: Path, report: ConversionReport) -> Path:
    """Split a folder of Bundle JSON files into ``<Type>.ndjson`` files."""
    files = sorted(p for p in src.iterdir()
                   if (p.is_file() or p.is_symlink()) and p.suffix.lower() == ".json")  # fmt: skip
    if not files:
        raise FhirError(f"{src} holds neither NDJSON files nor Bundle JSON files")
    spool = work / "spool"
    spool.mkdir()
    handles: dict[str, object] = {}
    try:
        for path in files:
            if path.stat().st_size > MAX_BUNDLE_BYTES:
                raise FhirError(
                    f"{path.name}: a Bundle of more than {MAX_BUNDLE_BYTES // 2**20} MiB;"
                    " export large data as bulk NDJSON"
                )
            if path.is_symlink():
                raise FhirError(f"{path.name} is a symbolic link: an export's files must be"
                                " regular files")  # fmt: skip
            try:
                with path.open(encoding="utf-8") as fh:
                    doc = fhir_shape.loads(fh.read())
                if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                    fhir_shape.check(doc)
            except fhir_shape.ShapeError as exc:
                raise FhirError(f"{path.name}: the Bundle {exc}") from None
            except json.JSONDecodeError as exc:
                raise FhirError(
                    f"{path.name} line {exc.lineno} column {exc.colno}: not JSON ({exc.msg})"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise FhirError(f"{path.name}: cannot be read ({type(exc).__name__})") from None
            if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
                report.drop("Bundle (file)", "a JSON file that is not a Bundle skipped")
                continue
            report.table("Bundle").read += 1
            for entry in doc.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    report.drop("Bundle", "entry without a resource")
                    continue
                kind = resource["resourceType"]
                if kind not in TYPES:
                    report.drop("Bundle", f"{said(kind, KNOWN_TYPES)} not used")
                    continue
                # a transaction's fullUrl (urn:uuid:...) is what its references use
                full = entry.get("fullUrl")
                if isinstance(full, str) and full.startswith("urn:uuid:") and "id" not in resource:
                    resource["id"] = full[len("urn:uuid:") :]
                fh = handles.get(kind)
                if fh is None:
                    fh = handles[kind] = (spool / f"{kind}.ndjson").open("w", encoding="utf-8")
                fh.write(json.dumps(resource, separators=(",", ":")) + "\n")
    finally:
        for fh in handles.values():
            fh.close()
    return spool
