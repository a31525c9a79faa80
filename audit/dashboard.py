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
import html
import json
import re
import zlib
from pathlib import Path

import psycopg
from psycopg import sql

from audit import db, overview
from audit.background import Background

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
            " rate::float8, ci_low::float8, ci_high::float8, outlier, suppressed,"
            " null::integer as numerator_after_review"
            " from audit.measures_shared where run_id = %s order by measure_id, period, site_id",
            (run_id,),
        )
    else:
        cur = conn.execute(
            "select measure_id, kind, period, site_id, denominator, numerator,"
            " rate::float8, ci_low::float8, ci_high::float8, outlier, false as suppressed"
            ", numerator_after_review"
            " from audit.measures where run_id = %s and prescriber_id = ''"
            " order by measure_id, period, site_id",
            (run_id,),
        )
    return _columns(cur)


class _Packer:
    """gzip-compresses text fed in pieces (never one copy of the whole), in a
    thread of its own (:class:`audit.background.Background`): the caller goes
    on with its queries meanwhile."""

    PIECE = 1 << 20
    BUFFERED = 64

    def __init__(self) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip format
        self._out: list[bytes] = []
        self._work = Background(
            lambda piece: self._out.append(self._z.compress(piece)),
            queued=self.BUFFERED,
            name="dashboard-gzip",
        )

    def feed(self, text: str) -> None:
        for i in range(0, len(text), self.PIECE):
            self._work.feed(text[i : i + self.PIECE].encode())

    def close(self) -> None:
        """Stop the thread (what was fed is compressed first)."""
        self._work.stop()

    def finish(self) -> bytes:
        self._work.finish()
        self._out.append(self._z.flush())
        return b"".join(self._out)


def _feed_cases(conn: psycopg.Connection, run_id: str, packer: _Packer) -> None:
    """Stream the cases (with their evidence) and lookups, built in PostgreSQL,
    into ``packer`` as ``"cases":{"fields":[...],"chunks":[...]},"lookups":{...}``.

    A server-side cursor hands over one row at a time: the names of a case's
    fields, then 10,000 cases at a time, so memory does not grow with the run.
    """
    query = sql.SQL(CASES_SQL.read_text())  # our own file, never data
    packer.feed('"cases":{')
    first = True
    with conn.cursor(name="rxaudit_dashboard_cases") as cur:
        cur.itersize = 1
        cur.execute(query, {"run_id": run_id})
        for part, _, value in cur:
            if part == 0:
                packer.feed('"fields":' + value + ',"chunks":[')
            elif part == 1:
                packer.feed(value if first else "," + value)
                first = False
            else:
                packer.feed(']},"lookups":' + value)


def _quality(conn: psycopg.Connection, shared: bool = False) -> dict:
    """The batches behind the run; a shared file carries no batch-level count
    (a batch of 3 rows is a small count) and no rejection reason."""
    if shared:
        cur = conn.execute(
            "select b.batch_id, b.status, to_char(b.as_of, 'YYYY-MM-DD') as as_of,"
            " null::bigint as rows_in, null::bigint as rows_quarantined, null::text as reason,"
            " null::boolean as gx_success from audit.batches b order by b.batch_no"
        )
        return _columns(cur)
    cur = conn.execute(
        "select b.batch_id, b.status, to_char(b.as_of, 'YYYY-MM-DD') as as_of, b.rows_in,"
        " b.rows_quarantined, b.reason,"
        " coalesce((select bool_and(v.success) from audit.validation_results v"
        "   where v.batch_no = b.batch_no), null) as gx_success"
        " from audit.batches b order by b.batch_no"
    )
    return _columns(cur)


def _overview(rules: list[tuple], measures: dict, as_of: str | None, runs: dict) -> dict:
    """The headlines and every quarter's heat map, as audit.overview defines
    them (the workspace shows the same), and the case panel's facts."""
    rule_rows = [{"rule_id": r[0], "title": r[1], "severity": r[2], "report_order": r[4],
                  "matures_days": r[5]} for r in rules]  # fmt: skip
    names = list(measures)
    rows = [dict(zip(names, v, strict=True)) for v in zip(*measures.values(), strict=True)]
    rows = [r for r in rows if r["kind"] == "rule"]
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:  # nothing loaded yet
        day = None
    periods = sorted({r["period"] for r in rows})
    heads = overview.headlines(rule_rows, rows, day)
    return {
        "headlines": heads,
        "periods": periods,
        "trend": overview.trend(heads, rows),
        "heat": {p: overview.heatmap(rule_rows, rows, p, day) for p in periods},
        "colours": overview.colours(rule_rows),
        "facts": overview.CASE_FACTS,
        "runs": runs,
    }


