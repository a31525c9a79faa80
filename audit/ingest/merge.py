"""Good rows typed and merged into ``core``; Safe Harbor at the newest as_of.

A repeated key supersedes the current version of its source, which is kept
(``is_current`` false, ``superseded_by`` the batch). The patients a file
touches are recorded for incremental audits; a large file has its core
table's indexes rebuilt rather than maintained and marks the batch as
touching every patient.
"""

from __future__ import annotations

import contextlib
import logging

import psycopg
from psycopg import sql

from audit.contract import FileSpec
from audit.ingest import values
from audit.ingest.fragments import kept, same_source, staged, typed_expr
from audit.manifest import Manifest

log = logging.getLogger(__name__)

# A batch bringing at least this share of a core table's rows (and at least
# REBUILD_MIN_ROWS) has the table's indexes rebuilt rather than maintained,
# and the next audit re-evaluates every patient.
REBUILD_FRACTION = 0.2
REBUILD_MIN_ROWS = 50_000
# A batch bringing this share of a table's rows refreshes its statistics.
ANALYZE_FRACTION = 0.1


def merge_statements(
    spec: FileSpec, batch_no: int, as_of_year: int, has_quarantine: bool = True
) -> list[sql.Composable]:
    """Supersede the current versions of the batch's keys, then insert the batch.

    A record's identity is its key within the batch's source (the statements
    bind ``%(source)s``): a correction replaces only a record of its own
    source. The trial registry is one registry, keyed by NCT id alone.
    """
    part = staged(spec, batch_no)
    table = sql.Identifier("core", spec.table)
    key = sql.Identifier(spec.key)
    ok = kept(spec, batch_no, has_quarantine)
    supersede = sql.SQL(
        "update {table} c set is_current = false, superseded_by = {b} "
        "from {part} r where c.is_current and c.{key} = r.{key} and {same} and {ok}"
    ).format(
        table=table, b=sql.Literal(batch_no), key=key, part=part, ok=ok, same=same_source(spec)
    )

    names = [sql.Identifier(c.name) for c in spec.columns]
    exprs = [typed_expr(c) for c in spec.columns]
    if spec.per_source:
        names.append(sql.Identifier("source"))
        exprs.append(sql.SQL("%(source)s"))
    if spec.table == "patients":
        # Safe Harbor: no birth year that makes the patient 90+ at as_of.
        old = sql.SQL("({} - nullif(r.birth_year, '')::integer >= 90)").format(
            sql.Literal(as_of_year)
        )
        i = spec.column_names.index("birth_year")
        exprs[i] = sql.SQL("case when {old} then null else {e} end").format(old=old, e=exprs[i])
        names.append(sql.Identifier("age_90_plus"))
        exprs.append(sql.SQL("coalesce({}, false)").format(old))
    insert = sql.SQL(
        "insert into {table} (batch_no, line_no, {names}) "
        "select {b}, r.line_no, {exprs} from {part} r where {ok}"
    ).format(
        table=table,
        names=sql.SQL(", ").join(names),
        b=sql.Literal(batch_no),
        exprs=sql.SQL(", ").join(exprs),
        part=part,
        ok=ok,
    )
    return [supersede, insert]


def drug_names_sql(spec: FileSpec, batch_no: int, has_quarantine: bool) -> sql.Composable:
    """Keep the drug names the batch's good rows brought (core.drug_names, the
    audit's drug map reads them): from the file's distinct values, or, when
    some rows were quarantined, from the rows that went on to core."""
    if has_quarantine:
        names = sql.SQL("select distinct r.drug_name from {part} r where {ok}").format(
            part=staged(spec, batch_no), ok=kept(spec, batch_no, True)
        )
    else:
        names = sql.SQL("select r.drug_name from {v} r where {of}").format(
            v=values.table(spec), of=values.of_column(spec, "drug_name")
        )
    return sql.SQL(
        "insert into core.drug_names (drug_name) select n.drug_name from ({names}) n"
        " where n.drug_name is not null on conflict do nothing"
    ).format(names=names)


def record_superseded_patients(supersede: sql.Composable, batch_no: int) -> sql.Composable:
    """The supersede step, also recording the patients of the versions it replaced."""
    return sql.SQL(
        "with superseded as ({supersede} returning c.patient_id) "
        "insert into audit.batch_patients (batch_no, patient_id) "
        "select distinct {b}, patient_id from superseded on conflict do nothing"
    ).format(supersede=supersede, b=sql.Literal(batch_no))


def record_batch_patients(spec: FileSpec, batch_no: int) -> sql.Composable:
    """Record the patients named by the batch's rows of this file."""
    return sql.SQL(
        "insert into audit.batch_patients (batch_no, patient_id) "
        "select distinct {b}, r.patient_id from {part} r where r.patient_id is not null "
        "on conflict do nothing"
    ).format(b=sql.Literal(batch_no), part=staged(spec, batch_no))


