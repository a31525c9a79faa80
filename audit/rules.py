"""The rule engine: derived tables, the 13 rules and the care pathway, in SQL.

The catalogue (``sql/catalogue.toml``) lists the derived tables in build order
(each a SELECT in ``sql/derive/<name>.sql``) and the rules (each a SELECT in
``sql/rules/<RULE_ID>.sql`` returning the same case columns). The engine binds
the policy's settings as query parameters, never splicing a value into SQL;
the only identifiers it composes are the catalogue's own names.

One audit is one transaction under the loader's advisory lock: the derived
tables are rebuilt, every rule writes its cases to ``audit.run_cases``, the
care pathway is rebuilt, and ``audit.cases`` (with the evidence rows of each
case, ``audit.case_evidence``) is brought up to date. An incremental audit
does all of this for the touched patients only. A killed audit leaves the
previous state whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
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
    # Rows belong to one patient (an incremental audit replaces the touched
    # patients' rows), or to another key (it adds the rows of new keys).
    key: str = "patient_id"
    # Columns of a count table kept with the model (core.<name>_counts).
    counts: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return DERIVE_DIR / f"{self.name}.sql"

    @property
    def counts_table(self) -> sql.Identifier:
        return sql.Identifier("core", f"{self.name}_counts")


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
    plan: Plan | None = None


# Built after the rules: they read the run's cases.
PATHWAY = Model("care_pathway", (("patient_id",),))
CASE_SITES = Model("case_sites", (("patient_id",),))
CASE_EVIDENCE_SQL = db.SQL_DIR / "report" / "case_evidence.sql"


@lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[Model, ...], tuple[Rule, ...]]:
    doc = tomllib.loads(CATALOGUE.read_text())
    models = tuple(
        Model(
            m["name"],
            tuple(tuple(i) for i in m.get("indexes", [])),
            m.get("key", "patient_id"),
            tuple(m.get("counts", ())),
        )
        for m in doc["model"]
    )
    rules = tuple(
        Rule(r["id"], r["title"], r["severity"], r["guideline"], tuple(r["parameters"]))
        for r in doc["rule"]
    )
    for item in (*models, *rules):
        if not item.path.is_file():
            raise FileNotFoundError(f"catalogue entry without SQL file: {item.path}")
    return models, rules


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


def build_model(
    conn: psycopg.Connection, model: Model, params: dict, incremental: bool = False
) -> None:
    """Build a derived table: all of it in ``core``, or (incremental) the
    touched patients' rows in a temporary table that then replaces theirs."""
    query = _sql_for(model.path, incremental)
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
    table = sql.Identifier("core", model.name)
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
        conn.execute(sql.SQL("drop table if exists {}").format(model.counts_table))
        conn.execute(
            sql.SQL(
                "create unlogged table {counts} as select {cols}, count(*) as patients"
                " from {table} group by {cols}"
            ).format(counts=model.counts_table, cols=cols, table=table)
        )


def _adjust_counts(conn: psycopg.Connection, model: Model, temp: sql.Composable) -> None:
    """Incremental: the model's count table, less the touched patients' stored
    rows, plus their new rows (``temp``). The table is small (one row per
    combination), so it is rebuilt from the sums; groups treat nulls alike."""
    stored, counts = sql.Identifier("core", model.name), model.counts_table
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


def run_rule(conn: psycopg.Connection, rule: Rule, params: dict, incremental: bool = False) -> int:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in CASE_COLUMNS)
    src = sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(c) for c in CASE_COLUMNS)
    stmt = (
        sql.SQL(
            "insert into audit.run_cases (run_id, {cols}) select %(run_id)s, {src} from ("
        ).format(cols=cols, src=src)
        + _sql_for(rule.path, incremental)
        + sql.SQL(") as c")
    )
    return conn.execute(stmt, params).rowcount


