"""The replacement guard: a batch may correct records, not swap a cohort.

Per file, the records the batch adds and the current records (of its source,
delivered by earlier batches) it would replace are counted by batch and kept
in the ledger. Refused unless the operator allows a deliberate mass
correction: replacing more than ``max_replace_fraction`` of a file's current
records of the source (more than REPLACE_GUARD_MIN_RECORDS of them), counting
what the source's batches of the last REPLACE_WINDOW_DAYS days replaced, or
changing any patient's known birth year or sex (whichever source recorded
it: a patient is one identity across sources), a 90+ marker included.
"""

from __future__ import annotations

from fractions import Fraction

import psycopg
from psycopg import sql

from audit import contract
from audit.contract import FileSpec
from audit.errors import BatchRejected
from audit.ingest.fragments import kept, same_source, staged, typed_expr

#: Replacing this many records or fewer never trips the share test (a few
#: corrections to a small extract are corrections, not a second cohort).
REPLACE_GUARD_MIN_RECORDS = 10
#: The share counts what the source's batches loaded in this many days
#: replaced too (not those an operator let through with --allow-replace):
#: nine batches replacing 6% each are a mass replacement as one batch is.
REPLACE_WINDOW_DAYS = 30

_RECENT = (
    "select coalesce(sum((e ->> 'replaced')::bigint), 0)::bigint from audit.batches as b"
    " cross join lateral jsonb_array_elements(b.replacements) as e"
    " where b.status = 'loaded' and coalesce(b.source, '') = %(source)s and not b.replace_allowed"
    " and b.finished_at > now() - make_interval(days => %(days)s) and e ->> 'file' = %(file)s"
)


def replaced_by_batch_sql(spec: FileSpec, batch_no: int, has_quarantine: bool) -> sql.Composable:
    """(batch_id, records) of the current records the batch's rows would replace."""
    return sql.SQL(
        "select b.batch_id, count(*) from {table} c"
        " inner join {part} r on c.{key} = r.{key} and {ok}"
        " inner join audit.batches b on b.batch_no = c.batch_no"
        " where c.is_current and {same} group by b.batch_no, b.batch_id order by b.batch_no"
    ).format(
        table=sql.Identifier("core", spec.table), part=staged(spec, batch_no),
        key=sql.Identifier(spec.key), ok=kept(spec, batch_no, has_quarantine),
        same=same_source(spec),
    )  # fmt: skip


def changed_patients_sql(batch_no: int, has_quarantine: bool, year: int) -> sql.Composable:
    """How many current patients, of any source (a patient is one identity),
    the batch gives another birth year or sex: a known value replaced by a
    different one, or a patient recorded as 90+ given a birth year that makes
    them younger at ``year`` (the year Safe Harbor is judged at)."""
    spec = contract.FILES_BY_TABLE["patients"]
    by = typed_expr(spec.column("birth_year"))
    return sql.SQL(
        "select count(distinct c.patient_id) from core.patients c inner join {part} r"
        " on c.patient_id = r.patient_id and {ok}"
        " where c.is_current and ("
        "  (c.birth_year is not null and {by} is distinct from c.birth_year)"
        "  or (c.age_90_plus and {by} is not null and {year} - {by} < 90)"
        "  or (c.sex is not null and {sex} is distinct from c.sex))"
    ).format(
        part=staged(spec, batch_no), ok=kept(spec, batch_no, has_quarantine), by=by,
        year=sql.Literal(year), sex=typed_expr(spec.column("sex")),
    )  # fmt: skip


def guard_replacements(
    conn: psycopg.Connection,
    specs: list[FileSpec],
    batch_no: int,
    with_bad_rows: set[str],
    bound: dict,
    max_fraction: float,
    allow: bool,
    year: int,
) -> list[dict]:
    """The batch's additions and replacements per file; refuse a mass replacement."""
    limit = Fraction(str(max_fraction))
    out = []
    for spec in specs:
        quarantined = spec.file_name in with_bad_rows
        by_batch = conn.execute(
            replaced_by_batch_sql(spec, batch_no, quarantined), bound
        ).fetchall()
        replaced = sum(n for _, n in by_batch)
        loaded = conn.execute(
            sql.SQL("select count(*) from {} r where {}").format(
                staged(spec, batch_no), kept(spec, batch_no, quarantined)
            )
        ).fetchone()[0]
        out.append({"file": spec.file_name, "added": loaded - replaced, "replaced": replaced,
                    "from": {b: n for b, n in by_batch}})  # fmt: skip
        if allow or not replaced:
            continue
        recent = conn.execute(
            _RECENT, {**bound, "days": REPLACE_WINDOW_DAYS, "file": spec.file_name}
        ).fetchone()[0]
        if replaced + recent <= REPLACE_GUARD_MIN_RECORDS:
            continue
        held = conn.execute(
            sql.SQL("select count(*) from {} c where c.is_current and {}").format(
                sql.Identifier("core", spec.table), same_source(spec)
            ),
            bound,
        ).fetchone()[0]
        if held and Fraction(replaced + recent, held) > limit:
            names = ", ".join(f"{b} ({n:,})" for b, n in by_batch[:5])
            more = f" and {len(by_batch) - 5} more" if len(by_batch) > 5 else ""
            earlier = (f"; with the {recent:,} this source's batches of the last"
                       f" {REPLACE_WINDOW_DAYS} days replaced, {(replaced + recent) / held:.1%}"
                       if recent else "")  # fmt: skip
            raise BatchRejected(
                f"would replace {replaced:,} of the {held:,} current records"
                f" ({replaced / held:.1%}) of batch(es) {names}{more}{earlier}, more than the"
                f" {float(limit):.0%} allowed (max_replace_fraction): a second extract"
                " reusing the same ids? Send a deliberate mass correction with"
                " --allow-replace",
                file=spec.file_name,
            )
    if not allow and any(s.table == "patients" for s in specs):
        changed = conn.execute(
            changed_patients_sql(batch_no, "patients.csv" in with_bad_rows, year)
        ).fetchone()[0]
        if changed:
            raise BatchRejected(
                f"would change the birth year or sex of {changed:,} patient(s) already"
                " loaded: a different cohort under the same ids? Send a deliberate"
                " correction with --allow-replace",
                file="patients.csv",
            )
    return out
