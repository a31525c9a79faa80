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
from psycopg import sql

from audit import db

STATIC = Path(__file__).parent / "static"
CASES_SQL = db.SQL_DIR / "report" / "dashboard_cases.sql"
PLOTLY = STATIC / "plotly-cartesian-3.7.0.min.js"
EPOCH = dt.date(1970, 1, 1)


def _columns(cur) -> dict[str, list]:
    names = [c.name for c in cur.description]
    cols: dict[str, list] = {n: [] for n in names}
    for row in cur:
        for n, v in zip(names, row, strict=True):
            cols[n].append(v)
    return cols


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


def _cases(conn: psycopg.Connection, run_id: str) -> tuple[str, str]:
    """The cases (with their evidence) and lookups as JSON text, built in PostgreSQL."""
    query = sql.SQL(CASES_SQL.read_text())  # our own file, never data
    cases, evidence, lookups = conn.execute(
        sql.SQL("select cases::text, evidence, lookups::text from (") + query + sql.SQL(") as d"),
        {"run_id": run_id},
    ).fetchone()
    return cases[:-1] + ',"evidence":' + evidence + "}", lookups


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
    return doc


def build(conn: psycopg.Connection, run_id: str, summary: dict, shared: bool = False) -> str:
    data = json.dumps(payload(conn, run_id, summary, shared), separators=(",", ":"), default=str)
    if not shared:
        cases, lookups = _cases(conn, run_id)
        data = data[:-1] + ',"cases":' + cases + ',"lookups":' + lookups + "}"
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
