"""Each delivered file streamed once into the batch's stage.

The header is checked first (UTF-8, one line, the contract's columns, by
the de-identification guard); the bytes then stream into the stage with
``COPY`` while their SHA-256 and line breaks are counted, and the file is
compressed for keeping (:class:`Original`), on the same bytes. Hash and row
count must match the manifest, and every record of the file must have been
loaded (no line holding only ``\\.``, no record cut).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from audit import contract, guard
from audit.background import Background
from audit.contract import FileSpec
from audit.errors import BatchRejected
from audit.ingest.fragments import staged

CHUNK = 1 << 20
MAX_HEADER_BYTES = 64 * 1024


#: The stored original files are cut into chunks of this size.
ORIGINAL_CHUNK = 8 << 20


def stage_ddl(spec: FileSpec, batch_no: int) -> sql.Composable:
    """The stage table of one file: its CSV line and the contract's columns as
    text (ids and trial ids in byte order, as core keeps them)."""
    cols = [sql.SQL("line_no bigint not null default nextval('stage.line_no_seq')")]
    for col in spec.columns:
        collate = ' collate "C"' if col.kind in (contract.ID, contract.NCT) else ""
        cols.append(sql.SQL("{} text" + collate).format(sql.Identifier(col.name)))
    return sql.SQL("create unlogged table {} ({})").format(
        staged(spec, batch_no), sql.SQL(", ").join(cols)
    )


def create(conn: psycopg.Connection, batch_no: int) -> None:
    """The batch's stage: one unlogged table per file of the contract, which
    lives only inside the load's transaction (:func:`drop`)."""
    for spec in contract.FILES:
        conn.execute(stage_ddl(spec, batch_no))


def drop(conn: psycopg.Connection, batch_no: int) -> None:
    for spec in contract.FILES:
        conn.execute(sql.SQL("drop table {}").format(staged(spec, batch_no)))


class Original:
    """A delivered file's bytes, compressed as they stream into the stage.

    The loader feeds each chunk it reads (the same bytes it hashes and sends
    to ``COPY``); a thread of its own (:class:`audit.background.Background`)
    compresses every ``ORIGINAL_CHUNK`` bytes with zlib (level 1), beside the
    server's parsing of the same file, into a spool that stays in memory up
    to ``SPOOL_BYTES`` and goes to a temporary file beyond.
    :func:`keep_original` stores the pieces once the file has been checked.
    """

    LEVEL = 1
    QUEUED = 16
    SPOOL_BYTES = 32 << 20

    def __init__(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_BYTES)
        self._sizes: list[int] = []
        self._pending = bytearray()
        self._work = Background(self._add, self._last, self.QUEUED, "original-zlib")

    def _put(self, raw: bytes | bytearray) -> None:
        piece = zlib.compress(raw, self.LEVEL)
        self._spool.write(piece)
        self._sizes.append(len(piece))

    def _add(self, chunk: bytes) -> None:
        self._pending += chunk
        while len(self._pending) >= ORIGINAL_CHUNK:
            self._put(self._pending[:ORIGINAL_CHUNK])
            del self._pending[:ORIGINAL_CHUNK]

    def _last(self) -> None:
        if self._pending or not self._sizes:
            self._put(self._pending)

    def feed(self, chunk: bytes) -> None:
        self._work.feed(chunk)

    def close(self) -> None:
        """Stop the thread and drop the spool."""
        self._work.stop()
        self._spool.close()

    def pieces(self) -> Iterator[bytes]:
        """The compressed pieces, in the file's order (the thread finishes first)."""
        self._work.finish()
        self._spool.seek(0)
        for size in self._sizes:
            yield self._spool.read(size)


def keep_original(
    conn: psycopg.Connection, original: Original, batch_no: int, file_name: str
) -> None:
    """Keep the delivered file's bytes as they arrived, zlib-compressed in
    chunks (the caller has checked its SHA-256 against the manifest)."""
    with conn.cursor().copy(
        "copy audit.delivered_files (batch_no, file_name, chunk_no, bytes, zlib)"
        " from stdin with (format binary)"
    ) as copy:
        copy.set_types(["int4", "text", "int4", "bytea", "bool"])
        for chunk_no, piece in enumerate(original.pieces()):
            copy.write_row((batch_no, file_name, chunk_no, piece, True))


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


class LineScan:
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


def copy_error(exc: psycopg.Error, file_name: str) -> BatchRejected:
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


def copy_file(
    conn: psycopg.Connection,
    path: Path,
    spec: FileSpec,
    batch_no: int,
    expected_sha: str,
    schema_version: str,
    progress: Callable[[str], None],
    original: Original | None = None,
) -> tuple[int, list[str]]:
    """Stream one file into its stage; (rows, columns outside the contract
    dropped). ``original``, if given, is fed the same bytes."""
    header = read_header(path)
    extras = guard.check_header(spec, header, schema_version)
    if extras:
        progress(f"{spec.file_name}: dropping {len(extras)} column(s) outside the contract")
    part = staged(spec, batch_no)
    target = part
    if extras:
        target = sql.Identifier("_rxaudit_stage")
        conn.execute(
            sql.SQL(
                "create temp table _rxaudit_stage (like {} including defaults) on commit drop"
            ).format(part)
        )
        for i, _ in enumerate(extras):
            conn.execute(
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

    conn.execute("select setval('stage.line_no_seq', 1, true)")
    digest = hashlib.sha256()
    lines = LineScan(spec.file_name)
    cur = conn.cursor()
    try:
        with cur.copy(copy_sql) as copy, path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                if original is not None:
                    original.feed(chunk)
                digest.update(chunk)
                lines.feed(chunk)
                copy.write(chunk)
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.OperationalError):
            raise
        raise copy_error(exc, spec.file_name) from None
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
        embedded = conn.execute(
            sql.SQL(
                "select coalesce(sum(length(t) - length(replace(t, chr(10), ''))), 0)::bigint"
                " from (select concat_ws('', {cols}) as t from {tbl}"
                " where strpos(concat_ws('', {cols}), chr(10)) > 0) s"
            ).format(cols=sql.SQL(", ").join(names), tbl=target)
        ).fetchone()[0]
    lines.check(rows, embedded)
    if extras:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("line_no", *spec.column_names))
        conn.execute(
            sql.SQL("insert into {} ({}) select {} from _rxaudit_stage").format(part, cols, cols)
        )
        conn.execute("drop table _rxaudit_stage")
    return rows, extras
