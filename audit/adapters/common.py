"""What every adapter shares: tokens, the native writer, the mapping report."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from audit import contract
from audit.batchio import AFTER_DEATH, write_manifest
from audit.errors import UsageError

TOKEN_KEY_ENV = "RXAUDIT_TOKEN_KEY"
MIN_KEY_LENGTH = 16

# Psychotherapy: CPT-4 codes, and words naming a trauma-focused protocol.
PSYCHOTHERAPY_CPT = {"90832", "90833", "90834", "90836", "90837", "90838", "90839", "90840",
                     "90845", "90846", "90847", "90849", "90853"}  # fmt: skip
PSYCHOTHERAPY_WORDS = re.compile(
    r"psychotherap|cognitive[- ]behaviou?ral therapy|cognitive processing|prolonged exposure"
    r"|exposure therapy|eye movement desensiti[sz]ation|\bemdr\b|narrative exposure"
    r"|written exposure|counsel+ing",
    re.IGNORECASE,
)
# Source words -> native modality. Order matters: the first match wins.
MODALITY_RULES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"prolonged exposure", re.I), "PE"),
    (re.compile(r"cognitive processing", re.I), "CPT"),
    (re.compile(r"eye movement desensiti[sz]ation|\bemdr\b", re.I), "EMDR"),
    (re.compile(r"narrative exposure", re.I), "NET"),
    (re.compile(r"written exposure", re.I), "WET"),
    (re.compile(r"supportive", re.I), "SUPPORTIVE"),
    (re.compile(r"stabili[sz]ation", re.I), "STABILIZATION"),
    (re.compile(r"skills", re.I), "SKILLS"),
)
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*MG(?![A-Z/])", re.IGNORECASE)


def modality_of(*texts: str | None) -> str:
    for text in texts:
        for pattern, modality in MODALITY_RULES:
            if text and pattern.search(text):
                return modality
    return "UNKNOWN"


def strength_mg(description: str | None) -> float | None:
    """The single strength of a product description ("Sertraline 100MG" -> 100)."""
    found = _STRENGTH.findall(description or "")
    return float(found[0]) if len(found) == 1 else None


def parse_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


#: Format characters (zero-width spaces and joiners, soft hyphen, BOM,
#: direction marks): never part of a code.
_FORMAT = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
#: What a clean code may hold.
CODE_CHARS = re.compile(r"^[A-Za-z0-9.\-]*$")


def normal_code(value: object) -> str:
    """A code as the source meant it: NFKC (full-width letters and digits
    become ASCII), format characters and every kind of space removed (the
    audit's SQL reads codes the same way, ``audit.clean_code``)."""
    text = "" if value is None else str(value)
    if text.isascii() and " " not in text and "\t" not in text:
        return text
    return "".join(unicodedata.normalize("NFKC", _FORMAT.sub("", text)).split())


def clean_code(value: str | None) -> str:
    """Source codes, normalised, without pandas' float artefact ("47505003.0")."""
    value = normal_code((value or "").strip())
    return value[:-2] if re.fullmatch(r"\d+\.0", value) else value


class Tokenizer:
    """Opaque, stable tokens for source ids: HMAC-SHA-256 with a secret key.

    The same key gives the same token for the same source id, across extracts;
    without the key a token cannot be traced back. The key comes from the
    environment (``RXAUDIT_TOKEN_KEY``), never from a file of the project.
    """

    def __init__(self, key: str | None = None) -> None:
        key = key if key is not None else os.environ.get(TOKEN_KEY_ENV, "")
        if len(key) < MIN_KEY_LENGTH:
            raise UsageError(
                f"set {TOKEN_KEY_ENV} to a secret of at least {MIN_KEY_LENGTH} characters: "
                "it turns source ids into tokens"
            )
        self._key = key.encode()

    def __call__(self, kind: str, *parts: object) -> str:
        msg = "\x1f".join([kind, *(str(p) for p in parts)]).encode()
        return f"{kind}-{hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:24]}"


#: The date a record of each file is of (a record after the patient's death is counted).
RECORD_DATE = {
    spec.table: next(c.name for c in spec.columns if c.kind == contract.DATE)
    for spec in contract.FILES
    if spec.table != "patients" and any(c.kind == contract.DATE for c in spec.columns)
}


@dataclass
class TableReport:
    read: int = 0
    written: int = 0
    dropped: Counter = field(default_factory=Counter)


@dataclass
class ConversionReport:
    source: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    unmapped: dict[str, Counter] = field(default_factory=dict)
    cannot_fill: dict[str, list[str]] = field(default_factory=dict)
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport())

    def drop(self, table: str, reason: str) -> None:
        self.table(table).dropped[reason] += 1

    def unmapped_code(self, kind: str, code: str) -> None:
        self.unmapped.setdefault(kind, Counter())[code or "(empty)"] += 1

    def as_json(self) -> dict:
        return {
            "source": self.source,
            "tables": {
                name: {"read": t.read, "written": t.written, "dropped": dict(t.dropped)}
                for name, t in sorted(self.tables.items())
            },
            "unmapped_codes": {
                kind: dict(counter.most_common(100))
                for kind, counter in sorted(self.unmapped.items())
            },
            "fields_not_filled": self.cannot_fill,
            "source_columns_dropped": self.dropped_columns,
            **({"notes": self.notes} if self.notes else {}),
        }

    def lines(self) -> list[str]:
        out = [f"mapping report ({self.source})"]
        for name, t in sorted(self.tables.items()):
            dropped = ", ".join(f"{n} {r}" for r, n in t.dropped.most_common()) or "none dropped"
            out.append(f"  {name}: {t.read} read, {t.written} written; {dropped}")
        for kind, counter in sorted(self.unmapped.items()):
            top = ", ".join(f"{c} ({n})" for c, n in counter.most_common(5))
            out.append(f"  unmapped {kind}: {sum(counter.values())} rows; most frequent: {top}")
        for key, value in self.notes.items():
            if key == AFTER_DEATH:
                value = ", ".join(f"{f} {v['rows']:,}" for f, v in value.items())
            out.append(f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}")
        for table, fields in sorted(self.cannot_fill.items()):
            for text in fields:
                if "coverage from orders" in text:
                    out.append(f"  {table}: {text}")
        return out


