"""The FHIR R4 adapter: bulk exports and Bundles of third-party data (read by
path), a round trip of a generated cohort, and malformed exports."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from pathlib import Path

import psycopg
import pytest

from audit import originals
from audit.adapters import Tokenizer, convert
from audit.adapters.fhir import FhirError
from audit.cli import main
from tests.test_adapters import KEY, SHARED, rows

SMART = SHARED / "fhir-bulk-smart-sample-10"
PTSD_BUNDLES = SHARED / "fhir-r4-synthea-ptsd"
ELISEO = "Eliseo_Cummings_55c373ad-af55-46ed-8f69-9c7a40a89d46.json"


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    monkeypatch.setenv("RXAUDIT_TOKEN_KEY", KEY)


def _identifiers(patients: list[dict]) -> set[str]:
    """Every name, address, telecom and identifier value of Patient resources."""
    out: set[str] = set()
    for p in patients:
        for n in p.get("name") or []:
            out.update(n.get("given") or [])
            out.update([n["family"]] if n.get("family") else [])
        for a in p.get("address") or []:
            out.update(a.get("line") or [])
            out.update(v for k, v in a.items() if k in ("city", "postalCode") and v)
        out.update(t["value"] for t in p.get("telecom") or [] if t.get("value"))
        out.update(i["value"] for i in p.get("identifier") or [] if i.get("value"))
    return {s for s in out if len(s) >= 4}


def _haystacks(conn, *folders: Path) -> list[str]:
    texts = [p.read_text() for f in folders for p in f.iterdir() if p.is_file()]
    for (table,) in conn.execute(
        "select table_schema || '.' || table_name from information_schema.tables"
        " where table_schema in ('stage', 'core', 'audit') and table_type = 'BASE TABLE'"
    ).fetchall():
        texts.append(
            conn.execute(f"select coalesce(string_agg(t::text, ' '), '') from {table} t").fetchone()[0]  # noqa: S608 - catalogue names
        )  # fmt: skip
    # the files as they arrived, as text (bytea would print as hex)
    texts += [originals.plain(b, z).decode("utf-8", "replace")
              for (b, z) in conn.execute("select bytes, zlib from audit.delivered_files")]  # fmt: skip
    return texts


@pytest.mark.db
def test_smart_bulk_sample_has_no_cohort_and_leaks_nothing(db_url, tmp_path):
    assert main(["--quiet", "convert", "--from", "fhir", str(SMART),
                 "--out", str(tmp_path / "batch")]) == 0  # fmt: skip
    fills = rows(tmp_path / "batch" / "prescriptions.csv")
    assert len(fills) == 1745 and {f["source_type"] for f in fills} == {"ordered"}
    diazepam = [f for f in fills if "diazepam" in f["drug_name"].lower()]
    assert len(diazepam) == 1 and diazepam[0]["drug_code"] == "197591"
    report = json.loads((tmp_path / "batch.mapping.json").read_text())
    assert (
        "1,745 fills from orders, 0 dispenses: coverage from orders"
        in (report["fields_not_filled"]["prescriptions"])
    )
    assert main(["--quiet", "run", str(tmp_path / "batch"), "--out", str(tmp_path / "out")]) == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from core.ptsd_cohort").fetchone() == (0,)
        assert conn.execute("select count(*) from audit.cases").fetchone() == (0,)
        assert conn.execute(
            "select count(*) from core.prescriptions where drug_name ilike '%diazepam%'"
        ).fetchone() == (1,)
        haystacks = _haystacks(conn, tmp_path / "batch", tmp_path / "out" / "latest")
    patients = [json.loads(line) for line in (SMART / "Patient.000.ndjson").open()]
    secrets = _identifiers(patients)
    assert len(secrets) > 50
    words = set()
    for text in haystacks:
        words.update(re.findall(r"[A-Za-z0-9]+(?:[-'.][A-Za-z0-9]+)*", text))
        for value in (s for s in secrets if " " in s):
            assert value not in text
    assert not (secrets & words)


@pytest.mark.db
def test_synthea_ptsd_bundle_gives_a_cohort_patient_covered_by_its_order(db_url, tmp_path):
    src = tmp_path / "bundles"
    src.mkdir()
    (src / ELISEO).write_bytes((PTSD_BUNDLES / ELISEO).read_bytes())
    bundle = json.loads((src / ELISEO).read_text())
    [patient] = [e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "Patient"]  # fmt: skip
    token = Tokenizer(KEY)("pt", patient["id"])
    manifest, report = convert("fhir", src, tmp_path / "batch")
    sertraline = [f for f in rows(tmp_path / "batch" / "prescriptions.csv")
                  if "sertraline" in f["drug_name"].lower()]  # fmt: skip
    assert [(f["patient_id"], f["source_type"], f["days_supply"]) for f in sertraline] == [
        (token, "ordered", "30")
    ]
    assert report.notes["orders: supply from --order-supply-days (30)"] >= 1
    assert main(["--quiet", "run", str(tmp_path / "batch"), "--out", str(tmp_path / "out")]) == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select patient_id from core.ptsd_cohort").fetchall() == [(token,)]
        trials = conn.execute(
            "select ingredient, covered_days from core.med_trials where patient_id = %s", (token,)
        ).fetchall()
        assert trials == [("sertraline", 30)]
        haystacks = _haystacks(conn, tmp_path / "batch", tmp_path / "out" / "latest")
    secrets = _identifiers([patient])
    for text in haystacks:
        assert not any(s in text for s in secrets)


@pytest.mark.unit
def test_a_longer_order_supply_is_a_flag_and_is_counted(tmp_path):
    src = tmp_path / "bundles"
    src.mkdir()
    (src / ELISEO).write_bytes((PTSD_BUNDLES / ELISEO).read_bytes())
    _, report = convert("fhir", src, tmp_path / "batch", order_supply_days=90)
    days = {f["days_supply"] for f in rows(tmp_path / "batch" / "prescriptions.csv")}
    assert days == {"90"}
    assert "orders: supply from --order-supply-days (90)" in report.notes


# -- malformed exports: one clear error, or a counted skip; never a half batch


def _bulk(tmp_path, patients: list[dict], **files: list) -> Path:
    src = tmp_path / "export"
    src.mkdir(exist_ok=True)
    with (src / "Patient.ndjson").open("w") as fh:
        for p in patients:
            fh.write(json.dumps(p) + "\n")
    for name, lines in files.items():
        with (src / f"{name}.ndjson").open("w") as fh:
            for line in lines:
                fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return src


PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03", "gender": "female",
           "managingOrganization": {"reference": "Organization/north"}}  # fmt: skip
DISPENSE = {"resourceType": "MedicationDispense", "id": "d1", "status": "completed",
            "subject": {"reference": "Patient/p1"}, "whenHandedOver": "2025-03-01",
            "daysSupply": {"value": 30}, "medicationCodeableConcept": {"coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312940",
                 "display": "sertraline 50 MG Oral Tablet"}]}}  # fmt: skip


@pytest.mark.unit
def test_a_truncated_ndjson_line_is_one_error_and_no_batch(tmp_path):
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[DISPENSE, json.dumps(DISPENSE)[:40]])
    with pytest.raises(FhirError) as err:
        convert("fhir", src, tmp_path / "batch")
    assert "MedicationDispense.ndjson line 2 column" in str(err.value)
    assert "truncated" in str(err.value)
    assert not (tmp_path / "batch").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


@pytest.mark.unit
def test_the_cli_says_it_in_one_sentence(tmp_path, capsys):
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=["{not json"])
    assert main(["convert", "--from", "fhir", str(src), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "MedicationDispense.ndjson line 1 column 2: not a JSON resource" in err
    assert "Traceback" not in err


@pytest.mark.unit
def test_unknown_types_and_missing_patients_are_counted_skips(tmp_path):
    orphan = {**DISPENSE, "id": "d2", "subject": {"reference": "Patient/nobody"}}
    stray = {"resourceType": "Foo", "id": "x"}
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[DISPENSE, orphan, stray],
                Basic=[{"resourceType": "Basic", "id": "b"}])  # fmt: skip
    with gzip.open(src / "Condition.000.ndjson.gz", "wt") as fh:
        fh.write(json.dumps({"resourceType": "Condition", "id": "c1",
                             "subject": {"reference": "Patient/p1"},
                             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                  "code": "F43.10"}]},
                             "onsetDateTime": "2025-01-05"}) + "\n")  # fmt: skip
    _, report = convert("fhir", src, tmp_path / "batch")
    data = report.as_json()["tables"]
    assert data["MedicationDispense"]["dropped"] == {"reference to a missing patient": 1}
    assert data["MedicationDispense (file)"]["dropped"] == {
        "resource of type (an unexpected value) skipped": 1
    }
    assert data["files"]["dropped"] == {"Basic: resource type not used": 1}
    assert [r["code"] for r in rows(tmp_path / "batch" / "diagnoses.csv")] == ["F43.10"]
    [fill] = rows(tmp_path / "batch" / "prescriptions.csv")
    assert (fill["source_type"], fill["days_supply"], fill["site_id"]) == (
        "dispensed",
        "30",
        "north",
    )


@pytest.mark.unit
def test_a_bundle_that_is_not_json_is_one_error(tmp_path):
    src = tmp_path / "bundles"
    src.mkdir()
    (src / "a.json").write_text('{"resourceType": "Bundle", "entry": [')
    with pytest.raises(FhirError) as err:
        convert("fhir", src, tmp_path / "batch")
    assert "a.json line 1 column" in str(err.value) and "not JSON" in str(err.value)
    assert not (tmp_path / "batch").exists()


@pytest.mark.unit
def test_conditional_practitioner_references_resolve(tmp_path):
    practitioner = {"resourceType": "Practitioner", "id": "dr9", "identifier": [
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999974394"}]}  # fmt: skip
    order = {"resourceType": "MedicationRequest", "id": "o1", "status": "active",
             "intent": "order", "subject": {"reference": "Patient/p1"},
             "authoredOn": "2025-02-01",
             "requester": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999974394"},
             "medicationCodeableConcept": {"text": "Sertraline 50 MG Oral Tablet"},
             "dispenseRequest": {"expectedSupplyDuration": {"value": 4, "unit": "weeks"}},
             "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1,
                                                          "periodUnit": "d"}},
                                    "doseAndRate": [{"doseQuantity": {"value": 1}}]}]}  # fmt: skip
    src = _bulk(tmp_path, [PATIENT], Practitioner=[practitioner], MedicationRequest=[order])
    convert("fhir", src, tmp_path / "batch")
    [fill] = rows(tmp_path / "batch" / "prescriptions.csv")
    assert fill["prescriber_id"] == Tokenizer(KEY)("dr", "dr9")
    assert (fill["days_supply"], fill["daily_dose_mg"], fill["strength_mg"]) == (
        "28",
        "100.0",
        "50.0",
    )


# -- the round trip: the same cohort as a native batch and as a FHIR export


def _case_keys(url: str, patient_map: dict[str, str] | None = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "select rule_id, patient_id, case_date::text, status, severity from audit.cases"
        ).fetchall()
    if patient_map is not None:
        found = [(r, patient_map[p], d, s, v) for r, p, d, s, v in found]
    return sorted(found)


def _round_trip(tmp_path, monkeypatch, new_db, patients: int) -> tuple[list, list]:
    assert main(["--quiet", "generate", "--patients", str(patients), "--seed", "3",
                 "--out", str(tmp_path / "native")]) == 0  # fmt: skip
    assert main(["--quiet", "generate", "--patients", str(patients), "--seed", "3",
                 "--format", "fhir", "--out", str(tmp_path / "fhir")]) == 0  # fmt: skip
    native_url, fhir_url = new_db(), new_db()
    monkeypatch.setenv("DATABASE_URL", native_url)
    assert main(["--quiet", "run", str(tmp_path / "native"), "--out", str(tmp_path / "o1")]) == 0
    monkeypatch.setenv("DATABASE_URL", fhir_url)
    assert main(["--quiet", "run", "--from", "fhir", str(tmp_path / "fhir"),
                 "--as-of", json.loads((tmp_path / "native" / "manifest.json").read_text())["as_of"],
                 "--out", str(tmp_path / "o2")]) == 0  # fmt: skip
    token = Tokenizer(KEY)
    with (tmp_path / "native" / "patients.csv").open() as fh:
        patients = list(csv.DictReader(fh))
    back = {token("pt", r["patient_id"]): r["patient_id"] for r in patients}
    # FHIR carries no per-patient history start (schema 1.2's history_from):
    # those patients' history tests may differ, so they are left out
    own = {r["patient_id"] for r in patients if r.get("history_from")}
    assert own, "the generator plants patients with a history of their own"
    return ([c for c in _case_keys(native_url) if c[1] not in own],
            [c for c in _case_keys(fhir_url, back) if c[1] not in own])  # fmt: skip


@pytest.mark.db
def test_round_trip_native_and_fhir_give_the_same_cases(tmp_path, monkeypatch, new_db):
    native, fhir = _round_trip(tmp_path, monkeypatch, new_db, 400)
    assert len(native) > 50
    assert fhir == native


@pytest.mark.db
@pytest.mark.slow
def test_round_trip_on_5000_patients(tmp_path, monkeypatch, new_db):
    native, fhir = _round_trip(tmp_path, monkeypatch, new_db, 5000)
    assert len({c[0] for c in native}) == 13
    assert fhir == native


@pytest.mark.unit
def test_fhir_written_by_generate_is_a_bulk_layout(tmp_path):
    assert main(["--quiet", "generate", "--patients", "30", "--format", "fhir",
                 "--out", str(tmp_path / "x")]) == 0  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert "Patient.000.ndjson" in names and "export-manifest.json" in names
    manifest = json.loads((tmp_path / "x" / "export-manifest.json").read_text())
    for out in manifest["output"]:
        with (tmp_path / "x" / out["url"]).open() as fh:
            assert sum(1 for _ in fh) == out["count"]
    assert Path(tmp_path / "x" / "Patient.000.ndjson").read_text().count('"resourceType"') == 30


@pytest.mark.unit
def test_counseling_outside_mental_health_is_not_psychotherapy(tmp_path):
    def procedure(pid: str, display: str) -> dict:
        return {"resourceType": "Procedure", "id": pid, "status": "completed",
                "subject": {"reference": "Patient/p1"}, "performedDateTime": "2025-03-02",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "0",
                                     "display": display}]}}  # fmt: skip

    src = _bulk(tmp_path, [PATIENT], Procedure=[
        procedure("a", "Counseling for termination of pregnancy"),
        procedure("b", "Trauma-focused counseling"),
        procedure("c", "Prolonged exposure therapy for PTSD"),
    ])  # fmt: skip
    convert("fhir", src, tmp_path / "batch")
    sessions = rows(tmp_path / "batch" / "therapy_sessions.csv")
    assert sorted(s["modality"] for s in sessions) == ["PE", "UNKNOWN"]


@pytest.mark.unit
def test_an_oversized_resource_or_bundle_is_refused(tmp_path, monkeypatch):
    from audit.adapters import fhir_read as fhir

    monkeypatch.setattr(fhir, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(fhir, "MAX_BUNDLE_BYTES", 1000)
    big = {**PATIENT, "id": "p2", "text": {"div": "x" * 2000}}
    src = _bulk(tmp_path, [PATIENT, big])
    with pytest.raises(FhirError) as err:
        convert("fhir", src, tmp_path / "batch")
    assert "Patient.ndjson line 2: a resource of more than" in str(err.value)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    (bundles / "b.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": big}]}))  # fmt: skip
    with pytest.raises(FhirError) as err:
        convert("fhir", bundles, tmp_path / "batch2")
    assert "b.json: a Bundle of more than" in str(err.value)
    assert not (tmp_path / "batch").exists() and not (tmp_path / "batch2").exists()


@pytest.mark.unit
def test_files_named_by_a_server_are_typed_by_their_content(tmp_path):
    src = tmp_path / "export"
    src.mkdir()
    (src / "patient.ndjson").write_text(json.dumps(PATIENT) + "\n")
    (src / "8f2c1d.ndjson").write_text(json.dumps(DISPENSE) + "\n")
    (src / "log.ndjson").write_text('{"not": "a resource"}\n')
    (src / "export-manifest.json").write_text("{}")
    _, report = convert("fhir", src, tmp_path / "batch")
    assert report.notes["layout"] == "bulk"
    [fill] = rows(tmp_path / "batch" / "prescriptions.csv")
    assert fill["source_type"] == "dispensed"
    assert len(rows(tmp_path / "batch" / "patients.csv")) == 1


@pytest.mark.unit
@pytest.mark.parametrize("days", ["0", "366", "-5"])
def test_order_supply_days_out_of_range_is_a_usage_error(tmp_path, capsys, days):
    src = _bulk(tmp_path, [PATIENT])
    code = main(["convert", "--from", "fhir", str(src), "--out", str(tmp_path / "b"),
                 "--order-supply-days", days])  # fmt: skip
    assert code == 2
    assert "--order-supply-days must be between 1 and 365" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.unit
def test_bulk_export_since_is_the_batch_history_from(tmp_path):
    """A Bulk Data export asked with _since covers records from that date:
    the batch's history_from, and the mapping report says where it came from."""
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[DISPENSE])
    (src / "manifest.json").write_text(json.dumps({
        "transactionTime": "2025-12-31T00:00:00Z",
        "request": "https://ehr.example/fhir/$export?_type=Patient,MedicationDispense"
                   "&_since=2022-04-01T00:00:00Z",
        "requiresAccessToken": True, "output": [], "error": []}))  # fmt: skip
    manifest, report = convert("fhir", src, tmp_path / "batch")
    assert manifest["history_from"] == "2022-04-01"
    assert report.notes["history_from"] == {
        "date": "2022-04-01", "from": "the bulk export manifest's request (_since)"}  # fmt: skip
    (tmp_path / "plain").mkdir()
    without = _bulk(tmp_path / "plain", [PATIENT], MedicationDispense=[DISPENSE])
    assert "history_from" not in convert("fhir", without, tmp_path / "batch2")[0]


