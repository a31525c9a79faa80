"""Incremental audits: re-evaluating only the touched patients gives exactly
what re-evaluating everyone gives."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

import pytest

from audit import pipeline, policy, rules
from audit.batchio import write_batch
from audit.generate import generate

pytestmark = pytest.mark.db

PTSD = {"F43.1", "F43.10", "F43.11", "F43.12"}


def read(batch: Path, file_name: str) -> list[dict]:
    with (batch / file_name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def touching_batch(full: Path, out: Path, seed: int = 3) -> set[str]:
    """New fills (antidepressant and benzodiazepine), new sessions, corrected
    fills (a longer supply; a fill moved to another patient), a PTSD
    diagnosis for a patient outside the cohort and one corrected away."""
    rng = random.Random(seed)
    as_of = dt.date.fromisoformat(json.loads((full / "manifest.json").read_text())["as_of"])
    patients = [r["patient_id"] for r in read(full, "patients.csv")]
    fills = read(full, "prescriptions.csv")
    diagnoses = read(full, "diagnoses.csv")
    with_ptsd = sorted({d["patient_id"] for d in diagnoses if d["code"] in PTSD})
    without_ptsd = sorted(set(patients) - set(with_ptsd))
    chosen = rng.sample(with_ptsd, 25)
    touched = set(chosen)

    new_fills, new_sessions, new_dx = [], [], []
    by_patient: dict[str, list[dict]] = {}
    for f in fills:
        by_patient.setdefault(f["patient_id"], []).append(f)
    for i, pid in enumerate(chosen):
        day = as_of - dt.timedelta(days=rng.randint(0, 200))
        new_fills.append({"rx_id": f"rx-inc-{i}", "patient_id": pid, "site_id": "site-01",
                          "prescriber_id": "dr-inc", "drug_code_system": "RXNORM",
                          "drug_code": "36437", "drug_name": "Sertraline 50 MG Oral Tablet",
                          "strength_mg": 50, "quantity": 30, "days_supply": 30,
                          "filled_on": day.isoformat(), "setting": "outpatient"})  # fmt: skip
        if i % 5 == 0:
            new_fills.append({"rx_id": f"rx-inc-bzd-{i}", "patient_id": pid,
                              "site_id": "site-02", "drug_code_system": "NONE",
                              "drug_name": "Alprazolam 0.5 MG Oral Tablet", "days_supply": 14,
                              "filled_on": day.isoformat(), "setting": "outpatient"})  # fmt: skip
        new_sessions.append({"session_id": f"ses-inc-{i}", "patient_id": pid,
                             "site_id": "site-03", "session_date": day.isoformat(),
                             "modality": "PE", "cpt_code": "90837", "minutes": 60})  # fmt: skip
        own = by_patient.get(pid, [])
        if own:
            first = dict(own[0], days_supply="90")
            new_fills.append(first)
        if len(own) > 1 and i % 4 == 0:  # moved to a patient outside the cohort
            other = without_ptsd[i]
            new_fills.append(dict(own[1], patient_id=other))
            touched.add(other)
    newcomer = without_ptsd[-1]
    new_dx.append({"diagnosis_id": "dx-inc-new", "patient_id": newcomer, "code_system": "ICD10CM",
                   "code": "F43.10", "diagnosed_on": (as_of - dt.timedelta(days=30)).isoformat()})  # fmt: skip
    touched.add(newcomer)
    leaver = chosen[0]
    for d in diagnoses:
        if d["patient_id"] == leaver and d["code"] in PTSD:
            new_dx.append(dict(d, code="F41.1"))  # corrected: not PTSD after all
    write_batch(out, "incremental-001", as_of,
                {"prescriptions": new_fills, "therapy_sessions": new_sessions,
                 "diagnoses": new_dx})  # fmt: skip
    return touched


def snapshot(conn, run_id: str) -> dict:
    """Everything an audit produces for a run, as comparable sets."""
    models, _ = rules.catalogue()
    snap = {
        # the run's findings: every stored case not resolved
        "cases": set(
            conn.execute(
                "select case_id, rule_id, severity, status, patient_id, site_id, prescriber_id,"
                " case_date, summary, evidence::text from audit.cases where status <> 'resolved'"
            ).fetchall()
        ),
        "case_evidence": sorted(
            conn.execute("select e::text from audit.case_evidence as e").fetchall()
        ),
        "measures": set(
            conn.execute(
                "select measure_id, kind, period, site_id, prescriber_id, denominator,"
                " numerator, rate, ci_low, ci_high, all_sites_rate, outlier"
                " from audit.measures where run_id = %s",
                (run_id,),
            ).fetchall()
        ),
        "measures_shared": set(
            conn.execute(
                "select (to_jsonb(m) - 'run_id')::text from audit.measures_shared as m"
                " where m.run_id = %s",
                (run_id,),
            ).fetchall()
        ),
        "pathway": set(conn.execute("select p::text from audit.pathway as p").fetchall()),
        "case_states": set(conn.execute("select case_id, status from audit.cases").fetchall()),
    }
    for model in (*models, *rules.post_rule_models()[:3]):
        if model.name == "drug_name_map":  # keyed by name; may keep names no longer used
            continue
        rows = conn.execute(f"select t::text from core.{model.name} as t").fetchall()  # noqa: S608
        snap[model.name] = sorted(rows)
        if model.counts:
            rows = conn.execute(f"select t::text from core.{model.name}_counts as t").fetchall()  # noqa: S608
            snap[f"{model.name}_counts"] = sorted(rows)
    return snap


def audit(conn, batches: list[Path], full: bool = False) -> dict:
    results = pipeline.ingest_batches(conn, batches)
    assert all(r["status"] == "loaded" for r in results), results
    return pipeline.audit(conn, policy.load(), results, full=full)


def test_incremental_audit_equals_a_full_one(conn, tmp_path):
    full = tmp_path / "full"
    generate(400, 7, full)
    first = audit(conn, [full])
    assert first["evaluation"]["mode"] == "full"
    before = snapshot(conn, first["run_id"])

    touched = touching_batch(full, tmp_path / "inc")
    second = audit(conn, [tmp_path / "inc"])
    assert second["evaluation"]["mode"] == "incremental", second["evaluation"]
    assert second["evaluation"]["touched_patients"] == len(touched)
    incremental = snapshot(conn, second["run_id"])

    third = pipeline.audit(conn, policy.load(), [], full=True)
    assert third["evaluation"]["mode"] == "full"
    everyone = snapshot(conn, third["run_id"])

    for key in everyone:
        assert incremental[key] == everyone[key], key
    # the batch did change things, so the equality above is not vacuous
    assert incremental["cases"] != before["cases"]
    assert incremental["ptsd_cohort"] != before["ptsd_cohort"]
    assert second["cases"]["new"] > 0 and second["cases"]["resolved"] > 0
    # the incremental run evaluated the touched patients only
    evaluated = conn.execute(
        "select distinct patient_id from audit.run_cases where run_id = %s", (second["run_id"],)
    ).fetchall()
    assert evaluated and {p for (p,) in evaluated} <= touched


def test_a_case_resolved_after_runs_that_left_its_patient_was_last_seen_by_the_run_before(
    conn, tmp_path
):
    # run 2 re-evaluates nobody; run 3 resolves cases of patients run 2 did not
    # touch: they were findings of run 2, as a chain of full audits says
    full = tmp_path / "full"
    generate(400, 7, full)
    audit(conn, [full])
    as_of = json.loads((full / "manifest.json").read_text())["as_of"]
    touched = touching_batch(full, tmp_path / "inc")
    other = next(
        r["patient_id"] for r in read(full, "patients.csv") if r["patient_id"] not in touched
    )
    write_batch(tmp_path / "other", "other-001", as_of, {"prescriptions": [
        {"rx_id": "rx-other", "patient_id": other, "site_id": "site-01",
         "drug_code_system": "RXNORM", "drug_code": "36437",
         "drug_name": "Sertraline 50 MG Oral Tablet", "days_supply": 30,
         "filled_on": as_of, "setting": "outpatient"}]})  # fmt: skip
    second = audit(conn, [tmp_path / "other"])
    assert second["evaluation"]["mode"] == "incremental", second["evaluation"]
    third = audit(conn, [tmp_path / "inc"])
    assert third["evaluation"]["mode"] == "incremental", third["evaluation"]
    assert third["cases"]["resolved"] > 0
    seen = conn.execute(
        "select distinct last_seen_run from report.cases where resolved_run = %s",
        (third["run_id"],),
    ).fetchall()
    assert seen == [(second["run_id"],)]


def test_an_audit_with_nothing_new_is_incremental_and_unchanged(conn, tmp_path):
    generate(150, 2, tmp_path / "b")
    first = audit(conn, [tmp_path / "b"])
    again = pipeline.audit(conn, policy.load(), [])
    assert again["evaluation"] == {"mode": "incremental", "reason": "0 patient(s) touched",
                                   "touched_patients": 0}  # fmt: skip
    a, b = snapshot(conn, first["run_id"]), snapshot(conn, again["run_id"])
    assert a == b
    assert again["cases"]["new"] == 0 and again["cases"]["resolved"] == 0
    assert (
        conn.execute(
            "select count(*) from report.cases where last_seen_run <> %s and status <> 'resolved'",
            (again["run_id"],),
        ).fetchone()[0]
        == 0
    )


def test_full_evaluation_when_as_of_moves_or_the_policy_changes(conn, tmp_path):
    generate(150, 2, tmp_path / "b")
    audit(conn, [tmp_path / "b"])
    as_of = json.loads((tmp_path / "b" / "manifest.json").read_text())["as_of"]
    later = dt.date.fromisoformat(as_of) + dt.timedelta(days=1)
    write_batch(tmp_path / "later", "later-001", later, {})
    moved = audit(conn, [tmp_path / "later"])
    assert moved["evaluation"]["mode"] == "full"
    assert moved["evaluation"]["reason"] == "as_of moved"

    site = tmp_path / "site.toml"
    site.write_text('version = "site-1"\n[episodes]\nacute_days = 90\n')
    changed = pipeline.audit(conn, policy.load(site), [])
    assert (changed["evaluation"]["mode"], changed["evaluation"]["reason"]) == (
        "full", "the policy changed")  # fmt: skip


def test_a_crash_emptying_the_derived_tables_forces_a_full_evaluation(conn, tmp_path):
    generate(150, 2, tmp_path / "b")
    audit(conn, [tmp_path / "b"])
    conn.execute("truncate core.ptsd_cohort")  # what crash recovery does to an unlogged table
    after = pipeline.audit(conn, policy.load(), [])
    assert after["evaluation"]["reason"] == "derived tables not intact"
    assert after["cohort_patients"] > 0
