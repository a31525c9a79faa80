"""The expectation suites compiled to SQL: one aggregate per staged file.

Great Expectations stays the one definition of the format checks
(:mod:`audit.ingest.suite` generates the suites from the contract); each
expectation type the suites use maps to one SQL predicate here, as OHDSI's
DataQualityDashboard maps each check type to one SQL template. An
expectation of any other type fails the build (:class:`UnknownExpectation`,
raised when a suite is compiled, and a test compiles every suite). The
results keep Great Expectations' shape (``SUMMARY`` format, counts and
percentages, never a value); a parity test runs real Great Expectations on
the same staged rows and asserts the same counts for every expectation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import psycopg
from psycopg import sql

from audit.contract import FileSpec
from audit.ingest import suite as suites
from audit.ingest import values
from audit.ingest.fragments import column_ref, staged


class UnknownExpectation(Exception):
    """A suite holds an expectation type with no SQL predicate here."""


@dataclass(frozen=True)
class Compiled:
    """One expectation as SQL over the stage (alias ``r``)."""

    kind: str  # "column": a map over non-null values; "rows": unexpected rows
    unexpected: sql.Composable  # column: the row predicate; rows: a count query
    column: str | None


def _not_null(kw: dict) -> Compiled:
    c = column_ref(kw["column"])
    return Compiled("not_null", sql.SQL("{} is null").format(c), kw["column"])


def _regex(kw: dict) -> Compiled:
    c = column_ref(kw["column"])
    pred = sql.SQL("{} !~ {}").format(c, sql.Literal(kw["regex"]))
    return Compiled("column", pred, kw["column"])


def _in_set(kw: dict) -> Compiled:
    c = column_ref(kw["column"])
    pred = sql.SQL("{} <> all({})").format(c, sql.Literal(list(kw["value_set"])))
    return Compiled("column", pred, kw["column"])


def _lengths(kw: dict) -> Compiled:
    c = column_ref(kw["column"])
    pred = sql.SQL("length({}) not between {} and {}").format(
        c, sql.Literal(kw["min_value"]), sql.Literal(kw["max_value"])
    )
    return Compiled("column", pred, kw["column"])


def _unique(kw: dict, table: sql.Composable) -> Compiled:
    # Great Expectations counts every row of a repeated value. Whether there
    # is one is asked first by a sort of the keys (count distinct), which is
    # cheaper than a hash table of every key; only then are the rows counted.
    key = sql.Identifier(kw["column"])
    query = sql.SQL(
        "select case when count({k}) = count(distinct {k}) then 0 else ("
        "select coalesce(sum(n), 0) from (select count(*) as n from {t} "
        "where {k} is not null group by {k} having count(*) > 1) d) end from {t}"
    ).format(t=table, k=key)
    return Compiled("unique", query, kw["column"])


def _unexpected_rows(kw: dict, table: sql.Composable) -> Compiled:
    # The query is the suite's own text, made from the contract (never data);
    # {batch} is the staged file, as Great Expectations substitutes it.
    head, _, tail = kw["unexpected_rows_query"].partition("{batch}")
    query = sql.SQL("select count(*) from (") + sql.SQL(head) + table + sql.SQL(tail + ") q")
    return Compiled("rows", query, None)


#: Each expectation type of the suites, and its SQL.
COLUMN_MAPS: dict[str, Callable[[dict], Compiled]] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_match_regex": _regex,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_value_lengths_to_be_between": _lengths,
}
TABLE_CHECKS: dict[str, Callable[[dict, sql.Composable], Compiled]] = {
    "expect_column_values_to_be_unique": _unique,
    "unexpected_rows_expectation": _unexpected_rows,
}


def compile_suite(suite: dict, table: sql.Composable) -> list[Compiled]:
    out = []
    for e in suite["expectations"]:
        if e["type"] in COLUMN_MAPS:
            out.append(COLUMN_MAPS[e["type"]](e["kwargs"]))
        elif e["type"] in TABLE_CHECKS:
            out.append(TABLE_CHECKS[e["type"]](e["kwargs"], table))
        else:
            raise UnknownExpectation(
                f"suite {suite['name']}: expectation type {e['type']!r} has no SQL predicate"
            )
    return out


def counts_sql(
    compiled: list[Compiled], table: sql.Composable, spec: FileSpec,
    row_extras: tuple[sql.Composable, ...] = (),
) -> sql.Composable:  # fmt: skip
    """One statement: the row count, each column's non-null count, each
    expectation's unexpected count, then ``row_extras`` (aggregates over the
    staged rows computed in the same scan: the guard's over the key).

    A column's expectations are counted over its distinct values, each
    weighted by its rows (:mod:`~audit.ingest.values`); the key's over the
    staged rows; table checks by their own query.
    """
    by_value = {c.name for c in values.columns(spec)}
    columns = sorted({c.column for c in compiled if c.column})
    per_row: list[sql.Composable] = [sql.SQL("count(*)")]
    per_value: list[sql.Composable] = []

    def on_rows(expr: sql.Composable) -> sql.Composable:
        per_row.append(expr)
        return sql.SQL("a.{}").format(sql.Identifier(f"a{len(per_row) - 1}"))

    def on_values(column: str, cond: sql.Composable) -> sql.Composable:
        per_value.append(
            sql.SQL("coalesce(sum(r.n) filter (where {of} and {cond}), 0)::bigint").format(
                of=values.of_column(spec, column), cond=cond
            )
        )
        return sql.SQL("b.{}").format(sql.Identifier(f"b{len(per_value) - 1}"))

    items = [sql.SQL("a.a0")]
    for col in columns:
        if col in by_value:
            items.append(on_values(col, sql.SQL("{} is not null").format(column_ref(col))))
        else:
            items.append(on_rows(sql.SQL("count({})").format(column_ref(col))))
    for c in compiled:
        if c.kind == "not_null":
            cond = c.unexpected
        elif c.kind == "column":
            cond = sql.SQL("{} is not null and {}").format(column_ref(c.column), c.unexpected)
        else:
            items.append(sql.SQL("({})").format(c.unexpected))
            continue
        if c.column in by_value:
            items.append(on_values(c.column, cond))
        else:
            items.append(on_rows(sql.SQL("count(*) filter (where {})").format(cond)))
    items += [on_rows(e) for e in row_extras]
    query = sql.SQL("select {items} from (select {rows} from {t} r) a").format(
        items=sql.SQL(", ").join(items), rows=_named(per_row, "a"), t=table
    )
    if per_value:
        query += sql.SQL(" cross join (select {vals} from {v} r) b").format(
            vals=_named(per_value, "b"), v=values.table(spec)
        )
    return query


def _named(exprs: list[sql.Composable], prefix: str) -> sql.Composable:
    """``e0 as a0, e1 as a1, ...``"""
    return sql.SQL(", ").join(
        sql.SQL("{} as {}").format(e, sql.Identifier(f"{prefix}{i}")) for i, e in enumerate(exprs)
    )


def _pct(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


def validate_file(
    conn: psycopg.Connection, spec: FileSpec, batch_no: int,
    row_extras: tuple[sql.Composable, ...] = (),
) -> tuple[dict, list]:  # fmt: skip
    """A file's suite evaluated on its stage, as Great Expectations reports
    it, and the values of ``row_extras`` (see :func:`counts_sql`)."""
    suite = suites.suite_of(spec, batch_no)
    table = staged(spec, batch_no)
    compiled = compile_suite(suite, table)
    columns = sorted({c.column for c in compiled if c.column})
    row = conn.execute(counts_sql(compiled, table, spec, row_extras)).fetchone()
    extras = list(row[len(row) - len(row_extras) :]) if row_extras else []
    row = row[: len(row) - len(row_extras)]
    total, nonnull = row[0], dict(zip(columns, row[1 : 1 + len(columns)], strict=True))
    results = []
    for e, c, n in zip(suite["expectations"], compiled, row[1 + len(columns) :], strict=True):
        n = int(n)
        count: int | None = n
        if c.kind == "rows":
            element, percent = None, None
        elif total == 0 and c.kind != "unique":  # GX counts nothing of an empty file
            element, count, percent = 0, None, None
        elif c.kind == "not_null":
            element, percent = total, _pct(n, total)
        else:
            element, percent = total, _pct(n, nonnull[c.column])
        results.append({
            "expectation": e["type"], "column": c.column, "description": e.get("description"),
            "success": n == 0, "element_count": element, "unexpected_count": count,
            "unexpected_percent": percent, "exception": False,
        })  # fmt: skip
    met = sum(r["success"] for r in results)
    return _summary(spec, suite, results, met), extras


def _summary(spec: FileSpec, suite: dict, results: list[dict], met: int) -> dict:
    return {
        "file": spec.file_name,
        "suite": suite["name"],
        "success": met == len(results),
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": met,
            "unsuccessful_expectations": len(results) - met,
            "success_percent": _pct(met, len(results)),
        },
        "results": results,
        "engine": ENGINE,
    }


ENGINE = f"great_expectations {version('great_expectations')} suite, compiled to SQL"


def validate_batch(conn: psycopg.Connection, batch_no: int, specs: list[FileSpec]) -> list[dict]:
    return [validate_file(conn, spec, batch_no)[0] for spec in specs]
