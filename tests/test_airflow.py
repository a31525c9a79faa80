"""The DAGs: they parse, they are wired by Assets, and they run the pipeline.

Airflow runs in subprocesses with their own AIRFLOW_HOME (SQLite metadata),
so its configuration never leaks into the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit import demo
from audit.generate import generate

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"

pytestmark = pytest.mark.airflow


def airflow_env(home: Path, db_url: str | None, inbox: Path, reports: Path) -> dict:
    env = demo.airflow_env(home, db_url, inbox, reports)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_script(name: str, env: dict, timeout: int = 300) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "audit.airflow_runner", name, str(DAGS)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def migrate(env: dict) -> None:
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.unit
def test_dagbag_imports_and_wiring(tmp_path):
    env = airflow_env(tmp_path / "home", None, tmp_path / "inbox", tmp_path / "reports")
    result = run_script("dagbag", env)
    assert result["import_errors"] == {}
    dags = result["dags"]
    assert set(dags) == {"rxaudit_ingest", "rxaudit_audit", "rxaudit_report"}
    assert dags["rxaudit_ingest"]["assets"] == ["rxaudit_inbox"]
    assert dags["rxaudit_ingest"]["outlets"] == ["rxaudit_staged_batches"]
    assert dags["rxaudit_audit"]["assets"] == ["rxaudit_staged_batches"]
    assert dags["rxaudit_audit"]["outlets"] == ["rxaudit_cases"]
    assert dags["rxaudit_report"]["assets"] == ["rxaudit_cases"]
    for facts in dags.values():
        assert facts["schedule"] == "AssetTriggeredTimetable"
        assert facts["tags"] == ["rxaudit"]
        assert all(r >= 2 for r in facts["retries"] if r != 0)
        assert "Started by" in facts["doc_md"] and "Re-run" in facts["doc_md"]
        assert "Produces" in facts["doc_md"]


@pytest.mark.unit
def test_dag_files_do_no_work_at_parse_time():
    for path in DAGS.glob("*.py"):
        text = path.read_text()
        head = text.split("with DAG(")[0]
        assert "import audit" not in head and "from audit" not in head, path.name
        assert "open(" not in text and "Variable.get" not in text, path.name
        assert "DATABASE_URL" not in text and "postgresql://" not in text, path.name


@pytest.mark.db
@pytest.mark.slow
def test_dag_test_runs_ingest_audit_report(db_url, tmp_path):
    inbox, reports = tmp_path / "inbox", tmp_path / "reports"
    inbox.mkdir()
    generate(120, 8, inbox / "site-a-001")
    bad = inbox / "site-a-002"
    generate(20, 9, bad)
    (bad / "notes.txt").write_text("not in the manifest\n")
    env = airflow_env(tmp_path / "home", db_url, inbox, reports)
    migrate(env)
    result = run_script("chain", env, timeout=600)
    ingest = result["rxaudit_ingest"]
    assert ingest["tasks"]["ingest"] == "success"
    assert ingest["tasks"]["publish"] == "success"
    assert ingest["tasks"]["check_rejections"] == "failed"  # visible in the UI
    assert result["rxaudit_audit"]["tasks"] == {"audit": "success"}
    assert result["rxaudit_report"]["tasks"] == {"report": "success"}
    assert (inbox / "processed" / "site-a-001").is_dir()
    assert (inbox / "rejected" / "site-a-002").is_dir()
    reason = (inbox / "rejected" / "site-a-002.reason.txt").read_text()
    assert "notes.txt: file not listed in the manifest" in reason
    latest = reports / "latest"
    for name in ("flagged_cases.csv", "dashboard.html", "dashboard_shared.html", "run.json"):
        assert (latest / name).is_file(), name
    run = json.loads((latest / "run.json").read_text())
    assert run["cases"]["open"] > 0
    # the audit knows what the ingest loaded
    [batch] = [b for b in run["batches"] if b["status"] == "loaded"]
    assert batch["batch_id"] == "synthetic-s8-n120" and batch["rows_in"] == run["rows_in"] > 0


@pytest.mark.db
@pytest.mark.slow
def test_demo_command_runs_the_dags_and_prints_the_dashboard(db_url, tmp_path, monkeypatch, capsys):
    from audit.cli import main

    monkeypatch.setenv("RXAUDIT_HOME", str(tmp_path / "home"))
    code = main(["--quiet", "demo", "--patients", "80", "--seed", "3",
                 "--out", str(tmp_path / "reports")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    dashboard = (tmp_path / "reports" / "latest" / "dashboard.html").resolve()
    assert out.strip() == f"demo done: open {dashboard}"
    assert dashboard.stat().st_size > 100_000
    assert (tmp_path / "home" / "demo" / "inbox" / "processed" / "demo-s3-n80").is_dir()
