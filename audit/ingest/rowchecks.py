"""Row checks: the reason each bad value of a staged file is quarantined.

Each column of :mod:`audit.contract` gets one ``CASE`` expression that yields
the reason a value is bad, or NULL when it is good; they run set-wise over the
batch's staged rows and fill ``audit.quarantine`` (file, line, column,
reason, never the value). What the file's Great Expectations suite already
showed of every row (:class:`Proven`: formats and sets of a column, a unique
key, known patients) is not checked a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import psycopg
from psycopg import sql

from audit import contract
from audit.contract import Column, FileSpec
from audit.errors import BatchRejected
from audit.ingest import values
from audit.ingest.fragments import column_ref, not_quarantined, staged

MISSING = "missing required value"
UNKNOWN_PATIENT = "unknown patient_id: not in patients.csv of this batch or an earlier one"
DUPLICATE_KEY = "duplicate id: the same id is on more than one line of this file"
ENDED_BEFORE_ENROLLED = "ended_on is before enrolled_on"


# Kinds whose format the Great Expectations suite checks row by row (a
# pattern or a set; with not-null for required columns and the length of ids).
# When the suite found no exception in such a column, its format checks here
# cannot fail and are left out; what the suite does not check stays (calendar
# dates, ranges, the length of numbers).
GATED_KINDS = (contract.ID, contract.NCT, contract.DATE, contract.INT, contract.DECIMAL,
               contract.ENUM, contract.BOOL)  # fmt: skip


def reason_expr(col: Column, alias: str = "r", gated: bool = False) -> sql.Composable | None:
    """A CASE expression: the reason ``col`` is bad in a row, else NULL.

    ``gated``: the suite found every value of the column well formed; only
    the checks it does not make remain (None when there are none).
    """
    c = column_ref(col.name, alias)
    lit = sql.Literal
    whens: list[sql.Composable] = [
        sql.SQL("when coalesce({c}, '') = '' then {r}").format(
            c=c, r=lit(MISSING) if col.required else sql.NULL
        )
    ]

    def when(cond: str, reason: str, **params: object) -> None:
        whens.append(
            sql.SQL("when " + cond + " then {reason}").format(
                c=c, reason=lit(reason), **{k: lit(v) for k, v in params.items()}
            )
        )

    kind = col.kind
    gated = gated and kind in GATED_KINDS
    if kind == contract.ID and not gated:
        when("{c} ~ '[^A-Za-z0-9._-]' or length({c}) > {n}",
             "invalid id: expected 1-64 characters of A-Z a-z 0-9 . _ -",
             n=contract.ID_MAX_LENGTH)  # fmt: skip
    elif kind == contract.NCT and not gated:
        when("{c} !~ {p}", "invalid trial id: expected NCT and 8 digits", p=contract.NCT_PATTERN)
    elif kind == contract.DATE:
        when("not audit.is_calendar_date({c})",
             "invalid date: expected an existing date YYYY-MM-DD between 1900 and 2099")  # fmt: skip
    elif kind == contract.INT:
        fmt = "length({c}) > {n}" if gated else "{c} !~ {p} or length({c}) > {n}"
        when(fmt, "not a whole number", p=contract.INT_PATTERN, n=contract.INT_MAX_LENGTH)
        if col.min_value is not None and col.max_value is not None:
            when("{c}::bigint not between {lo} and {hi}",
                 f"out of range: expected {col.min_value} to {col.max_value}",
                 lo=col.min_value, hi=col.max_value)  # fmt: skip
    elif kind == contract.DECIMAL:
        fmt = "length({c}) > {n}" if gated else "{c} !~ {p} or length({c}) > {n}"
        when(fmt, "not a decimal number", p=contract.DECIMAL_PATTERN, n=contract.DECIMAL_MAX_LENGTH)
        when("{c}::numeric <= 0", "must be greater than 0")
    elif kind == contract.ENUM and not gated:
        when("{c} <> all({v})", "not one of: " + " ".join(col.values), v=list(col.values))
    elif kind == contract.BOOL and not gated:
        when("lower({c}) not in ('true', 'false')", "expected true or false")
    elif kind == contract.TEXT:
        when("length({c}) > 1000", "longer than 1000 characters")
    if len(whens) == 1 and (gated or not col.required):
        return None  # nothing left to check: the value is present or may be absent
    return sql.SQL("case {} end").format(sql.SQL(" ").join(whens))


@dataclass(frozen=True)
class Proven:
    """What a file's Great Expectations suite found true of every row.

    ``columns``: the columns whose expectations (not null, pattern, set,
    length) all held; ``unique_key``: no key value repeats; ``known_patients``:
    every patient_id is in the batch's or an earlier batch's patients.
    """

    columns: frozenset[str] = frozenset()
    unique_key: bool = False
    known_patients: bool = False


def column_checks_sql(
    spec: FileSpec, batch_no: int, gated: frozenset[str] = frozenset(),
    only: frozenset[str] | None = None,
) -> sql.Composable | None:  # fmt: skip
    """(line_no, column_name, reason) of each bad value of the batch's file,
    row by row (the load uses it for the key; :func:`bad_values_sql` for
    the other columns).

    ``gated``: the columns the Great Expectations suite found well formed;
    ``only``: the columns to check (all when None). None when no check is left.
    """
    exprs = [
        (c.name, reason_expr(c, gated=c.name in gated))
        for c in spec.columns
        if only is None or c.name in only
    ]
    exprs = [(name, e) for name, e in exprs if e is not None]
    if not exprs:
        return None
    prefilter = sql.SQL(" or ").join(sql.SQL("({}) is not null").format(e) for _, e in exprs)
    values = sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(name), e) for name, e in exprs
    )
    return sql.SQL(
        "select r.line_no, f.column_name, f.reason "
        "from (select * from {part} r where {prefilter}) r "
        "cross join lateral (values {values}) as f(column_name, reason) "
        "where f.reason is not null"
    ).format(part=staged(spec, batch_no), prefilter=prefilter, values=values)


BAD_VALUES = sql.Identifier("pg_temp", "_rxaudit_bad_values")


def bad_values_sql(spec: FileSpec, gated: frozenset[str] = frozenset()) -> sql.Composable | None:
    """Each distinct bad value of the file's non-key columns, with its reason,
    from the file's value table (:mod:`~audit.ingest.values`). An empty value
    and a missing one have one reason, so they are one row (value ``''``)."""
    exprs = [(c, reason_expr(c, gated=c.name in gated)) for c in values.columns(spec)]
    exprs = [(c, e) for c, e in exprs if e is not None]
    if not exprs:
        return None
    # one select per column, each reading only its column's rows of the table
    per_column = sql.SQL(" union ").join(
        sql.SQL(
            "select {name} as column_name, coalesce({c}, '') as value, {e} as reason"
            " from {t} r where {of} and {e} is not null"
        ).format(
            name=sql.Literal(c.name),
            c=column_ref(c.name),
            e=e,
            t=values.table(spec),
            of=values.of_column(spec, c.name),
        )  # fmt: skip
        for c, e in exprs
    )
    return sql.SQL("create temp table {bad} on commit drop as {q}").format(
        bad=BAD_VALUES, q=per_column
    )


def lines_of_bad_values_sql(spec: FileSpec, batch_no: int, columns: list[str]) -> sql.Composable:
    """(line_no, column_name, reason) of the rows holding a bad value found by
    :func:`bad_values_sql` in one of ``columns``."""
    return sql.SQL(" union all ").join(
        sql.SQL(
            "select r.line_no, b.column_name, b.reason from {part} r "
            "join {bad} b on b.column_name = {name} and coalesce(r.{c}, '') = b.value"
        ).format(
            part=staged(spec, batch_no), bad=BAD_VALUES, name=sql.Literal(c), c=sql.Identifier(c)
        )  # fmt: skip
        for c in columns
    )


def duplicate_key_sql(spec: FileSpec, batch_no: int) -> sql.Composable:
    key = sql.Identifier(spec.key)
    return sql.SQL(
        "select r.line_no, {key_name} as column_name, {reason} as reason "
        "from {part} r join ("
        "  select {key} from {part} where coalesce({key}, '') <> '' "
        "  group by {key} having count(*) > 1) d using ({key})"
    ).format(
        key_name=sql.Literal(spec.key),
        reason=sql.Literal(DUPLICATE_KEY),
        key=key,
        part=staged(spec, batch_no),
    )


def unknown_patient_sql(spec: FileSpec, batch_no: int) -> sql.Composable:
    """Rows whose (well-formed) patient_id is in neither this batch nor core."""
    patients = contract.FILES_BY_TABLE["patients"]
    return sql.SQL(
        "select r.line_no, 'patient_id' as column_name, {reason} as reason "
        "from {part} r "
        "where r.patient_id !~ '[^A-Za-z0-9._-]' and length(r.patient_id) <= 64 "
        "and not exists (select 1 from {patients} p where p.patient_id = r.patient_id "
        "                and {p_ok}) "
        "and not exists (select 1 from core.patients c where c.patient_id = r.patient_id "
        "                and c.is_current)"
    ).format(
        reason=sql.Literal(UNKNOWN_PATIENT),
        part=staged(spec, batch_no),
        patients=staged(patients, batch_no),
        p_ok=not_quarantined(patients, batch_no, "p"),
    )


def ended_before_enrolled_sql(spec: FileSpec, batch_no: int) -> sql.Composable:
    return sql.SQL(
        "select r.line_no, 'ended_on' as column_name, {reason} as reason from {part} r "
        "where case when audit.is_calendar_date(r.enrolled_on) "
        "            and audit.is_calendar_date(r.ended_on) "
        "           then r.ended_on::date < r.enrolled_on::date else false end"
    ).format(
        reason=sql.Literal(ENDED_BEFORE_ENROLLED),
        part=staged(spec, batch_no),
    )


def quarantine_statements(
    spec: FileSpec, batch_no: int, proven: Proven | None = None
) -> list[sql.Composable]:
    """The statements filling audit.quarantine from the batch's file.

    Each check is a SELECT of (line_no, column_name, reason), run as ``create
    temp table ... as`` (PostgreSQL scans with parallel workers for a plain
    SELECT, never for an ``INSERT ... SELECT``); its few rows are then copied
    into audit.quarantine. ``proven``: what the Great Expectations suite of
    the file found without exception, which no check repeats.
    """
    proven = proven or Proven()
    checks = [column_checks_sql(spec, batch_no, proven.columns, frozenset({spec.key}))]
    if not proven.unique_key:
        checks.append(duplicate_key_sql(spec, batch_no))
    if spec.refers_to_patient and not proven.known_patients:
        checks.append(unknown_patient_sql(spec, batch_no))
    if "ended_on_after_enrolled_on" in spec.checks:
        checks.append(ended_before_enrolled_sql(spec, batch_no))
    keep = sql.SQL(
        "insert into audit.quarantine (batch_no, file_name, line_no, column_name, reason) "
        "select {b}, {f}, line_no, column_name, reason from _rxaudit_bad"
    ).format(b=sql.Literal(batch_no), f=sql.Literal(spec.file_name))
    stmts: list[sql.Composable] = []
    for check in filter(None, checks):
        stmts += [
            sql.SQL("create temp table _rxaudit_bad on commit drop as ") + check,
            keep,
            sql.SQL("drop table _rxaudit_bad"),
        ]
    return stmts


def summary(conn: psycopg.Connection, batch_no: int) -> list[dict]:
    """The batch's quarantine by file, column and reason, in file order."""
    rows = conn.execute(
        "select file_name, column_name, reason, count(*), min(line_no) "
        "from audit.quarantine where batch_no = %s "
        "group by file_name, column_name, reason order by min(line_no), file_name, column_name",
        (batch_no,),
    ).fetchall()
    order = {f.file_name: i for i, f in enumerate(contract.FILES)}
    out = [
        {"file": f, "column": c, "reason": r, "rows": n, "first_line": first}
        for f, c, r, n, first in rows
    ]
    out.sort(key=lambda s: (order.get(s["file"], 99), s["first_line"], s["column"]))
    return out


