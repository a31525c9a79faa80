"""
### rxaudit_report: write the reports of the latest audit

**Started by** the `rxaudit_cases` Asset, which `rxaudit_audit` emits.

**Does**: `audit.orchestrate.report_step` writes `flagged_cases.csv`,
`patient_pathway.csv`, `measures.csv`, `measures_shared.csv`,
`data_quality.html`, `dashboard.html` and `dashboard_shared.html` to
`RXAUDIT_REPORTS/<run_id>/`, then `run.json`, then points
`RXAUDIT_REPORTS/latest` at the folder.

**Produces**: the report folder of the latest run.

**Re-run**: trigger it by hand: it rewrites the latest run's folder with the
same content.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, task

DB_ASSET = os.environ.get("RXAUDIT_DB_ASSET", "localhost:5432/rxaudit")

cases = Asset(name="rxaudit_cases", uri=f"postgres://{DB_ASSET}/audit/cases")

with DAG(
    dag_id="rxaudit_report",
    schedule=[cases],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["rxaudit"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=20)},
):

    @task
    def report() -> str:
        from audit import orchestrate

        summary = orchestrate.report_step(
            orchestrate.reports_dir(), orchestrate.conninfo_from_airflow(), shared=True
        )
        return summary["report_dir"]

    report()