@pytest.mark.unit
def test_unexpected_input_text_is_reported_without_its_value(tmp_path, capsys):
    """Hardening 3, finding 12: a resourceType, an order's intent or a Bundle
    entry's type holding a name and an SSN is counted, never echoed."""
    secret = "Jane Doe SSN 987-65-4320"
    order = {"resourceType": "MedicationRequest", "id": "o1", "status": "active",
             "intent": secret, "subject": {"reference": "Patient/p1"},
             "authoredOn": "2025-03-01", "medicationCodeableConcept": {"text": "sertraline 50 mg"}}  # fmt: skip
    src = _bulk(tmp_path, [PATIENT, {"resourceType": secret}],
                MedicationDispense=[DISPENSE], MedicationRequest=[order])  # fmt: skip
    _, report = convert("fhir", src, tmp_path / "batch")
    text = json.dumps(report.as_json()) + "\n".join(report.lines())
    assert "Jane" not in text and "987-65" not in text
    assert "(an unexpected value)" in text
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    (bundles / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": PATIENT}, {"resource": {"resourceType": secret}}]}))  # fmt: skip
    _, report = convert("fhir", bundles, tmp_path / "batch2", dt.date(2025, 12, 31))
    assert "Jane" not in json.dumps(report.as_json())


@pytest.mark.db
def test_run_from_fhir_leaves_no_converted_batch_and_no_90_plus_birth_year(
    db_url, tmp_path, monkeypatch
):
    """Hardening 3, finding 11: `run --from fhir` removes what it converted;
    a converted batch holds no real birth year of a patient over 89."""
    import tempfile

    old = {**PATIENT, "id": "p2", "birthDate": "1931-05-06"}
    src = _bulk(tmp_path, [PATIENT, old], MedicationDispense=[DISPENSE])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["--quiet", "run", "--from", "fhir", str(src), "--as-of", "2025-12-31",
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    assert list((tmp_path / "tmp").iterdir()) == []
    _, report = convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    years = {r["birth_year"] for r in rows(tmp_path / "batch" / "patients.csv")}
    assert years == {"1980", "1935"} and report.notes["age_90_plus"]["patients"] == 1


@pytest.mark.parametrize("system, code", [
    ("http://hl7.org/fhir/sid/icd-10-cm", "F43.1\u200b0"),  # a zero-width space inside
    ("http://hl7.org/fhir/sid/icd-10-cm", "\uff26\uff14\uff13.\uff11\uff10"),  # full width
    ("http://snomed.info/sct", "47505003\u00a0"),  # a no-break space after
])  # fmt: skip
def test_odd_characters_in_a_diagnosis_code_keep_the_patient_in_the_cohort(
    db_url, tmp_path, system, code
):
    """Hardening 3, finding 10: a PTSD code written with invisible or
    full-width characters still puts the patient in the cohort."""
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                 "onsetDateTime": "2025-01-05", "code": {"coding": [{"system": system,
                                                                     "code": code}]}}  # fmt: skip
    alprazolam = [
        {**DISPENSE, "id": f"d{i}", "whenHandedOver": f"2025-0{i + 2}-01", "medicationCodeableConcept":
         {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "308047",
                      "display": "alprazolam 0.5 MG Oral Tablet"}]}}
        for i in range(3)
    ]  # fmt: skip
    src = _bulk(tmp_path, [PATIENT], Condition=[condition], MedicationDispense=alprazolam)
    out = tmp_path / "out"
    assert main(["--quiet", "run", "--from", "fhir", str(src), "--as-of", "2025-12-31",
                 "--out", str(out)]) == 0  # fmt: skip
    with (out / "latest" / "flagged_cases.csv").open() as fh:
        rules = {r["rule_id"] for r in csv.DictReader(fh)}
    assert "BZD-PTSD" in rules
    # the conversion writes the code as meant, and says it normalised one
    _, report = convert("fhir", src, tmp_path / "batch", dt.date(2025, 12, 31))
    written = [r["code"] for r in rows(tmp_path / "batch" / "diagnoses.csv")]
    assert written == ["47505003" if "sct" in system else "F43.10"]
    assert report.notes["diagnosis codes normalised"] == 1


