"""The report files of a run, written to ``DIR/<run_id>/``.

CSV files stream out of PostgreSQL with ``COPY ... TO STDOUT`` in a fixed row
order, so the same inputs and policy give byte-identical files (apart from the
run ids they name). Text cells that a spreadsheet would read as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed
with a single quote.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from audit import db

FLAGGED_COLUMNS = (
    "case_id", "rule_id", "severity", "status", "patient_id", "site_id", "prescriber_id",
    "case_date", "summary", "evidence", "guideline", "policy_version", "first_seen_run",
    "last_seen_run", "review_status",
)  # fmt: skip

PATHWAY_COLUMNS = (
    "patient_id", "home_site_id", "index_date", "tf_sessions", "best_course_sessions",
    "best_course_minimum", "tf_course_adequate", "tf_course_ongoing", "first_line_ingredient",
    "first_line_start", "first_line_adequate", "first_line_ongoing", "first_line_dose_mg",
    "current_antidepressant", "current_dose_mg", "nightmares_on", "prazosin_tried", "irt_tried",
    "benzodiazepine_active", "last_response_on", "treatment_resistant_on", "referral_on",
    "first_mdma_on", "mdma_off_trial", "hospice_on", "next_step", "next_step_reason",
)  # fmt: skip
#: Doses print as a person writes them (50, 37.5), not as stored (50.0000).
_NUMERIC = {"first_line_dose_mg", "current_dose_mg"}

MEASURE_COLUMNS = (
    "measure_id", "kind", "period", "site_id", "prescriber_id", "denominator", "numerator",
    "rate", "ci_low", "ci_high", "all_sites_rate", "outlier", "numerator_after_review",
    "rate_after_review",
)  # fmt: skip

SHARED_COLUMNS = (
    "measure_id", "kind", "period", "site_id", "denominator", "numerator", "rate", "ci_low",
    "ci_high", "outlier", "suppressed", "held",
)  # fmt: skip

_TEXT = {"summary", "evidence", "guideline", "next_step", "next_step_reason", "patient_id", "site_id",
         "prescriber_id", "home_site_id", "case_id", "first_line_ingredient",
         "current_antidepressant"}  # fmt: skip


def _select_list(columns: tuple[str, ...], alias: str = "t") -> sql.Composable:
    parts = []
    for c in columns:
        ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c))
        if c in _TEXT:
            ref = sql.SQL("audit.csv_safe({})").format(ref)
        elif c in _NUMERIC:
            ref = sql.SQL("trim_scale({})").format(ref)
        parts.append(sql.SQL("{} as {}").format(ref, sql.Identifier(c)))
    return sql.SQL(", ").join(parts)


def copy_csv(conn: psycopg.Connection, query: sql.Composable, params: tuple, path: Path) -> int:
    """Stream a query's rows into a CSV file with a header; return the bytes written."""
    stmt = sql.SQL("copy ({}) to stdout with (format csv, header true)").format(query)
    # one temporary name per writer: two runs reporting at once never share it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    size = 0
    with conn.cursor() as cur, tmp.open("wb") as fh:
        with cur.copy(stmt, params) as copy:
            for chunk in copy:
                fh.write(chunk)
                size += len(chunk)
    tmp.replace(path)
    return size


def flagged_cases_query() -> sql.Composable:
    """This run's cases and every resolved case, with the latest review.

    They are the rows of ``report.cases``, which gives each case's last-seen
    run (every case not resolved is a finding of the latest audit, the one
    reported) and its latest review. A resolved case's summary begins with
    why it was resolved ("Resolved (data corrected): ", "Resolved (policy
    2027.1): ").
    """
    return sql.SQL(
        "select {cols} from (select c.case_id, c.rule_id, c.severity, c.status, c.patient_id,"
        " c.site_id, c.prescriber_id, to_char(c.case_date, 'YYYY-MM-DD') as case_date,"
        " case when c.status = 'resolved'"
        "   then 'Resolved (' || coalesce(c.resolved_reason, 'data corrected') || '): '"
        "   else '' end || c.summary as summary, c.evidence, c.guideline, c.policy_version, c.first_seen_run,"
        " c.last_seen_run, coalesce(c.review_status, '') as review_status"
        " from report.cases as c) t"
        " order by t.rule_id, t.case_date, t.patient_id, t.case_id"
    ).format(cols=_select_list(FLAGGED_COLUMNS))


def write_csv_reports(conn: psycopg.Connection, run_id: str, run_dir: Path) -> dict[str, int]:
    sizes = {}
    sizes["flagged_cases.csv"] = copy_csv(
        conn, flagged_cases_query(), (), run_dir / "flagged_cases.csv"
    )
    sizes["patient_pathway.csv"] = copy_csv(
        conn,
        sql.SQL("select {} from audit.pathway t order by t.patient_id").format(
            _select_list(PATHWAY_COLUMNS)
        ),
        (),
        run_dir / "patient_pathway.csv",
    )
    sizes["measures.csv"] = copy_csv(
        conn,
        sql.SQL(
            "select {} from audit.measures t where t.run_id = %s"
            " order by t.kind desc, t.measure_id, t.period, t.site_id = 'ALL' desc, t.site_id,"
            " t.prescriber_id"
        ).format(_select_list(MEASURE_COLUMNS)),
        (run_id,),
        run_dir / "measures.csv",
    )
    sizes["measures_shared.csv"] = copy_csv(
        conn,
        sql.SQL(
            "select {} from audit.measures_shared t where t.run_id = %s"
            " order by t.kind desc, t.measure_id, t.period, t.site_id = 'ALL' desc, t.site_id"
        ).format(_select_list(SHARED_COLUMNS)),
        (run_id,),
        run_dir / "measures_shared.csv",
    )
    return sizes


def write_reports(
    conn: psycopg.Connection, run_id: str, run_dir: Path, summary: dict, shared: bool = False
) -> dict[str, int]:
    """Write every report file of the run (run.json is written by the caller).

    The dashboards' data is read on a second connection that sees the same
    snapshot (:func:`audit.db.snapshot_reader`), in a thread, and compressed
    while the CSV files and the data-quality page are written on this one.
    """
    from audit import dashboard
    from audit.data_quality import data_quality_html

    with (
        db.snapshot_reader(conn) as reader,
        ThreadPoolExecutor(1, thread_name_prefix="rxaudit-dashboard") as pool,
    ):
        started = pool.submit(dashboard.start_pages, reader, run_id, summary, shared)
        try:
            sizes = write_csv_reports(conn, run_id, run_dir)
            (run_dir / "data_quality.html").write_text(
                data_quality_html(conn, run_id), encoding="utf-8"
            )
        except BaseException:
            if started.exception() is None:
                for page in started.result().values():
                    page.close()
            raise
        pages = started.result()
        try:
            for name, page in pages.items():
                sizes[name] = page.write(run_dir / name)
        finally:
            for page in pages.values():
                page.close()
    return sizes
