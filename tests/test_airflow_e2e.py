"""Real event-driven scheduling: Airflow's components on this machine.

The test starts the api-server, scheduler, dag-processor and triggerer (SQLite
metadata, LocalExecutor), drops a batch and the flag file into the inbox, and
waits, with no manual trigger, for the reports to appear. It then drops a bad
batch and waits for it in inbox/rejected/ with its reason, while the good
reports stay intact. Everything it started is stopped at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.generate import generate
from tests.test_airflow import airflow_env, migrate

pytestmark = [pytest.mark.airflow, pytest.mark.db, pytest.mark.slow]

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tails = "\n".join(
        f"--- {p.name}\n" + p.read_text(errors="replace")[-2000:]
        for p in sorted(logs.glob("*.log"))
    )
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:  # the scheduler ignores SIGTERM for a long time
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_batches_flow_from_inbox_to_reports_by_themselves(db_url, tmp_path):
    inbox, reports, logs = tmp_path / "inbox", tmp_path / "reports", tmp_path / "logs"
    for d in (inbox, reports, logs):
        d.mkdir()
    port = free_port()
    env = airflow_env(tmp_path / "home", db_url, inbox, reports)
    env.update(
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET="rxaudit-e2e-test-secret",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
    )
    migrate(env)
    airflow = str(Path(sys.executable).parent / "airflow")
    procs = []
    try:
        for component in COMPONENTS:
            args = [airflow, component]
            if component == "api-server":
                args += ["--port", str(port)]
            log = (logs / f"{component}.log").open("w")
            procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))  # fmt: skip

        # A producer writes a batch, manifest last, then the flag file.
        generate(150, 21, inbox / "north-001")
        (inbox / "READY").touch()
        latest = reports / "latest" / "run.json"
        wait_for(latest.is_file, 420, "the reports of the first batch", logs)
        first = json.loads(latest.read_text())
        assert first["cases"]["open"] > 0
        assert (inbox / "processed" / "north-001").is_dir()
        assert not (inbox / "READY").exists()  # consumed by the trigger

        # A bad batch: a file the manifest does not list.
        generate(30, 22, inbox / "north-002")
        (inbox / "north-002" / "extra.csv").write_text("x\n")
        (inbox / "READY").touch()
        reason = inbox / "rejected" / "north-002.reason.txt"
        wait_for(reason.is_file, 300, "the rejected batch", logs)
        assert "extra.csv: file not listed in the manifest" in reason.read_text()
        assert (inbox / "rejected" / "north-002").is_dir()
        time.sleep(5)
        assert json.loads(latest.read_text())["run_id"] == first["run_id"]
        assert (reports / "latest" / "flagged_cases.csv").stat().st_size > 0
    finally:
        stop(procs)
    assert all(p.poll() is not None for p in procs)
