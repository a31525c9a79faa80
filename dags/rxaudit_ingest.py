"""
### rxaudit_ingest: load the batches waiting in the inbox

**Started by** the `rxaudit_inbox` Asset: an `AssetWatcher` whose
`DirectoryFileDeleteTrigger` fires when a producer drops the flag file `READY`
into the inbox (`RXAUDIT_INBOX`), after writing one or more batch folders
there (each with its `manifest.json` written last). No schedule, no polling DAG.

**Does**: `ingest` loads every complete batch in `created_at` order
(`audit.orchestrate.ingest_inbox`), moving loaded batches to
`inbox/processed/` and rejected ones to `inbox/rejected/` with a
`<batch>.reason.txt`. `publish` emits the `rxaudit_staged_batches` Asset when
at least one batch loaded, which starts `rxaudit_audit`. `check_rejections`
fails the run, visibly, when a batch was rejected; the other batches of the
run still load and flow on.

**Produces**: rows in `raw`, `core` and `audit.batches`; the Asset event.

**Re-run**: clear the run or drop `READY` again. Every step is idempotent: a
batch already loaded is a no-op, moved folders are not read twice. To retry a
rejected batch, fix it and move its folder back into the inbox.

The database comes from the Airflow connection `rxaudit_db`
(`AIRFLOW_CONN_RXAUDIT_DB`).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.standard.triggers.file import DirectoryFileDeleteTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

INBOX = os.environ.get("RXAUDIT_INBOX", "/opt/rxaudit/inbox")
DB_ASSET = os.environ.get("RXAUDIT_DB_ASSET", "localhost:5432/rxaudit")

inbox = Asset(
    name="rxaudit_inbox",
    uri=f"file://{INBOX}",
    watchers=[
        AssetWatcher(
            name="rxaudit_inbox_ready",
            trigger=DirectoryFileDeleteTrigger(directory=INBOX, filename="READY", poke_interval=2),
        )
    ],
)
staged_batches = Asset(name="rxaudit_staged_batches", uri=f"postgres://{DB_ASSET}/audit/batches")

with DAG(
    dag_id="rxaudit_ingest",
    schedule=[inbox],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["rxaudit"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=20)},
):

    @task
    def ingest() -> dict:
        from audit import orchestrate
        from audit.ingest import LoadSettings

        url = orchestrate.conninfo_from_airflow()
        settings = LoadSettings(allow_replace=orchestrate.allow_replace_setting())
        return orchestrate.ingest_inbox(orchestrate.inbox_dir(), url, settings).as_json()

    @task(outlets=[staged_batches])
    def publish(result: dict, *, outlet_events=None) -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        if not result["loaded"]:
            raise AirflowSkipException("no new batch loaded: nothing to audit")
        # the audit DAG's run lists the batches it audits (run.json)
        outlet_events[staged_batches].extra = {
            "batches": [b for b in result["batches"] if b["status"] != "duplicate"]
        }
        return result["loaded"]

    @task(trigger_rule="all_done", retries=0)
    def check_rejections(result: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        if result["rejected"]:
            reasons = "; ".join(r["reason"] for r in result["rejected"])
            raise AirflowFailException(f"{len(result['rejected'])} batch(es) rejected: {reasons}")

    loaded = ingest()
    publish(loaded)
    check_rejections(loaded)