@lru_cache(maxsize=1)
def engine_sha256() -> str:
    """One hash of the catalogue and every derived-table and rule SQL file."""
    digest = hashlib.sha256()
    files = [CATALOGUE, *sorted(DERIVE_DIR.glob("*.sql")), *sorted(RULES_DIR.glob("*.sql"))]
    for path in [*files, CASE_EVIDENCE_SQL]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Plan:
    """How an audit evaluates: everyone (full) or the patients touched since
    the previous run (incremental), and why."""

    mode: str
    reason: str
    last_batch_no: int
    touched: int = 0


# An incremental audit re-evaluating more than this share of the cohort is no
# cheaper than a full one.
INCREMENTAL_MAX_SHARE = 0.25


def plan(conn: psycopg.Connection, policy: Policy, as_of, run_id: str, full: bool = False) -> Plan:
    """Decide full or incremental; for incremental, fill ``rx_touched``.

    Incremental needs the previous audit finished, with the same as_of (it decides
    which trials are ongoing), the same policy and the same rule SQL, derived
    tables intact (unlogged tables are emptied by a crash), and no broad
    batch since (one that changed trials or brought a large share of a
    table). The touched patients are those the batches loaded since named,
    in their own rows or in the versions their corrections superseded.
    """
    last_batch_no = conn.execute(
        "select coalesce(max(batch_no), 0) from audit.batches where status = 'loaded'"
    ).fetchone()[0]
    conn.execute(
        "create temp table if not exists rx_touched (patient_id text primary key) on commit drop"
    )
    conn.execute("truncate rx_touched")

    def full_plan(reason: str) -> Plan:
        return Plan("full", reason, last_batch_no)

    if full:
        return full_plan("a full evaluation was asked for")
    # The previous audit is the one whose derived tables are stored (audits
    # run one at a time, under the loader's lock).
    prev = conn.execute(
        "select run_id, status, as_of, policy_sha256, engine_sha256, last_batch_no,"
        " (summary ->> 'cohort_patients')::integer from audit.runs where run_id <> %s"
        " order by started_at desc, run_id desc limit 1",
        (run_id,),
    ).fetchone()
    if prev is None:
        return full_plan("first audit")
    _, prev_status, prev_as_of, prev_policy, prev_engine, prev_batch, prev_cohort = prev
    if prev_status not in ("ok", "rejected"):
        return full_plan("the previous audit did not finish")
    if prev_batch is None:
        return full_plan("the previous run did not record its batches")
    if prev_as_of != as_of:
        return full_plan("as_of moved")
    if prev_policy != policy.sha256:
        return full_plan("the policy changed")
    if prev_engine != engine_sha256():
        return full_plan("the rules' SQL changed")
    if conn.execute("select to_regclass('core.care_pathway') is null").fetchone()[0]:
        return full_plan("derived tables missing")
    if conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0] != prev_cohort:
        return full_plan("derived tables not intact")
    broad = conn.execute(
        "select count(*) filter (where touches_all) from audit.batches"
        " where status = 'loaded' and batch_no > %s",
        (prev_batch,),
    ).fetchone()[0]
    if broad:
        return full_plan("a broad batch was loaded")
    touched = conn.execute(
        "insert into rx_touched select distinct patient_id from audit.batch_patients"
        " where batch_no > %s",
        (prev_batch,),
    ).rowcount
    if touched > INCREMENTAL_MAX_SHARE * max(prev_cohort, 1) and touched > 1000:
        conn.execute("truncate rx_touched")
        return full_plan("too many patients touched")
    conn.execute("analyze rx_touched")
    return Plan("incremental", f"{touched} patient(s) touched", last_batch_no, touched)


_MODEL_REF = re.compile(r"\bcore\.(\w+)\b")