def payload(conn: psycopg.Connection, run_id: str, summary: dict, shared: bool) -> dict:
    rules = conn.execute(
        "select rule_id, title, severity, guideline, report_order, matures_days"
        " from audit.rules order by report_order, rule_id"
    ).fetchall()
    measures = _measures(conn, run_id, shared)
    # a run's id is shown as the day its data stood (as_of), the id beside it
    runs = {} if shared else {r[0]: str(r[1]) for r in conn.execute(
        "select run_id, as_of from audit.runs where as_of is not null")}  # fmt: skip
    doc: dict = {
        "meta": {
            "run_id": run_id,
            "as_of": summary.get("as_of"),
            "policy": summary.get("policy", {}),
            "shared": shared,
            # case totals cross every suppressed cell: never in a shared file
            "counts": {}
            if shared
            else {k: v for k, v in summary.get("cases", {}).items() if k != "by_rule"},
            "epoch": EPOCH.isoformat(),
        },
        "rules": [{"id": r[0], "title": r[1], "severity": r[2], "guideline": r[3]} for r in rules],
        "measures": measures,
        "overview": _overview(rules, measures, summary.get("as_of"), runs),
        "quality": _quality(conn, shared),
    }
    return doc


class Pending:
    """A dashboard whose data was read and is being compressed: :meth:`write`
    writes the file once the compression is done."""

    def __init__(self, packer: _Packer, shared: bool) -> None:
        self._packer = packer
        self._shared = shared

    def close(self) -> None:
        self._packer.close()

    def write(self, path: Path) -> int:
        """Write the page to ``path``; its size in bytes."""
        title = "rxaudit shared report" if self._shared else "rxaudit QI dashboard"
        parts = {
            "TITLE": lambda: html.escape(title),
            "CSS": lambda: (STATIC / "dashboard.css").read_text(),
            "PLOTLY": lambda: PLOTLY.read_text(),
            "APP": lambda: (STATIC / "dashboard.js").read_text(),
            "DATA": lambda: base64.b64encode(self._packer.finish()).decode(),
        }
        template = (STATIC / "dashboard.html").read_text()
        size = 0
        # Placeholders are filled in one pass: inserted text is never scanned again.
        with path.open("w", encoding="utf-8") as fh:
            for i, piece in enumerate(re.split(r"\{\{([A-Z]+)\}\}", template)):
                text = parts[piece]() if i % 2 else piece
                fh.write(text)
                size += len(text.encode())
        return size


def start(conn: psycopg.Connection, run_id: str, summary: dict, shared: bool = False) -> Pending:
    """Read the dashboard's data of ``run_id``; it is compressed while the
    caller goes on (:meth:`Pending.write` writes the file).

    Must run inside a transaction (the cases stream through a server-side
    cursor).
    """
    data = json.dumps(payload(conn, run_id, summary, shared), separators=(",", ":"), default=str)
    packer = _Packer()
    try:
        packer.feed(data[:-1])
        if not shared:
            packer.feed(",")
            _feed_cases(conn, run_id, packer)
        packer.feed("}")
    except BaseException:
        packer.close()
        raise
    return Pending(packer, shared)


def start_pages(
    conn: psycopg.Connection, run_id: str, summary: dict, shared: bool
) -> dict[str, Pending]:
    """The run's dashboards by file name (and the shared one if ``shared``),
    started as :func:`start` starts one."""
    pages = {"dashboard.html": start(conn, run_id, summary)}
    try:
        if shared:
            pages["dashboard_shared.html"] = start(conn, run_id, summary, shared=True)
    except BaseException:
        pages["dashboard.html"].close()
        raise
    return pages


def write(
    conn: psycopg.Connection, run_id: str, summary: dict, path: Path, shared: bool = False
) -> int:
    """Write the dashboard of ``run_id`` to ``path``; its size in bytes.

    Must run inside a transaction (the cases stream through a server-side
    cursor).
    """
    pending = start(conn, run_id, summary, shared)
    try:
        return pending.write(path)
    finally:
        pending.close()
