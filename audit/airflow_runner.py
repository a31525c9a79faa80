"""Airflow helpers run in a subprocess that has its own AIRFLOW_HOME.

    python -m audit.airflow_runner dagbag DAGS_DIR  -> JSON: import errors, DAG facts
    python -m audit.airflow_runner chain DAGS_DIR   -> JSON: dag.test() of ingest, audit, report

``rxaudit demo`` and the tests use them; keeping Airflow in its own process
keeps its configuration and logging away from the caller.
"""

from __future__ import annotations

import json
import sys


def dagbag() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[2])
    return {
        "import_errors": bag.import_errors,
        "dags": {
            dag_id: {
                "schedule": type(d.timetable).__name__,
                "assets": sorted(a.name for a in d.timetable.asset_condition.objects)
                if hasattr(d.timetable, "asset_condition")
                else [],
                "tags": sorted(d.tags),
                "retries": [t.retries for t in d.tasks],
                "doc_md": d.doc_md or "",
                "outlets": sorted(o.name for t in d.tasks for o in t.outlets),
            }
            for dag_id, d in bag.dags.items()
        },
    }


def chain() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[2])
    out = {}
    for dag_id in ("rxaudit_ingest", "rxaudit_audit", "rxaudit_report"):
        run = bag.dags[dag_id].test()
        out[dag_id] = {
            "state": str(run.state),
            "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
        }
    return out


if __name__ == "__main__":
    result = {"dagbag": dagbag, "chain": chain}[sys.argv[1]]()
    print("RESULT " + json.dumps(result, default=str))
