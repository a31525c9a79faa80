"""Rule fixtures as data: ``sql/rules/<RULE_ID>/tests/<outcome>.yaml``.

A fixture holds its input rows (only the columns that matter; the rest
defaulted), ``as_of``, an optional ``history_from`` and policy overrides, and
the expected cases. Shape::

    description: one sentence: what the fixture shows
    as_of: 2025-12-31
    history_from: 2015-01-01          # optional, the manifest's
    policy: {benzodiazepines: {bzd_long_term_days: 120}}   # optional overrides
    base: "2026.1"                     # optional: the bundled policy to start from
    patients:
      p1:
        ptsd_on: 2024-01-01            # a PTSD diagnosis (F43.10), or ptsd: [code, date]
        birth_year: 1950               # optional (default 1980; null: unknown)
        fills:                         # prescriptions.csv rows
          - {id: a1, drug: alprazolam, on: 2024-02-01, days: 30, dose: 1,
             repeat: 12, every: 30, name: ..., strength: ..., quantity: ...,
             setting: outpatient, source_type: dispensed, code: ..., system: ...}
        sessions: [{on: 2024-01-05, modality: CPT, repeat: 6, every: 7, id: s1}]
        diagnoses: [{code: G40.909, on: 2018-05-01, id: d1}]
        events: [{on: 2024-06-01, type: HOSPICE, id: e1}]
        pcl5: [{on: 2024-03-01, score: 50, id: a1}]
        caps5: [{on: 2024-03-01, score: 45, id: c1}]
        history_from: 2023-01-01       # optional, schema 1.2 (patients.history_from)
        enrollments: [{trial: NCT01234567, on: 2024-01-01, ended: 2024-12-31}]
    trials: [{id: NCT01234567, approved: true}]
    expect:                            # every case of the checked rules, exactly
      - {rule: BZD-PTSD, patient: p1, status: open, severity: high,
         case_date: 2024-02-01, summary: "... a substring ...",
         evidence: [a1, d1],           # ids (of this file) the evidence must hold
         prescriber: dr-1}             # optional: the case's prescriber
    pathway: {p1: "discuss a gradual, patient-centred benzodiazepine taper"}
    # or {p1: {step: "...", reason: "... a substring of next_step_reason ..."}}

The rules checked are the folder's rule, or the fixture's ``rules`` list
(``rules: []`` for the care pathway's fixtures in ``sql/pathway/tests/``).
With ``repeat``, ids get a suffix ``-1``, ``-2``...; ``on`` may be a date or
``+N`` days after the patient's ``ptsd_on``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml

from audit.engine.catalogue import RULES_DIR
from tests.rulekit import World, d, evaluate


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true and false (``on: 2024-01-01`` is a key)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        [_first],
    )


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (a safe loader)


PATHWAY_DIR = RULES_DIR.parent / "pathway"


def all_fixtures() -> list[Path]:
    """Every rule's fixtures, then the care pathway's (sql/pathway/tests/)."""
    return sorted(RULES_DIR.glob("*/tests/*.yaml")) + sorted(PATHWAY_DIR.glob("tests/*.yaml"))


def _date(value, anchor: str | None) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    if text.startswith(("+", "-")) and anchor:
        return d(anchor, int(text))
    return text


def _repeat(item: dict, anchor: str | None):
    n = int(item.get("repeat", 1))
    every = int(item.get("every", 30))
    base = _date(item["on"], anchor)
    for i in range(n):
        ident = item.get("id")
        if ident and n > 1:
            ident = f"{ident}-{i + 1}"
        yield d(base, i * every), ident


def build_world(doc: dict) -> World:
    world = World(as_of=_date(doc["as_of"], None))
    if doc.get("history_from"):
        world.history_from = _date(doc["history_from"], None)
    for trial in doc.get("trials", []):
        world.trial(trial["id"], "true" if trial.get("approved", True) else "false")
    for pid, spec in (doc.get("patients") or {}).items():
        spec = spec or {}
        ptsd_on = _date(spec["ptsd_on"], None) if spec.get("ptsd_on") else None
        code, system = "F43.10", "ICD10CM"
        if spec.get("ptsd"):
            code, ptsd_on = str(spec["ptsd"][0]), _date(spec["ptsd"][1], None)
            system = "SNOMED" if code.isdigit() else "ICD10CM"
        p = world.patient(
            pid, ptsd_on=ptsd_on, site=spec.get("site", "north"), code=code, system=system,
            birth_year=spec.get("birth_year", 1980),
            history_from=_date(spec["history_from"], None) if spec.get("history_from") else None,
        )  # fmt: skip
        for f in spec.get("fills", []):
            for on, ident in _repeat(f, ptsd_on):
                p.fill(
                    f["drug"], on, int(f.get("days", 30)), f.get("dose"),
                    name=f.get("name"), code=f.get("code"), system=f.get("system"),
                    strength=f.get("strength"), quantity=f.get("quantity"),
                    setting=f.get("setting", "outpatient"), rx_id=ident,
                    source_type=f.get("source_type"), prescriber=f.get("prescriber", "dr-1"),
                    site=f.get("site"),
                )  # fmt: skip
        for s in spec.get("sessions", []):
            for on, ident in _repeat({"every": 7, **s}, ptsd_on):
                p.session(on, s.get("modality", "PE"), s.get("site"), session_id=ident)
        for x in spec.get("diagnoses", []):
            p.diagnosis(str(x["code"]), _date(x["on"], ptsd_on), x.get("system", "ICD10CM"),
                        diagnosis_id=x.get("id"))  # fmt: skip
        for e in spec.get("events", []):
            p.event(_date(e["on"], ptsd_on), e["type"], event_id=e.get("id"))
        for a in spec.get("pcl5", []):
            p.pcl5(_date(a["on"], ptsd_on), int(a["score"]), assessment_id=a.get("id"))
        for a in spec.get("caps5", []):
            p.caps5(_date(a["on"], ptsd_on), int(a["score"]), assessment_id=a.get("id"))
        for e in spec.get("enrollments", []):
            p.enrol(e["trial"], _date(e["on"], ptsd_on),
                    _date(e["ended"], ptsd_on) if e.get("ended") else None)  # fmt: skip
    return world


def policy_file(doc: dict, tmp_path: Path) -> Path | None:
    if not doc.get("policy") and not doc.get("base"):
        return None
    lines = ['version = "fixture"'] + ([f'base = "{doc["base"]}"'] if doc.get("base") else [])
    for section, values in (doc.get("policy") or {}).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "policy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_fixture(path: Path, conn, tmp_path: Path) -> None:
    """Load the fixture, run the audit, and check its expectations."""
    doc = load(path)
    rule_id = path.parent.parent.name
    checked = set(doc.get("rules", [rule_id]))
    world = build_world(doc)
    world.load(conn, tmp_path)
    cases = evaluate(conn, policy_file(doc, tmp_path))
    got = {
        (c["rule_id"], c["patient_id"], c["status"], c["severity"], c["case_date"]): c
        for c in cases
        if c["rule_id"] in checked
    }
    expected = {
        (e["rule"], str(e["patient"]), e.get("status", "open"), e["severity"],
         _date(e["case_date"], None)): e
        for e in doc.get("expect") or []
    }  # fmt: skip
    assert set(got) == set(expected), (
        f"{path.name}: cases differ\n  missing: {sorted(set(expected) - set(got))}\n"
        f"  unexpected: {sorted(set(got) - set(expected))}\n"
        f"  summaries: {[c['summary'] for c in got.values()]}"
    )
    for key, e in expected.items():
        case = got[key]
        if "summary" in e:
            assert e["summary"] in case["summary"], (path.name, case["summary"])
        for ident in e.get("evidence", []):
            ids = {part.split(":", 1)[1] for part in case["evidence"].split(";")}
            assert ident in ids, (path.name, ident, case["evidence"])
        if "prescriber" in e:
            assert case["prescriber_id"] == e["prescriber"], (path.name, case["prescriber_id"])
        if "evidence_count" in e:
            assert len(case["evidence"].split(";")) == e["evidence_count"], case["evidence"]
    for pid, step in (doc.get("pathway") or {}).items():
        want = step if isinstance(step, dict) else {"step": step}
        row = conn.execute(
            "select next_step, next_step_reason from audit.pathway where patient_id = %s",
            (str(pid),),
        ).fetchone()
        assert row is not None and row[0] == want["step"], (path.name, pid, row)
        if "reason" in want:
            assert want["reason"] in (row[1] or ""), (path.name, pid, row)
