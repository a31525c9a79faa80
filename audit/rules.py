"""The rule engine: derived tables, the 13 rules and the care pathway, in SQL.

The catalogue (``sql/catalogue.toml``) lists the derived tables in build order
(each a SELECT in ``sql/derive/<name>.sql``) and the rules (each a SELECT in
``sql/rules/<RULE_ID>.sql`` returning the same case columns). The engine binds
the policy's settings as query parameters, never splicing a value into SQL;
the only identifiers it composes are the catalogue's own names.

One audit is one transaction under the loader's advisory lock: the derived
tables are rebuilt, every rule writes its cases to ``audit.run_cases``, the
care pathway is rebuilt, and ``audit.cases`` is brought up to date. A killed
audit leaves the previous state whole.
"""

from __future__ import annotations

import datetime as dt
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg import sql

from audit import db
from audit.policy import Policy

CATALOGUE = db.SQL_DIR / "catalogue.toml"
DERIVE_DIR = db.SQL_DIR / "derive"
RULES_DIR = db.SQL_DIR / "rules"

NOTHING_LOADED = dt.date(1900, 1, 1)

CASE_COLUMNS = (
    "case_id", "rule_id", "severity", "status", "patient_id", "site_id",
    "prescriber_id", "case_date", "summary", "evidence",
)  # fmt: skip


@dataclass(frozen=True)
class Model:
    name: str
    indexes: tuple[tuple[str, ...], ...]

    @property
    def path(self) -> Path:
        return DERIVE_DIR / f"{self.name}.sql"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    guideline: str
    parameters: tuple[str, ...]

    @property
    def path(self) -> Path:
        return RULES_DIR / f"{self.id}.sql"


@dataclass
class AuditResult:
    run_id: str
    as_of: dt.date | None
    cases_by_rule: dict[str, int] = field(default_factory=dict)
    open_cases: int = 0
    excluded_cases: int = 0
    resolved_cases: int = 0
    new_cases: int = 0
    persisting_cases: int = 0
    cohort_patients: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[Model, ...], tuple[Rule, ...]]:
    doc = tomllib.loads(CATALOGUE.read_text())
    models = tuple(
        Model(m["name"], tuple(tuple(i) for i in m.get("indexes", []))) for m in doc["model"]
    )
    rules = tuple(
        Rule(r["id"], r["title"], r["severity"], r["guideline"], tuple(r["parameters"]))
        for r in doc["rule"]
    )
    for item in (*models, *rules):
        if not item.path.is_file():
            raise FileNotFoundError(f"catalogue entry without SQL file: {item.path}")
    return models, rules


def _read_sql(path: Path) -> sql.SQL:
    return sql.SQL(path.read_text())  # our own file, never data


def refresh_policy_tables(conn: psycopg.Connection, policy: Policy) -> None:
    """Load the policy's ingredients and drug names (a few dozen rows)."""
    import re

    conn.execute("truncate core.policy_drug_names, core.policy_ingredients")
    ingredients = policy.ingredients()
    with conn.cursor() as cur:
        cur.executemany(
            "insert into core.policy_ingredients"
            " (ingredient, drug_class, rxcui, min_mg, max_mg, first_line)"
            " values (%(ingredient)s, %(drug_class)s, %(rxcui)s, %(min_mg)s, %(max_mg)s,"
            " %(first_line)s)",
            ingredients,
        )
        cur.executemany(
            "insert into core.policy_drug_names (ingredient, name, pattern)"
            " values (%s, %s, %s) on conflict do nothing",
            [
                (i["ingredient"], name, r"\m" + re.sub(r"([^A-Za-z0-9 ])", r"\\\1", name) + r"\M")
                for i in ingredients
                for name in i["names"]
            ],
        )


def refresh_rule_table(conn: psycopg.Connection, rules: tuple[Rule, ...]) -> None:
    """The catalogue's rules, for reports and the BI views."""
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        cur.executemany(
            "insert into audit.rules (rule_id, title, severity, guideline, parameters)"
            " values (%s, %s, %s, %s, %s) on conflict (rule_id) do update set"
            " title = excluded.title, severity = excluded.severity,"
            " guideline = excluded.guideline, parameters = excluded.parameters",
            [(r.id, r.title, r.severity, r.guideline, Jsonb(list(r.parameters))) for r in rules],
        )


def build_model(conn: psycopg.Connection, model: Model, params: dict) -> None:
    table = sql.Identifier("core", model.name)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(
        sql.SQL("create unlogged table {} as ").format(table) + _read_sql(model.path), params
    )
    for cols in model.indexes:
        conn.execute(
            sql.SQL("create index on {} ({})").format(
                table, sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            )
        )
    conn.execute(sql.SQL("analyze {}").format(table))


