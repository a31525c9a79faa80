"""The worklist, its CSV export and the case page."""

from __future__ import annotations

import csv
import io
import math

from starlette.requests import Request
from starlette.responses import Response

from audit import overview
from audit.web import charts
from audit.web.filters import choices, count, filters, listed
from audit.web.guard import HEADERS
from audit.web.session import Signed, Workspace, to_login
from audit.web.views.reviews import conflict

PAGE_ROWS = 100
CSV_COLUMNS = ("case_id", "rule_id", "rule_title", "severity", "status", "review_status",
               "patient_id", "site_id", "prescriber_id", "case_date", "summary",
               "review_conflict")  # fmt: skip


def csv_cell(value: object) -> str:
    """As ``audit.csv_safe`` in the report files: a leading = + - @ tab or CR gets '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _choices(ws: Workspace, s: Signed) -> dict[str, list[str]]:
    """The filter choices of the user's cases, kept until the next run (the
    cases change only with a run)."""
    state = s.conn.execute("select run_id from web.overview_state").fetchone() or {}
    key = ("choices", state.get("run_id"), s.me["role"], tuple(s.me["sites"] or ()))
    known = ws.figures.get(key)
    if known is None:
        if len(ws.figures) > 64:
            ws.figures.clear()
        known = ws.figures[key] = choices(s.conn)
    return known


def worklist(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if not s.me:
            return to_login()
        known = _choices(ws, s)
        f, query, where, problems = filters(request, s.me, known)
        total = count(s.conn, where)
        pages = max(1, math.ceil(total / PAGE_ROWS))
        try:
            page_no = min(max(1, int(request.query_params.get("page") or 1)), pages)
        except ValueError:
            page_no = 1
        rows = listed(s.conn, where, PAGE_ROWS, (page_no - 1) * PAGE_ROWS)
        s.conn.execute("select review.log_access('worklist', %s, %s)", (query or None, len(rows)))
        s.conn.commit()
        return s.page("cases.html", title="Worklist", cases=rows, total=total, page=page_no,
                      pages=pages, f=f, query=query, known=known, problems=problems)  # fmt: skip


def export(ws: Workspace, request: Request, form=None) -> Response:
    with Signed(ws, request) as s:
        if not s.me:
            return to_login()
        _, query, where, problems = filters(request, s.me, _choices(ws, s))
        if problems:  # the export follows the same filter: a wrong one is said, not ignored
            return s.page("error.html", 400, title="Not exported", message="; ".join(problems))
        rows = listed(s.conn, where, None, 0)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([csv_cell(r[c]) for c in CSV_COLUMNS])
        s.conn.execute("select review.log_access('export', %s, %s)", (query or None, len(rows)))
        s.conn.commit()
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            **HEADERS, "Content-Disposition": 'attachment; filename="cases.csv"'})  # fmt: skip


def case_page(ws: Workspace, request: Request, form=None) -> Response:
    case_id = request.path_params["case_id"]
    with Signed(ws, request) as s:
        if not s.me:
            return to_login()
        c = s.conn.execute("select * from web.cases where case_id = %s", (case_id,)).fetchone()
        if c is None:
            s.conn.execute("select review.log_access('case page refused', %s, 0)", (case_id,))
            s.conn.commit()
            return s.page("error.html", 404, title="Not found",
                          message="No such case at your sites.")  # fmt: skip
        one = {"case_id": case_id}
        reviews = s.conn.execute(
            "select * from web.reviews where case_id = %(case_id)s order by review_id desc", one
        ).fetchall()
        assigned = s.conn.execute(
            "select assignee, assigned_by, assigned_at from web.assignments"
            " where case_id = %(case_id)s order by assignment_id desc limit 1", one
        ).fetchone()  # fmt: skip
        assignable = [r["user_name"] for r in s.conn.execute(
            "select user_name from review.assignable(%(case_id)s)", one)]  # fmt: skip
        sources = s.conn.execute(
            "select * from web.case_sources where case_id = %(case_id)s"
            " order by file_name, record_id, batch_id", one
        ).fetchall()  # fmt: skip
        runs = s.conn.execute(
            "select * from web.runs where run_id = any(%s) order by finished_at",
            ([c["first_seen_run"], c["last_seen_run"]],),
        ).fetchall()
        patient = s.conn.execute(
            "select index_date, next_step, next_step_reason from web.case_patient"
            " where case_id = %(case_id)s", one
        ).fetchone() or {}  # fmt: skip
        items = s.conn.execute(
            "select kind, start_on, end_on, label from web.case_timeline where case_id = %(case_id)s"
            " order by start_on, kind, label", one
        ).fetchall()  # fmt: skip
        s.conn.execute("select review.log_access('case page', %s, 1)", (case_id,))
        s.conn.commit()
        as_of = {r["run_id"]: r["as_of"] for r in runs}

        def seen(run_id):  # the day the run's data stood, then the run
            return f"{as_of[run_id]} (run {run_id})" if as_of.get(run_id) else run_id

        values = {**c, "first_seen": seen(c["first_seen_run"]),
                  "last_seen": seen(c["last_seen_run"])}  # fmt: skip
        facts = [(label, values.get(key)) for label, key in overview.CASE_FACTS]
        return s.page("case.html", title=c["rule_title"] or c["rule_id"], c=c, reviews=reviews,
                      next_step=patient.get("next_step"),
                      next_step_reason=patient.get("next_step_reason"), facts=facts,
                      timeline=charts.timeline(items, patient.get("index_date"), c["case_date"]),
                      index_date=patient.get("index_date"),
                      assigned=assigned, assignable=assignable,
                      sources=sources, runs=runs, conflict=conflict(reviews))  # fmt: skip
