"""``rxaudit demo``: the whole pipeline under Airflow, on a synthetic cohort.

Generates a cohort, starts the embedded PostgreSQL when no ``DATABASE_URL`` is
set, drops the cohort into an inbox with its flag file, runs the three DAGs
(ingest, audit, report) with ``dag.test()`` in a private Airflow home (SQLite
metadata), and says where the dashboard is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from audit import db
from audit.errors import RxauditError
from audit.generate import generate
from audit.orchestrate import FLAG_FILE

DAGS = db.DAGS_DIR


def airflow_env(home: Path, url: str | None, inbox: Path, reports: Path) -> dict[str, str]:
    """The environment of an Airflow process: its home, the DAGs, the connection."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # the DAGs take the Airflow connection
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        RXAUDIT_INBOX=str(inbox),
        RXAUDIT_REPORTS=str(reports),
    )
    if url:
        info = psycopg.conninfo.conninfo_to_dict(db.to_libpq(url))
        env["AIRFLOW_CONN_RXAUDIT_DB"] = json.dumps(
            {
                "conn_type": "postgres",
                "host": info.get("host", "127.0.0.1"),
                "port": int(info.get("port") or 5432),
                "login": info.get("user"),
                "password": info.get("password"),
                "schema": info.get("dbname"),
            }
        )
    return env


def run(patients: int, seed: int, out: Path, progress: Callable[[str], None]) -> dict:
    home = db.home_dir() / "demo"
    inbox = home / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    url = db.database_url()
    with db.session(url):
        pass  # creates or migrates the schema before Airflow starts
    batch = inbox / f"demo-s{seed}-n{patients}"
    if not batch.exists() and not (inbox / "processed" / batch.name).exists():
        progress(f"generating {patients:,} synthetic patients into {batch}")
        generate(patients, seed, batch, progress=progress)
    (inbox / FLAG_FILE).touch()

    env = airflow_env(home / "airflow", url, inbox, Path(out).resolve())
    airflow = Path(sys.executable).parent / "airflow"
    if not (home / "airflow" / "airflow.db").exists():
        progress("preparing Airflow's metadata database (first run only)")
        proc = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode:
            raise RxauditError("airflow db migrate failed: " + proc.stderr.strip()[-500:])
    progress("running the DAGs rxaudit_ingest, rxaudit_audit, rxaudit_report")
    proc = subprocess.run(
        [sys.executable, "-m", "audit.airflow_runner", "chain", str(DAGS)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RxauditError("the Airflow run failed: " + proc.stderr.strip()[-800:])
    (inbox / FLAG_FILE).unlink(missing_ok=True)  # the trigger would have consumed it
    result = json.loads(lines[-1][len("RESULT ") :])
    for dag_id, facts in result.items():
        progress(f"{dag_id}: {facts['state']}")
    return result
