"""Each staged file's distinct values, counted once per column.

Most columns of a batch repeat a few values over many rows: sites,
prescribers, drug names and codes, doses, dates, enumerations, even patient
ids (a few dozen rows each). Every check that looks at one value at a time
(the de-identification guard, the suite's format expectations, the row
checks' reasons) is evaluated once per distinct value and weighted by its
row count, instead of once per row; only the file's key, unique per row, is
checked row by row.

One ``GROUPING SETS`` scan of the stage builds the file's value table (a
temporary table of the load's transaction): one row per column and distinct
value, ``g`` saying which column (:func:`mask`), ``n`` its rows. The table has
the stage's column names, so an expression written for a staged row (alias
``r``) reads the value of its column in the rows of that column's set.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from audit.contract import Column, FileSpec
from audit.ingest.fragments import staged


def columns(spec: FileSpec) -> list[Column]:
    """The columns checked over their distinct values: all but the key."""
    return [c for c in spec.columns if c.name != spec.key]


def table(spec: FileSpec) -> sql.Composable:
    return sql.Identifier("pg_temp", f"{spec.table}_values")


def mask(spec: FileSpec, column: str) -> int:
    """``grouping(...)`` of the rows of ``column``'s set: a bit per column of
    :func:`columns`, the first the highest, set for every other column."""
    names = [c.name for c in columns(spec)]
    width = len(names)
    return ((1 << width) - 1) ^ (1 << (width - 1 - names.index(column)))


def of_column(spec: FileSpec, column: str, alias: str = "r") -> sql.Composable:
    """The condition that a value-table row (alias) is a value of ``column``."""
    return sql.SQL("{}.g = {}").format(sql.Identifier(alias), sql.Literal(mask(spec, column)))


def build(conn: psycopg.Connection, spec: FileSpec, batch_no: int) -> None:
    """Count the distinct values of each column of the staged file."""
    cols = [sql.Identifier(c.name) for c in columns(spec)]
    conn.execute(sql.SQL("drop table if exists {}").format(table(spec)))
    if not cols:
        return
    listed = sql.SQL(", ").join(cols)
    conn.execute(
        sql.SQL(
            "create temp table {t} on commit drop as "
            "select grouping({cols}) as g, {cols}, count(*) as n from {part} "
            "group by grouping sets ({sets})"
        ).format(
            t=table(spec),
            cols=listed,
            part=staged(spec, batch_no),
            sets=sql.SQL(", ").join(sql.SQL("({})").format(c) for c in cols),
        )
    )
    conn.execute(sql.SQL("analyze {}").format(table(spec)))
