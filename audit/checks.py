"""Row-level checks of a batch, as SQL composed from the catalogue.

Each column of :mod:`audit.contract` gets one ``CASE`` expression that yields
the reason a value is bad, or NULL when it is good. The loader runs them
set-wise over a batch's raw partition to fill ``audit.quarantine``; the typed
merge into ``core`` uses :func:`typed_expr`. What the batch's Great
Expectations suite already showed of every row (:class:`Proven`: formats and
sets of a column, a unique key, known patients) is not checked a second time.
Identifiers and literals here come from the catalogue only, never from a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from audit import contract
from audit.contract import Column, FileSpec

MISSING = "missing required value"
UNKNOWN_PATIENT = "unknown patient_id: not in patients.csv of this batch or an earlier one"
DUPLICATE_KEY = "duplicate id: the same id is on more than one line of this file"
ENDED_BEFORE_ENROLLED = "ended_on is before enrolled_on"


def column_ref(col: str, alias: str = "r") -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(col))


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


def typed_expr(col: Column, alias: str = "r") -> sql.Composable:
    """The typed value of ``col`` (only used on rows that passed the checks)."""
    c = sql.SQL("nullif({}, '')").format(column_ref(col.name, alias))
    if col.kind == contract.BOOL:
        return sql.SQL("lower({})::boolean").format(c)
    if col.sql_type == "text":
        return c
    return sql.SQL("{}::{}").format(c, sql.SQL(col.sql_type))


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


def raw_partition(spec: FileSpec, batch_no: int) -> sql.Composable:
    return sql.Identifier("raw", f"{spec.table}_p{batch_no:06d}")


def column_checks_sql(
    spec: FileSpec, batch_no: int, gated: frozenset[str] = frozenset()
) -> sql.Composable | None:
    """(line_no, column_name, reason) of each bad value of the batch's file.

    ``gated``: the columns the Great Expectations suite found well formed.
    None when no check is left.
    """
    exprs = [(c.name, reason_expr(c, gated=c.name in gated)) for c in spec.columns]
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
    ).format(part=raw_partition(spec, batch_no), prefilter=prefilter, values=values)


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
        part=raw_partition(spec, batch_no),
    )


def not_quarantined(spec: FileSpec, batch_no: int, alias: str = "r") -> sql.Composable:
    return sql.SQL(
        "not exists (select 1 from audit.quarantine q where q.batch_no = {b} "
        "and q.file_name = {f} and q.line_no = {a}.line_no)"
    ).format(b=sql.Literal(batch_no), f=sql.Literal(spec.file_name), a=sql.Identifier(alias))


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
        part=raw_partition(spec, batch_no),
        patients=raw_partition(patients, batch_no),
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
        part=raw_partition(spec, batch_no),
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
    checks = [column_checks_sql(spec, batch_no, proven.columns)]
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


def normalise_sql(value: sql.Composable) -> sql.Composable:
    """A value as the guard's patterns see it (the SQL twin of ``guard.normalise``).

    Only a value holding a character outside ASCII is normalised (NFKC, Unicode
    digits, dashes and spaces mapped, format characters removed): an ASCII
    value is already in normal form.
    """
    from audit import guard

    return sql.SQL(
        "case when {v} ~ '[^\\x20-\\x7e]' "
        "then translate(normalize({v}, NFKC), {src}, {dst}) else {v} end"
    ).format(
        v=value,
        src=sql.Literal(guard.NORMALISE_FROM + guard.NORMALISE_DROP),
        dst=sql.Literal(guard.NORMALISE_TO),
    )


def guard_values_sql(spec: FileSpec, batch_no: int) -> sql.Composable:
    """The first (line, column, kind) of the file holding an identifier-like value.

    A broad prefilter over the raw text of all guarded columns of a row runs
    first; only its candidates are normalised and matched against the precise
    patterns (the bare-digit ones not in code columns).
    """
    from audit import guard

    cols = [c for c in spec.columns if c.guarded]
    others = [c for c in spec.columns if not c.guarded]
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}, {}, {})").format(
            sql.Literal(i),
            sql.Literal(c.name),
            sql.Literal(c.name in guard.CODE_COLUMNS),
            column_ref(c.name),
        )
        for i, c in enumerate([*cols, *others])
    )
    patterns = [(guard.LONG_FIELD, "", True), *guard.VALUE_PATTERNS]
    kinds = sql.SQL(", ").join(
        sql.SQL("({}, {}, {}, {})").format(
            sql.Literal(i), sql.Literal(kind), sql.Literal(pattern), sql.Literal(on_codes)
        )
        for i, (kind, pattern, on_codes) in enumerate(patterns)
    )
    joined = sql.SQL("concat_ws(chr(1), {})").format(
        sql.SQL(", ").join(column_ref(c.name) for c in [*cols, *others])
    )
    return sql.SQL(
        "select r.line_no, v.column_name, k.kind from {part} r "
        "cross join lateral (values {values}) as v(ord, column_name, is_code, value) "
        "cross join lateral (select {norm} as text) as n "
        "join (values {kinds}) as k(ord, kind, pattern, on_codes) "
        "on (k.on_codes or not v.is_code) and case"
        "  when k.pattern = '' then length(v.value) > {max_len}"
        "  else length(v.value) <= {max_len} and n.text ~* k.pattern end "
        "where {joined} ~ {prefilter} or length({joined}) > {max_len} "
        "order by r.line_no, v.ord, k.ord limit 1"
    ).format(
        part=raw_partition(spec, batch_no),
        values=values,
        norm=normalise_sql(sql.SQL("v.value")),
        kinds=kinds,
        joined=joined,
        prefilter=sql.Literal(guard.VALUE_PREFILTER),
        max_len=sql.Literal(guard.MAX_FIELD_CHARS),
    )


def merge_statements(
    spec: FileSpec, batch_no: int, as_of_year: int, has_quarantine: bool = True
) -> list[sql.Composable]:
    """Supersede the current versions of the batch's keys, then insert the batch.

    A record's identity is its key within the batch's source (the statements
    bind ``%(source)s``): a correction replaces only a record of its own
    source. The trial registry is one registry, keyed by NCT id alone.
    ``has_quarantine`` False (no row of this file was quarantined) drops the
    anti-join with audit.quarantine, the usual case and the costly part.
    """
    part = raw_partition(spec, batch_no)
    table = sql.Identifier("core", spec.table)
    key = sql.Identifier(spec.key)
    ok = not_quarantined(spec, batch_no) if has_quarantine else sql.SQL("true")
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


def same_source(spec: FileSpec, alias: str = "c") -> sql.Composable:
    """The condition that a core row is of the batch's source (``%(source)s``)."""
    if not spec.per_source:
        return sql.SQL("true")
    return sql.SQL("{}.source = %(source)s").format(sql.Identifier(alias))