def _sql_for(path: Path, incremental: bool) -> sql.SQL:
    """A model's or rule's SQL; incremental, it reads this audit's temporary
    (touched-patient) derived tables instead of the stored ones."""
    text = path.read_text()  # our own file, never data
    if incremental:
        names = {m.name for m in catalogue()[0]} | {PATHWAY.name, CASE_SITES.name}
        text = _MODEL_REF.sub(
            lambda m: f"pg_temp.{m.group(1)}" if m.group(1) in names else m.group(0), text
        )
    return sql.SQL(text)


def evaluate(
    conn: psycopg.Connection,
    policy: Policy,
    run_id: str,
    progress: Callable[[str], None] | None = None,
    full: bool = False,
) -> AuditResult:
    """Evaluate every rule for the data loaded so far; write this run's cases.

    The caller has inserted the ``audit.runs`` row of ``run_id`` in the same
    transaction (see :func:`audit.pipeline.run`). When :func:`plan` allows,
    only the patients touched since the previous run are re-evaluated; the
    others' derived rows and cases carry over unchanged, so the result
    equals a full evaluation (tests/test_incremental.py checks it).
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
    the_plan = plan(conn, policy, as_of, run_id, full)
    result.plan = the_plan
    incremental = the_plan.mode == "incremental"
    params["incremental"] = incremental
    progress(f"audit: {the_plan.mode} ({the_plan.reason})")
    conn.execute(
        "update audit.runs set mode = %s, last_batch_no = %s, engine_sha256 = %s,"
        " touched_patients = %s where run_id = %s",
        (the_plan.mode, the_plan.last_batch_no, engine_sha256(),
         the_plan.touched if incremental else None, run_id),
    )  # fmt: skip

    refresh_policy_tables(conn, policy)
    refresh_rule_table(conn, rules)
    for model in models:
        progress(f"derive {model.name}")
        t = time.perf_counter()
        build_model(conn, model, params, incremental)
        result.timings[f"derive.{model.name}"] = time.perf_counter() - t
    result.timings["derive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for rule in rules:
        progress(f"rule {rule.id}")
        t = time.perf_counter()
        n = run_rule(conn, rule, params, incremental)
        seconds = time.perf_counter() - t
        result.timings[f"rule.{rule.id}"] = seconds
        conn.execute(
            "insert into audit.run_rules (run_id, rule_id, cases, seconds) values (%s, %s, %s, %s)",
            (run_id, rule.id, n, round(seconds, 3)),
        )
    # Fresh statistics serve the joins that follow (a run id the statistics
    # have not seen is taken for one row). An incremental run's cases are the
    # touched patients' (the others' carry over in audit.cases): the run ids'
    # counts are all that changed much.
    conn.execute("analyze audit.run_cases (run_id)" if incremental else "analyze audit.run_cases")
    result.timings["rules"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("care pathway")
    build_model(conn, CASE_SITES, params, incremental)
    build_model(conn, PATHWAY, params, incremental)
    if incremental:
        conn.execute(
            "delete from audit.pathway as p using rx_touched as t where t.patient_id = p.patient_id"
        )
        conn.execute("insert into audit.pathway select * from pg_temp.care_pathway")
    else:
        conn.execute("truncate audit.pathway")
        conn.execute("insert into audit.pathway select * from core.care_pathway")
    result.timings["pathway"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _update_cases(conn, run_id, policy, incremental)
    counts = dict(
        conn.execute(
            "select rule_id, count(*) from audit.cases where status <> 'resolved' group by rule_id"
        ).fetchall()
    )
    result.cases_by_rule = {r.id: counts.get(r.id, 0) for r in rules}
    (
        result.open_cases,
        result.excluded_cases,
        result.resolved_cases,
        result.new_cases,
    ) = conn.execute(
        "select count(*) filter (where status = 'open'),"
        " count(*) filter (where status = 'excluded'),"
        " count(*) filter (where resolved_run = %(run_id)s),"
        " count(*) filter (where first_seen_run = %(run_id)s) from audit.cases",
        {"run_id": run_id},
    ).fetchone()
    result.persisting_cases = result.open_cases + result.excluded_cases - result.new_cases
    result.cohort_patients = conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0]
    result.timings["cases"] = time.perf_counter() - t0
    return result


def _update_cases(
    conn: psycopg.Connection, run_id: str, policy: Policy, incremental: bool = False
) -> None:
    """Bring audit.cases (and their evidence rows) up to date with this run's findings.

    A case found again keeps its first run and its reviews; a case found
    before but not now no longer holds (after a correction): it stays, marked
    resolved in this run, so nothing silently disappears. A resolved case
    found again is open (or excluded) again. Every case not resolved is
    therefore a finding of this run.

    Incremental, only the touched patients' cases are written (this run's
    cases are theirs); the others' cases, unchanged, are left as they are.
    """
    touched = (
        sql.SQL(" and patient_id in (select t.patient_id from rx_touched as t)")
        if incremental
        else sql.SQL("")
    )
    conn.execute(
        "insert into audit.cases (case_id, rule_id, severity, status, patient_id, site_id,"
        " prescriber_id, case_date, summary, evidence, policy_version, first_seen_run,"
        " last_evaluated_run)"
        " select case_id, rule_id, severity, status, patient_id, site_id, prescriber_id,"
        " case_date, summary, evidence, %(version)s, %(run_id)s, %(run_id)s"
        " from audit.run_cases where run_id = %(run_id)s"
        " on conflict (case_id) do update set rule_id = excluded.rule_id,"
        " severity = excluded.severity, status = excluded.status,"
        " patient_id = excluded.patient_id, site_id = excluded.site_id,"
        " prescriber_id = excluded.prescriber_id, case_date = excluded.case_date,"
        " summary = excluded.summary, evidence = excluded.evidence,"
        " policy_version = excluded.policy_version,"
        " last_evaluated_run = excluded.last_evaluated_run, resolved_run = null,"
        " updated_at = now()",
        {"version": policy.version, "run_id": run_id},
    )
    conn.execute(
        sql.SQL(
            "update audit.cases set status = 'resolved', resolved_run = %s, updated_at = now()"
            " where last_evaluated_run <> %s and status <> 'resolved'{}"
        ).format(touched),
        (run_id, run_id),
    )
    _update_evidence(conn, incremental)
    if not incremental:
        conn.execute("analyze audit.cases")
        conn.execute("analyze audit.case_evidence")


def _update_evidence(conn: psycopg.Connection, incremental: bool) -> None:
    """Rebuild audit.case_evidence: every case's, or the touched patients'.

    The evidence rows (``sql/report/case_evidence.sql``) are packed per case
    into the dashboard's form; labels not seen before join the dictionary.
    """
    conn.execute(
        sql.SQL("create temp table rx_evidence on commit drop as ")
        + sql.SQL(CASE_EVIDENCE_SQL.read_text()),  # our own file, never data
        {"all": not incremental},
    )
    conn.execute(
        "insert into audit.evidence_labels (idx, label)"
        " select (select coalesce(max(idx), -1) from audit.evidence_labels)"
        '   + row_number() over (order by n.label collate "C"), n.label'
        " from (select distinct e.label from rx_evidence as e where not exists"
        "   (select 1 from audit.evidence_labels as l where l.label = e.label)) as n"
    )
    if incremental:
        conn.execute(
            "delete from audit.case_evidence"
            " where patient_id in (select t.patient_id from rx_touched as t)"
        )
    else:
        conn.execute("truncate audit.case_evidence")
    conn.execute(
        "insert into audit.case_evidence (case_id, patient_id, items)"
        " select e.case_id, min(e.patient_id), '[' || string_agg(concat_ws(',', e.kind,"
        "   e.start_on - date '1970-01-01', e.end_on - date '1970-01-01', l.idx), ','"
        "   order by e.start_on, e.kind, l.idx) || ']'"
        " from rx_evidence as e inner join audit.evidence_labels as l on l.label = e.label"
        " group by e.case_id"
    )
    conn.execute("drop table rx_evidence")
