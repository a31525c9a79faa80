"""Report files, case lifecycle across runs, reviews, views."""

from __future__ import annotations

import csv
import json

import psycopg
import pytest

from audit import reports
from audit.batchio import write_batch
from audit.cli import main
from audit.generate import generate

pytestmark = pytest.mark.db


def _run(tmp_path, *batches, extra=()) -> dict:
    code = main(["--quiet", "run", *map(str, batches), "--out", str(tmp_path / "out"), *extra])
    assert code == 0
    return json.loads((tmp_path / "out" / "latest" / "run.json").read_text())


def _flagged(tmp_path) -> list[dict]:
    with (tmp_path / "out" / "latest" / "flagged_cases.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_review_correction_and_lifecycle_end_to_end(db_url, tmp_path, capsys):
    generate(400, 5, tmp_path / "cohort")
    first = _run(tmp_path, tmp_path / "cohort")
    assert first["cases"]["new"] == first["cases"]["open"] + first["cases"]["excluded"] > 0
    assert (first["cases"]["persisting"], first["cases"]["resolved"]) == (0, 0)
    expected = {"flagged_cases.csv", "patient_pathway.csv", "measures.csv",
                "measures_shared.csv", "data_quality.html", "dashboard.html", "run.json"}  # fmt: skip
    assert {p.name for p in (tmp_path / "out" / "latest").iterdir()} == expected

    rows = _flagged(tmp_path)
    assert list(rows[0]) == list(reports.FLAGGED_COLUMNS)
    short = next(r for r in rows if r["rule_id"] == "SSRI-SHORT-TRIAL")
    other = next(r for r in rows if r["rule_id"] == "BZD-PTSD")
    assert main(["review", other["case_id"], "--status", "confirmed", "--note",
                 "Discussed with prescriber", "--reviewer", "qi-ann"]) == 0  # fmt: skip
    assert main(["review", short["case_id"], "--status", "justified", "--note",
                 "Switched for side effects", "--reviewer", "qi-bob"]) == 0  # fmt: skip

    # The pharmacy corrects the trial's last fill: a 120-day supply.
    last_rx = short["evidence"].split(";")[-1].split(":")[1]
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "select rx_id, patient_id, prescriber_id, site_id, drug_code_system, drug_code,"
            " drug_name, strength_mg, quantity, 120 as days_supply, daily_dose_mg, filled_on,"
            " setting from core.prescriptions where rx_id = %s and is_current",
            (last_rx,),
        )
        names = [c.name for c in cur.description]
        fixed = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    write_batch(tmp_path / "fix", "fix-001", "2025-12-31", {"prescriptions": fixed})
    second = _run(tmp_path, tmp_path / "fix")
    assert second["cases"]["resolved"] >= 1
    assert second["cases"]["new"] + second["cases"]["persisting"] == (
        second["cases"]["open"] + second["cases"]["excluded"]
    )
    assert second["cases"]["persisting"] >= first["cases"]["open"] - 5

    rows = {r["case_id"]: r for r in _flagged(tmp_path)}
    assert rows[short["case_id"]]["status"] == "resolved"
    assert rows[short["case_id"]]["review_status"] == "justified"
    assert rows[other["case_id"]]["review_status"] == "confirmed"
    assert rows[other["case_id"]]["first_seen_run"] == first["run_id"]
    assert rows[other["case_id"]]["last_seen_run"] == second["run_id"]

    capsys.readouterr()
    assert main(["cases", "--status", "resolved"]) == 0
    listed = capsys.readouterr().out
    assert short["case_id"] in listed and "justified" in listed


def test_reviews_are_append_only(db_url, tmp_path):
    from tests.rulekit import World

    w = World()
    w.patient("p", ptsd_on="2025-01-01").fill("alprazolam", "2025-02-01", 30)
    write_batch(tmp_path / "b", "b-1", "2025-12-31", w.tables)
    _run(tmp_path, tmp_path / "b")
    [case] = _flagged(tmp_path)
    assert main(["review", case["case_id"], "--status", "false_positive", "--note", "x",
                 "--reviewer", "r1"]) == 0  # fmt: skip
    assert main(["review", "C0000000000000000", "--status", "confirmed", "--note", "x",
                 "--reviewer", "r1"]) == 2  # fmt: skip
    with psycopg.connect(db_url, autocommit=True) as conn:
        for stmt in ("update review.reviews set note = 'changed'", "delete from review.reviews",
                     "truncate review.reviews"):  # fmt: skip
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(stmt)
        assert conn.execute("select note, reviewer from review.reviews").fetchall() == [("x", "r1")]
        row = conn.execute("select review_status from report.cases").fetchone()
        assert row == ("false_positive",)


