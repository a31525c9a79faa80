"""Cross-check rxaudit's antidepressant coverage against the published CMS128
measure (Antidepressant Medication Management, FHIR), run by an independent
engine, fqm-execution 1.8.6 (pinned in package.json and package-lock.json).

    python scripts/cms128_crosscheck.py [--patients 1000] [--seed 1]

1. The 26 test cases published with the measure are run and compared with
   their expected MeasureReports: a check that the engine is set up right.
2. Patients in CMS128's population are generated (adults with major
   depression, a new SSRI or SNRI episode in the intake period, nothing in the
   105 days before, an office visit on the episode start), and a PTSD
   diagnosis so that rxaudit audits them. Their fills vary: regular, late,
   early refills, gaps, long supplies. They are written as FHIR Bundles with
   MedicationDispense.
3. fqm-execution runs over all of them in one call; rxaudit converts the same
   Bundles (``convert --from fhir``) and audits them.
4. For each patient, CMS128's acute-phase numerator (84 days covered of the
   115 from the episode start) is compared with rxaudit's (the acute covered
   days of the episode that starts on that day, ``core.ad_episodes``). They
   must agree, except where the two definitions differ on purpose; each such
   difference must be predicted by a rule below (:func:`predict`).

The last line is ``cms128 crosscheck: N patients, A agree, E explained, U
unexplained``; the exit status is 1 when U > 0 or a published test case
fails. Needs DATABASE_URL (a scratch database is created and dropped) and
``npm ci`` run in the project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from audit import db  # noqa: E402
from audit.adapters import Tokenizer  # noqa: E402

DATA_CANDIDATES = [ROOT.parent / "shared" / "data", Path("/work/shared/data")]
PERIOD = ("2025-01-01", "2025-12-31")
INTAKE = (dt.date(2024, 5, 1), dt.date(2025, 4, 30))
ACUTE_DAYS, ACUTE_WINDOW = 84, 115  # covered days needed, days from the episode start
GAP_DAYS = 30  # rxaudit: more uncovered days than this end an episode (episode_gap_days)
KEY = "cms128-crosscheck-key"
PROFILES = {"Patient": "qicore-patient", "Encounter": "qicore-encounter",
            "Condition": "qicore-condition", "MedicationDispense": "qicore-medicationdispense"}  # fmt: skip
INGREDIENTS = ("sertraline", "fluoxetine", "citalopram", "escitalopram", "venlafaxine",
               "duloxetine")  # fmt: skip


def data_dir() -> Path:
    env = os.environ.get("RXAUDIT_SHARED_DATA")
    for c in [Path(env)] if env else DATA_CANDIDATES:
        if (c / "cms128-qicore-2024").is_dir():
            return c / "cms128-qicore-2024"
    raise SystemExit("the CMS128 bundle is not found (set RXAUDIT_SHARED_DATA)")


def fqm(measure: Path, patients: Path, out: Path) -> list[dict]:
    exe = ROOT / "node_modules" / ".bin" / "fqm-execution"
    if not exe.exists():
        raise SystemExit("fqm-execution is not installed: run `npm ci` in the project")
    subprocess.run(
        [str(exe), "reports", "-m", str(measure), "--patients-directory", str(patients),
         "-s", PERIOD[0], "-e", PERIOD[1], "-o", str(out)],
        check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    if not out.is_file():
        raise SystemExit(f"fqm-execution wrote no results for {patients.name}")
    return json.loads(out.read_text())


def populations(report: dict) -> list[dict[str, int]]:
    return [
        {p["code"]["coding"][0]["code"]: p.get("count", 0) for p in g["population"]}
        for g in report["group"]
    ]


def subject(report: dict) -> str:
    ref = (report.get("subject") or {}).get("reference", "")
    if ref:
        return ref.split("/")[-1]
    for c in report.get("contained") or []:
        for p in c.get("parameter") or []:
            if p.get("name") == "subject":
                return p["valueString"]
    return ""


def published_cases(src: Path, work: Path) -> tuple[int, list[str]]:
    """Run the 26 test cases; return how many and the ids that differ."""
    got = {subject(r): populations(r) for r in fqm(src / "CMS128-measure-bundle.json",
                                                   src / "tests", work / "published.json")}  # fmt: skip
    wrong = []
    expected = sorted(p for p in (src / "expected").glob("*.json")
                      if (src / "tests" / p.name).is_file())  # fmt: skip
    for path in expected:
        report = json.loads(path.read_text())
        if got.get(subject(report)) != populations(report):
            wrong.append(path.stem)
    return len(expected), wrong


# -- the generated population --------------------------------------------------


def valuesets(bundle: dict) -> dict[str, list[dict]]:
    return {
        e["resource"]["name"]: e["resource"].get("expansion", {}).get("contains", [])
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "ValueSet"
    }


def products(vs: dict[str, list[dict]]) -> list[dict]:
    """SSRI and SNRI oral products of CMS128's antidepressant value set that
    rxaudit names by ingredient (no extended-release paroxetine, no weekly)."""
    out = []
    for c in vs["AntidepressantMedication"]:
        name = c.get("display", "").lower()
        excluded = ("pack", "weekly", "delayed", "extended", "24 hr", "12 hr", "solution")
        if any(i in name for i in INGREDIENTS) and "oral" in name:
            if not any(w in name for w in excluded):
                out.append(c)
    return out


def scenario(rng: random.Random) -> list[tuple[int, int]]:
    """(day from the episode start, days supply) of a patient's dispenses."""
    kind = rng.choice(["regular", "regular", "late", "early", "gap", "long", "short"])
    fills, day = [], 0
    if kind == "long":
        return [(0, rng.choice([60, 84, 90])), (rng.randint(60, 100), 30)]
    n = rng.randint(1, 6) if kind != "short" else rng.randint(1, 2)
    for _ in range(n):
        supply = rng.choice([30, 30, 30, 28, 14])
        fills.append((day, supply))
        step = {"regular": rng.randint(supply - 2, supply + 4),
                "late": rng.randint(supply + 5, supply + 25),
                "early": rng.randint(supply - 12, supply - 3),
                "gap": rng.choice([supply, supply + rng.randint(31, 50)]),
                "short": supply + rng.randint(0, 10)}[kind]  # fmt: skip
        day += max(1, step)
    return fills


