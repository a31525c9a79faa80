"""Case states and evidence: audit.cases brought up to date with a run's
findings (new, persisting, resolved and why), and the evidence rows kept per
case for the dashboard and the workspace."""

from __future__ import annotations

import psycopg
from psycopg import sql

from audit.engine.catalogue import CASE_EVIDENCE_SQL
from audit.policy import Policy


def update_cases(
    conn: psycopg.Connection,
    run_id: str,
    policy: Policy,
    incremental: bool = False,
    policy_changed: bool = False,
    since_batch_no: int | None = None,
    evidence_built: str | None = None,
) -> None:
    """Bring audit.cases (and their evidence rows) up to date with this run's findings.

    A case found again keeps its first run and its reviews; a case found
    before but not now no longer holds (after a correction): it stays, marked
    resolved in this run, so nothing silently disappears. A resolved case
    found again is open (or excluded) again. Every case not resolved is
    therefore a finding of this run.

    Incremental, only the touched patients' cases are written (this run's
    cases are theirs); the others' cases, unchanged, are left as they are.

    A resolved case was last seen by the run before this one (every case not
    resolved is a finding of every run), as after a chain of full audits.
    A resolved case says why (``resolved_reason``): ``policy <version>`` when
    this run's policy differs from the previous run's and no batch since
    touched the patient (the policy change removed it), else ``data
    corrected``. Its reviews are kept. ``evidence_built``: the schema where
    the evidence rows of a full audit were built (see :func:`_update_evidence`).
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
        " resolved_reason = null,"
        " updated_at = now()",
        {"version": policy.version, "run_id": run_id},
    )
    conn.execute(
        sql.SQL(
            "update audit.cases as c set status = 'resolved', resolved_run = %(run_id)s,"
            " resolved_reason = case"
            "   when %(policy_changed)s and not exists (select 1 from audit.batch_patients as b"
            "     where b.batch_no > %(since)s and b.patient_id = c.patient_id)"
            "   then 'policy ' || %(version)s"
            "   else coalesce((select 'batch ' || w.batch_id || ' withdrawn'"
            "     from audit.batches as w where w.status = 'withdrawn'"
            "     and w.withdrawn_at > coalesce((select max(r.started_at) from audit.runs as r"
            "       where r.run_id <> %(run_id)s and r.status in ('ok', 'rejected')), '-infinity')"
            "     and (w.touches_all or exists (select 1 from audit.batch_patients as p"
            "       where p.batch_no = w.batch_no and p.patient_id = c.patient_id))"
            "     order by w.withdrawn_at desc limit 1), 'data corrected') end,"
            # last seen: the latest finished run before this one (the case was
            # one of its findings), whether or not it re-evaluated the patient
            " last_evaluated_run = coalesce((select l.run_id from report.latest_run as l),"
            "   c.last_evaluated_run),"
            " updated_at = now()"
            " where last_evaluated_run <> %(run_id)s and status <> 'resolved'{}"
        ).format(touched),
        {
            "run_id": run_id,
            "policy_changed": policy_changed,
            "since": since_batch_no or 0,
            "version": policy.version,
        },
    )
    _update_evidence(conn, incremental, evidence_built)
    if not incremental:
        conn.execute("analyze audit.cases")
        conn.execute("analyze audit.case_evidence")


#: The labels of ``{rows}`` (evidence rows) that the dictionary lacks, with
#: the indexes they will have in it.
NEW_LABELS = (
    "select (select coalesce(max(idx), -1) from audit.evidence_labels)"
    '   + row_number() over (order by n.label collate "C") as idx, n.label'
    " from (select distinct e.label from {rows} as e where not exists"
    "   (select 1 from audit.evidence_labels as l where l.label = e.label)) as n"
)
#: The evidence rows ``{rows}`` packed per case into the dashboard's form,
#: their labels as indexes of the dictionary ``{labels}``.
PACKED = (
    "select e.case_id, min(e.patient_id) as patient_id, '[' || string_agg(concat_ws(',', e.kind,"
    "   e.start_on - date '1970-01-01', e.end_on - date '1970-01-01', l.idx), ','"
    "   order by e.start_on, e.kind, l.idx, e.end_on) || ']' as items"
    " from {rows} as e inner join {labels} as l on l.label = e.label"
    " group by e.case_id"
)


def _update_evidence(conn: psycopg.Connection, incremental: bool, built: str | None) -> None:
    """Rebuild audit.case_evidence: every case's, or the touched patients'.

    The evidence rows (``sql/report/case_evidence.sql``) are packed per case
    into the dashboard's form; labels not seen before join the dictionary. A
    full audit finds both already built in the schema ``built``
    (:mod:`audit.engine.side_by_side`).
    """
    if built is not None:
        conn.execute(
            sql.SQL(
                "insert into audit.evidence_labels (idx, label) select idx, label from {}"
            ).format(sql.Identifier(built, "evidence_labels"))
        )
        conn.execute("truncate audit.case_evidence")
        conn.execute(
            sql.SQL(
                "insert into audit.case_evidence (case_id, patient_id, items)"
                " select case_id, patient_id, items from {}"
            ).format(sql.Identifier(built, "case_evidence"))
        )
        return
    conn.execute(
        sql.SQL("create temp table rx_evidence on commit drop as ")
        + sql.SQL(CASE_EVIDENCE_SQL.read_text()),  # our own file, never data
        {"all": not incremental},
    )
    rows = sql.Identifier("rx_evidence")
    conn.execute(
        sql.SQL("insert into audit.evidence_labels (idx, label) ")
        + sql.SQL(NEW_LABELS).format(rows=rows)
    )
    if incremental:
        conn.execute(
            "delete from audit.case_evidence"
            " where patient_id in (select t.patient_id from rx_touched as t)"
        )
    else:
        conn.execute("truncate audit.case_evidence")
    conn.execute(
        sql.SQL("insert into audit.case_evidence (case_id, patient_id, items) ")
        + sql.SQL(PACKED).format(rows=rows, labels=sql.Identifier("audit", "evidence_labels"))
    )
    conn.execute("drop table rx_evidence")
