"""SQL fragments shared by the ingest steps: where a batch's staged rows are,
how a column is named and typed, which rows were quarantined, which core rows
are of the batch's source. Identifiers and literals come from the contract
only, never from a file.
"""

from __future__ import annotations

from psycopg import sql

from audit import contract
from audit.contract import Column, FileSpec


def column_ref(col: str, alias: str = "r") -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(col))


def stage_name(table: str, batch_no: int) -> str:
    """The name, in schema ``stage``, of the table holding the batch's rows of
    one file as text during its load."""
    return f"{table}_b{batch_no:06d}"


def staged(spec: FileSpec, batch_no: int) -> sql.Composable:
    return sql.Identifier("stage", stage_name(spec.table, batch_no))


def typed_expr(col: Column, alias: str = "r") -> sql.Composable:
    """The typed value of ``col`` (only used on rows that passed the checks)."""
    c = sql.SQL("nullif({}, '')").format(column_ref(col.name, alias))
    if col.kind == contract.BOOL:
        return sql.SQL("lower({})::boolean").format(c)
    if col.sql_type == "text":
        return c
    return sql.SQL("{}::{}").format(c, sql.SQL(col.sql_type))


def not_quarantined(spec: FileSpec, batch_no: int, alias: str = "r") -> sql.Composable:
    return sql.SQL(
        "not exists (select 1 from audit.quarantine q where q.batch_no = {b} "
        "and q.file_name = {f} and q.line_no = {a}.line_no)"
    ).format(b=sql.Literal(batch_no), f=sql.Literal(spec.file_name), a=sql.Identifier(alias))


def kept(spec: FileSpec, batch_no: int, has_quarantine: bool, alias: str = "r") -> sql.Composable:
    """The condition that a staged row goes on to core (``true`` when no row
    of the file was quarantined: the usual case, and the anti-join is costly)."""
    return not_quarantined(spec, batch_no, alias) if has_quarantine else sql.SQL("true")


def same_source(spec: FileSpec, alias: str = "c") -> sql.Composable:
    """The condition that a core row is of the batch's source (``%(source)s``)."""
    if not spec.per_source:
        return sql.SQL("true")
    return sql.SQL("{}.source = %(source)s").format(sql.Identifier(alias))
