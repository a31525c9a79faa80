"""The QI dashboard: one self-contained HTML file per run.

The page holds its own scripts and styles (the bundled Plotly.js, cartesian
build, MIT licence, and ``dashboard.js``/``dashboard.css`` of this package);
it needs no server and no network. The data travels inside the page as
gzip-compressed JSON in base64, unpacked by the browser's
``DecompressionStream``, which keeps a 100,000-patient report to a few
megabytes.

The shared variant (``shared=True``) holds only the small-cell-suppressed
aggregates of ``audit.measures_shared``: no case, no patient id, no
prescriber.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import html
import json
import re
from pathlib import Path

import psycopg

STATIC = Path(__file__).parent / "static"
PLOTLY = STATIC / "plotly-cartesian-3.7.0.min.js"
EPOCH = dt.date(1970, 1, 1)

KINDS = ("fill", "session", "event", "diagnosis", "assessment")


def _columns(cur) -> dict[str, list]:
    names = [c.name for c in cur.description]
    cols: dict[str, list] = {n: [] for n in names}
    for row in cur:
        for n, v in zip(names, row, strict=True):
            cols[n].append(v)
    return cols


class _Codes:
    """Dictionary encoding of repeated strings."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, value: str | None) -> int:
        if value is None:
            return -1
        if value not in self.index:
            self.index[value] = len(self.values)
            self.values.append(value)
        return self.index[value]


def _day(d: dt.date | None) -> int | None:
    return None if d is None else (d - EPOCH).days


def _measures(conn: psycopg.Connection, run_id: str, shared: bool) -> dict:
    if shared:
        cur = conn.execute(
            "select measure_id, kind, period, site_id, denominator, numerator,"
            " rate::float8, ci_low::float8, ci_high::float8, outlier, suppressed"
            " from audit.measures_shared where run_id = %s order by measure_id, period, site_id",
            (run_id,),
        )
    else:
        cur = conn.execute(
            "select measure_id, kind, period, site_id, denominator, numerator,"
            " rate::float8, ci_low::float8, ci_high::float8, outlier, false as suppressed"
            " from audit.measures where run_id = %s and prescriber_id = ''"
            " order by measure_id, period, site_id",
            (run_id,),
        )
    return _columns(cur)


