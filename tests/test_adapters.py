"""Source adapters: Synthea CSV and OMOP CDM v5.4 into native batches."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from pathlib import Path

import psycopg
import pytest

from audit import originals
from audit.adapters import Tokenizer, convert
from audit.adapters.synthea import fills_of_order
from audit.cli import main
from audit.errors import UsageError


def _shared_data() -> Path:
    """The third-party samples: beside the project, or where RXAUDIT_SHARED_DATA says."""
    candidates = [
        Path(__file__).resolve().parents[2] / "shared" / "data",
        Path("/work/shared/data"),
    ]
    if os.environ.get("RXAUDIT_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["RXAUDIT_SHARED_DATA"]))
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = _shared_data()
SYNTHEA = SHARED / "synthea-ca-1k"
OMOP = SHARED / "omop-eunomia-synthea27nj" / "extracted"
KEY = "a-test-key-of-enough-length"


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    monkeypatch.setenv("RXAUDIT_TOKEN_KEY", KEY)


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, header: str, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")


# -- unit: small hand-written inputs ----------------------------------------------

OLD_PATIENTS = ("ID,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,"
                "MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,ZIP")  # fmt: skip


def synthea_old(root: Path) -> Path:
    write(root / "patients.csv", OLD_PATIENTS,
          "src-1,1980-05-02,,999-11-2222,S999,X123,Mr.,Johan12,Doe34,,,M,white,irish,M,"
          "Boston MA US,12 Elm Street,Springfield,Massachusetts,01101.0")  # fmt: skip
    write(root / "conditions.csv", "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
          "2018-01-10,,src-1,e1,47505003,Posttraumatic stress disorder",
          "2018-01-10,,src-1,e1,47505003,Posttraumatic stress disorder")  # fmt: skip
    write(root / "medications.csv",
          "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,COST,DISPENSES,TOTALCOST,REASONCODE,"
          "REASONDESCRIPTION",
          "2018-02-01,2018-05-02,src-1,e2,312940,Sertraline 50 MG Oral Tablet,1,3,3,47505003.0,PTSD",
          "2018-06-01,,src-1,e3,197591,Diazepam 5 MG Oral Tablet,1,2,2,22298006.0,MI")  # fmt: skip
    return root


def test_synthea_old_layout(tmp_path):
    src = synthea_old(tmp_path / "src")
    manifest, report = convert("synthea", src, tmp_path / "out", dt.date(2018, 12, 31), "north")
    out = tmp_path / "out"
    [patient] = rows(out / "patients.csv")
    assert patient["birth_year"] == "1980" and patient["sex"] == "M"
    assert patient["site_id"] == "north" and patient["patient_id"].startswith("p-")
    text = "".join(p.read_text() for p in out.iterdir())
    for secret in ("src-1", "999-11-2222", "Johan12", "Doe34", "Elm Street", "Springfield",
                   "01101", "S999", "X123", "Boston"):  # fmt: skip
        assert secret not in text
    dx = rows(out / "diagnoses.csv")
    # The repeated condition is one diagnosis; the diazepam order's reason code
    # (no condition row) adds its own, dated at the order's start.
    assert sorted((r["code_system"], r["code"], r["diagnosed_on"]) for r in dx) == [
        ("SNOMED", "22298006", "2018-06-01"), ("SNOMED", "47505003", "2018-01-10")]  # fmt: skip
    fills = rows(out / "prescriptions.csv")
    sertraline = [f for f in fills if f["drug_code"] == "312940"]
    assert [(f["filled_on"], f["days_supply"]) for f in sertraline] == [
        ("2018-02-01", "30"), ("2018-03-03", "30"), ("2018-04-02", "30")]  # fmt: skip
    assert sertraline[0]["strength_mg"] == "50.0" and sertraline[0]["drug_code_system"] == "RXNORM"
    # Open-ended: its 2 dispenses spread over the time to as_of.
    diazepam = [(f["filled_on"], f["days_supply"]) for f in fills if f["drug_code"] == "197591"]
    assert diazepam == [("2018-06-01", "106"), ("2018-09-15", "106")]
    assert "ssn" in report.dropped_columns["patients.csv"]
    assert report.as_json()["tables"]["conditions.csv"]["dropped"] == {
        "repeats a diagnosis already written": 1}  # fmt: skip
    assert json.loads((tmp_path / "out.mapping.json").read_text())["source"] == "synthea"
    assert manifest["files"]["patients.csv"]["rows"] == 1


def test_synthea_v3_layout_with_system_and_psychotherapy(tmp_path):
    src = tmp_path / "src"
    write(src / "patients.csv", "Id,BIRTHDATE,DEATHDATE,SSN,FIRST,LAST,GENDER,ADDRESS,CITY,ZIP",
          "v3-1,1990-01-01,,999-00-1111,Ann9,Lee8,F,1 Main St,Town,12345")  # fmt: skip
    write(src / "conditions.csv", "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION",
          "2020-01-01,,v3-1,e1,http://snomed.info/sct,47505003,PTSD",
          "2020-01-02,,v3-1,e1,ICD-10-CM,F43.10,PTSD",
          "2020-01-03,,v3-1,e1,LOINC,1234-5,Something")  # fmt: skip
    write(src / "procedures.csv",
          "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION,BASE_COST,REASONCODE,"
          "REASONDESCRIPTION",
          "2020-02-01,,v3-1,e2,SNOMED-CT,1,Prolonged exposure therapy,1,,",
          "2020-02-08,,v3-1,e3,SNOMED-CT,2,Psychotherapy (regime/therapy),1,,",
          "2020-02-09,,v3-1,e4,SNOMED-CT,3,Dental cleaning,1,,")  # fmt: skip
    convert("synthea", src, tmp_path / "out", dt.date(2020, 12, 31), None)
    dx = {(r["code_system"], r["code"]) for r in rows(tmp_path / "out" / "diagnoses.csv")}
    assert dx == {("SNOMED", "47505003"), ("ICD10CM", "F43.10")}
    sessions = rows(tmp_path / "out" / "therapy_sessions.csv")
    assert sorted(s["modality"] for s in sessions) == ["PE", "UNKNOWN"]
    assert rows(tmp_path / "out" / "patients.csv")[0]["site_id"] == "synthea"


@pytest.mark.unit
def test_order_expansion():
    d = dt.date
    assert list(fills_of_order(d(2020, 1, 1), d(2020, 1, 15), 1, d(2021, 1, 1))) == [
        (d(2020, 1, 1), 14)]  # fmt: skip
    # Daily dispensing over a year becomes monthly fills of the same coverage.
    monthly = list(fills_of_order(d(2020, 1, 1), None, 365, d(2020, 12, 31)))
    assert {days for _, days in monthly} == {30} and len(monthly) == 13
    assert list(fills_of_order(d(2020, 1, 1), None, 1, d(2020, 1, 1))) == [(d(2020, 1, 1), 1)]


def omop_export(root: Path, upper: bool) -> Path:
    def name(n: str) -> str:
        return n.upper() if upper else n

    def head(h: str) -> str:
        return h.upper() if upper else h

    write(root / f"{name('person')}.csv",
          head("person_id,gender_concept_id,year_of_birth,care_site_id,person_source_value"),
          "101,8532,1970,7,secret-uuid-101", "102,8507,1985,,secret-uuid-102")  # fmt: skip
    write(root / f"{name('concept')}.csv",
          head("concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,"
               "standard_concept,concept_code,valid_start_date,valid_end_date,invalid_reason"),
          "436676,Posttraumatic stress disorder,Condition,SNOMED,Clinical Finding,S,47505003,,,",
          "45591480,PTSD chronic,Condition,ICD10CM,5-char,,F43.12,,,",
          "1,Weird finding,Condition,Read,x,,ABC,,,",
          "40234111,Sertraline 50 MG Oral Tablet,Drug,RxNorm,Clinical Drug,S,312940,,,",
          "4,Cognitive processing therapy session,Procedure,SNOMED,Procedure,S,999,,,",
          "5,Psychiatric diagnostic evaluation,Procedure,CPT4,CPT4,S,90791,,,")  # fmt: skip
    write(root / f"{name('condition_occurrence')}.csv",
          head("condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
               "condition_source_value,condition_source_concept_id"),
          "1,101,436676,2020-01-05,47505003,0", "2,102,0,2020-02-01,F43.12,45591480",
          "3,102,1,2020-03-01,ABC,0")  # fmt: skip
    write(root / f"{name('drug_exposure')}.csv",
          head("drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,"
               "drug_exposure_end_date,days_supply,quantity,provider_id,drug_source_value"),
          "10,101,40234111,2020-02-01,2020-03-01,30,30,55,312940",
          "11,101,40234111,2020-03-05,2020-04-03,,,55,312940",
          "12,101,0,2020-03-05,2020-03-05,,,55,")  # fmt: skip
    write(root / f"{name('procedure_occurrence')}.csv",
          head("procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,"
               "procedure_source_value"),
          "20,101,4,2020-02-10,999", "21,101,0,2020-02-17,90837", "22,101,5,2020-01-02,90791")  # fmt: skip
    return root


@pytest.mark.parametrize("upper", [False, True], ids=["lower-case", "upper-case"])
def test_omop_mappings(tmp_path, upper):
    src = omop_export(tmp_path / "src", upper)
    _, report = convert("omop", src, tmp_path / "out", dt.date(2020, 12, 31), None)
    out = tmp_path / "out"
    patients = {r["sex"]: r for r in rows(out / "patients.csv")}
    assert patients["F"]["birth_year"] == "1970" and patients["F"]["site_id"] == "cs-7"
    assert patients["M"]["site_id"] == "omop"
    text = "".join(p.read_text() for p in out.iterdir())
    assert "secret-uuid" not in text and ",101," not in text
    dx = sorted((r["code_system"], r["code"]) for r in rows(out / "diagnoses.csv"))
    assert dx == [("ICD10CM", "F43.12"), ("SNOMED", "47505003")]
    assert report.as_json()["unmapped_codes"] == {"condition": {"ABC": 1}, "drug": {"0": 1}}
    rx = rows(out / "prescriptions.csv")
    # days_supply missing: end minus start plus one (OHDSI); unknown drug: dropped.
    assert sorted(r["days_supply"] for r in rx) == ["30", "30"]
    assert {r["drug_name"] for r in rx} == {"Sertraline 50 MG Oral Tablet"}
    assert {r["drug_code_system"] for r in rx} == {"RXNORM"}
    assert report.as_json()["tables"]["drug_exposure"]["dropped"] == {"no drug name": 1}
    sessions = sorted((s["session_date"], s["modality"], s["cpt_code"])
                      for s in rows(out / "therapy_sessions.csv"))  # fmt: skip
    assert sessions == [("2020-02-10", "CPT", ""), ("2020-02-17", "UNKNOWN", "90837")]


def test_token_key_is_required_and_tokens_are_stable(monkeypatch, tmp_path):
    monkeypatch.delenv("RXAUDIT_TOKEN_KEY")
    with pytest.raises(UsageError, match="RXAUDIT_TOKEN_KEY"):
        convert("synthea", synthea_old(tmp_path / "src"), tmp_path / "out")
    a, b, c = Tokenizer(KEY), Tokenizer(KEY), Tokenizer(KEY + "x")
    assert a("p", "src-1") == b("p", "src-1") != c("p", "src-1")
    assert re.fullmatch(r"p-[0-9a-f]{24}", a("p", "src-1"))


# -- the third-party samples --------------------------------------------------------

needs_samples = pytest.mark.skipif(not SYNTHEA.is_dir() or not OMOP.is_dir(),
                                   reason="../shared/data is not on this machine")  # fmt: skip


@needs_samples
@pytest.mark.db
@pytest.mark.slow
def test_synthea_sample_end_to_end(db_url, tmp_path):
    assert main(["--quiet", "convert", "--from", "synthea", str(SYNTHEA),
                 "--out", str(tmp_path / "batch")]) == 0  # fmt: skip
    assert main(["--quiet", "run", str(tmp_path / "batch"), "--out", str(tmp_path / "out")]) == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from core.ptsd_cohort").fetchone()[0] == 6
        trials = conn.execute(
            "select count(distinct patient_id) from core.med_trials where ingredient = 'sertraline'"
        ).fetchone()[0]
        assert trials == 3
        assert (
            conn.execute(
                "select count(*) from audit.run_cases where rule_id = 'BZD-PTSD'"
            ).fetchone()[0]
            == 0
        )
        # PTSD patients who had benzodiazepines had them long before the diagnosis.
        assert (
            conn.execute(
                "select count(*) from core.bzd_episodes e join core.ptsd_cohort c using (patient_id)"
                " where e.episode_end >= c.index_date"
            ).fetchone()[0]
            == 0
        )

        # No identifier of patients.csv anywhere: database, batch, reports.
        secrets = set()
        for r in rows(SYNTHEA / "patients.csv"):
            secrets.update(v for k, v in r.items()
                           if k in ("ID", "SSN", "DRIVERS", "PASSPORT", "FIRST", "LAST",
                                    "MAIDEN", "ADDRESS") and v)  # fmt: skip
        haystacks = [p.read_text() for p in (tmp_path / "batch").iterdir()]
        haystacks += [p.read_text() for p in (tmp_path / "out" / "latest").iterdir()
                      if p.suffix in (".csv", ".json")]  # fmt: skip
        tables = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema in ('stage', 'core', 'audit') and table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            dump = conn.execute(f"select coalesce(string_agg(t::text, ' '), '') from {table} t"  # noqa: S608 - catalogue names
                                ).fetchone()[0]  # fmt: skip
            haystacks.append(dump)
        # the files as they arrived, as text (bytea would print as hex)
        haystacks += [originals.plain(b, z).decode("utf-8", "replace")
                      for (b, z) in conn.execute("select bytes, zlib from audit.delivered_files")]  # fmt: skip
    words = set()
    for text in haystacks:
        words.update(re.findall(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*", text))
        for address in (s for s in secrets if " " in s):
            assert address not in text
    assert not (secrets & words)


@needs_samples
@pytest.mark.db
def test_omop_sample_has_no_cohort_and_no_case(db_url, tmp_path):
    assert main(["--quiet", "run", "--from", "omop", str(OMOP),
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    run = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())
    assert run["cohort_patients"] == 0
    assert run["cases"]["open"] == 0 and run["cases"]["excluded"] == 0
    assert run["rows_in"] > 1000 and run["rows_quarantined"] == 0


@pytest.mark.unit
def test_omop_history_from_is_each_persons_earliest_observation_period(tmp_path):
    """Schema 1.2: patients.history_from from the CDM's observation periods
    (the earliest start of each person); a person with none has none."""
    src = omop_export(tmp_path / "src", upper=False)
    write(src / "observation_period.csv",
          "observation_period_id,person_id,observation_period_start_date,"
          "observation_period_end_date,period_type_concept_id",
          "1,101,2018-03-01,2019-12-31,44814724", "2,101,2016-07-01,2017-12-31,44814724")  # fmt: skip
    manifest, report = convert("omop", src, tmp_path / "out", dt.date(2020, 12, 31), None)
    patients = {r["sex"]: r for r in rows(tmp_path / "out" / "patients.csv")}
    assert patients["F"]["history_from"] == "2016-07-01"
    assert patients["M"]["history_from"] == ""
    assert manifest["schema_version"] == "1.2"
    note = report.as_json()["notes"]["patients.history_from"]
    assert note == {"from": "each person's earliest observation_period_start_date", "persons": 1}


@pytest.mark.unit
def test_convert_history_from_flag_sets_the_batch_history(tmp_path):
    src = omop_export(tmp_path / "src", upper=False)
    manifest, report = convert("omop", src, tmp_path / "out", dt.date(2020, 12, 31), None,
                               history_from=dt.date(2019, 1, 1))  # fmt: skip
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["history_from"] == on_disk["history_from"] == "2019-01-01"
    assert report.as_json()["notes"]["history_from"] == {"date": "2019-01-01",
                                                         "from": "--history-from"}  # fmt: skip
    with pytest.raises(UsageError, match="after the batch's as_of"):
        convert("omop", src, tmp_path / "out2", dt.date(2020, 12, 31), None,
                history_from=dt.date(2021, 1, 1))  # fmt: skip
