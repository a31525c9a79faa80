"""One batch folder into PostgreSQL: the order of the ingest's steps.

One batch is one transaction, under an advisory lock so two loads never
interleave:

1. the manifest and the folder listing are checked (:mod:`audit.manifest`);
   a re-delivery of a loaded batch with the same content is a no-op, with
   different content it is rejected (:mod:`~audit.ingest.ledger`);
2. each file streams into the batch's stage (:mod:`~audit.ingest.stage`);
3. each column's distinct values are counted once (:mod:`~audit.ingest.values`);
4. the Great Expectations suites, compiled to SQL, validate them and the
   file's key in one scan (:mod:`~audit.ingest.compile`), which also passes
   the keys through the de-identification guard's prefilter; the results are
   kept in ``audit.validation_results``;
5. the guard scans the distinct values for identifiers; one hit rejects the
   batch (:mod:`~audit.ingest.guard_sql`);
6. row checks quarantine bad rows (file, line, column, reason), leaving out
   what the suites showed of every row; above ``max_quarantine_fraction`` of
   the batch's rows the batch is rejected (:mod:`~audit.ingest.rowchecks`);
7. the replacement guard refuses a mass replacement
   (:mod:`~audit.ingest.replace`);
8. good rows are typed and merged into ``core`` (:mod:`~audit.ingest.merge`).

A rejected batch rolls back whole; its rejection (reason, counts by reason,
validation results) is then recorded in a transaction of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from audit import contract, db
from audit.errors import BatchRejected
from audit.ingest import (
    compile,
    guard_sql,
    ledger,
    merge,
    replace,
    rowchecks,
    stage,
    suite,
    values,
)  # fmt: skip
from audit.ingest.fragments import staged
from audit.manifest import Manifest, read_manifest

log = logging.getLogger(__name__)

DEFAULT_MAX_QUARANTINE_FRACTION = 0.01
DEFAULT_MAX_REPLACE_FRACTION = 0.10
LOAD_WORK_MEM = "128MB"


@dataclass
class LoadSettings:
    max_quarantine_fraction: float = DEFAULT_MAX_QUARANTINE_FRACTION
    #: A batch may replace at most this share of the current records of a file
    #: (of its source) that earlier batches delivered ...
    max_replace_fraction: float = DEFAULT_MAX_REPLACE_FRACTION
    #: ... and no patient's birth year or sex, unless an operator lets a
    #: deliberate mass correction through.
    allow_replace: bool = False


@dataclass
class BatchResult:
    batch_id: str
    status: str  # loaded | duplicate | rejected
    batch_no: int | None = None
    as_of: str | None = None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    dropped_columns: list[dict] = field(default_factory=list)
    replacements: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def rounded_timings(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.timings.items()}

    def as_json(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "batch_no": self.batch_no,
            "as_of": self.as_of,
            "rows_in": self.rows_in,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "reason": self.reason,
            "dropped_columns": self.dropped_columns,
            "replacements": self.replacements,
            "timings_s": self.rounded_timings(),
        }


class _Timer:
    def __init__(self, timings: dict[str, float], progress: Callable[[str], None]):
        self.timings = timings
        self.progress = progress

    def stage(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self):
                timer.progress(name)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.timings[name] = timer.timings.get(name, 0.0) + time.perf_counter() - self.t0

        return _Stage()


class Loader:
    def __init__(
        self,
        conn: psycopg.Connection,
        settings: LoadSettings | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.settings = settings or LoadSettings()
        self.progress = progress or (lambda msg: None)

    def ingest(self, batch_dir: Path) -> BatchResult:
        """Load one batch folder. Raises :class:`BatchRejected` on rejection."""
        batch_dir = Path(batch_dir)
        try:
            manifest = read_manifest(batch_dir)
        except BatchRejected as exc:
            exc.in_folder(str(batch_dir))
            ledger.unreadable_manifest(self.conn, exc)
            raise
        result = BatchResult(manifest.batch_id, "loading", as_of=manifest.as_of.isoformat())
        timer = _Timer(result.timings, lambda s: self.progress(f"{manifest.batch_id}: {s}"))
        self.gx_results: list[dict] = []
        self.quarantine_summary: list[dict] = []
        try:
            with self.conn.transaction():
                db.take_loader_lock(self.conn)
                duplicate_of = ledger.earlier(self.conn, manifest)
                if duplicate_of is not None:
                    result.status = "duplicate"
                    result.batch_no = duplicate_of
                    return result
                ledger.same_source_name(self.conn, manifest)
                result.batch_no = ledger.register(self.conn, manifest)
                self._load(batch_dir, manifest, result.batch_no, result, timer)
                ledger.delivery(
                    self.conn, manifest.batch_id, manifest.content_sha256, "loaded", None
                )
            result.status = "loaded"
            return result
        except BatchRejected as exc:
            exc.with_batch(manifest.batch_id)
            self._rejected(manifest, result, exc)
            raise
        except (psycopg.Error, ValueError, OSError, MemoryError, RecursionError) as exc:
            if self.conn.broken or isinstance(exc, psycopg.errors.QueryCanceled):
                raise  # the database went away or the load was cancelled: not the batch's fault
            # Any other fault of this batch (a poison file the checks did not
            # foresee) rejects it like every other fault: recorded, moved
            # aside, and the other batches of the run load.
            log.warning("batch %s could not be loaded (%s)", manifest.batch_id, type(exc).__name__)
            rejected = BatchRejected(
                f"could not be loaded ({type(exc).__name__}); nothing of it was kept",
                batch_id=manifest.batch_id,
            )
            self._rejected(manifest, result, rejected)
            raise rejected from None

    def _rejected(self, manifest: Manifest, result: BatchResult, exc: BatchRejected) -> None:
        result.status = "rejected"
        result.reason = str(exc)
        ledger.rejected(self.conn, manifest, result, exc, self.quarantine_summary, self.gx_results)

    def _load(
        self,
        batch_dir: Path,
        manifest: Manifest,
        batch_no: int,
        result: BatchResult,
        timer: _Timer,
    ) -> None:
        conn = self.conn
        conn.execute("select set_config('rxaudit.batch_no', %s, true)", (str(batch_no),))
        # hash tables of a file's distinct values and keys in memory, not in
        # batches on disk (this transaction only)
        conn.execute("select set_config('work_mem', %s, true)", (LOAD_WORK_MEM,))
        specs = [contract.FILES_BY_NAME[name] for name in manifest.files]
        specs.sort(key=lambda s: contract.FILES.index(s))  # patients first

        with timer.stage("copy"):
            stage.create(conn, batch_no)
            for spec in specs:
                entry = manifest.files[spec.file_name]
                original = stage.Original()  # compressed as it streams
                try:
                    rows, extras = stage.copy_file(
                        conn, batch_dir / spec.file_name, spec, batch_no, entry.sha256,
                        manifest.schema_version, self.progress, original,
                    )  # fmt: skip
                    if extras:
                        result.dropped_columns.append({"file": spec.file_name, "columns": extras})
                    if rows != entry.rows:
                        raise BatchRejected(
                            f"row count {rows} differs from the manifest's {entry.rows}",
                            file=spec.file_name,
                        )
                    ledger.file_received(conn, batch_no, spec.file_name, entry.sha256, rows)
                    stage.keep_original(conn, original, batch_no, spec.file_name)
                finally:
                    original.close()
                result.rows_in += rows
                conn.execute(sql.SQL("analyze {}").format(staged(spec, batch_no)))

        with timer.stage("values"):
            for spec in specs:
                values.build(conn, spec, batch_no)

        with timer.stage("validate"):  # the suites, and the guard's scan of the keys
            checked = [
                compile.validate_file(conn, spec, batch_no, (guard_sql.key_candidates(spec),))
                for spec in specs
            ]

        with timer.stage("guard"):
            key_hits = {spec.file_name: extras[0] for spec, (_, extras) in zip(specs, checked, strict=True)}  # fmt: skip
            guard_sql.check_values(conn, batch_no, specs, key_hits)
            self.gx_results = [result for result, _ in checked]

        with timer.stage("quarantine"):
            result.rows_quarantined, self.quarantine_summary = rowchecks.quarantine(
                conn, batch_no, specs, lambda spec: self._proven(spec, batch_no)
            )
            rowchecks.refuse_above(
                result.rows_quarantined, result.rows_in, self.quarantine_summary,
                self.settings.max_quarantine_fraction,
            )  # fmt: skip

        with timer.stage("merge"):
            with_bad_rows = {q["file"] for q in self.quarantine_summary}
            bound = {"source": manifest.source or ""}
            result.replacements = replace.guard_replacements(
                conn, specs, batch_no, with_bad_rows, bound,
                self.settings.max_replace_fraction, self.settings.allow_replace,
                merge.safe_harbor_year(conn, manifest, batch_no)[0],
            )  # fmt: skip
            age_90_plus = merge.merge_batch(conn, manifest, specs, batch_no, with_bad_rows, bound)
            stage.drop(conn, batch_no)

        result.rows_loaded = result.rows_in - result.rows_quarantined
        ledger.store_validation(conn, batch_no, self.gx_results)
        ledger.loaded(conn, batch_no, result, age_90_plus, self.quarantine_summary,
                      self.settings.allow_replace)  # fmt: skip

    def _proven(self, spec, batch_no: int) -> rowchecks.Proven:
        """What the file's suite showed of every row, so the row checks need
        not show it again (nothing without the suite)."""
        summary = next((r for r in self.gx_results if r["file"] == spec.file_name), None)
        if summary is None:
            return rowchecks.Proven()
        proof = suite.proven(summary, spec)
        if proof.known_patients:
            # the suite counts every patients.csv row as known; the row check
            # does not count a quarantined one (patients.csv is checked first)
            quarantined = self.conn.execute(
                "select exists (select 1 from audit.quarantine where batch_no = %s"
                " and file_name = 'patients.csv')",
                (batch_no,),
            ).fetchone()[0]
            proof = dataclasses.replace(proof, known_patients=not quarantined)
        return proof


def ingest(
    conn: psycopg.Connection,
    batch_dir: Path,
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    return Loader(conn, settings, progress).ingest(batch_dir)
