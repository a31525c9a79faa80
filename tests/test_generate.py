"""The synthetic cohort: deterministic, realistic volumes, every rule planted."""

from __future__ import annotations

import csv
import json

import pytest

from audit.cli import main
from audit.generate import generate
from audit.ingest import ingest
from audit.rules import catalogue
from tests.rulekit import evaluate


def _rows(path) -> int:
    with path.open() as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


@pytest.mark.unit
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = generate(500, 3, tmp_path / "a")
    b = generate(500, 3, tmp_path / "b")
    c = generate(500, 4, tmp_path / "c")
    assert a == b
    assert a["files"] != c["files"]
    for name in a["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.unit
def test_volumes_are_realistic(tmp_path):
    manifest = generate(2000, 1, tmp_path / "g")
    rows = {name: entry["rows"] for name, entry in manifest["files"].items()}
    assert rows["patients.csv"] == 2000
    assert 17 <= rows["prescriptions.csv"] / 2000 <= 24
    assert 7 <= rows["therapy_sessions.csv"] / 2000 <= 12
    assert rows == {name: _rows(tmp_path / "g" / name) for name in rows}
    sites = {r["site_id"] for r in csv.DictReader((tmp_path / "g" / "patients.csv").open())}
    assert len(sites) == 6


@pytest.mark.db
@pytest.mark.slow
def test_every_rule_is_planted_and_non_ptsd_patients_are_present(conn, tmp_path):
    generate(3000, 11, tmp_path / "g")
    assert ingest(conn, tmp_path / "g").rows_quarantined == 0
    cases = evaluate(conn)
    found = {c["rule_id"] for c in cases}
    assert found == {r.id for r in catalogue()[1]}
    cohort = conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0]
    assert 0.5 < cohort / 3000 < 0.8
    assert {c["status"] for c in cases} == {"open", "excluded"}


@pytest.mark.unit
def test_generate_command(tmp_path, capsys):
    assert main(["--quiet", "generate", "--patients", "50", "--seed", "2",
                 "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    assert "50 patients" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["batch_id"] == "synthetic-s2-n50"
    assert main(["--quiet", "generate", "--patients", "50", "--out", str(tmp_path / "b")]) == 2
