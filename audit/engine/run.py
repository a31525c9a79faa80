"""One audit: the derived models, every rule, the care pathway and the cases.

One audit is one transaction under the loader's advisory lock: the derived
tables are rebuilt, every rule writes its cases to ``audit.run_cases``, the
care pathway is rebuilt, and ``audit.cases`` (with the evidence rows of each
case, ``audit.case_evidence``) is brought up to date. An incremental audit
does all of this for the touched patients only. A full audit builds its
tables on two connections of their own, side by side, and its transaction
moves them in (:mod:`audit.engine.side_by_side`). A killed audit leaves the
previous state whole. The data it reads is committed (each load commits).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from audit.engine import side_by_side
from audit.engine.build import build_model, refresh_policy_tables, refresh_rule_table, run_rule
from audit.engine.cases import update_cases
from audit.engine.catalogue import catalogue, engine_sha256, post_rule_models
from audit.engine.plan import Plan, plan
from audit.policy import Policy

NOTHING_LOADED = dt.date(1900, 1, 1)


@dataclass
class AuditResult:
    run_id: str
    as_of: dt.date | None
    history_start: dt.date | None = None
    orders_as_fills: str | None = None
    order_fill_batches: list[int] = field(default_factory=list)
    cases_by_rule: dict[str, int] = field(default_factory=dict)
    open_cases: int = 0
    excluded_cases: int = 0
    info_cases: int = 0
    resolved_cases: int = 0
    resolved_by_policy: int = 0
    resolved_by_data: int = 0
    new_cases: int = 0
    persisting_cases: int = 0
    cohort_patients: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    plan: Plan | None = None


def history_start(conn: psycopg.Connection, as_of: dt.date) -> dt.date:
    """The history start of the whole load (rules.md, "History start"): the
    earliest ``history_from`` the loaded batches' manifests give, else the
    earliest date of the records loaded (not after as_of). A batch that
    loaded no row moves nothing (an empty batch cannot re-grade everyone)."""
    row = conn.execute(
        "select coalesce("
        " (select min(history_from) from audit.batches"
        "  where status = 'loaded' and rows_loaded > 0),"
        " least("
        "  (select min(filled_on) from core.prescriptions where is_current and filled_on <= %(d)s),"
        "  (select min(diagnosed_on) from core.diagnoses"
        "   where is_current and diagnosed_on <= %(d)s),"
        "  (select min(session_date) from core.therapy_sessions"
        "   where is_current and session_date <= %(d)s),"
        "  (select min(event_date) from core.clinical_events"
        "   where is_current and event_date <= %(d)s),"
        "  (select min(assessed_on) from core.assessments where is_current and assessed_on <= %(d)s),"
        "  (select min(enrolled_on) from core.trial_enrollments"
        "   where is_current and enrolled_on <= %(d)s)),"
        " %(d)s::date)",
        {"d": as_of},
    ).fetchone()
    return row[0]


def order_fill_batches(conn: psycopg.Connection, orders_as_fills: str, as_of: dt.date) -> list[int]:
    """The loaded batches whose ``ordered`` rows are fills (rules.md, "Source
    type"; reading 6). ``auto``: the batches of every source that has
    delivered no dispensed or administered prescription row (an empty
    ``source_type`` is dispensed) among the current records up to ``as_of``;
    ``always``: every batch; ``never``: none. Prescriptions are scanned only
    when some current row is an order."""
    if orders_as_fills == "never":
        return []
    if orders_as_fills == "always":
        return [r[0] for r in conn.execute(
            "select batch_no from audit.batches where status = 'loaded' order by batch_no")]  # fmt: skip
    if not conn.execute(
        "select exists (select 1 from core.prescriptions"
        " where is_current and source_type = 'ordered')"
    ).fetchone()[0]:
        return []
    rows = conn.execute(
        "with dispensing as ("
        "  select distinct rx.batch_no from core.prescriptions as rx"
        "  where rx.is_current and rx.filled_on <= %(d)s"
        "    and coalesce(rx.source_type, 'dispensed') in ('dispensed', 'administered')),"
        " dispensing_sources as ("
        "  select distinct b.source from audit.batches as b"
        "  inner join dispensing as d on d.batch_no = b.batch_no)"
        " select b.batch_no from audit.batches as b"
        " where b.status = 'loaded'"
        "   and not exists (select 1 from dispensing_sources as s"
        "                   where s.source is not distinct from b.source)"
        " order by b.batch_no",
        {"d": as_of},
    ).fetchall()
    return [r[0] for r in rows]


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
    history = history_start(conn, params["as_of"])
    params["history_start"] = history
    result.history_start = history
    params["order_fill_batches"] = order_fill_batches(
        conn, params["orders_as_fills"], params["as_of"]
    )
    result.orders_as_fills = params["orders_as_fills"]
    result.order_fill_batches = params["order_fill_batches"]
    previous = conn.execute(
        "select policy_sha256, last_batch_no from audit.runs where run_id <> %s"
        " order by started_at desc, run_id desc limit 1",
        (run_id,),
    ).fetchone()
    policy_changed = previous is not None and previous[0] != policy.sha256

    t0 = time.perf_counter()
    the_plan = plan(conn, policy, as_of, run_id, full, history, params["order_fill_batches"])
    result.plan = the_plan
    incremental = the_plan.mode == "incremental"
    params["incremental"] = incremental
    progress(f"audit: {the_plan.mode} ({the_plan.reason})")
    conn.execute(
        "update audit.runs set mode = %s, last_batch_no = %s, engine_sha256 = %s,"
        " touched_patients = %s, history_start = %s, orders_as_fills = %s,"
        " order_fill_batches = %s where run_id = %s",
        (the_plan.mode, the_plan.last_batch_no, engine_sha256(),
         the_plan.touched if incremental else None, history, params["orders_as_fills"],
         params["order_fill_batches"], run_id),
    )  # fmt: skip

    refresh_rule_table(conn, rules, params)
    planned = time.perf_counter() - t0
    evaluate_patients = _evaluate_touched if incremental else _evaluate_everyone
    evaluate_patients(conn, policy, models, rules, params, result, progress)
    result.timings["derive"] += planned  # the derive stage includes the plan

    t0 = time.perf_counter()
    update_cases(
        conn, run_id, policy, incremental, policy_changed,
        previous[1] if previous else None, None if incremental else side_by_side.SCHEMA,
    )  # fmt: skip
    if not incremental:
        side_by_side.clear(conn)
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
        result.resolved_by_policy,
        result.new_cases,
        result.info_cases,
    ) = conn.execute(
        "select count(*) filter (where status = 'open'),"
        " count(*) filter (where status = 'excluded'),"
        " count(*) filter (where resolved_run = %(run_id)s),"
        " count(*) filter (where resolved_run = %(run_id)s and resolved_reason like 'policy %%'),"
        " count(*) filter (where first_seen_run = %(run_id)s),"
        " count(*) filter (where status = 'open' and severity = 'info') from audit.cases",
        {"run_id": run_id},
    ).fetchone()
    result.resolved_by_data = result.resolved_cases - result.resolved_by_policy
    result.persisting_cases = result.open_cases + result.excluded_cases - result.new_cases
    result.cohort_patients = conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0]
    result.timings["cases"] = time.perf_counter() - t0
    return result


def _evaluate_touched(
    conn: psycopg.Connection,
    policy: Policy,
    models: tuple,
    rules: tuple,
    params: dict,
    result: AuditResult,
    progress: Callable[[str], None],
) -> None:
    """Incremental: the models, the rules and the models built after them,
    one after another, for the touched patients, in the audit's transaction."""
    t0 = time.perf_counter()
    refresh_policy_tables(conn, policy)
    for model in models:
        progress(f"derive {model.name}")
        t = time.perf_counter()
        build_model(conn, model, params, incremental=True)
        result.timings[f"derive.{model.name}"] = time.perf_counter() - t
    result.timings["derive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for rule in rules:
        progress(f"rule {rule.id}")
        t = time.perf_counter()
        n = run_rule(conn, rule, params, incremental=True)
        _record_rule(conn, params["run_id"], rule.id, n, time.perf_counter() - t, result)
    # Fresh statistics serve the joins that follow (a run id the statistics
    # have not seen is taken for one row). An incremental run's cases are the
    # touched patients' (the others' carry over in audit.cases): the run ids'
    # counts are all that changed much.
    conn.execute("analyze audit.run_cases (run_id)")
    result.timings["rules"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("care pathway")
    for model in post_rule_models():
        t = time.perf_counter()
        build_model(conn, model, params, incremental=True)
        result.timings[f"derive.{model.name}"] = time.perf_counter() - t
    conn.execute(
        "delete from audit.pathway as p using rx_touched as t where t.patient_id = p.patient_id"
    )
    conn.execute("insert into audit.pathway select * from pg_temp.care_pathway")
    result.timings["pathway"] = time.perf_counter() - t0


def _evaluate_everyone(
    conn: psycopg.Connection,
    policy: Policy,
    models: tuple,
    rules: tuple,
    params: dict,
    result: AuditResult,
    progress: Callable[[str], None],
) -> None:
    """Full: every model and rule built side by side on connections of their
    own (:mod:`audit.engine.side_by_side`), then moved into ``core`` and
    ``audit.run_cases`` by the audit's transaction. ``derive`` is the wall
    time of the build, ``rules`` and ``pathway`` that of the moves."""
    t0 = time.perf_counter()
    post = post_rule_models()
    todo = side_by_side.steps(models, post, rules, params)
    built = side_by_side.build(
        conn, policy, todo, progress, seconds=side_by_side.last_seconds(conn)
    )
    conn.execute(
        "update audit.runs set step_seconds = %s where run_id = %s",
        (Jsonb({k: round(v, 3) for k, v in built.seconds.items()}), params["run_id"]),
    )
    for name, seconds in built.seconds.items():
        if name.startswith("derive "):
            result.timings[f"derive.{name.removeprefix('derive ')}"] = seconds
    result.timings["derive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    refresh_policy_tables(conn, policy)
    side_by_side.move_into_core(conn, models + post)
    for rule in rules:
        name = f"rule {rule.id}"
        _record_rule(
            conn, params["run_id"], rule.id, built.values[name], built.seconds[name], result
        )
    conn.execute("analyze audit.run_cases")
    result.timings["rules"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("care pathway")
    conn.execute("truncate audit.pathway")
    conn.execute("insert into audit.pathway select * from core.care_pathway")
    result.timings["pathway"] = time.perf_counter() - t0


def _record_rule(
    conn: psycopg.Connection, run_id: str, rule_id: str, n: int, seconds: float,
    result: AuditResult,
) -> None:  # fmt: skip
    result.timings[f"rule.{rule_id}"] = seconds
    conn.execute(
        "insert into audit.run_rules (run_id, rule_id, cases, seconds) values (%s, %s, %s, %s)",
        (run_id, rule_id, n, round(seconds, 3)),
    )