def test_same_inputs_give_byte_identical_csv_reports(server_url, new_db, tmp_path, monkeypatch):
    generate(150, 9, tmp_path / "cohort")
    outputs = []
    for i in range(2):
        monkeypatch.setenv("DATABASE_URL", new_db())
        out = tmp_path / f"out{i}"
        assert main(["--quiet", "run", str(tmp_path / "cohort"), "--out", str(out)]) == 0
        run = json.loads((out / "latest" / "run.json").read_text())
        outputs.append((out / "latest", run["run_id"]))
    (a, run_a), (b, run_b) = outputs
    for name in ("flagged_cases.csv", "patient_pathway.csv", "measures.csv", "measures_shared.csv"):
        left = (a / name).read_text().replace(run_a, "RUN")
        right = (b / name).read_text().replace(run_b, "RUN")
        assert left == right, name


def test_formulas_in_text_are_escaped_in_csv(db_url, tmp_path):
    from tests.rulekit import World

    w = World()
    p = w.patient("p", ptsd_on="2025-01-01")
    p.fill("alprazolam", "2025-02-01", 30, name="=HYPERLINK(evil) alprazolam")
    write_batch(tmp_path / "b", "b-1", "2025-12-31", w.tables)
    _run(tmp_path, tmp_path / "b")
    with (tmp_path / "out" / "latest" / "flagged_cases.csv").open() as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert "BZD-PTSD" in cells
    assert not any(cell[:1] in ("=", "+", "@") for cell in cells)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("select audit.csv_safe('=1+2'), audit.csv_safe('@x'),"
                            " audit.csv_safe('ok')").fetchone() == ("'=1+2", "'@x", "ok")  # fmt: skip


def test_measures_and_views(db_url, tmp_path):
    generate(300, 2, tmp_path / "cohort")
    _run(tmp_path, tmp_path / "cohort", extra=["--shared"])
    latest = tmp_path / "out" / "latest"
    assert (latest / "dashboard_shared.html").exists()
    with (latest / "measures.csv").open() as fh:
        measures = list(csv.DictReader(fh))
    assert {m["measure_id"] for m in measures} >= {"BZD-PTSD", "TF-COURSE-ADEQUATE",
                                                    "FIRST-LINE-ADEQUATE", "BZD-ACTIVE-SHARE"}  # fmt: skip
    for m in measures:
        num, den = int(m["numerator"]), int(m["denominator"])
        assert 0 <= num <= den
        assert float(m["ci_low"]) <= float(m["rate"]) <= float(m["ci_high"])
    assert any(m["prescriber_id"] for m in measures)
    with (latest / "measures_shared.csv").open() as fh:
        shared = list(csv.DictReader(fh))
    assert "prescriber_id" not in shared[0]
    for m in shared:
        for key in ("numerator", "denominator"):
            assert m[key] == "" or not 1 <= int(m[key]) <= 10
        if m["numerator"] == "" or m["denominator"] == "":
            assert m["rate"] == "" and m["suppressed"] == "t"
    with psycopg.connect(db_url) as conn:
        for view in ("report.cases", "report.measures", "report.pathway", "report.reviews",
                     "report_shared.measures", "report_shared.rules"):  # fmt: skip
            conn.execute(f"select * from {view} limit 1")  # noqa: S608 - fixed names
        n = conn.execute("select count(*) from report.pathway").fetchone()[0]
        assert n == conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0]