def _cases(conn: psycopg.Connection, run_id: str) -> tuple[dict, dict]:
    codes = {k: _Codes() for k in ("site", "prescriber", "label")}
    cur = conn.execute(
        "select c.case_id, c.rule_id, c.severity, c.status, c.patient_id, c.site_id,"
        " c.prescriber_id, c.case_date, c.summary, coalesce(v.status, '') as review,"
        " c.first_seen_run, c.last_seen_run, coalesce(pc.index_date, null) as index_date"
        " from audit.cases c"
        " left join lateral (select status from audit.reviews x where x.case_id = c.case_id"
        "   order by x.review_id desc limit 1) v on true"
        " left join core.ptsd_cohort pc on pc.patient_id = c.patient_id"
        " where c.last_seen_run = %s or c.status = 'resolved'"
        " order by c.rule_id, c.case_date, c.patient_id, c.case_id",
        (run_id,),
    )
    cases: dict[str, list] = {k: [] for k in (
        "id", "rule", "severity", "status", "patient", "site", "prescriber", "date",
        "summary", "review", "first", "last", "index")}  # fmt: skip
    position = {}
    for i, r in enumerate(cur):
        position[r[0]] = i
        cases["id"].append(r[0])
        cases["rule"].append(r[1])
        cases["severity"].append(r[2])
        cases["status"].append(r[3])
        cases["patient"].append(r[4])
        cases["site"].append(codes["site"](r[5]))
        cases["prescriber"].append(codes["prescriber"](r[6]))
        cases["date"].append(_day(r[7]))
        cases["summary"].append(r[8])
        cases["review"].append(r[9])
        cases["first"].append(r[10])
        cases["last"].append(r[11])
        cases["index"].append(_day(r[12]))

    # Evidence rows on a timeline: fills as bars of their covered days, the
    # rest as points. One flat array of [case, kind, start, end, label].
    cur = conn.execute(
        "with ev as ("
        "  select c.case_id, split_part(e, ':', 1) as tbl, substr(e, strpos(e, ':') + 1) as id"
        "  from audit.cases c cross join lateral unnest(string_to_array(c.evidence, ';')) e"
        "  where c.last_seen_run = %s or c.status = 'resolved')"
        " select ev.case_id, 0, coalesce(fc.cover_start, p.filled_on),"
        "   coalesce(fc.cover_end, p.filled_on + p.days_supply - 1),"
        "   coalesce(initcap(fc.ingredient) || ': ', '') || p.drug_name"
        "   || coalesce(' ' || audit.num(coalesce(p.daily_dose_mg,"
        "     p.strength_mg * p.quantity / p.days_supply)) || ' mg/day', '')"
        " from ev join core.prescriptions p on ev.tbl = 'prescriptions' and p.rx_id = ev.id"
        "   and p.is_current"
        " left join core.fill_coverage fc on fc.rx_id = p.rx_id"
        " union all select ev.case_id, 1, s.session_date, s.session_date, s.modality || ' session'"
        " from ev join core.therapy_sessions s on ev.tbl = 'therapy_sessions'"
        "   and s.session_id = ev.id and s.is_current"
        " union all select ev.case_id, 2, e.event_date, e.event_date, e.event_type"
        " from ev join core.clinical_events e on ev.tbl = 'clinical_events'"
        "   and e.event_id = ev.id and e.is_current"
        " union all select ev.case_id, 3, d.diagnosed_on, d.diagnosed_on, d.code_system || ' ' || d.code"
        " from ev join core.diagnoses d on ev.tbl = 'diagnoses' and d.diagnosis_id = ev.id"
        "   and d.is_current"
        " union all select ev.case_id, 4, a.assessed_on, a.assessed_on,"
        "   a.instrument || ' ' || a.score"
        " from ev join core.assessments a on ev.tbl = 'assessments' and a.assessment_id = ev.id"
        "   and a.is_current"
        " order by 1, 3, 2, 5",
        (run_id,),
    )
    flat: list[int] = []
    for case_id, kind, start, end, label in cur:
        if case_id in position:
            flat.extend((position[case_id], kind, _day(start), _day(end), codes["label"](label)))
    lookups = {k: c.values for k, c in codes.items()}
    return {**cases, "evidence": flat}, lookups


def _quality(conn: psycopg.Connection) -> dict:
    cur = conn.execute(
        "select b.batch_id, b.status, to_char(b.as_of, 'YYYY-MM-DD') as as_of, b.rows_in,"
        " b.rows_quarantined, b.reason,"
        " coalesce((select bool_and(v.success) from audit.validation_results v"
        "   where v.batch_no = b.batch_no), null) as gx_success"
        " from audit.batches b order by b.batch_no"
    )
    return _columns(cur)


def payload(conn: psycopg.Connection, run_id: str, summary: dict, shared: bool) -> dict:
    rules = conn.execute(
        "select rule_id, title, severity, guideline from audit.rules order by rule_id"
    ).fetchall()
    doc: dict = {
        "meta": {
            "run_id": run_id,
            "as_of": summary.get("as_of"),
            "policy": summary.get("policy", {}),
            "shared": shared,
            "counts": {k: v for k, v in summary.get("cases", {}).items() if k != "by_rule"},
            "epoch": EPOCH.isoformat(),
        },
        "rules": [{"id": r[0], "title": r[1], "severity": r[2], "guideline": r[3]} for r in rules],
        "measures": _measures(conn, run_id, shared),
        "quality": _quality(conn),
    }
    if not shared:
        cases, lookups = _cases(conn, run_id)
        doc["cases"] = cases
        doc["lookups"] = lookups
    return doc


def build(conn: psycopg.Connection, run_id: str, summary: dict, shared: bool = False) -> str:
    data = json.dumps(payload(conn, run_id, summary, shared), separators=(",", ":"), default=str)
    packed = base64.b64encode(gzip.compress(data.encode(), compresslevel=6, mtime=0)).decode()
    title = "rxaudit shared report" if shared else "rxaudit QI dashboard"
    parts = {
        "TITLE": html.escape(title),
        "CSS": (STATIC / "dashboard.css").read_text(),
        "PLOTLY": PLOTLY.read_text(),
        "APP": (STATIC / "dashboard.js").read_text(),
        "DATA": packed,
    }
    template = (STATIC / "dashboard.html").read_text()
    # One pass over the template only: inserted text is never scanned again.
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], template)