@pytest.mark.db
@pytest.mark.parametrize("code", ["F43.1\u200b0", "\uff26\uff14\uff13.\uff11\uff10", "f43.10 "])
def test_odd_characters_in_a_native_diagnosis_code_are_read_as_the_code(conn, tmp_path, code):
    from audit import policy
    from audit.ingest import ingest
    from tests.batches import base_tables, make_batch

    tables = base_tables()
    tables["diagnoses"][0]["code"] = code
    ingest(conn, make_batch(tmp_path, tables=tables))
    params = policy.load().params()
    got = conn.execute(
        "select audit.icd(code) = any(%(ptsd_icd10cm)s::text[]) from core.diagnoses",
        {"ptsd_icd10cm": params["ptsd_icd10cm"]},
    ).fetchall()
    assert got == [(True,)]


def _deep(n: int) -> str:
    return '{"resourceType": "Patient", "id": "p9", "x": ' + "[" * n + "]" * n + "}"


_RX = {**DISPENSE, "id": "d9"}
MALFORMED = {
    "nested deep (NDJSON)": ("Patient", _deep(100_000), "nested more than 64 deep"),
    "a 5000-digit integer": ("MedicationDispense",
                             json.dumps(_RX).replace('{"value": 30}', '{"value": ' + "9" * 5000 + "}"),
                             "more than 30 digits"),
    "NaN days": ("MedicationDispense", json.dumps(_RX).replace('{"value": 30}', '{"value": NaN}'),
                 "holds NaN"),
    "1e400 days": ("MedicationDispense",
                   json.dumps(_RX).replace('{"value": 30}', '{"value": 1e400}'), "too large"),
    "-Infinity days": ("MedicationDispense",
                       json.dumps(_RX).replace('{"value": 30}', '{"value": -Infinity}'),
                       "holds -Infinity"),
    "daysSupply a number": ("MedicationDispense", {**_RX, "daysSupply": 30},
                            "MedicationDispense.daysSupply must be a JSON object"),
    "medicationReference text": ("MedicationDispense", {**_RX, "medicationReference": "x"},
                                 "MedicationDispense.medicationReference must be a JSON object"),
    "quantity text": ("MedicationDispense", {**_RX, "quantity": "30 tablets"},
                      "MedicationDispense.quantity must be a JSON object"),
    "dispenseRequest a list": ("MedicationRequest",
                               {"resourceType": "MedicationRequest", "id": "r1", "intent": "order",
                                "subject": {"reference": "Patient/p1"}, "dispenseRequest": []},
                               "MedicationRequest.dispenseRequest must be a JSON object"),
    "score NaN": ("Observation", '{"resourceType": "Observation", "id": "o1", "valueQuantity":'
                                 ' {"value": NaN}}', "holds NaN"),
    "expected supply Infinity": ("MedicationRequest",
                                 '{"resourceType": "MedicationRequest", "id": "r2", "dispenseRequest":'
                                 ' {"expectedSupplyDuration": {"value": Infinity}}}', "holds Infinity"),
}  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_export_is_one_sentence_and_exit_2(tmp_path, capsys, case):
    """Hardening 3, finding 13: what is read has its FHIR JSON shape, else
    one sentence naming the file, line and element (never the value)."""
    kind, line, message = MALFORMED[case]
    src = _bulk(tmp_path, [PATIENT], **{kind: [line]})
    code = main(["--quiet", "convert", "--from", "fhir", str(src), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and f"{kind}.ndjson line 1" in err or "Patient.ndjson line 2" in err
    assert "internal error" not in err and "tablets" not in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("entry", ["5", '"x"', "[5]", '{"x": ' + "[" * 5000 + "]" * 5000 + "}"])
def test_a_malformed_bundle_is_one_sentence_and_exit_2(tmp_path, capsys, entry):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    (bundles / "b.json").write_text('{"resourceType": "Bundle", "entry": ' + entry + "}")
    code = main(
        ["--quiet", "convert", "--from", "fhir", str(bundles), "--out", str(tmp_path / "b")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "internal error" not in err


def test_a_patient_sent_twice_with_another_birth_year_is_refused(tmp_path, capsys):
    other = {**PATIENT, "birthDate": "1950-01-01", "gender": "male"}
    src = _bulk(tmp_path, [PATIENT, other])
    code = main(["--quiet", "convert", "--from", "fhir", str(src), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "appears twice with another birth year or sex" in err
    assert "p1" not in err


def test_the_line_limit_counts_bytes(tmp_path, monkeypatch):
    from audit.adapters import fhir_read

    monkeypatch.setattr(fhir_read, "MAX_LINE_BYTES", 400)
    wide = {**PATIENT, "id": "p2", "text": {"div": "\u00e9" * 150}}  # 150 characters, 300 bytes
    assert (
        len(json.dumps(wide, ensure_ascii=False))
        < 400
        < len(json.dumps(wide, ensure_ascii=False).encode())
    )
    src = tmp_path / "export"
    src.mkdir()
    (src / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n"
                                        + json.dumps(wide, ensure_ascii=False) + "\n")  # fmt: skip
    with pytest.raises(FhirError, match="Patient.ndjson line 2: a resource of more than"):
        convert("fhir", src, tmp_path / "batch")


def test_a_symlinked_file_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.ndjson"
    outside.write_text(json.dumps(PATIENT) + "\n")
    src = tmp_path / "export"
    src.mkdir()
    (src / "Patient.ndjson").symlink_to(outside)
    with pytest.raises(FhirError, match="Patient.ndjson is a symbolic link"):
        convert("fhir", src, tmp_path / "batch")


def test_run_from_fhir_prints_the_mapping_and_which_codes_it_looked_for(db_url, tmp_path, capsys):
    """Workspace round 2, finding 13 (in part): `run --from fhir` prints the
    mapping summary; with no cohort patient it says which codes it looked for."""
    src = _bulk(tmp_path, [PATIENT], MedicationDispense=[DISPENSE])
    assert main(["run", "--from", "fhir", str(src), "--as-of", "2025-12-31",
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "mapping report (fhir)" in err
    assert "MedicationDispense: 1 read" in err and "Patient: 1 read, 1 written" in err
    assert "no patient is in the PTSD cohort: the audit looked for diagnoses coded ICD-10-CM" in err
    assert "F43.1" in err and "47505003" in err
