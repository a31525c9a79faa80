"""Building a derived table or running a rule: all of it, or (incremental)
the touched patients' rows only. Values are bound parameters; the only
identifiers composed are the catalogue's own names."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql

from audit.engine.catalogue import (
    CASE_COLUMNS,
    MODEL_REF,
    RUN_CASES_REF,
    Model,
    Rule,
    model_names,
)
from audit.policy import Policy

POLICY_TABLES = ("policy_ingredients", "policy_drug_names")


def refresh_policy_tables(conn: psycopg.Connection, policy: Policy, schema: str = "core") -> None:
    """Load the policy's ingredients and drug names (a few dozen rows) into
    ``schema``'s policy tables."""
    ingredients_table = sql.Identifier(schema, "policy_ingredients")
    names_table = sql.Identifier(schema, "policy_drug_names")
    conn.execute(sql.SQL("truncate {}, {}").format(names_table, ingredients_table))
    ingredients = policy.ingredients()
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "insert into {} (ingredient, drug_class, rxcui, min_mg, max_mg, first_line)"
                " values (%(ingredient)s, %(drug_class)s, %(rxcui)s, %(min_mg)s, %(max_mg)s,"
                " %(first_line)s)"
            ).format(ingredients_table),
            ingredients,
        )
        cur.executemany(
            sql.SQL(
                "insert into {} (ingredient, name, pattern) values (%s, %s, %s)"
                " on conflict do nothing"
            ).format(names_table),
            [
                (i["ingredient"], name, r"\m" + re.sub(r"([^A-Za-z0-9 ])", r"\\\1", name) + r"\M")
                for i in ingredients
                for name in i["names"]
            ],
        )


def refresh_rule_table(conn: psycopg.Connection, rules: tuple[Rule, ...], params: dict) -> None:
    """The catalogue's rules, for reports and the BI views; ``matures_days``
    from the policy's value of each rule's ``matures_after`` key."""
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        cur.executemany(
            "insert into audit.rules (rule_id, title, severity, guideline, parameters,"
            " report_order, matures_days) values (%s, %s, %s, %s, %s, %s, %s)"
            " on conflict (rule_id) do update set"
            " title = excluded.title, severity = excluded.severity,"
            " guideline = excluded.guideline, parameters = excluded.parameters,"
            " report_order = excluded.report_order, matures_days = excluded.matures_days",
            [(r.id, r.title, r.severity, r.guideline, Jsonb(list(r.parameters)), r.order,
              int(params[r.matures_after]) if r.matures_after else 0) for r in rules],
        )  # fmt: skip


def build_model(
    conn: psycopg.Connection,
    model: Model,
    params: dict,
    incremental: bool = False,
    schema: str = "core",
) -> None:
    """Build a derived table: all of it in ``schema`` (reading the models
    built there), or (incremental) the touched patients' rows in a temporary
    table that then replaces theirs in ``core``."""
    query = sql_for(model.path, incremental, schema)
    if incremental:
        temp = sql.Identifier("pg_temp", model.name)
        conn.execute(
            sql.SQL("create temp table {} on commit drop as ").format(temp) + query, params
        )
        conn.execute(sql.SQL("analyze {}").format(temp))
        stored = sql.Identifier("core", model.name)
        if model.key != "patient_id":  # e.g. the drug-name map: add the new names
            conn.execute(
                sql.SQL(
                    "insert into {stored} select * from {temp} as n where not exists"
                    " (select 1 from {stored} as m where m.{key} = n.{key})"
                ).format(stored=stored, temp=temp, key=sql.Identifier(model.key))
            )
        else:
            if model.counts:
                _adjust_counts(conn, model, temp)
            conn.execute(
                sql.SQL(
                    "delete from {stored} as m using rx_touched as t where t.patient_id = m.patient_id"
                ).format(stored=stored)
            )
            conn.execute(sql.SQL("insert into {} select * from {}").format(stored, temp))
        return
    table = sql.Identifier(schema, model.name)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create unlogged table {} as ").format(table) + query, params)
    for cols in model.indexes:
        conn.execute(
            sql.SQL("create index on {} ({})").format(
                table, sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            )
        )
    conn.execute(sql.SQL("analyze {}").format(table))
    if model.counts:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in model.counts)
        counts = model.counts_table(schema)
        conn.execute(sql.SQL("drop table if exists {}").format(counts))
        conn.execute(
            sql.SQL(
                "create unlogged table {counts} as select {cols}, count(*) as patients"
                " from {table} group by {cols}"
            ).format(counts=counts, cols=cols, table=table)
        )


def _adjust_counts(conn: psycopg.Connection, model: Model, temp: sql.Composable) -> None:
    """Incremental: the model's count table, less the touched patients' stored
    rows, plus their new rows (``temp``). The table is small (one row per
    combination), so it is rebuilt from the sums; groups treat nulls alike."""
    stored, counts = sql.Identifier("core", model.name), model.counts_table()
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in model.counts)
    conn.execute(
        sql.SQL(
            "create temp table rx_counts on commit drop as"
            " select {cols}, sum(patients)::bigint as patients from ("
            "  select {cols}, patients from {counts}"
            "  union all"
            "  select {cols}, -count(*) from {stored} as m"
            "  where m.patient_id in (select t.patient_id from rx_touched as t) group by {cols}"
            "  union all"
            "  select {cols}, count(*) from {temp} group by {cols}"
            ") as d group by {cols} having sum(patients) <> 0"
        ).format(cols=cols, counts=counts, stored=stored, temp=temp)
    )
    conn.execute(sql.SQL("truncate {}").format(counts))
    conn.execute(sql.SQL("insert into {} select * from rx_counts").format(counts))
    conn.execute("drop table rx_counts")


def run_rule(
    conn: psycopg.Connection,
    rule: Rule,
    params: dict,
    incremental: bool = False,
    schema: str = "audit",
) -> int:
    """Write the rule's cases into ``schema``'s ``run_cases`` (reading the
    models of that schema, ``core`` for ``audit``); how many."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in CASE_COLUMNS)
    src = sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(c) for c in CASE_COLUMNS)
    stmt = (
        sql.SQL("insert into {} (run_id, {cols}) select %(run_id)s, {src} from (").format(
            sql.Identifier(schema, "run_cases"), cols=cols, src=src
        )
        + sql_for(rule.path, incremental, "core" if schema == "audit" else schema)
        + sql.SQL(") as c")
    )
    return conn.execute(stmt, params).rowcount


def sql_for(path: Path, incremental: bool, schema: str = "core") -> sql.SQL:
    """A model's or rule's SQL (:func:`text_for`)."""
    return sql.SQL(text_for(path, incremental, schema))


def text_for(path: Path, incremental: bool, schema: str = "core") -> str:
    """A model's or rule's SQL text; incremental, it reads this audit's
    temporary (touched-patient) derived tables instead of the stored ones;
    with another ``schema``, the derived tables, the policy tables and the
    run's cases built there (see :mod:`audit.engine.side_by_side`)."""
    text = path.read_text()  # our own file, never data
    if incremental:
        names = model_names()
        text = MODEL_REF.sub(
            lambda m: f"pg_temp.{m.group(1)}" if m.group(1) in names else m.group(0), text
        )
    elif schema != "core":
        names = model_names() | set(POLICY_TABLES)
        text = MODEL_REF.sub(
            lambda m: f"{schema}.{m.group(1)}" if m.group(1) in names else m.group(0), text
        )
        text = RUN_CASES_REF.sub(f"{schema}.run_cases", text)
    return text
