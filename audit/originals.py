"""The delivered files as they arrived, kept by the load in PostgreSQL.

Each file of a loaded batch is stored in ``audit.delivered_files`` in chunks
the load compressed with zlib (``zlib``; chunks stored before it did are
PostgreSQL-compressed as they arrived), beside its SHA-256 in
``audit.batch_files``.
Re-extracting one checks the bytes against that SHA-256, so an auditor can
prove what a batch held; ``line`` gives one record of it (line 1 is the
header, as in quarantine records and the case page's provenance). Only the
pipeline's role can read them (they hold what arrived, before Safe Harbor).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO, TextIO

import psycopg

from audit.errors import UsageError


def _file(conn: psycopg.Connection, batch_id: str, file_name: str) -> tuple[int, str]:
    row = conn.execute(
        "select b.batch_no, f.sha256 from audit.batches as b join audit.batch_files as f"
        " using (batch_no) where b.batch_id = %s and f.file_name = %s",
        (batch_id, file_name),
    ).fetchone()
    if row is None:
        raise UsageError(f"batch {batch_id} has no stored file {file_name}")
    return row


def plain(stored: bytes, compressed: bool) -> bytes:
    """A stored chunk's bytes as they arrived."""
    return zlib.decompress(stored) if compressed else bytes(stored)


def chunks(conn: psycopg.Connection, batch_id: str, file_name: str) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk, checked against its SHA-256 at the end."""
    batch_no, sha = _file(conn, batch_id, file_name)
    digest = hashlib.sha256()
    chunk_no = 0
    while row := conn.execute(
        "select bytes, zlib from audit.delivered_files where batch_no = %s and file_name = %s"
        " and chunk_no = %s",
        (batch_no, file_name, chunk_no),
    ).fetchone():
        data = plain(*row)
        digest.update(data)
        yield data
        chunk_no += 1
    if digest.hexdigest() != sha:
        raise UsageError(
            f"batch {batch_id} {file_name}: the stored bytes do not match the SHA-256 recorded"
            " when it was loaded (or the file was loaded before originals were kept)"
        )


def write(conn: psycopg.Connection, batch_id: str, file_name: str, out: BinaryIO) -> int:
    """Write the stored file to ``out``; the bytes written."""
    n = 0
    for chunk in chunks(conn, batch_id, file_name):
        out.write(chunk)
        n += len(chunk)
    return n


class _ChunkReader(io.RawIOBase):
    def __init__(self, parts: Iterator[bytes]):
        self.parts, self.rest = parts, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self.rest:
            self.rest = next(self.parts, b"")
            if not self.rest:
                return 0
        n = min(len(buf), len(self.rest))
        buf[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def write_line(
    conn: psycopg.Connection, batch_id: str, file_name: str, line: int, out: TextIO
) -> None:
    """Write the header and record ``line`` of the stored file (line 1 is the header)."""
    if line < 2:
        raise UsageError("--line counts the header as line 1: give 2 or more")
    text = io.TextIOWrapper(io.BufferedReader(_ChunkReader(chunks(conn, batch_id, file_name))),
                            encoding="utf-8", newline="")  # fmt: skip
    reader = csv.reader(text)
    header = next(reader, None)
    if header and header[0].startswith(codecs.BOM_UTF8.decode()):
        header[0] = header[0][1:]
    writer = csv.writer(out, lineterminator="\n")
    for number, record in enumerate(reader, start=2):
        if number == line:
            writer.writerow(header or [])
            writer.writerow(record)
            return
    raise UsageError(f"batch {batch_id} {file_name} has no line {line}")
