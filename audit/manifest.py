"""Reading and checking a batch's ``manifest.json`` against its folder.

Checks made here, before anything touches the database: the manifest exists,
is small, is a JSON object of the documented shape, names a known schema
version, lists every CSV of the folder and nothing else, and lists every
required file. The SHA-256 and row counts are checked while the files stream
into PostgreSQL (:mod:`audit.ingest`), so each file is read once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from audit import contract
from audit.errors import BatchRejected

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20  # 1 MiB: a manifest lists at most 8 files

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class FileEntry:
    name: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    batch_id: str
    schema_version: str
    source: str | None
    as_of: dt.date
    history_from: dt.date | None
    created_at: dt.datetime | None
    files: dict[str, FileEntry]
    raw: dict
    content_sha256: str


#: The keys a manifest may hold (extract-format.md); any other key rejects it.
MANIFEST_KEYS = frozenset(
    {"batch_id", "schema_version", "source", "as_of", "created_at", "history_from", "files"}
)

#: Days an as_of may lie after today or after created_at (time zones).
AS_OF_TOLERANCE_DAYS = 1


def _reject(reason: str, line: int | None = None, column: str | None = None) -> BatchRejected:
    return BatchRejected(reason, file=MANIFEST, line=line, column=column)


def _parse_date(value: object, field: str) -> dt.date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise _reject(f"'{field}' must be a date YYYY-MM-DD", column=field)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _reject(f"'{field}' is not a calendar date", column=field) from None


def _parse_timestamp(value: object, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise _reject(f"'{field}' must be an ISO 8601 timestamp", column=field)
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _reject(f"'{field}' must be an ISO 8601 timestamp", column=field) from None
    if ts.tzinfo is None:
        # without a zone the moment is unknown, and so is the batch's order
        raise _reject(
            f"'{field}' must give its time zone (e.g. 2026-11-01T02:00:00Z or +01:00)",
            column=field,
        )
    return ts


class _RepeatedKey(ValueError):
    def __init__(self, key: str):
        from audit import contract

        known = key in MANIFEST_KEYS or contract.spec_for_file(key) is not None
        self.where = f"'{key}'" if known else "a key outside the format"
        super().__init__(self.where)


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            raise _RepeatedKey(key)
        doc[key] = value
    return doc


def parse_manifest(data: bytes) -> Manifest:
    """Parse manifest bytes; every fault is a :class:`BatchRejected`."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise _reject(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _reject("manifest is not UTF-8") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        raise _reject(f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except _RepeatedKey as exc:
        # e.g. a file listed twice with two checksums: JSON keeps the last
        # silently, so which one is meant is not known.
        rejected = _reject(f"a key appears twice in one object ({exc.where})")
        batch_id = _batch_id_of(text)
        raise (rejected.with_batch(batch_id) if batch_id else rejected) from None
    if not isinstance(doc, dict):
        raise _reject("manifest must be a JSON object")
    unknown = sorted(k for k in doc if k not in MANIFEST_KEYS)
    if unknown:
        # never stored, never echoed: an extra key may hold anything
        raise _reject(
            f"{len(unknown)} key(s) outside the extract format (known: "
            f"{', '.join(sorted(MANIFEST_KEYS))})"
        )

    batch_id = doc.get("batch_id")
    if not isinstance(batch_id, str) or not re.fullmatch(contract.BATCH_ID_PATTERN, batch_id):
        raise _reject("'batch_id' must be 1-128 characters of A-Z a-z 0-9 . _ -", column="batch_id")
    from audit import guard

    if kind := guard.value_kind(batch_id):
        # the batch id is printed in every report and message: it is guarded too
        raise _reject(f"'batch_id' looks like {kind} (de-identification guard)", column="batch_id")
    try:
        return _parse_rest(doc, batch_id)
    except BatchRejected as exc:
        # every refusal of a readable batch id is recorded under that id
        raise exc.with_batch(batch_id) from None


def _batch_id_of(text: str) -> str | None:
    """The manifest's batch id when it is readable and well formed, else None."""
    from audit import guard

    try:
        doc = json.loads(text)
    except ValueError:
        return None
    batch_id = doc.get("batch_id") if isinstance(doc, dict) else None
    if not isinstance(batch_id, str) or not re.fullmatch(contract.BATCH_ID_PATTERN, batch_id):
        return None
    return None if guard.value_kind(batch_id) else batch_id