def quarantine(
    conn: psycopg.Connection,
    batch_no: int,
    specs: list[FileSpec],
    proof_of: Callable[[FileSpec], Proven],
) -> tuple[int, list[dict]]:
    """Quarantine the batch's bad rows; (rows quarantined, summary)."""
    for spec in specs:
        proof = proof_of(spec)
        bad_values = bad_values_sql(spec, proof.columns)
        if bad_values is not None:
            conn.execute(sql.SQL("drop table if exists {}").format(BAD_VALUES))
            conn.execute(bad_values)
            columns = [c for (c,) in conn.execute(
                sql.SQL("select distinct column_name from {} order by 1").format(BAD_VALUES))]  # fmt: skip
            if columns:  # only a file with a bad value is read again, for its lines
                conn.execute(
                    sql.SQL(
                        "insert into audit.quarantine (batch_no, file_name, line_no, column_name,"
                        " reason) select {b}, {f}, line_no, column_name, reason from ({q}) q"
                    ).format(
                        b=sql.Literal(batch_no),
                        f=sql.Literal(spec.file_name),
                        q=lines_of_bad_values_sql(spec, batch_no, columns),
                    )  # fmt: skip
                )
        for stmt in quarantine_statements(spec, batch_no, proof):
            conn.execute(stmt)
    bad = conn.execute(
        "select count(*) from (select distinct file_name, line_no from audit.quarantine"
        " where batch_no = %s) q",
        (batch_no,),
    ).fetchone()[0]
    return bad, summary(conn, batch_no)


def refuse_above(bad: int, rows_in: int, found: list[dict], max_fraction: float) -> None:
    """Reject the batch when more than ``max_fraction`` of its rows are bad,
    naming the first bad row."""
    limit = Fraction(str(max_fraction))
    if rows_in and Fraction(bad, rows_in) > limit:
        first = found[0]
        raise BatchRejected(
            f"{bad} of {rows_in} rows ({bad / rows_in:.2%}) failed checks, "
            f"more than the {float(limit):.2%} allowed; first: {first['reason']}",
            file=first["file"],
            line=first["first_line"],
            column=first["column"],
        )
