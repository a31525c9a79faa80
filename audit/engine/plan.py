"""Whether an audit evaluates everyone (full) or only the patients touched
since the previous audit (incremental), and why."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from audit.engine.catalogue import engine_sha256
from audit.policy import Policy


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


def plan(
    conn: psycopg.Connection,
    policy: Policy,
    as_of,
    run_id: str,
    full: bool = False,
    history_start=None,
    order_fill_batches: list[int] | None = None,
) -> Plan:
    """Decide full or incremental; for incremental, fill ``rx_touched``.

    Incremental needs the previous audit finished, with the same as_of (it decides
    which trials are ongoing), the same history start, the same policy and the
    same rule SQL, derived
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
        " (summary ->> 'cohort_patients')::integer, history_start, order_fill_batches"
        " from audit.runs"
        " where run_id <> %s"
        " order by started_at desc, run_id desc limit 1",
        (run_id,),
    ).fetchone()
    if prev is None:
        return full_plan("first audit")
    (
        _,
        prev_status,
        prev_as_of,
        prev_policy,
        prev_engine,
        prev_batch,
        prev_cohort,
        prev_history,
        prev_order_fills,
    ) = prev
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
    if prev_history != history_start:
        return full_plan("the history start moved")
    # Orders count as fills per source (orders_as_fills = auto): a batch that
    # changed which earlier batches' orders are fills changes untouched patients.
    earlier = sorted(b for b in (order_fill_batches or []) if b <= prev_batch)
    if earlier != sorted(prev_order_fills or []):
        return full_plan("the batches whose orders are fills changed")
    withdrawn = conn.execute(
        "select count(*) from audit.batches where withdrawn_at >"
        " (select started_at from audit.runs where run_id = %s)",
        (prev[0],),
    ).fetchone()[0]
    if withdrawn:
        return full_plan("a batch was withdrawn")
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