def held_rows(conn: psycopg.Connection, spec: FileSpec) -> float:
    """The planner's estimate of the rows a core table holds (0 if unknown)."""
    return conn.execute(
        "select greatest(reltuples, 0) from pg_class where oid = %s::regclass",
        (f"core.{spec.table}",),
    ).fetchone()[0]


@contextlib.contextmanager
def indexes_rebuilt(conn: psycopg.Connection, spec: FileSpec):
    """Drop a core table's indexes around a large insert, then rebuild them.

    Maintaining a B-tree row by row costs several times a sorted build:
    for a large file (``REBUILD_FRACTION``) the indexes are dropped and
    built again after the insert, inside the same transaction (a unique
    index checks its keys when it is built). Their definitions come from
    the server's own catalogue, never from data.
    """
    defs = conn.execute(
        "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
        " from pg_index as i where i.indrelid = %s::regclass order by 1",
        (f"core.{spec.table}",),
    ).fetchall()
    for name, _ in defs:
        conn.execute(sql.SQL("drop index {}").format(sql.SQL(name)))
    yield
    for _, definition in defs:
        conn.execute(sql.SQL(definition))
    log.debug("rebuilt %d index(es) of core.%s", len(defs), spec.table)


def safe_harbor_year(conn: psycopg.Connection, manifest: Manifest, batch_no: int):
    """(the year Safe Harbor is judged at, the newest as_of loaded before).

    Safe Harbor is judged at the latest as_of loaded: a batch with an older
    as_of stores no birth year that is 90+ at the newest one.
    """
    previous = conn.execute(
        "select max(as_of) from audit.batches where status = 'loaded' and batch_no <> %s",
        (batch_no,),
    ).fetchone()[0]
    return max(manifest.as_of, previous or manifest.as_of).year, previous


def merge_batch(
    conn: psycopg.Connection,
    manifest: Manifest,
    specs: list[FileSpec],
    batch_no: int,
    with_bad_rows: set[str],
    bound: dict,
) -> int:
    """Merge the batch's good rows into core; the patients made 90+ (Safe Harbor)."""
    year, previous = safe_harbor_year(conn, manifest, batch_no)
    touches_all = False
    stale = []
    for spec in specs:
        supersede, insert = merge_statements(spec, batch_no, year, spec.file_name in with_bad_rows)
        rows, held = manifest.files[spec.file_name].rows, held_rows(conn, spec)
        large = rows >= REBUILD_MIN_ROWS and rows >= held * REBUILD_FRACTION
        if rows >= held * ANALYZE_FRACTION:
            stale.append(spec)
        if large or "patient_id" not in spec.column_names:
            touches_all = True
            conn.execute(supersede, bound)
        else:  # record the patients this file touches, for incremental audits
            conn.execute(record_superseded_patients(supersede, batch_no), bound)
            conn.execute(record_batch_patients(spec, batch_no))
        with indexes_rebuilt(conn, spec) if large else contextlib.nullcontext():
            conn.execute(insert, bound)
        if spec.table == "prescriptions":
            conn.execute(drug_names_sql(spec, batch_no, spec.file_name in with_bad_rows))
    for spec in stale:  # a small batch leaves the statistics to autovacuum
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier("core", spec.table)))
    # Safe Harbor: how many of the batch's patients are 90+ at the newest as_of
    # (core keeps the age-90+ marker instead of their birth year)
    age_90_plus = conn.execute(
        "select count(*) from core.patients where batch_no = %s and age_90_plus", (batch_no,)
    ).fetchone()[0]
    if previous is not None and manifest.as_of.year > previous.year:
        # as_of moved to a later year: patients stored earlier who are
        # now 90+ lose their birth year
        age_90_plus += reapply_age_90_plus(conn, batch_no, year)
    if touches_all:
        conn.execute("update audit.batches set touches_all = true where batch_no = %s", (batch_no,))
        conn.execute("delete from audit.batch_patients where batch_no = %s", (batch_no,))
    return age_90_plus


def reapply_age_90_plus(conn: psycopg.Connection, batch_no: int, year: int) -> int:
    """Safe Harbor again for every stored row once as_of reaches a later
    year; the patients changed are recorded as touched by this batch."""
    changed = conn.execute(
        "with aged as (update core.patients set birth_year = null, age_90_plus = true"
        " where birth_year is not null and %(y)s - birth_year >= 90 and batch_no <> %(b)s"
        " returning patient_id)"
        " insert into audit.batch_patients (batch_no, patient_id)"
        " select distinct %(b)s, patient_id from aged on conflict do nothing",
        {"y": year, "b": batch_no},
    ).rowcount
    return changed
