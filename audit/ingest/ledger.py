"""The delivery log and the batch ledger.

Every delivery attempt is a row of ``audit.deliveries`` (loaded, duplicate or
rejected, with its reason); every batch a row of ``audit.batches``. A
rejection is recorded after the rollback, in a transaction of its own: who,
what and why, never the rows.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from audit import db
from audit.errors import BatchRejected
from audit.manifest import Manifest


def delivery(
    conn: psycopg.Connection, batch_id: str, sha256: str | None, outcome: str, reason: str | None
) -> None:
    conn.execute(
        "insert into audit.deliveries (batch_id, content_sha256, outcome, reason)"
        " values (%s, %s, %s, %s)",
        (batch_id, sha256, outcome, reason),
    )


def unreadable_manifest(conn: psycopg.Connection, exc: BatchRejected) -> None:
    """A batch refused at its manifest is a delivery too, with its reason."""
    with conn.transaction():
        delivery(conn, exc.batch_id or "(unreadable manifest)", None, "rejected", exc.sentence())


def earlier(conn: psycopg.Connection, manifest: Manifest) -> int | None:
    """The batch number of an earlier load of the same content (a duplicate),
    else None; an earlier rejected delivery is cleared for this one."""
    existing = conn.execute(
        "select batch_no, status, content_sha256 from audit.batches where batch_id = %s",
        (manifest.batch_id,),
    ).fetchone()
    if not existing:
        return None
    batch_no, status, sha = existing
    if status == "withdrawn":
        raise BatchRejected(
            "this batch_id was withdrawn by an operator; a corrected extract needs a new batch_id"
        )
    if status == "loaded":
        if sha == manifest.content_sha256:
            delivery(conn, manifest.batch_id, manifest.content_sha256, "duplicate", None)
            return batch_no
        raise BatchRejected("this batch_id was already loaded with different content")
    conn.execute("delete from audit.batches where batch_no = %s", (batch_no,))
    return None


def same_source_name(conn: psycopg.Connection, manifest: Manifest) -> None:
    """Refuse a source name that differs from a loaded source's only by case:
    records are keyed by source, so ``North`` and ``north`` would split one
    source's history in two."""
    if not manifest.source:
        return
    other = conn.execute(
        "select source from audit.batches where status in ('loaded', 'withdrawn')"
        " and lower(source) = lower(%s) and source <> %s limit 1",
        (manifest.source, manifest.source),
    ).fetchone()
    if other:
        raise BatchRejected(
            f"source {manifest.source!r} differs only by case from the loaded source"
            f" {other[0]!r}: send the same source name",
            file="manifest.json",
            column="source",
        )


def register(conn: psycopg.Connection, manifest: Manifest) -> int:
    return conn.execute(
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
    ).fetchone()[0]


def file_received(
    conn: psycopg.Connection, batch_no: int, file_name: str, sha256: str, rows: int
) -> None:
    conn.execute(
        "insert into audit.batch_files (batch_no, file_name, sha256, rows) values (%s, %s, %s, %s)",
        (batch_no, file_name, sha256, rows),
    )


def store_validation(conn: psycopg.Connection, batch_no: int, results: list[dict]) -> None:
    for res in results:
        conn.execute(
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


def loaded(conn: psycopg.Connection, batch_no: int, result, age_90_plus: int,
           quarantine_summary: list[dict], replace_allowed: bool) -> None:  # fmt: skip
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
            Jsonb(quarantine_summary),
            Jsonb(result.replacements),
            replace_allowed,
            Jsonb(result.rounded_timings()),
            batch_no,
        ),
    )


def rejected(
    conn: psycopg.Connection,
    manifest: Manifest,
    result,
    exc: BatchRejected,
    quarantine_summary: list[dict],
    validation: list[dict],
) -> None:
    """After the rollback: keep who, what and why, never the rows."""
    with conn.transaction():
        db.take_loader_lock(conn)
        kept = conn.execute(
            "select 1 from audit.batches where batch_id = %s and status in ('loaded', 'withdrawn')",
            (manifest.batch_id,),
        ).fetchone()
        if not kept:
            conn.execute("delete from audit.batches where batch_id = %s", (manifest.batch_id,))
            row = conn.execute(
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
                    Jsonb(quarantine_summary),
                    Jsonb(result.rounded_timings()),
                ),
            ).fetchone()
            result.batch_no = row[0]
            store_validation(conn, row[0], validation)
        delivery(conn, manifest.batch_id, manifest.content_sha256, "rejected", exc.sentence())
