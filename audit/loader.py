"""Ingest of one native batch folder into PostgreSQL.

One batch is one transaction, under an advisory lock so two loads never
interleave:

1. the manifest and the folder listing are checked (:mod:`audit.manifest`);
2. each CSV header is checked by the de-identification guard, then the file
   streams into its own ``raw`` partition with ``COPY`` while its SHA-256 is
   computed on the same bytes; hash and row count must match the manifest;
3. id and free-text values are scanned for identifiers (SSN, e-mail, phone,
   URL) in SQL; one hit rejects the batch;
4. the Great Expectations suites validate the raw rows inside PostgreSQL and
   their results are kept in ``audit.validation_results``;
5. row-level checks quarantine bad rows (file, line, column, reason), leaving
   out what the suites showed of every row; above ``max_quarantine_fraction``
   of the batch's rows the batch is rejected;
6. good rows are typed and merged into ``core``: a repeated id supersedes the
   current version, which is kept.

A rejected batch rolls back whole; its rejection (reason, counts by reason,
validation results) is then recorded in a transaction of its own. Re-delivery
of a loaded batch with the same content is a no-op; with different content it
is rejected.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import hashlib
import io
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from audit import checks, contract, db, guard
from audit.errors import BatchRejected
from audit.manifest import Manifest, read_manifest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_QUARANTINE_FRACTION = 0.01
DEFAULT_MAX_REPLACE_FRACTION = 0.10
# A batch bringing at least this share of a core table's rows (and at least
# REBUILD_MIN_ROWS) has the table's indexes rebuilt rather than maintained,
# and the next audit re-evaluates every patient.
REBUILD_FRACTION = 0.2
REBUILD_MIN_ROWS = 50_000
# A batch bringing this share of a table's rows refreshes its statistics.
ANALYZE_FRACTION = 0.1


@dataclass
class LoadSettings:
    max_quarantine_fraction: float = DEFAULT_MAX_QUARANTINE_FRACTION
    validate_with_gx: bool = True
    #: A batch may replace at most this share of the current records of a file
    #: (of its source) that earlier batches delivered ...
    max_replace_fraction: float = DEFAULT_MAX_REPLACE_FRACTION
    #: ... and no patient's birth year or sex, unless an operator lets a
    #: deliberate mass correction through.
    allow_replace: bool = False


#: Replacing this many records or fewer never trips the share test (a few
#: corrections to a small extract are corrections, not a second cohort).
REPLACE_GUARD_MIN_RECORDS = 10


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
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
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


def read_header(path: Path) -> list[str]:
    """The header row of a CSV file (a UTF-8 BOM is allowed)."""
    with path.open("rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    if not head:
        raise BatchRejected("empty file: a header row is required", file=path.name, line=1)
    end = head.find(b"\n")
    if end < 0:
        if len(head) == MAX_HEADER_BYTES:
            raise BatchRejected("header row too long", file=path.name, line=1)
        end = len(head)
    line = head[:end]
    if line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8) :]
    try:
        text = line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise BatchRejected("header is not UTF-8", file=path.name, line=1) from None
    if "\x00" in text:
        raise BatchRejected("header holds a NUL byte", file=path.name, line=1)
    if text.count('"') % 2:
        # a quoted line break: PostgreSQL would take the next line as part of
        # the header and silently skip a data row
        raise BatchRejected("header holds a line break inside quotes", file=path.name, line=1)
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        raise BatchRejected("malformed header row", file=path.name, line=1) from None


class _LineScan:
    """Line breaks of a streamed CSV file, and its lines holding only ``\\.``.

    PostgreSQL's CSV COPY may end its input at a line holding only ``\\.``,
    so the rows after one would be dropped without a word: such a line rejects
    the file. The count of line breaks lets the loader check that every
    record of the file was loaded.
    """

    _MARK = re.compile(rb"\n\\\.\r?\n")
    _MARK_AT_END = re.compile(rb"\n\\\.\r?$")

    def __init__(self, file_name: str):
        self.file_name = file_name
        self.newlines = 0
        # a line break before the file, so that its first line is a line too
        self.tail = b"\n"
        self.last = b""

    def _marker(self, before: int) -> BatchRejected:
        return BatchRejected(
            "a line holding only \\. (PostgreSQL's end-of-data marker) would end the file early",
            file=self.file_name,
            line=before + 1,
        )

    def feed(self, chunk: bytes) -> None:
        window = self.tail + chunk
        m = self._MARK.search(window)
        if m:
            before = self.newlines - self.tail.count(b"\n") + window[: m.start() + 1].count(b"\n")
            raise self._marker(before)
        self.newlines += chunk.count(b"\n")
        self.tail = window[-4:]
        self.last = chunk[-1:]

    def accounts_for(self, rows: int) -> bool:
        """The line breaks are exactly the header's and one per row."""
        return self.newlines - 1 + (0 if self.last == b"\n" else 1) == rows

    def check(self, rows: int, embedded: int) -> None:
        """Reject the file unless its line breaks are the header's, one per
        record (the last may lack one) and those inside quoted fields."""
        if self._MARK_AT_END.search(self.tail):
            raise self._marker(self.newlines)
        unterminated = 0 if self.last == b"\n" else 1
        records = self.newlines - embedded - 1 + unterminated
        if records != rows:
            raise BatchRejected(
                f"{rows:,} rows were loaded but the file's line breaks make {records:,}"
                " (a record was cut or dropped, or lines end with a bare CR)",
                file=self.file_name,
            )