def test_data_quality_lists_orders_not_dispensed_and_capped_benzodiazepine_supply(db_url, tmp_path):
    """Policy 2027.2: an order nobody filled and two MRI tablets entered as a
    week are listed by batch and line, as the split-tablet entries are; the
    pathway prints doses as numbers a person writes and gives its reason."""
    base = {"sex": "F", "site_id": "north", "birth_year": 1980}
    rx = {"prescriber_id": "dr-1", "site_id": "north", "drug_code_system": "NONE",
          "setting": "outpatient", "strength_mg": None, "daily_dose_mg": None}  # fmt: skip
    tables = {
        "patients": [{"patient_id": p, **base} for p in ("p1", "p2")],
        "diagnoses": [{"diagnosis_id": f"d-{p}", "patient_id": p, "code_system": "ICD10CM",
                       "code": "F43.10", "diagnosed_on": "2024-01-01"} for p in ("p1", "p2")],
        "prescriptions": [
            {**rx, "rx_id": "r1", "patient_id": "p1", "drug_name": "sertraline 50 mg tab",
             "quantity": 30, "days_supply": 30, "daily_dose_mg": 50, "filled_on": "2024-02-01",
             "source_type": "ordered"},
            {**rx, "rx_id": "r2", "patient_id": "p2", "drug_name": "lorazepam 1 mg tab",
             "quantity": 2, "days_supply": 7, "filled_on": "2024-03-01"},
            {**rx, "rx_id": "r3", "patient_id": "p2", "drug_name": "sertraline 25 mg tab",
             "strength_mg": 25, "quantity": 90, "days_supply": 30, "daily_dose_mg": 37.5,
             "filled_on": "2025-12-01"},
        ],
    }  # fmt: skip
    write_batch(tmp_path / "b", "dq-001", "2025-12-31", tables, history_from="2015-01-01")
    summary = _run(tmp_path, tmp_path / "b")
    # the source dispenses: its orders are no fills, and the run says so
    assert summary["orders"] == {"orders_as_fills": "auto", "fill_batches": []}
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select orders_as_fills, order_fill_batches from audit.runs"
                            ).fetchone() == ("auto", [])  # fmt: skip
    page = (tmp_path / "out" / "latest" / "data_quality.html").read_text()
    ordered = page.split("<h2>Ordered, not dispensed</h2>")[1].split("<h2>")[0]
    capped = page.split("<h2>Benzodiazepine supply capped by the quantity</h2>")[1].split("<h2>")[0]
    assert "<td>dq-001</td><td class='n'>1</td><td>2</td>" in ordered  # line 2 of prescriptions.csv
    assert "<td>dq-001</td><td class='n'>1</td><td>3</td>" in capped
    with (tmp_path / "out" / "latest" / "patient_pathway.csv").open() as fh:
        p2 = next(r for r in csv.DictReader(fh) if r["patient_id"] == "p2")
    assert p2["current_dose_mg"] == "37.5"
    assert p2["next_step_reason"]


@pytest.mark.db
def test_consecutive_shared_releases_hold_a_one_patient_change(conn, tmp_path):
    """Hardening 3, finding 26: one more patient between two runs moves no
    shared count by 1-10; the line is published again as it was, held."""
    from audit import pipeline, policy
    from tests.rulekit import World

    w = World()
    for site in ("north", "south"):
        for i in range(30):
            p = w.patient(f"{site}-{i}", ptsd_on="2025-01-10", site=site)
            if i < 15:
                p.fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    pol = policy.load()
    first = pipeline.audit(conn, pol, [], full=True)["run_id"]
    w.patient("north-new", ptsd_on="2025-01-10", site="north").fill("alprazolam", "2025-02-01", 30)
    w.load(conn, tmp_path)
    second = pipeline.audit(conn, pol, [], full=True)["run_id"]

    def shared(run_id):
        return {(r[0], r[1], r[2]): r[3:] for r in conn.execute(
            "select measure_id, period, site_id, numerator, denominator, held"
            " from audit.measures_shared where run_id = %s", (run_id,))}  # fmt: skip

    a, b = shared(first), shared(second)
    assert any(held for *_, held in b.values())
    exact = conn.execute(
        "select numerator from audit.measures where run_id = %s and measure_id = 'BZD-PTSD'"
        " and site_id = 'ALL' and prescriber_id = '' order by period desc limit 1", (second,)
    ).fetchone()[0]  # fmt: skip
    assert exact == 31  # the audit itself counts the new patient
    for cell, (num, den, _) in b.items():
        old = a.get(cell)
        for new_value, old_value in zip((num, den), old[:2] if old else (None, None), strict=True):
            if new_value is not None and old_value is not None:
                assert not 0 < abs(new_value - old_value) <= 10, (cell, old_value, new_value)


@pytest.mark.db
@pytest.mark.parametrize("version, marked", [("2027.2", False), ("2027.1", True)])
def test_one_patient_is_not_an_outlier(conn, tmp_path, version, marked):
    """Workspace round 2, finding 9: 1 of 120 at a site against 1 of 773
    overall is no outlier under 2027.2 (outlier_min_numerator 5); 2027.1 kept
    the old reading."""
    from audit import pipeline, policy
    from tests.rulekit import World

    w = World()
    for i in range(120):
        p = w.patient(f"a-{i}", ptsd_on="2025-01-10", site="site-a")
        if i == 0:
            p.fill("alprazolam", "2025-02-01", 30)
        else:
            p.fill("sertraline", "2025-02-01", 30)
    for i in range(653):
        w.patient(f"b-{i}", ptsd_on="2025-01-10", site="site-b").fill(
            "sertraline", "2025-02-01", 30)  # fmt: skip
    w.load(conn, tmp_path)
    run = pipeline.audit(conn, policy.load(version), [], full=True)["run_id"]
    row = conn.execute(
        "select numerator, denominator, outlier from audit.measures where run_id = %s"
        " and measure_id = 'BZD-PTSD' and site_id = 'site-a' and prescriber_id = ''"
        " and numerator > 0",
        (run,),
    ).fetchone()
    assert row[0] == 1 and row[2] is marked
