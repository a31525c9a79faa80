"""
### rxaudit_audit: evaluate the guideline rules

**Started by** the `rxaudit_staged_batches` Asset, which `rxaudit_ingest`
emits when a batch has loaded.

**Does**: one audit transaction (`audit.orchestrate.audit_step`): rebuilds the
derived tables (cohort, trials, courses), runs the 13 rules, the care pathway,
the case lifecycle (new, persisting, resolved) and the measures, under the
policy file `RXAUDIT_POLICY` (the defaults when unset).

**Produces**: a run in `audit.runs` with its cases (`audit.run_cases` for
the patients it evaluated, `audit.cases` with their evidence) and measures; the `rxaudit_cases` Asset, which starts
`rxaudit_report`.

**Re-run**: trigger it by hand or clear the run. An audit of the same data
gives the same cases with the same ids; a killed audit leaves the previous one
whole.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, task

DB_ASSET = os.environ.get("RXAUDIT_DB_ASSET", "localhost:5432/rxaudit")

staged_batches = Asset(name="rxaudit_staged_batches", uri=f"postgres://{DB_ASSET}/audit/batches")
cases = Asset(name="rxaudit_cases", uri=f"postgres://{DB_ASSET}/audit/cases")

with DAG(
    dag_id="rxaudit_audit",
    schedule=[staged_batches],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["rxaudit"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=20)},
):

    @task(outlets=[cases])
    def audit(*, triggering_asset_events=None) -> dict:
        from pathlib import Path

        from audit import orchestrate

        policy_file = os.environ.get("RXAUDIT_POLICY")
        events = triggering_asset_events[staged_batches] if triggering_asset_events else []
        summary = orchestrate.audit_step(
            orchestrate.conninfo_from_airflow(),
            Path(policy_file) if policy_file else None,
            orchestrate.batches_from_events(events),
        )
        return {"run_id": summary["run_id"], "cases": summary["cases"]}

    audit()