def replaced_by_batch_sql(spec: FileSpec, batch_no: int, has_quarantine: bool) -> sql.Composable:
    """(batch_id, records) of the current records the batch's rows would replace."""
    part = raw_partition(spec, batch_no)
    ok = not_quarantined(spec, batch_no) if has_quarantine else sql.SQL("true")
    return sql.SQL(
        "select b.batch_id, count(*) from {table} c"
        " inner join {part} r on c.{key} = r.{key} and {ok}"
        " inner join audit.batches b on b.batch_no = c.batch_no"
        " where c.is_current and {same} group by b.batch_no, b.batch_id order by b.batch_no"
    ).format(
        table=sql.Identifier("core", spec.table), part=part, key=sql.Identifier(spec.key),
        ok=ok, same=same_source(spec),
    )  # fmt: skip


def changed_patients_sql(batch_no: int, has_quarantine: bool) -> sql.Composable:
    """How many current patients of the source the batch gives another birth
    year or sex (a known value replaced by a different one)."""
    spec = contract.FILES_BY_TABLE["patients"]
    ok = not_quarantined(spec, batch_no) if has_quarantine else sql.SQL("true")
    return sql.SQL(
        "select count(*) from core.patients c inner join {part} r"
        " on c.patient_id = r.patient_id and {ok}"
        " where c.is_current and c.source = %(source)s and ("
        "  (c.birth_year is not null and {by} is distinct from c.birth_year)"
        "  or (c.sex is not null and {sex} is distinct from c.sex))"
    ).format(
        part=raw_partition(spec, batch_no), ok=ok,
        by=typed_expr(spec.column("birth_year")), sex=typed_expr(spec.column("sex")),
    )  # fmt: skip


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
    ).format(b=sql.Literal(batch_no), part=raw_partition(spec, batch_no))
