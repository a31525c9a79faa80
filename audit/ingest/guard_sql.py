"""The de-identification guard over a staged file's values, in SQL.

The patterns are :mod:`audit.guard`'s; here they run set-wise over the
batch's staged rows. One hit rejects the batch, naming file, line, column and
the kind of identifier, never the value.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from audit import guard
from audit.contract import FileSpec
from audit.errors import BatchRejected
from audit.ingest import values
from audit.ingest.fragments import column_ref, staged


def normalise_sql(value: sql.Composable) -> sql.Composable:
    """A value as the guard's patterns see it (the SQL twin of ``guard.normalise``).

    Only a value holding a character outside ASCII is normalised (NFKC, Unicode
    digits, dashes and spaces mapped, format characters removed): an ASCII
    value is already in normal form.
    """
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
        part=staged(spec, batch_no),
        values=values,
        norm=normalise_sql(sql.SQL("v.value")),
        kinds=kinds,
        joined=joined,
        prefilter=sql.Literal(guard.VALUE_PREFILTER),
        max_len=sql.Literal(guard.MAX_FIELD_CHARS),
    )


def _hits(value: sql.Composable, is_code: bool) -> sql.Composable:
    """The condition that one value is identifier-like (the guard's prefilter,
    then its precise patterns, as :func:`guard_values_sql` matches them)."""
    patterns = [(guard.LONG_FIELD, "", True), *guard.VALUE_PATTERNS]
    precise = [sql.SQL("length({v}) > {n}").format(v=value, n=sql.Literal(guard.MAX_FIELD_CHARS))]
    norm = normalise_sql(value)
    precise += [
        sql.SQL("(length({v}) <= {n} and {norm} ~* {p})").format(
            v=value, n=sql.Literal(guard.MAX_FIELD_CHARS), norm=norm, p=sql.Literal(pattern)
        )
        for _, pattern, on_codes in patterns[1:]
        if on_codes or not is_code
    ]
    return sql.SQL("(({v} ~ {pre} or length({v}) > {n}) and ({precise}))").format(
        v=value,
        pre=sql.Literal(guard.VALUE_PREFILTER),
        n=sql.Literal(guard.MAX_FIELD_CHARS),
        precise=sql.SQL(" or ").join(precise),
    )


def values_hit_sql(spec: FileSpec) -> sql.Composable | None:
    """Whether a distinct value of a non-key column of the staged file is
    identifier-like (:mod:`~audit.ingest.values`)."""
    per_value = [
        sql.SQL("({of} and {hit})").format(
            of=values.of_column(spec, c.name),
            hit=_hits(column_ref(c.name), c.name in guard.CODE_COLUMNS),
        )
        for c in values.columns(spec)
    ]
    if not per_value:
        return None
    return sql.SQL("select exists (select 1 from {t} r where {any})").format(
        t=values.table(spec), any=sql.SQL(" or ").join(per_value)
    )


def key_candidates(spec: FileSpec) -> sql.Composable:
    """An aggregate over the staged rows: how many keys pass the guard's
    prefilter (computed in the suite's scan, :func:`audit.ingest.compile.counts_sql`).
    The key is unique per row, so it is the one value read row by row."""
    return sql.SQL("count(*) filter (where r.{k} ~ {pre} or length(r.{k}) > {n})").format(
        k=sql.Identifier(spec.key),
        pre=sql.Literal(guard.VALUE_PREFILTER),
        n=sql.Literal(guard.MAX_FIELD_CHARS),
    )


def check_values(
    conn: psycopg.Connection, batch_no: int, specs: list[FileSpec], key_hits: dict[str, int]
) -> None:
    """Reject the batch at its first identifier-like value (file order, then
    line, column and pattern order). ``key_hits``: per file, the keys that
    passed the prefilter (:func:`key_candidates`). Only a file with a
    candidate is scanned row by row, to name the first hit."""
    for spec in specs:
        in_values = values_hit_sql(spec)
        if not (
            key_hits.get(spec.file_name, 1)
            or (in_values is not None and conn.execute(in_values).fetchone()[0])
        ):
            continue
        hit = conn.execute(guard_values_sql(spec, batch_no)).fetchone()
        if hit:
            raise BatchRejected(
                f"value looks like {hit[2]} (de-identification guard)",
                file=spec.file_name,
                line=hit[0],
                column=hit[1],
            )