def patient_bundle(i: int, rng: random.Random, vs, meds: list[dict]) -> tuple[str, dict, list]:
    pid = f"cms128-{i:05d}"
    start = INTAKE[0] + dt.timedelta(days=rng.randint(0, (INTAKE[1] - INTAKE[0]).days))
    fills = scenario(rng)
    med = rng.choice(meds)
    mdd = rng.choice([c for c in vs["MajorDepression"] if c["system"].endswith("icd-10-cm")])
    visit = next(c for c in vs["OfficeVisit"] if c["code"] == "99213")
    subject = {"reference": f"Patient/{pid}"}
    born = dt.date(rng.randint(1950, 1995), rng.randint(1, 12), rng.randint(1, 28))

    def at(d: dt.date) -> str:
        return f"{d.isoformat()}T10:00:00.000Z"

    resources = [
        {"resourceType": "Patient", "id": pid, "gender": rng.choice(["female", "male"]),
         "birthDate": born.isoformat()},
        {"resourceType": "Encounter", "id": f"{pid}-visit", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "type": [{"coding": [{"system": visit["system"], "code": visit["code"]}]}],
         "subject": subject, "period": {"start": at(start), "end": at(start)}},
        {"resourceType": "Condition", "id": f"{pid}-mdd",
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
         "code": {"coding": [{"system": mdd["system"], "code": mdd["code"]}]},
         "subject": subject, "onsetDateTime": at(start)},
        {"resourceType": "Condition", "id": f"{pid}-ptsd",
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F43.10"}]},
         "subject": subject, "onsetDateTime": at(start - dt.timedelta(days=30))},
    ]  # fmt: skip
    for k, (day, supply) in enumerate(fills):
        resources.append({
            "resourceType": "MedicationDispense", "id": f"{pid}-d{k}", "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": med["system"], "code": med["code"],
                                                      "display": med["display"]}]},
            "subject": subject, "daysSupply": {"value": supply, "system": "http://unitsofmeasure.org",
                                               "code": "d"},
            "whenHandedOver": at(start + dt.timedelta(days=day)),
        })  # fmt: skip
    for r in resources:  # QI-Core profiles: the measure's retrieves require them
        profile = PROFILES.get(r["resourceType"])
        if profile:
            r["meta"] = {
                "profile": [f"http://hl7.org/fhir/us/qicore/StructureDefinition/{profile}"]
            }
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}  # fmt: skip
    return pid, bundle, fills


# -- the two definitions, as written rules -------------------------------------


def merged_days(fills: list[tuple[int, int]]) -> int:
    """CMS128: the union of the dispenses' days (overlaps merged, nothing
    carried forward) within the 115 days from the episode start."""
    days = set()
    for day, supply in fills:
        days.update(d for d in range(day, day + supply) if 0 <= d < ACUTE_WINDOW)
    return len(days)