class NativeWriter:
    """Streams native CSV files; the manifest is written by :meth:`finish`, last."""

    def __init__(
        self, out: Path, dedupe: tuple[str, ...] | None = None,
        deaths: dict[str, dt.date] | None = None,
    ) -> None:  # fmt: skip
        """``dedupe``: the tables whose repeated ids are dropped (all when None);
        a streaming adapter lists only small ones, to keep memory flat.
        ``deaths``: each patient's recorded date of death (by patient token);
        the rows dated after it are kept, and counted per file (with their
        first lines) in ``after_death`` for the data-quality report."""
        out.mkdir(parents=True, exist_ok=True)
        if any(out.iterdir()):
            raise UsageError(f"{out} exists and is not empty")
        self.out = out
        self.files = {}
        self.writers = {}
        self.rows = Counter()
        self.seen: dict[str, set[str]] = {}
        self.dedupe = dedupe
        self.deaths = deaths if deaths is not None else {}
        self.after_death: dict[str, dict] = {}  # file -> rows, first 20 lines

    def _writer(self, table: str):
        if table not in self.writers:
            spec = contract.FILES_BY_TABLE[table]
            fh = (self.out / spec.file_name).open("w", newline="", encoding="utf-8")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(spec.column_names)
            self.files[table], self.writers[table] = fh, w
        return self.writers[table]

    def add(self, table: str, row: dict) -> bool:
        """Write a row once per id (a repeated id is the same record)."""
        spec = contract.FILES_BY_TABLE[table]
        if self.dedupe is None or table in self.dedupe:
            key = str(row[spec.key])
            seen = self.seen.setdefault(table, set())
            if key in seen:
                return False
            seen.add(key)
        self._writer(table).writerow(
            ["" if row.get(c) is None else row[c] for c in spec.column_names]
        )
        self.rows[table] += 1
        if self.deaths and (died := self.deaths.get(row.get("patient_id"))):
            on = row.get(RECORD_DATE.get(table, ""))
            if on and str(on) > died.isoformat():
                found = self.after_death.setdefault(spec.file_name, {"rows": 0, "lines": []})
                found["rows"] += 1
                if len(found["lines"]) < 20:  # the header is line 1
                    found["lines"].append(self.rows[table] + 1)
        return True

    def finish(
        self, batch_id: str, as_of: dt.date, source: str, history_from: dt.date | None = None
    ) -> dict:
        for spec in contract.FILES:
            if spec.required:
                self._writer(spec.table)
        for fh in self.files.values():
            fh.close()
        return write_manifest(
            self.out, batch_id, as_of, source=source, history_from=history_from,
            rows={contract.FILES_BY_TABLE[t].file_name: n for t, n in self.rows.items()},
        )  # fmt: skip


def as_of_of(manifest: dict) -> dt.date:
    return dt.date.fromisoformat(manifest["as_of"])


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a source CSV with lower-case header names (OMOP exports vary)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        for values in reader:
            yield dict(zip(header, values, strict=False))


def header_of(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return [h.strip().lower() for h in next(csv.reader(fh), [])]


def find_file(folder: Path, name: str) -> Path | None:
    """A source file by name, whatever its case (PERSON.csv, person.csv)."""
    for p in folder.iterdir():
        if p.is_file() and p.name.lower() == name.lower():
            return p
    return None