_COPY_WHERE = re.compile(r"line (\d+)(?:, column (\w+))?")


def _copy_error(exc: psycopg.Error, file_name: str) -> BatchRejected:
    """A COPY failure as a rejection, without the offending value."""
    diag = exc.diag
    line = column = None
    m = _COPY_WHERE.search(diag.context or "")
    if m:
        line = int(m.group(1))
        column = m.group(2)
    primary = (diag.message_primary or "malformed CSV").split(":")[0]
    if isinstance(
        exc, psycopg.errors.CharacterNotInRepertoire | psycopg.errors.UntranslatableCharacter
    ):
        primary = "not valid UTF-8 text (or holds a NUL byte)"
    elif "unterminated CSV quoted field" in primary:
        primary = "unterminated quoted field"
    return BatchRejected(primary, file=file_name, line=line, column=column)


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

    # -- public --------------------------------------------------------------

    def ingest(self, batch_dir: Path) -> BatchResult:
        """Load one batch folder. Raises :class:`BatchRejected` on rejection."""
        batch_dir = Path(batch_dir)
        try:
            manifest = read_manifest(batch_dir)
        except BatchRejected as exc:
            # a manifest-level rejection is a delivery too: recorded, with its reason
            exc.in_folder(str(batch_dir))
            with self.conn.transaction():
                self.conn.execute(
                    "insert into audit.deliveries (batch_id, content_sha256, outcome, reason)"
                    " values (%s, null, 'rejected', %s)",
                    (exc.batch_id or "(unreadable manifest)", exc.sentence()),
                )
            raise
        if self.settings.validate_with_gx:
            from audit import expectations

            expectations.prefetch()  # the import overlaps the COPY
        result = BatchResult(manifest.batch_id, "loading", as_of=manifest.as_of.isoformat())
        timer = _Timer(result.timings, lambda s: self.progress(f"{manifest.batch_id}: {s}"))
        self.gx_results: list[dict] = []
        self.quarantine_summary: list[dict] = []
        try:
            with self.conn.transaction():
                db.take_loader_lock(self.conn)
                existing = self.conn.execute(
                    "select batch_no, status, content_sha256 from audit.batches "
                    "where batch_id = %s",
                    (manifest.batch_id,),
                ).fetchone()
                if existing and existing[1] == "withdrawn":
                    raise BatchRejected(
                        "this batch_id was withdrawn by an operator; a corrected extract"
                        " needs a new batch_id"
                    )
                if existing and existing[1] == "loaded":
                    if existing[2] == manifest.content_sha256:
                        self._delivery(manifest, "duplicate", None)
                        result.status = "duplicate"
                        result.batch_no = existing[0]
                        return result
                    raise BatchRejected("this batch_id was already loaded with different content")
                if existing:  # an earlier delivery was rejected: try again
                    self.conn.execute(
                        "delete from audit.batches where batch_no = %s", (existing[0],)
                    )
                batch_no = self._register(manifest)
                result.batch_no = batch_no
                self._load(batch_dir, manifest, batch_no, result, timer)
                self._delivery(manifest, "loaded", None)
            result.status = "loaded"
            return result
        except BatchRejected as exc:
            exc.with_batch(manifest.batch_id)
            result.status = "rejected"
            result.reason = str(exc)
            self._record_rejection(manifest, result, exc)
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
            result.status = "rejected"
            result.reason = str(rejected)
            self._record_rejection(manifest, result, rejected)
            raise rejected from None

    # -- steps ---------------------------------------------------------------

    def _register(self, manifest: Manifest) -> int:
        row = self.conn.execute(
            "insert into audit.batches (batch_id, source, schema_version, as_of, history_from,"
            " created_at, content_sha256, manifest, status)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, 'loading') returning batch_no",
            (
                manifest.batch_id,
                manifest.source,
                manifest.schema_version,
                manifest.as_of,
                manifest.history_from,
                manifest.created_at,
                manifest.content_sha256,
                Jsonb(manifest.raw),
            ),
        ).fetchone()
        return row[0]

    def _load(
        self,
        batch_dir: Path,
        manifest: Manifest,
        batch_no: int,
        result: BatchResult,
        timer: _Timer,
    ) -> None:
        conn = self.conn
        self._schema_version = manifest.schema_version
        conn.execute("select set_config('rxaudit.batch_no', %s, true)", (str(batch_no),))
        specs = [contract.FILES_BY_NAME[name] for name in manifest.files]
        specs.sort(key=lambda s: contract.FILES.index(s))  # patients first

        with timer.stage("copy"):
            for spec in contract.FILES:
                conn.execute(
                    sql.SQL("create table {} partition of {} for values in ({})").format(
                        checks.raw_partition(spec, batch_no),
                        sql.Identifier("raw", spec.table),
                        sql.Literal(batch_no),
                    )
                )
            for spec in specs:
                entry = manifest.files[spec.file_name]
                rows = self._copy_file(
                    batch_dir / spec.file_name, spec, batch_no, entry.sha256, result
                )
                if rows != entry.rows:
                    raise BatchRejected(
                        f"row count {rows} differs from the manifest's {entry.rows}",
                        file=spec.file_name,
                    )
                conn.execute(
                    "insert into audit.batch_files (batch_no, file_name, sha256, rows)"
                    " values (%s, %s, %s, %s)",
                    (batch_no, spec.file_name, entry.sha256, rows),
                )
                result.rows_in += rows
                conn.execute(sql.SQL("analyze {}").format(checks.raw_partition(spec, batch_no)))

        with timer.stage("guard"):
            for spec in specs:
                hit = conn.execute(checks.guard_values_sql(spec, batch_no)).fetchone()
                if hit:
                    raise BatchRejected(
                        f"value looks like {hit[2]} (de-identification guard)",
                        file=spec.file_name,
                        line=hit[0],
                        column=hit[1],
                    )

        if self.settings.validate_with_gx:
            with timer.stage("validate"):
                from audit import expectations

                self.gx_results = expectations.validate_batch(conn, batch_no, specs)

        with timer.stage("quarantine"):
            for spec in specs:
                for stmt in checks.quarantine_statements(
                    spec, batch_no, self._proven(spec, batch_no)
                ):
                    conn.execute(stmt)
            bad = conn.execute(
                "select count(*) from (select distinct file_name, line_no from audit.quarantine"
                " where batch_no = %s) q",
                (batch_no,),
            ).fetchone()[0]
            self.quarantine_summary = self._summary(batch_no)
            result.rows_quarantined = bad
            limit = Fraction(str(self.settings.max_quarantine_fraction))
            if result.rows_in and Fraction(bad, result.rows_in) > limit:
                first = self.quarantine_summary[0]
                raise BatchRejected(
                    f"{bad} of {result.rows_in} rows ({bad / result.rows_in:.2%}) failed checks, "
                    f"more than the {float(limit):.2%} allowed; first: {first['reason']}",
                    file=first["file"],
                    line=first["first_line"],
                    column=first["column"],
                )

        with timer.stage("merge"):
            with_bad_rows = {q["file"] for q in self.quarantine_summary}
            bound = {"source": manifest.source or ""}
            result.replacements = self._guard_replacements(
                specs, batch_no, with_bad_rows, bound, result
            )
            touches_all = False
            stale = []
            # Safe Harbor is judged at the latest as_of loaded: a batch with an
            # older as_of stores no birth year that is 90+ at the newest one.
            previous = conn.execute(
                "select max(as_of) from audit.batches where status = 'loaded' and batch_no <> %s",
                (batch_no,),
            ).fetchone()[0]
            year = max(manifest.as_of, previous or manifest.as_of).year
            for spec in specs:
                supersede, insert = checks.merge_statements(
                    spec, batch_no, year, spec.file_name in with_bad_rows
                )
                rows, held = manifest.files[spec.file_name].rows, self._held_rows(spec)
                large = rows >= REBUILD_MIN_ROWS and rows >= held * REBUILD_FRACTION
                if rows >= held * ANALYZE_FRACTION:
                    stale.append(spec)
                if large or "patient_id" not in spec.column_names:
                    touches_all = True
                    conn.execute(supersede, bound)
                else:  # record the patients this file touches, for incremental audits
                    conn.execute(checks.record_superseded_patients(supersede, batch_no), bound)
                    conn.execute(checks.record_batch_patients(spec, batch_no))
                with self._indexes_rebuilt(spec) if large else contextlib.nullcontext():
                    conn.execute(insert, bound)
            for spec in stale:  # a small batch leaves the statistics to autovacuum
                conn.execute(sql.SQL("analyze {}").format(sql.Identifier("core", spec.table)))
            # Safe Harbor: the birth year of a patient 90+ at as_of is not kept in
            # raw either (core already holds the age-90+ marker instead).
            patients = checks.raw_partition(contract.FILES_BY_TABLE["patients"], batch_no)
            cur = conn.execute(
                sql.SQL(
                    "update {} set birth_year = null where case when birth_year ~ {} "
                    "then %s - birth_year::integer >= 90 else false end"
                ).format(patients, sql.Literal(contract.INT_PATTERN)),
                (year,),
            )
            age_90_plus = cur.rowcount
            if previous is not None and manifest.as_of.year > previous.year:
                # as_of moved to a later year: patients stored earlier who are
                # now 90+ lose their birth year, in core and in raw
                age_90_plus += self._reapply_age_90_plus(batch_no, year)
            if touches_all:
                conn.execute(
                    "update audit.batches set touches_all = true where batch_no = %s", (batch_no,)
                )
                conn.execute("delete from audit.batch_patients where batch_no = %s", (batch_no,))

        result.rows_loaded = result.rows_in - result.rows_quarantined
        self._store_validation(batch_no)
        conn.execute(
            "update audit.batches set status = 'loaded', rows_in = %s, rows_loaded = %s,"
            " rows_quarantined = %s, dropped_columns = %s, age_90_plus_patients = %s,"
            " quarantine_summary = %s, replacements = %s, replace_allowed = %s,"
            " timings = %s, finished_at = now() where batch_no = %s",
            (
                result.rows_in,
                result.rows_loaded,
                result.rows_quarantined,
                Jsonb(result.dropped_columns),
                age_90_plus,
                Jsonb(self.quarantine_summary),
                Jsonb(result.replacements),
                self.settings.allow_replace,
                Jsonb({k: round(v, 3) for k, v in result.timings.items()}),
                batch_no,
            ),
        )

    def _reapply_age_90_plus(self, batch_no: int, year: int) -> int:
        """Safe Harbor again for every stored row once as_of reaches a later
        year; the patients changed are recorded as touched by this batch."""
        conn = self.conn
        changed = conn.execute(
            "with aged as (update core.patients set birth_year = null, age_90_plus = true"
            " where birth_year is not null and %(y)s - birth_year >= 90 and batch_no <> %(b)s"
            " returning patient_id)"
            " insert into audit.batch_patients (batch_no, patient_id)"
            " select distinct %(b)s, patient_id from aged on conflict do nothing",
            {"y": year, "b": batch_no},
        ).rowcount
        conn.execute(
            sql.SQL(
                "update raw.patients set birth_year = null where batch_no <> %s and"
                " case when birth_year ~ {} then %s - birth_year::integer >= 90 else false end"
            ).format(sql.Literal(contract.INT_PATTERN)),
            (batch_no, year),
        )
        return changed

    def _guard_replacements(
        self, specs, batch_no: int, with_bad_rows: set[str], bound: dict, result: BatchResult
    ) -> list[dict]:
        """Count, per file, the records the batch adds and the current records
        (of its source, delivered by earlier batches) it would replace, by
        batch; refuse a mass replacement unless ``allow_replace``.

        Refused: replacing more than ``max_replace_fraction`` of a file's
        current records of the source (more than REPLACE_GUARD_MIN_RECORDS of
        them), or changing any patient's known birth year or sex.
        """
        limit = Fraction(str(self.settings.max_replace_fraction))
        log = []
        for spec in specs:
            quarantined = spec.file_name in with_bad_rows
            by_batch = self.conn.execute(
                checks.replaced_by_batch_sql(spec, batch_no, quarantined), bound
            ).fetchall()
            replaced = sum(n for _, n in by_batch)
            loaded = self.conn.execute(
                sql.SQL("select count(*) from {} r where {}").format(
                    checks.raw_partition(spec, batch_no),
                    checks.not_quarantined(spec, batch_no) if quarantined else sql.SQL("true"),
                )
            ).fetchone()[0]
            entry = {"file": spec.file_name, "added": loaded - replaced, "replaced": replaced,
                     "from": {b: n for b, n in by_batch}}  # fmt: skip
            log.append(entry)
            if self.settings.allow_replace or replaced <= REPLACE_GUARD_MIN_RECORDS:
                continue
            held = self.conn.execute(
                sql.SQL("select count(*) from {} c where c.is_current and {}").format(
                    sql.Identifier("core", spec.table), checks.same_source(spec)
                ),
                bound,
            ).fetchone()[0]
            if held and Fraction(replaced, held) > limit:
                names = ", ".join(f"{b} ({n:,})" for b, n in by_batch[:5])
                more = f" and {len(by_batch) - 5} more" if len(by_batch) > 5 else ""
                raise BatchRejected(
                    f"would replace {replaced:,} of the {held:,} current records"
                    f" ({replaced / held:.1%}) of batch(es) {names}{more}, more than the"
                    f" {float(limit):.0%} allowed (max_replace_fraction): a second extract"
                    " reusing the same ids? Send a deliberate mass correction with"
                    " --allow-replace",
                    file=spec.file_name,
                )
        if not self.settings.allow_replace and any(s.table == "patients" for s in specs):
            changed = self.conn.execute(
                checks.changed_patients_sql(batch_no, "patients.csv" in with_bad_rows), bound
            ).fetchone()[0]
            if changed:
                raise BatchRejected(
                    f"would change the birth year or sex of {changed:,} patient(s) already"
                    " loaded: a different cohort under the same ids? Send a deliberate"
                    " correction with --allow-replace",
                    file="patients.csv",
                )
        return log

    def _proven(self, spec, batch_no: int) -> checks.Proven:
        """What the file's Great Expectations suite showed of every row, so
        the row checks need not show it again (nothing without the suite)."""
        summary = next((r for r in self.gx_results if r["file"] == spec.file_name), None)
        if summary is None:
            return checks.Proven()
        from audit import expectations

        proof = expectations.proven(summary, spec)
        if proof.known_patients:
            # the suite counts every patients.csv row as known; the row check
            # does not count a quarantined one
            quarantined = self.conn.execute(
                "select exists (select 1 from audit.quarantine where batch_no = %s"
                " and file_name = 'patients.csv')",
                (batch_no,),
            ).fetchone()[0]
            proof = dataclasses.replace(proof, known_patients=not quarantined)
        return proof

    def _held_rows(self, spec) -> float:
        """The planner's estimate of the rows a core table holds (0 if unknown)."""
        return self.conn.execute(
            "select greatest(reltuples, 0) from pg_class where oid = %s::regclass",
            (f"core.{spec.table}",),
        ).fetchone()[0]

    @contextlib.contextmanager
    def _indexes_rebuilt(self, spec):
        """Drop a core table's indexes around a large insert, then rebuild them.

        Maintaining a B-tree row by row costs several times a sorted build:
        for a large file (``REBUILD_FRACTION``) the indexes are dropped and
        built again after the insert, inside the same transaction (a unique
        index checks its keys when it is built). Their definitions come from
        the server's own catalogue, never from data.
        """
        table = sql.Identifier("core", spec.table)
        defs = self.conn.execute(
            "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
            " from pg_index as i where i.indrelid = %s::regclass order by 1",
            (f"core.{spec.table}",),
        ).fetchall()
        for name, _ in defs:
            self.conn.execute(sql.SQL("drop index {}").format(sql.SQL(name)))
        yield
        for _, definition in defs:
            self.conn.execute(sql.SQL(definition))
        log.debug("rebuilt %d index(es) of %s", len(defs), table)

    def _copy_file(
        self, path: Path, spec, batch_no: int, expected_sha: str, result: BatchResult
    ) -> int:
        header = read_header(path)
        extras = guard.check_header(spec, header, self._schema_version)
        if extras:
            result.dropped_columns.append({"file": spec.file_name, "columns": extras})
            self.progress(
                f"{spec.file_name}: dropping {len(extras)} column(s) outside the contract"
            )
        part = checks.raw_partition(spec, batch_no)
        target = part
        if extras:
            target = sql.Identifier("_rxaudit_stage")
            self.conn.execute(
                sql.SQL(
                    "create temp table _rxaudit_stage (like {} including defaults) on commit drop"
                ).format(part)
            )
            for i, _ in enumerate(extras):
                self.conn.execute(
                    sql.SQL("alter table _rxaudit_stage add column {} text").format(
                        sql.Identifier(f"_extra_{i}")
                    )
                )
        names = []
        extra_i = 0
        for name in header:
            if name not in extras:
                names.append(sql.Identifier(spec.column(name).name))
            else:
                names.append(sql.Identifier(f"_extra_{extra_i}"))
                extra_i += 1
        copy_sql = sql.SQL(
            "copy {} ({}) from stdin with (format csv, header true, encoding 'UTF8')"
        ).format(target, sql.SQL(", ").join(names))

        self.conn.execute("select setval('raw.line_no_seq', 1, true)")
        digest = hashlib.sha256()
        lines = _LineScan(spec.file_name)
        cur = self.conn.cursor()
        try:
            with cur.copy(copy_sql) as copy, path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    lines.feed(chunk)
                    copy.write(chunk)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.OperationalError):
                raise
            raise _copy_error(exc, spec.file_name) from None
        rows = cur.rowcount
        if digest.hexdigest() != expected_sha:
            raise BatchRejected("SHA-256 differs from the manifest", file=spec.file_name)
        # Every record the file holds was loaded: its line breaks are the
        # header's, one per record and those inside quoted fields. When the
        # breaks are no more than the header's and one per loaded row, none
        # can be inside a field and nothing was dropped; only otherwise are
        # the breaks inside fields counted.
        embedded = 0
        if not lines.accounts_for(rows):
            embedded = self.conn.execute(
                sql.SQL(
                    "select coalesce(sum(length(t) - length(replace(t, chr(10), ''))), 0)::bigint"
                    " from (select concat_ws('', {cols}) as t from {tbl}"
                    " where strpos(concat_ws('', {cols}), chr(10)) > 0) s"
                ).format(cols=sql.SQL(", ").join(names), tbl=target)
            ).fetchone()[0]
        lines.check(rows, embedded)
        if extras:
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("line_no", *spec.column_names))
            self.conn.execute(
                sql.SQL("insert into {} ({}) select {} from _rxaudit_stage").format(
                    part, cols, cols
                )
            )
            self.conn.execute("drop table _rxaudit_stage")
        return rows

    def _summary(self, batch_no: int) -> list[dict]:
        rows = self.conn.execute(
            "select file_name, column_name, reason, count(*), min(line_no) "
            "from audit.quarantine where batch_no = %s "
            "group by file_name, column_name, reason order by min(line_no), file_name, column_name",
            (batch_no,),
        ).fetchall()
        order = {f.file_name: i for i, f in enumerate(contract.FILES)}
        summary = [
            {"file": f, "column": c, "reason": r, "rows": n, "first_line": first}
            for f, c, r, n, first in rows
        ]
        summary.sort(key=lambda s: (order.get(s["file"], 99), s["first_line"], s["column"]))
        return summary

    def _store_validation(self, batch_no: int) -> None:
        for res in self.gx_results:
            self.conn.execute(
                "insert into audit.validation_results (batch_no, file_name, suite_name, success,"
                " statistics, results, engine) values (%s, %s, %s, %s, %s, %s, %s)",
                (
                    batch_no,
                    res["file"],
                    res["suite"],
                    res["success"],
                    Jsonb(res["statistics"]),
                    Jsonb(res["results"]),
                    res["engine"],
                ),
            )

    def _delivery(self, manifest: Manifest, outcome: str, reason: str | None) -> None:
        self.conn.execute(
            "insert into audit.deliveries (batch_id, content_sha256, outcome, reason)"
            " values (%s, %s, %s, %s)",
            (manifest.batch_id, manifest.content_sha256, outcome, reason),
        )

    def _record_rejection(
        self, manifest: Manifest, result: BatchResult, exc: BatchRejected
    ) -> None:
        """After the rollback: keep who, what and why, never the rows."""
        with self.conn.transaction():
            db.take_loader_lock(self.conn)
            loaded = self.conn.execute(
                "select 1 from audit.batches where batch_id = %s"
                " and status in ('loaded', 'withdrawn')",
                (manifest.batch_id,),
            ).fetchone()
            if not loaded:
                self.conn.execute(
                    "delete from audit.batches where batch_id = %s", (manifest.batch_id,)
                )
                row = self.conn.execute(
                    "insert into audit.batches (batch_id, source, schema_version, as_of,"
                    " created_at, content_sha256, manifest, status, reason, rows_in,"
                    " rows_quarantined, dropped_columns, quarantine_summary, timings, finished_at)"
                    " values (%s, %s, %s, %s, %s, %s, %s, 'rejected', %s, %s, %s, %s, %s, %s, now())"
                    " returning batch_no",
                    (
                        manifest.batch_id,
                        manifest.source,
                        manifest.schema_version,
                        manifest.as_of,
                        manifest.created_at,
                        manifest.content_sha256,
                        Jsonb(manifest.raw),
                        exc.sentence(),
                        result.rows_in,
                        result.rows_quarantined,
                        Jsonb(result.dropped_columns),
                        Jsonb(self.quarantine_summary),
                        Jsonb({k: round(v, 3) for k, v in result.timings.items()}),
                    ),
                ).fetchone()
                result.batch_no = row[0]
                self._store_validation(row[0])
            self._delivery(manifest, "rejected", exc.sentence())


def ingest(
    conn: psycopg.Connection,
    batch_dir: Path,
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    return Loader(conn, settings, progress).ingest(batch_dir)
