"""FHIR for a newcomer (workspace round 2, finding 13): sites named by their
Organization, and records dated after a patient's recorded death listed in
data quality."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from audit.adapters import convert
from audit.batchio import AFTER_DEATH, after_death_of
from audit.cli import main
from tests.test_adapters import rows
from tests.test_fhir import DISPENSE, PATIENT, _bulk, token_key  # noqa: F401 - autouse fixture


def org(oid: str, name: str | None) -> dict:
    return {"resourceType": "Organization", "id": oid, **({"name": name} if name else {})}


@pytest.mark.unit
def test_a_patients_site_is_the_organizations_name(tmp_path):
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[DISPENSE],
                Organization=[org("north", "Springfield General Hospital")])  # fmt: skip
    _, report = convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    [p] = rows(tmp_path / "batch" / "patients.csv")
    assert p["site_id"] == "springfield-general-hospital"
    [fill] = rows(tmp_path / "batch" / "prescriptions.csv")
    assert fill["site_id"] == "springfield-general-hospital"  # no location: the home site
    assert report.notes["sites named by their Organization's name"] == 1


@pytest.mark.unit
def test_an_organization_without_a_name_keeps_its_id(tmp_path):
    src = _bulk(tmp_path, [PATIENT], Organization=[org("north", None)])
    convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    assert rows(tmp_path / "batch" / "patients.csv")[0]["site_id"] == "north"


@pytest.mark.unit
def test_two_organizations_of_one_name_are_not_merged(tmp_path):
    other = {**PATIENT, "id": "p2", "managingOrganization": {"reference": "Organization/south"}}
    src = _bulk(tmp_path, [PATIENT, other],
                Organization=[org("north", "Community Clinic"), org("south", "Community clinic")])  # fmt: skip
    _, report = convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    assert sorted(r["site_id"] for r in rows(tmp_path / "batch" / "patients.csv")) == [
        "north", "south"]  # fmt: skip
    assert report.notes["Organizations sharing a name (site from their id)"] == 2


@pytest.mark.unit
def test_a_locations_site_is_that_of_its_organization(tmp_path):
    located = {**DISPENSE, "location": {"reference": "Location/ward-3"}}
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[located],
                Organization=[org("north", "Springfield General Hospital"), org("east", "East Clinic")],
                Location=[{"resourceType": "Location", "id": "ward-3", "name": "Ward 3",
                           "managingOrganization": {"reference": "Organization/east"}}])  # fmt: skip
    convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    assert rows(tmp_path / "batch" / "prescriptions.csv")[0]["site_id"] == "east-clinic"


@pytest.mark.unit
def test_records_after_the_recorded_death_are_kept_and_counted_with_their_lines(tmp_path):
    dead = {**PATIENT, "deceasedDateTime": "2025-02-15T10:00:00Z"}
    before = {**DISPENSE, "id": "d0", "whenHandedOver": "2025-02-01"}
    src = _bulk(tmp_path, [dead], MedicationDispense=[before, DISPENSE])  # DISPENSE: 2025-03-01
    _, report = convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    assert len(rows(tmp_path / "batch" / "prescriptions.csv")) == 2  # kept, not dropped
    assert report.notes[AFTER_DEATH] == {"prescriptions.csv": {"rows": 1, "lines": [3]}}
    assert "records dated after the patient's recorded death (kept): prescriptions.csv 1" in (
        "\n".join(report.lines()))  # fmt: skip
    assert after_death_of(tmp_path / "batch") == report.notes[AFTER_DEATH]


@pytest.mark.unit
@pytest.mark.parametrize("notes", [
    {AFTER_DEATH: {"../etc/passwd": {"rows": 1, "lines": [2]}}},
    {AFTER_DEATH: {"prescriptions.csv": {"rows": "Jane Doe", "lines": [2]}}},
    {AFTER_DEATH: {"prescriptions.csv": {"rows": 1, "lines": ["Jane Doe"]}}},
    {AFTER_DEATH: "Jane Doe"},
])  # fmt: skip
def test_a_mapping_report_not_of_the_adapters_gives_nothing(tmp_path, notes):
    (tmp_path / "b").mkdir()
    (tmp_path / "b.mapping.json").write_text(json.dumps({"notes": notes}))
    assert after_death_of(tmp_path / "b") is None


@pytest.mark.db
def test_run_from_fhir_lists_records_after_death_in_data_quality(db_url, tmp_path):
    dead = {**PATIENT, "deceasedDateTime": "2025-02-15"}
    src = _bulk(tmp_path, [dead], MedicationDispense=[DISPENSE],
                Organization=[org("north", "Springfield General Hospital")])  # fmt: skip
    assert main(["--quiet", "run", "--from", "fhir", str(src), "--as-of", "2025-12-31",
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    page = (tmp_path / "out" / "latest" / "data_quality.html").read_text()
    section = page.split("Records dated after the patient's death</h2>", 1)[1].split("<h2>")[0]
    assert "<td>prescriptions.csv</td><td class='n'>1</td><td>2</td>" in section