def rxaudit_days(fills: list[tuple[int, int]]) -> int:
    """rxaudit: an early refill's days are carried forward (each fill starts
    when the one before runs out); an episode ends after more than GAP_DAYS
    uncovered days, and only the first episode's days count."""
    covered, end = set(), None
    for day, supply in sorted(fills):
        if end is not None and day - end - 1 > GAP_DAYS:
            break  # a new episode: not the one that starts on day 0
        start = day if end is None else max(day, end + 1)
        covered.update(d for d in range(start, start + supply) if d < ACUTE_WINDOW)
        end = start + supply - 1
    return len(covered)


def predict(fills: list[tuple[int, int]]) -> tuple[bool, bool, str]:
    """(CMS128 passes, rxaudit passes, the reason they differ, if they do)."""
    cms, rx = merged_days(fills) >= ACUTE_DAYS, rxaudit_days(fills) >= ACUTE_DAYS
    if cms == rx:
        return cms, rx, ""
    sorted_fills = sorted(fills)
    gaps = any(b[0] - (a[0] + a[1]) > GAP_DAYS for a, b in zip(sorted_fills, sorted_fills[1:], strict=False))  # fmt: skip
    if rx and not cms:
        return cms, rx, "early refills carried forward by rxaudit, merged by CMS128"
    return cms, rx, ("a gap of more than 30 days ends rxaudit's episode; CMS128 counts the"
                     " dispenses after it" if gaps else "carry-forward past the window")  # fmt: skip


# -- the run -------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    src = data_dir()
    work = Path(tempfile.mkdtemp(prefix="rxaudit-cms128-"))
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        raise SystemExit("set DATABASE_URL (a server where a scratch database may be made)")
    name = f"rxaudit_cms128_{os.getpid()}"
    try:
        n_cases, wrong = published_cases(src, work)
        print(f"published test cases: {n_cases - len(wrong)} of {n_cases} as expected"
              + (f" (differ: {', '.join(wrong)})" if wrong else ""))  # fmt: skip
        bundle = json.loads((src / "CMS128-measure-bundle.json").read_text())
        vs = valuesets(bundle)
        meds = products(vs)
        rng = random.Random(args.seed)
        patients = work / "patients"
        patients.mkdir()
        plan = {}
        for i in range(args.patients):
            pid, pb, fills = patient_bundle(i, rng, vs, meds)
            (patients / f"{pid}.json").write_text(json.dumps(pb))
            plan[pid] = fills
        cms = {subject(r): populations(r)[0] for r in fqm(
            src / "CMS128-measure-bundle.json", patients, work / "generated.json")}  # fmt: skip
        rx = rxaudit_acute(patients, work, admin, name)
        agree = explained = unexplained = 0
        tokens = Tokenizer(KEY)
        reasons: dict[str, int] = {}
        for pid, fills in sorted(plan.items()):
            pops = cms.get(pid, {})
            if not pops.get("denominator") or pops.get("denominator-exclusion"):
                print(f"  {pid}: not in CMS128's denominator ({pops})")
                unexplained += 1
                continue
            cms_pass = bool(pops.get("numerator"))
            rx_pass = (rx.get(tokens("pt", pid)) or 0) >= ACUTE_DAYS
            want_cms, want_rx, reason = predict(fills)
            if cms_pass == rx_pass:
                agree += 1
            elif (cms_pass, rx_pass) == (want_cms, want_rx) and reason:
                explained += 1
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                unexplained += 1
                print(f"  {pid}: CMS128 {cms_pass}, rxaudit {rx_pass} (covered"
                      f" {rx.get(tokens('pt', pid))}); predicted {want_cms}/{want_rx}; fills {fills}")  # fmt: skip
        for reason, n in sorted(reasons.items()):
            print(f"  explained ({n}): {reason}")
        print(f"cms128 crosscheck: {len(plan)} patients, {agree} agree, {explained} explained,"
              f" {unexplained} unexplained")  # fmt: skip
        return 1 if unexplained or wrong else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(db.to_libpq(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))  # fmt: skip


def rxaudit_acute(patients: Path, work: Path, admin: str, name: str) -> dict[str, int]:
    """Convert the Bundles, audit them in a scratch database, return each
    patient's acute covered days of the episode that starts on its first fill."""
    with psycopg.connect(db.to_libpq(admin), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(db.to_libpq(admin), dbname=name)
    env = {**os.environ, "DATABASE_URL": url, "RXAUDIT_TOKEN_KEY": KEY}
    subprocess.run(
        [sys.executable, "-m", "audit", "--quiet", "run", "--from", "fhir", str(patients),
         "--as-of", PERIOD[1], "--out", str(work / "reports")],
        check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select distinct on (patient_id) patient_id, acute_covered_days from core.ad_episodes"
            " order by patient_id, episode_start"
        ).fetchall()
    return dict(rows)


if __name__ == "__main__":
    raise SystemExit(main())