def _parse_rest(doc: dict, batch_id: str) -> Manifest:
    from audit import guard

    version = doc.get("schema_version")
    if not isinstance(version, str) or version not in contract.SCHEMA_VERSIONS:
        known = ", ".join(sorted(contract.SCHEMA_VERSIONS))
        raise _reject(
            f"unknown schema_version (this loader knows {known})", column="schema_version"
        )
    source = doc.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > 200):
        raise _reject("'source' must be a short text", column="source")
    if source is not None:
        # one source, one name: NFKC, surrounding and repeated spaces gone
        # (the manifest as delivered is kept); case is compared at the load
        source = " ".join(unicodedata.normalize("NFKC", source).split()) or None
        if source and any(unicodedata.category(ch)[0] == "C" for ch in source):
            raise _reject("'source' holds a control or format character", column="source")
    if source is not None:
        kind = guard.value_kind(source)
        if kind:
            raise _reject(f"'source' looks like {kind} (de-identification guard)", column="source")
    as_of = _parse_date(doc.get("as_of"), "as_of")
    created_at = _parse_timestamp(doc.get("created_at"), "created_at")
    # A future as_of would move every later audit (loaded batches are
    # immutable): refuse one after today or after the batch was made (one day
    # of tolerance for time zones).
    tolerance = dt.timedelta(days=AS_OF_TOLERANCE_DAYS)
    if as_of > dt.datetime.now(dt.UTC).date() + tolerance:
        raise _reject("'as_of' is in the future", column="as_of")
    if created_at is not None and as_of > created_at.astimezone(dt.UTC).date() + tolerance:
        raise _reject("'as_of' is after 'created_at' (an extract cannot be complete"
                      " through a date after it was made)", column="as_of")  # fmt: skip
    history_from = None
    if doc.get("history_from") is not None:
        history_from = _parse_date(doc["history_from"], "history_from")
        if not 1900 <= history_from.year <= 2099:
            # bounded as record dates are: year 1 would move everyone's history start
            raise _reject("'history_from' must lie in the years 1900 to 2099",
                          column="history_from")  # fmt: skip
        if history_from > as_of:
            raise _reject("'history_from' is after 'as_of'", column="history_from")

    files_doc = doc.get("files")
    if not isinstance(files_doc, dict) or not files_doc:
        raise _reject("'files' must be an object listing the batch's CSV files", column="files")
    files: dict[str, FileEntry] = {}
    for name, entry in files_doc.items():
        if contract.spec_for_file(name) is None:
            # Also refuses path traversal ("../x.csv", "/etc/passwd"): only
            # the plain file names of the extract format are accepted.
            raise _reject("'files' lists a file that is not part of the extract format")
        if not isinstance(entry, dict):
            raise _reject(f"entry for {name} must be an object", column="files")
        sha = entry.get("sha256")
        rows = entry.get("rows")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise _reject(f"sha256 of {name} must be 64 hex digits", column="files")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise _reject(f"rows of {name} must be a whole number >= 0", column="files")
        files[name] = FileEntry(name, sha.lower(), rows)
    missing = [f.file_name for f in contract.FILES if f.required and f.file_name not in files]
    if missing:
        raise _reject(f"required file {missing[0]} is not listed", column="files")

    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return Manifest(
        batch_id=batch_id,
        schema_version=version,
        source=source,
        as_of=as_of,
        history_from=history_from,
        created_at=created_at,
        files=files,
        raw=doc,
        content_sha256=hashlib.sha256(canonical).hexdigest(),
    )


def read_manifest(batch_dir: Path) -> Manifest:
    """Read the manifest of ``batch_dir`` and check the folder against it."""
    if not batch_dir.is_dir():
        raise BatchRejected(f"{batch_dir.name} is not a folder")
    path = batch_dir / MANIFEST
    if path.is_symlink():
        raise BatchRejected("manifest.json is a symbolic link, not a regular file", file=MANIFEST)
    if not path.is_file():
        raise BatchRejected(
            "no manifest.json: the batch is incomplete (the producer writes it last)",
            file=MANIFEST,
        )
    with path.open("rb") as fh:
        data = fh.read(MAX_MANIFEST_BYTES + 1)
    manifest = parse_manifest(data)
    try:
        check_folder(batch_dir, manifest)
    except BatchRejected as exc:
        raise exc.with_batch(manifest.batch_id) from None
    return manifest


def check_folder(batch_dir: Path, manifest: Manifest) -> None:
    present = sorted(p.name for p in batch_dir.iterdir() if p.name != MANIFEST)
    for name in present:
        if name not in manifest.files:
            raise BatchRejected("file not listed in the manifest", file=name)
        if not (batch_dir / name).is_file() or (batch_dir / name).is_symlink():
            raise BatchRejected("not a regular file", file=name)
    for name in manifest.files:
        if name not in present:
            raise BatchRejected("listed in the manifest but missing from the folder", file=name)