def run_rule(conn: psycopg.Connection, rule: Rule, params: dict) -> int:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in CASE_COLUMNS)
    src = sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(c) for c in CASE_COLUMNS)
    stmt = (
        sql.SQL(
            "insert into audit.run_cases (run_id, {cols}) select %(run_id)s, {src} from ("
        ).format(cols=cols, src=src)
        + _read_sql(rule.path)
        + sql.SQL(") as c")
    )
    return conn.execute(stmt, params).rowcount


def evaluate(
    conn: psycopg.Connection,
    policy: Policy,
    run_id: str,
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """Evaluate every rule for the data loaded so far; write this run's cases.

    The caller has inserted the ``audit.runs`` row of ``run_id`` in the same
    transaction (see :func:`audit.pipeline.run`).
    """
    progress = progress or (lambda msg: None)
    models, rules = catalogue()
    as_of = conn.execute("select max(as_of) from audit.batches where status = 'loaded'").fetchone()[
        0
    ]
    result = AuditResult(run_id, as_of)
    # With nothing loaded yet, the audit still runs, as of a day before any
    # data: every derived table exists (empty) and the reports can be written.
    params = {**policy.params(), "as_of": as_of or NOTHING_LOADED, "run_id": run_id}

    t0 = time.perf_counter()
    refresh_policy_tables(conn, policy)
    refresh_rule_table(conn, rules)
    for model in models:
        progress(f"derive {model.name}")
        t = time.perf_counter()
        build_model(conn, model, params)
        result.timings[f"derive.{model.name}"] = time.perf_counter() - t
    result.timings["derive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for rule in rules:
        progress(f"rule {rule.id}")
        t = time.perf_counter()
        n = run_rule(conn, rule, params)
        seconds = time.perf_counter() - t
        result.cases_by_rule[rule.id] = n
        result.timings[f"rule.{rule.id}"] = seconds
        conn.execute(
            "insert into audit.run_rules (run_id, rule_id, cases, seconds) values (%s, %s, %s, %s)",
            (run_id, rule.id, n, round(seconds, 3)),
        )
    result.timings["rules"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("care pathway")
    build_model(conn, Model("care_pathway", (("patient_id",),)), params)
    conn.execute("truncate audit.pathway")
    conn.execute("insert into audit.pathway select * from core.care_pathway")
    result.timings["pathway"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _update_cases(conn, run_id, policy)
    counts = conn.execute(
        "select count(*) filter (where status = 'open'), count(*) filter (where status = 'excluded')"
        " from audit.run_cases where run_id = %s",
        (run_id,),
    ).fetchone()
    result.open_cases, result.excluded_cases = counts
    result.resolved_cases = conn.execute(
        "select count(*) from audit.cases where resolved_run = %s", (run_id,)
    ).fetchone()[0]
    result.new_cases = conn.execute(
        "select count(*) from audit.cases where first_seen_run = %s", (run_id,)
    ).fetchone()[0]
    result.persisting_cases = result.open_cases + result.excluded_cases - result.new_cases
    result.cohort_patients = conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0]
    result.timings["cases"] = time.perf_counter() - t0
    return result


def _update_cases(conn: psycopg.Connection, run_id: str, policy: Policy) -> None:
    """Bring audit.cases up to date with this run's findings.

    A case found again keeps its first run and its reviews; a case found
    before but not now no longer holds (after a correction): it stays, marked
    resolved in this run, so nothing silently disappears. A resolved case
    found again is open (or excluded) again.
    """
    conn.execute(
        "insert into audit.cases (case_id, rule_id, severity, status, patient_id, site_id,"
        " prescriber_id, case_date, summary, evidence, policy_version, first_seen_run,"
        " last_seen_run)"
        " select case_id, rule_id, severity, status, patient_id, site_id, prescriber_id,"
        " case_date, summary, evidence, %(version)s, %(run_id)s, %(run_id)s"
        " from audit.run_cases where run_id = %(run_id)s"
        " on conflict (case_id) do update set rule_id = excluded.rule_id,"
        " severity = excluded.severity, status = excluded.status,"
        " patient_id = excluded.patient_id, site_id = excluded.site_id,"
        " prescriber_id = excluded.prescriber_id, case_date = excluded.case_date,"
        " summary = excluded.summary, evidence = excluded.evidence,"
        " policy_version = excluded.policy_version, last_seen_run = excluded.last_seen_run,"
        " resolved_run = null, updated_at = now()",
        {"version": policy.version, "run_id": run_id},
    )
    conn.execute(
        "update audit.cases set status = 'resolved', resolved_run = %s, updated_at = now()"
        " where last_seen_run <> %s and status <> 'resolved'",
        (run_id, run_id),
    )
